/**
 * A rate limit that holds across processes: every process that uses the same limiter name
 * shares one limit, kept on Redis (ioredis 5 and `@effect/experimental`, peer dependencies of
 * this subpath only). The in-process limiter of `RateLimit.make` stays the default; use this
 * one when a fleet of processes must stay under one quota together.
 *
 * - **Engine**: `@effect/experimental`'s `RateLimiter` (token bucket or fixed window, as in
 *   process) over a `RateLimiterStore`: `layer` runs that library's Redis scripts on a
 *   client of its own that fails fast; `@effect/experimental`'s own store layers work too.
 * - **Rejection**: a call beyond the limit fails at once with the same `RateLimitExceeded` as
 *   the in-process limiter in `reject` mode, its `retryAfter` computed by the store.
 * - **Redis down, slow or frozen**: each call's store command gives up after the store's
 *   `commandTimeout` (100 ms by default; at once while the connection is down), then
 *   `onStoreUnavailable` decides: `"admit"` (the default: fail open, the limit is not enforced
 *   while Redis is away, as Envoy's rate limit service does) or `"reject"` (fail closed:
 *   `RateLimitExceeded` with `retryAfter` equal to `interval`). The client reconnects by itself,
 *   and the limit holds again as soon as Redis answers.
 *
 * @since 0.1.0
 */
import type * as RateLimiter from "@effect/experimental/RateLimiter"
import type * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "../internal/rateLimitRedis.js"
import type { ConnectionOptions } from "../internal/redisConnection.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as RateLimit from "../RateLimit.js"

/**
 * The options of `layer`: the connection options of every Redis layer (`url`, `redis`,
 * `commandTimeout` 100 ms: how long a limit check waits for Redis before `onStoreUnavailable`
 * decides, `connectTimeout` 1 second, `maxReconnectDelay` 500 ms, `connectionName`
 * `"effect-resilience-rate-limit"`), and the prefix of the keys. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions extends ConnectionOptions {
  /** Prefix of the keys holding the limits (default `"effect-resilience:rate-limit:"`). */
  readonly keyPrefix?: string | undefined
}

/**
 * The options of `make`: the in-process limiter's, without `mode` (a shared limit rejects).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<RateLimit.RateLimit.Options, "mode"> {
  /**
   * Names the limiter in errors and metrics, and is its key on Redis: processes that use the
   * same name share one limit (default `"rate-limit"`).
   */
  readonly name?: string | undefined
  /**
   * What a call gets when Redis does not answer within the store's `commandTimeout`:
   * `"admit"` (default, fail open) runs it; `"reject"` (fail closed) fails it with
   * `RateLimitExceeded`, `retryAfter` equal to `interval`.
   */
  readonly onStoreUnavailable?: "admit" | "reject" | undefined
}

/**
 * The `RateLimiterStore` of `@effect/experimental` on Redis, on a client this layer owns:
 * no offline queue, a command timeout, background reconnection, connection errors logged
 * once per outage without credentials. Fails with `InvalidOptions` naming the field for an
 * option that can never work (a bad URL); an unreachable server is not an error.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as RateLimitRedis from "effect-resilience/RateLimit/Redis"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimitRedis.make({ name: "partner-api", limit: 100, interval: "1 second" })
 *   return yield* limiter.run(Effect.succeed("ok"))
 * }).pipe(Effect.provide(RateLimitRedis.layer({ url: "redis://localhost:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: StoreOptions) => Layer.Layer<RateLimiter.RateLimiterStore, InvalidOptions> =
  internal.layer

/**
 * `layer` with `REDIS_URL` (redacted), `REDIS_COMMAND_TIMEOUT` (a bare number is seconds) and
 * `REDIS_RATE_LIMIT_KEY_PREFIX` read through Effect `Config` over `defaults`.
 *
 * @example
 * ```ts
 * import * as RateLimitRedis from "effect-resilience/RateLimit/Redis"
 *
 * // REDIS_URL=redis://redis:6379 REDIS_COMMAND_TIMEOUT="50 millis"
 * const StoreLive = RateLimitRedis.layerConfig({ commandTimeout: "100 millis" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: StoreOptions
) => Layer.Layer<RateLimiter.RateLimiterStore, InvalidOptions | ConfigError.ConfigError> = internal.layerConfig

/**
 * The store of `layer` as a scoped effect, for users who build the service by hand.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as RateLimitRedis from "effect-resilience/RateLimit/Redis"
 *
 * const program = Effect.scoped(RateLimitRedis.makeStore({ commandTimeout: "50 millis" }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStore: (
  options?: StoreOptions
) => Effect.Effect<RateLimiter.RateLimiterStore["Type"], InvalidOptions, Scope.Scope> = internal.makeStore

/**
 * Makes a rejecting rate limiter whose limit is shared, through the `RateLimiterStore` in the
 * context, by every process using the same `name`. A call beyond the limit fails at once with
 * `RateLimitExceeded`, as `RateLimit.make({ mode: "reject" })` does. Fails with
 * `InvalidOptions` naming the field when an option is out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as RateLimitRedis from "effect-resilience/RateLimit/Redis"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimitRedis.make({
 *     name: "partner-api",
 *     limit: 100,
 *     interval: "1 second",
 *     onStoreUnavailable: "reject"
 *   })
 *   return yield* limiter.run(Effect.succeed("ok"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<RateLimit.RejectingRateLimiter, InvalidOptions, RateLimiter.RateLimiterStore> = internal.make
