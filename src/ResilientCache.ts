/**
 * A cache that cannot fail: any `Cache` behind a circuit breaker, a per-operation timeout
 * and a fallback per operation. Its error channel is `never`, so the type proves that a
 * cache outage cannot reach the caller.
 *
 * | operation    | when the cache fails, times out or the breaker is open          |
 * | ------------ | --------------------------------------------------------------- |
 * | `get`        | a miss (or the memory copy, with `memoryFallback`)               |
 * | `set`        | success, nothing stored (but in memory, with `memoryFallback`)   |
 * | `delete`     | `false`                                                          |
 * | `invalidate` | `0`                                                              |
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Cache, CacheError, CacheService, MemoryOptions, SetOptions } from "./Cache.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import * as internal from "./internal/resilientCache.js"
import * as internalConfig from "./internal/resilientCacheConfig.js"
import type { ResilientCache } from "./internal/resilientCache.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * The operations of a resilient cache, which never fail, plus its health.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilientCacheService {
  /** Names the breaker, the metrics (tag `cache`) and the logs. */
  readonly name: string
  /** The value under `key`; a miss when the cache fails (or the memory copy, with `memoryFallback`). */
  readonly get: (key: string) => Effect.Effect<Option.Option<string>>
  /** Stores `value`; when the cache fails, succeeds without storing it there. */
  readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<void>
  /** Removes `key`; `false` when the cache fails. */
  readonly delete: (key: string) => Effect.Effect<boolean>
  /** Removes every key under `prefix`; `0` when the cache fails. */
  readonly invalidate: (prefix: string) => Effect.Effect<number>
  /** `true` while the breaker is `Open`, `HalfOpen` or `ForcedOpen`: answers may come from the fallback. */
  readonly degraded: Effect.Effect<boolean>
  /** The breaker in front of the cache, for health checks, registries and admin actions. */
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** Counters of this cache since it was made. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * What a resilient cache has answered since it was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Reads that returned a value, from the cache or from memory. */
  readonly hits: number
  /** Of `hits`, those served by the memory fallback. */
  readonly memoryHits: number
  /** Reads that returned no value, whether the cache said so or failed. */
  readonly misses: number
  /** Operations of any kind answered by their fallback. */
  readonly fallbacks: number
  /**
   * Of `fallbacks`, those whose operation was admitted as a half-open probe and outlived
   * `probePatience`: the caller had its fallback while the operation went on in the
   * background, and the breaker counts it by its outcome when it ends.
   */
  readonly probeFallbacks: number
}

/**
 * Why an operation was answered by its fallback, as tagged on the `fallbacks` metric:
 * the breaker refused the call, the call was a half-open probe still running after
 * `probePatience` (`ProbePending`), the call timed out, it failed, or it died with a defect.
 *
 * @since 0.1.0
 * @category models
 */
export type FallbackCause = "CircuitOpen" | "ProbePending" | "Timeout" | "Failure" | "Defect"

/**
 * The options of `layer` and `make`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the breaker, the metrics and the logs (default `"cache"`). */
  readonly name?: string | undefined
  /**
   * The longest one operation may take before it counts as a failure and is answered by
   * its fallback (default 5 seconds; `Duration.infinity` for none). A backend's own
   * timeout (Redis `commandTimeout`) should be shorter: when the backend declares one
   * within this timeout (`CacheService.commandTimeout`), `get`, `set` and `delete` rely on
   * it instead of racing a timer of their own, which costs two fibers per call.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How long the caller of a half-open probe waits for it (default 1 millisecond;
   * `Duration.infinity` to wait for the probe; `0` not to wait at all, the probe's caller
   * then always gets the fallback). A probe that has not answered by then runs
   * on in the background, its outcome still deciding the breaker, while its caller gets the
   * fallback: with the breaker open or half-open in front of a frozen cache, no caller
   * sits out the command timeout. A cache on the same host answers a probe's caller
   * within it; a farther one gives that caller a miss, once per probe. Applies to the
   * breaker this cache makes (`breaker.probePatience` overrides it); a breaker given
   * ready-made keeps its own.
   */
  readonly probePatience?: Duration.DurationInput | undefined
  /**
   * The breaker's options (defaults for a cache: `failureThreshold` 5, `resetTimeout` 30
   * seconds, `successThreshold` 3; `TooLarge` and `Protocol` errors do not count as
   * failures), or a breaker made elsewhere, e.g. one shared with a health registry.
   */
  readonly breaker?:
    | Omit<CircuitBreaker.CircuitBreaker.Options<CacheError>, "name">
    | CircuitBreaker.CircuitBreaker
    | undefined
  /**
   * Keeps an in-memory copy (`true` for 1000 entries and 5 minutes, or the options of
   * `Cache.makeMemory`): every `set` and every value read is also stored in memory, and a
   * `get` the cache cannot answer is answered from memory (default `false`). A copy keeps
   * the entry's remaining TTL (read with `getWithTtl`; a backend without it has its reads
   * not copied), so the fallback never serves an entry the cache has expired.
   */
  readonly memoryFallback?: boolean | MemoryOptions | undefined
  /**
   * A second fallback tier after the memory copy, typically files
   * (`effect-resilience/Cache/KeyValueStore`): a `Cache` service, or a Layer providing one,
   * built and released with the resilient cache (default none). Every `set` and every value
   * read is also stored there (a value memory already holds is not written again); a `get`
   * that neither the cache nor memory answers is answered from it, and copied into memory.
   * Every copy keeps the entry's remaining TTL. Its failures are misses and its operations
   * are bounded by `timeout`: the tier never fails the caller. Its hits count as `memoryHits`.
   */
  readonly fallbackCache?: CacheService | Layer.Layer<Cache, InvalidOptions> | undefined
}

