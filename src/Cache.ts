/**
 * A key-value cache of strings as a service, with its implementations as Layers.
 *
 * Healthy, degraded, resilient and fault-injected implementations of the same `Cache`
 * service swap through the environment: code that reads the cache never changes, the
 * Layer it is given does. The Redis implementation lives on its own entry point,
 * `effect-resilience/Cache/Redis` (`layer`, `layerConfig`), so that this module depends on
 * `effect` alone.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import type * as Schema from "effect/Schema"
import type { CacheError } from "./internal/cacheService.js"
import { Cache } from "./internal/cacheService.js"
import * as memory from "./internal/memoryCache.js"
import * as typedCache from "./internal/typedCache.js"
import type { InvalidOptions } from "./InvalidOptions.js"

export {
  /**
   * The `Cache` service: `get`, `set` (with a TTL), `delete` and `invalidate(prefix)`
   * over string values (JSON text, typically).
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Cache } from "effect-resilience"
   *
   * const program = Effect.gen(function*() {
   *   const cache = yield* Cache.Cache
   *   yield* cache.set("user:1", JSON.stringify({ name: "Ada" }), { ttl: "1 minute" })
   *   return yield* cache.get("user:1")
   * }).pipe(Effect.provide(Cache.layerMemory()))
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  Cache,
  /**
   * The failure of a cache operation: `operation`, `key` (the key, or the prefix for
   * `invalidate`), `reason` (`"Unavailable"`, `"Timeout"`, `"OutOfMemory"`, `"TooLarge"`,
   * `"Protocol"` or `"Unknown"`) and `outcome`: `"NotApplied"` when the operation surely
   * did not happen, `"Unknown"` when a write may have been applied (after a timeout, the
   * server may have executed the command whose reply never came).
   *
   * @since 0.1.0
   * @category errors
   */
  CacheError
} from "./internal/cacheService.js"

/**
 * Options of one `set`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SetOptions {
  /** How long the entry lives; the implementation's default TTL when omitted. */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * The operations of a cache of string values.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheService {
  /** The value stored under `key`, or `None` when absent or expired. */
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, CacheError>
  /** Stores `value` under `key` for `options.ttl` (or the implementation's default). */
  readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<void, CacheError>
  /** Removes `key`; `true` when an entry was removed. */
  readonly delete: (key: string) => Effect.Effect<boolean, CacheError>
  /** Removes every key starting with `prefix`; the number of entries removed. */
  readonly invalidate: (prefix: string) => Effect.Effect<number, CacheError>
  /**
   * Optional: the value under `key` with its remaining time to live, in one round trip.
   * A backend that offers it lets a copy of the entry in another tier (the memory fallback
   * of `ResilientCache`) expire when the entry does.
   */
  readonly getWithTtl?: ((key: string) => Effect.Effect<Option.Option<Entry>, CacheError>) | undefined
  /** Optional: the TTL of a `set` that gives none, when the backend has one. */
  readonly defaultTtl?: Duration.Duration | undefined
  /**
   * Optional: a bound the backend itself puts on every `get`, `set` and `delete` (they fail
   * with reason `"Timeout"` after at most this long), so a wrapper need not race them
   * against a timer of its own.
   */
  readonly commandTimeout?: Duration.Duration | undefined
  /**
   * Optional: asks the backend whether it answers (Redis `PING`), touching no key. A
   * resilient cache over a backend that offers it checks it in the background and, when it
   * answers, moves its open breaker to `HalfOpen`. Fails like a read of no key (`get`, key `""`).
   */
  readonly ping?: Effect.Effect<void, CacheError> | undefined
}

/**
 * A stored value with its remaining time to live (`Duration.infinity` when it never
 * expires), as answered by `getWithTtl`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly value: string
  readonly ttl: Duration.Duration
}

/**
 * Options of the in-memory cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** The most entries held; the least recently used is evicted beyond it (default 1000). */
  readonly capacity?: number | undefined
  /** The TTL of a `set` that gives none (default 5 minutes; `Duration.infinity` for none). */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * The in-memory cache: a `CacheService` that never fails (but for a `set` whose `ttl` is
 * not a positive duration, refused with reason `"Protocol"`), plus its live entry count.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryCache extends CacheService {
  /** The number of live entries, after reclaiming the expired ones. */
  readonly size: Effect.Effect<number>
}

