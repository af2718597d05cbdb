/**
 * The `Cache` service on Redis, through ioredis 5 (a peer dependency of this subpath only).
 *
 * The layer owns its client: it connects when built, listens to the client's `error`
 * events (logged, never an unhandled error), and closes the connection when its scope
 * closes. Failures are fast and bounded by default: a command that gets no reply within
 * `commandTimeout` fails, nothing waits in an offline queue, nothing is resent after a
 * reconnect, and reconnects back off up to `maxReconnectDelay`. Put `ResilientCache.layer`
 * over it to turn those failures into fallbacks.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Cache, CacheService } from "../Cache.js"
import * as internal from "../internal/redis.js"
import type { RedisConnectionError } from "../internal/redis.js"
import type { ConnectionOptions } from "../internal/redisConnection.js"
import type { InvalidOptions } from "../InvalidOptions.js"

export {
  /**
   * The failure of `layer` when `requireConnection` is set and the first connection
   * attempt fails: `server` (without credentials) and `cause`.
   *
   * @since 0.1.0
   * @category errors
   */
  RedisConnectionError
} from "../internal/redis.js"

/**
 * The options of `layer` and `make`: the connection options of every Redis layer (`url`, `redis`,
 * `commandTimeout` 500 ms, `connectTimeout` 1 second, `maxReconnectDelay` 1 second,
 * `connectionName` `"effect-resilience-cache"`), and the cache's own. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends ConnectionOptions {
  /** The password, over the URL's (for a URL without credentials): a `Redacted` or a string. */
  readonly password?: string | Redacted.Redacted<string> | undefined
  /** Names the cache in logs and metrics (default `"redis"`). */
  readonly name?: string | undefined
  /** Prepended to every key; `invalidate` only ever sees keys under it (default `""`). */
  readonly prefix?: string | undefined
  /** The TTL of a `set` that gives none (default 5 minutes; `Duration.infinity` for none). */
  readonly ttl?: Duration.DurationInput | undefined
  /**
   * Values of at least this many UTF-8 bytes are stored deflated when that makes them
   * smaller (default 512; `Infinity` turns compression off).
   */
  readonly compressionThreshold?: number | undefined
  /**
   * A `set` of a value above this many UTF-8 bytes (before compression) fails with reason
   * `"TooLarge"` (default 1 MiB; `Infinity` for no limit).
   */
  readonly maxValueSize?: number | undefined
  /** Reconnect attempts a command written before a disconnect waits for before it fails (default 1). */
  readonly maxRetriesPerRequest?: number | undefined
  /** Keys asked per SCAN round of `invalidate`, each round followed by one UNLINK (default 500). */
  readonly scanCount?: number | undefined
  /**
   * Whether building the layer fails with `RedisConnectionError` when the first connection
   * attempt fails (default `false`: the layer is built, logs a warning, commands fail with
   * reason `"Unavailable"` and the client reconnects in the background).
   */
  readonly requireConnection?: boolean | undefined
}