export {
  /**
   * The `ResilientCache` service tag (`"effect-resilience/ResilientCache"`).
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { ResilientCache } from "effect-resilience"
   *
   * const program = Effect.gen(function*() {
   *   const cache = yield* ResilientCache.ResilientCache
   *   const cached = yield* cache.get("user:1") // Effect<Option<string>, never>
   *   const degraded = yield* cache.degraded
   *   return { cached, degraded }
   * })
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  ResilientCache
} from "./internal/resilientCache.js"

/**
 * Provides `ResilientCache` over the `Cache` in the context, and provides `Cache` again
 * as the resilient one (whose operations never fail), so code written against `Cache`
 * runs on it unchanged. Defaults: name `"cache"`, timeout 5 seconds, breaker opening
 * after 5 consecutive failures for 30 seconds and closing after 3 successful probes,
 * whose callers wait for them 1 millisecond at most, no memory fallback.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Cache, ResilientCache } from "effect-resilience"
 *
 * const CacheLive = ResilientCache.layer({ name: "sessions", memoryFallback: true }).pipe(
 *   Layer.provide(Cache.layerMemory())
 * )
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* ResilientCache.ResilientCache
 *   yield* cache.set("session:1", "{}", { ttl: "30 minutes" })
 *   return yield* cache.get("session:1")
 * }).pipe(Effect.provide(CacheLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<ResilientCache | Cache, InvalidOptions, Cache> =
  internal.layer

/**
 * The options `layerConfig` runs with: `defaults` (name `"redis"` unless given), with the
 * breaker's variables under the name in CONSTANT_CASE over `defaults.breaker`, read as
 * `CircuitBreaker.fromConfig` reads them: `REDIS_FAILURE_THRESHOLD` or the seeds'
 * `REDIS_CIRCUIT_BREAKER_THRESHOLD`, `REDIS_RESET_TIMEOUT` or the seeds'
 * `REDIS_CIRCUIT_BREAKER_TIMEOUT` (seconds when a bare number), `REDIS_SUCCESS_THRESHOLD`,
 * `REDIS_PROBE_PATIENCE`, ... The library's name wins over the seed's, with a warning naming
 * both when they differ. A breaker given ready-made keeps its own options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResilientCache } from "effect-resilience"
 *
 * // REDIS_CIRCUIT_BREAKER_THRESHOLD=3 REDIS_CIRCUIT_BREAKER_TIMEOUT=30
 * const shown = Effect.tap(ResilientCache.configOptions(), (options) => Effect.log(options.breaker))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const configOptions: (
  defaults?: Options
) => Effect.Effect<Options, InvalidOptions | ConfigError.ConfigError> = internalConfig.configOptions

/**
 * `layer` with its breaker read from the environment (see `configOptions`; name `"redis"`
 * unless given, so the variables are `REDIS_*`). Over a backend that answers a ping (the
 * Redis cache), the ping is the cache's check: every `REDIS_HEALTH_CHECK_INTERVAL` seconds
 * (else `HEALTH_CHECK_INTERVAL`, else 30) while the breaker is open, a ping that answers
 * moves it to `HalfOpen` (unless `ENABLE_AUTO_RECOVERY=false`); with a `Health` registry in
 * the context, the registry runs that check. Fails with `InvalidOptions` naming the option
 * and its variable (`"failureThreshold (REDIS_CIRCUIT_BREAKER_THRESHOLD)"`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { ResilientCache } from "effect-resilience"
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * // REDIS_URL=redis://cache:6379 REDIS_CIRCUIT_BREAKER_THRESHOLD=5 REDIS_RESET_TIMEOUT=30
 * const CacheLive = ResilientCache.layerConfig({ memoryFallback: true }).pipe(
 *   Layer.provide(RedisCache.layerConfig())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: Options
) => Layer.Layer<ResilientCache | Cache, InvalidOptions | ConfigError.ConfigError, Cache> = internalConfig.layerConfig

/**
 * Makes a resilient cache over the `Cache` in the context. The scope holds the fiber
 * that logs the breaker's transitions. See `layer` for the defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<ResilientCacheService, InvalidOptions, Cache | Scope.Scope> =
  internal.make

/**
 * Makes a resilient cache over the given cache service. See `layer` for the defaults.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cache, ResilientCache } from "effect-resilience"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const cache = yield* ResilientCache.fromCache(Cache.degraded, { name: "none" })
 *   return yield* cache.get("k")
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCache: (
  cache: CacheService,
  options?: Options
) => Effect.Effect<ResilientCacheService, InvalidOptions, Scope.Scope> = internal.fromCache

/**
 * The resilient cache as a plain `CacheService` (its operations never fail).
 *
 * @since 0.1.0
 * @category conversions
 */
export const asCache: (service: ResilientCacheService) => CacheService = internal.asCache

/**
 * Reads that found a value, tagged `cache` and `source` (`"primary"` or `"memory"`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const hits: Metric.Metric.Counter<number> = internal.hits

/**
 * Reads that found no value, tagged `cache`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const misses: Metric.Metric.Counter<number> = internal.misses

/**
 * Operations answered by their fallback, tagged `cache`, `operation` and `cause` (a
 * `FallbackCause`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const fallbacks: Metric.Metric.Counter<number> = internal.fallbacks