/**
 * Makes an in-memory cache: a bounded LRU (reads and writes count as uses) whose entries
 * expire on the Effect `Clock`. Defaults: 1000 entries, 5 minutes. Every operation is
 * O(1) (an occasional sweep of expired entries during writes is amortized); expired
 * entries are never returned. Fails with `InvalidOptions` naming the field.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cache } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* Cache.makeMemory({ capacity: 100, ttl: "30 seconds" })
 *   yield* cache.set("greeting", "hello")
 *   return yield* cache.get("greeting")
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<MemoryCache, InvalidOptions> = memory.make

/**
 * The in-memory cache as the `Cache` service: the embedded default, for tests, and the
 * fallback of a resilient cache. See `makeMemory` for its behaviour and defaults.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cache } from "effect-resilience"
 *
 * const program = Effect.flatMap(Cache.Cache, (cache) => cache.get("user:1")).pipe(
 *   Effect.provide(Cache.layerMemory({ capacity: 1000, ttl: "5 minutes" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<Cache, InvalidOptions> =>
  Layer.effect(Cache, memory.make(options))

/**
 * The no-op cache: `get` is a miss, `set` succeeds without storing, `delete` is `false`,
 * `invalidate` is 0. It never fails.
 *
 * @since 0.1.0
 * @category constructors
 */
export const degraded: CacheService = {
  get: () => Effect.succeedNone,
  set: () => Effect.void,
  delete: () => Effect.succeed(false),
  invalidate: () => Effect.succeed(0)
}

/**
 * The no-op cache as the `Cache` service: a way to run without a cache (every read goes
 * to the source), or to rehearse a cache that is gone.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Cache } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* Cache.Cache
 *   yield* cache.set("k", "v")
 *   return Option.isNone(yield* cache.get("k")) // true
 * }).pipe(Effect.provide(Cache.layerDegraded))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDegraded: Layer.Layer<Cache> = Layer.succeed(Cache, degraded)

/**
 * A view of a string cache that stores values of type `A` as the JSON of their encoded
 * form. A payload that does not decode is a miss (counted by `decodeFailures`, logged as a
 * warning), never a failure; a value that does not encode fails `set` with a `ParseError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TypedCache<A, R = never> {
  readonly get: (key: string) => Effect.Effect<Option.Option<A>, CacheError, R>
  readonly set: (
    key: string,
    value: A,
    options?: SetOptions
  ) => Effect.Effect<void, CacheError | ParseResult.ParseError, R>
  readonly delete: (key: string) => Effect.Effect<boolean, CacheError>
  readonly invalidate: (prefix: string) => Effect.Effect<number, CacheError>
}

/**
 * A typed view of the `Cache` in the context, through a `Schema`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cache } from "effect-resilience"
 *
 * const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
 *
 * const program = Effect.gen(function*() {
 *   const users = yield* Cache.typed(User)
 *   yield* users.set("user:1", { id: 1, name: "Ada" })
 *   return yield* users.get("user:1") // Option<{ id: number, name: string }>
 * }).pipe(Effect.provide(Cache.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const typed: <A, I, R>(schema: Schema.Schema<A, I, R>) => Effect.Effect<TypedCache<A, R>, never, Cache> =
  typedCache.typed

/**
 * A typed view of a given cache service, through a `Schema`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTyped: <A, I, R>(cache: CacheService, schema: Schema.Schema<A, I, R>) => TypedCache<A, R> =
  typedCache.makeTyped

/**
 * Counts the cached payloads that a typed view could not decode
 * (`effect_resilience_cache_decode_failures_total`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const decodeFailures: Metric.Metric.Counter<number> = typedCache.decodeFailures