/**
 * Makes a Redis-backed `CacheService` whose client lives as long as the scope. See
 * `layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const cache = yield* RedisCache.make({ url: "redis://localhost:6379", prefix: "app:" })
 *   yield* cache.set("greeting", "hello", { ttl: "1 minute" })
 *   return yield* cache.get("greeting")
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<CacheService, InvalidOptions | RedisConnectionError, Scope.Scope> = internal.make

/**
 * Provides `Cache` on Redis. Defaults: TTL 5 minutes, compression from 512 bytes, values up
 * to 1 MiB, `commandTimeout` 500 ms, `connectTimeout` 1 s, `maxRetriesPerRequest` 1,
 * reconnect backoff capped at 1 s, no offline queue, no resend of unanswered commands.
 *
 * Errors are `CacheError`s: `Unavailable` (refused, closed, not connected), `Timeout` (no
 * reply within `commandTimeout`: a write's `outcome` is then `"Unknown"`, since the server
 * may have executed it), `OutOfMemory` (maxmemory with `noeviction`), `TooLarge`,
 * `Protocol` (a key holding another type, or a `ttl` that is not positive). A stored value
 * that cannot be decoded (corrupt compressed bytes, invalid UTF-8) is a miss, logged and
 * counted by `corruptPayloads`, never a failure.
 *
 * Building the layer fails with `InvalidOptions` naming the option when the options can
 * never work (a `url` that does not parse, of another scheme, without a host, with a port
 * outside 1..65535), before any connection. A server that does not answer is not such a
 * failure: the layer starts, its commands fail with `Unavailable` and the client reconnects
 * in the background (`requireConnection` turns this into `RedisConnectionError`). Secrets
 * (the URL's userinfo and query, `password`) appear in no error and no log.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Cache, ResilientCache } from "effect-resilience"
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * const CacheLive = ResilientCache.layer({ name: "redis" }).pipe(
 *   Layer.provide(RedisCache.layer({ url: "redis://localhost:6379", prefix: "app:" }))
 * )
 *
 * const program = Effect.flatMap(Cache.Cache, (cache) => cache.get("user:1")).pipe(Effect.provide(CacheLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (
  options?: Options
) => Layer.Layer<Cache, InvalidOptions | RedisConnectionError> = internal.layer

/**
 * The options `layerConfig` reads: `REDIS_URL` and `REDIS_PASSWORD` (both with
 * `Config.redacted`), `REDIS_KEY_PREFIX`, `REDIS_TTL`, `REDIS_COMPRESSION_THRESHOLD`,
 * `REDIS_MAX_VALUE_SIZE`, `REDIS_COMMAND_TIMEOUT`, `REDIS_CONNECT_TIMEOUT`,
 * `REDIS_MAX_RETRIES_PER_REQUEST`, `REDIS_MAX_RECONNECT_DELAY`, each optional, and the
 * seeds' `REDIS_SOCKET_TIMEOUT` for `commandTimeout` when `REDIS_COMMAND_TIMEOUT` is not set.
 * A duration given as a bare number is in seconds (`"30"`), or with a unit (`"500 millis"`);
 * a value that does not parse is a `ConfigError` naming the variable.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * const options = RedisCache.config.pipe(
 *   Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_TTL", "3600"]])))
 * ) // ttl: one hour
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = internal.config

/**
 * The options `layerConfig` runs with: `defaults`, with what the environment sets over
 * them, checked. A variable whose value can never work fails with `InvalidOptions` naming
 * the option and the variable (`"commandTimeout (REDIS_COMMAND_TIMEOUT)"`), every such
 * variable at once; secrets (`REDIS_URL`, `REDIS_PASSWORD`) stay `Redacted` and are never
 * printed. Use it to show the options in force, then build `layer` with them.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * const CacheLive = Layer.unwrapEffect(
 *   Effect.gen(function*() {
 *     const options = yield* RedisCache.configOptions({ commandTimeout: "100 millis" })
 *     yield* Effect.log(`Redis command timeout: ${String(options.commandTimeout)}`)
 *     return RedisCache.layer(options)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const configOptions: (
  defaults?: Options
) => Effect.Effect<Options, InvalidOptions | ConfigError.ConfigError> = internal.configOptions

/**
 * `layer` with its options read through Effect `Config` (see `config`): what the
 * environment sets wins over `defaults`. Fails with a `ConfigError` when neither
 * `REDIS_URL` nor the defaults say where Redis is, and with `InvalidOptions` naming the
 * option and its variable (`"url (REDIS_URL)"`) when a value can never work.
 *
 * @example
 * ```ts
 * import * as RedisCache from "effect-resilience/Cache/Redis"
 *
 * // REDIS_URL=redis://cache:6379 REDIS_COMMAND_TIMEOUT="250 millis"
 * const CacheLive = RedisCache.layerConfig({ prefix: "app:" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: Options
) => Layer.Layer<Cache, InvalidOptions | RedisConnectionError | ConfigError.ConfigError> = internal.layerConfig

/**
 * Counts values read from Redis that could not be decoded and were served as misses,
 * tagged with `cache` (the layer's name).
 *
 * @since 0.1.0
 * @category metrics
 */
export const corruptPayloads: Metric.Metric.Counter<number> = internal.corruptPayloads
