/**
 * Rate limiting. The waiting mode is Effect's own `RateLimiter` (calls beyond the rate wait
 * their turn); the rejecting mode, which Effect has not, fails such calls at once with a
 * typed `RateLimitExceeded` carrying `retryAfter`, for callers that would rather shed load
 * or answer 429 than queue.
 *
 * Both hold within one process. For one limit shared by a fleet of processes, see
 * `effect-resilience/RateLimit/Redis`.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as RateLimiter from "effect/RateLimiter"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/rateLimit.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

export {
  /**
   * The rejection of a call by a rate limiter in `reject` mode: `limiter` (name), `limit`,
   * `interval` and `retryAfter` (how long until a call would be admitted). Classified
   * `Degraded` by `Retry.classify`, and `Retry.policy` waits at least `retryAfter`.
   *
   * @since 0.1.0
   * @category errors
   */
  RateLimitExceeded
} from "./internal/rateLimit.js"

/**
 * Effect's waiting rate limiter, what `make` returns in `wait` mode.
 *
 * @since 0.1.0
 * @category models
 */
export type { RateLimiter } from "effect/RateLimiter"

/**
 * Sets the cost of the calls of an effect for Effect's (waiting) `RateLimiter`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withCost: (cost: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> =
  RateLimiter.withCost

/**
 * A rate limiter that rejects rather than waits. Its counter
 * `effect_resilience_rate_limit_rejected_total` is tagged `limiter=<name>`, plus the tags the
 * calling fiber carries (`Effect.tagMetrics`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RejectingRateLimiter {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly limit: number
  readonly interval: Duration.Duration
  readonly algorithm: "token-bucket" | "fixed-window"
  /** Takes one permit now, or fails at once with `RateLimitExceeded`. */
  readonly acquire: Effect.Effect<void, internal.RateLimitExceeded>
  /** Runs `effect` if a permit is available now; otherwise fails with `RateLimitExceeded` without running it. */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | internal.RateLimitExceeded, R>
}

/**
 * @since 0.1.0
 */
export declare namespace RateLimit {
  /**
   * The options of `make`.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Options {
    /** Names the limiter in errors and metrics (reject mode) and in traces (default `"rate-limit"`). */
    readonly name?: string | undefined
    /** Calls admitted per `interval` (an integer >= 1). */
    readonly limit: number
    /** The period of the limit (a finite positive duration). */
    readonly interval: Duration.DurationInput
    /**
     * `token-bucket` (default): `limit` calls at once, then one every `interval / limit`.
     * `fixed-window`: `limit` calls per window of `interval`, the window opening with the first
     * call after the previous one closed. Both behave as Effect's `RateLimiter`.
     */
    readonly algorithm?: "token-bucket" | "fixed-window" | undefined
    /** `wait` (default): Effect's `RateLimiter`; `reject`: fail at once with `RateLimitExceeded`. */
    readonly mode?: "wait" | "reject" | undefined
  }
}

/**
 * Makes a rate limiter. In `wait` mode (the default) it is Effect's `RateLimiter` (needs a
 * `Scope`, for its refill fiber); in `reject` mode a `RejectingRateLimiter` whose state is a
 * `Ref` read against the `Clock` (no fiber, no `Scope`). A call that waited, or was
 * rejected, is an event on the caller's span (`resilience.rate_limit.waited`, `.rejected`).
 * Fails with `InvalidOptions` naming the field when an option is out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimit } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimit.make({ limit: 10, interval: "1 second", mode: "reject" })
 *   return yield* limiter.run(Effect.succeed("ok"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (
    options: RateLimit.Options & { readonly mode: "reject" }
  ): Effect.Effect<RejectingRateLimiter, InvalidOptions>
  (
    options: RateLimit.Options & { readonly mode?: "wait" | undefined }
  ): Effect.Effect<RateLimiter.RateLimiter, InvalidOptions, Scope.Scope>
} = internal.make

/**
 * Runs an effect through a rejecting rate limiter: data-first or in a pipe.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimit } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimit.make({ limit: 5, interval: "1 second", mode: "reject" })
 *   return yield* Effect.succeed(1).pipe(RateLimit.run(limiter))
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const run: {
  (
    limiter: RejectingRateLimiter
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | internal.RateLimitExceeded, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    limiter: RejectingRateLimiter
  ): Effect.Effect<A, E | internal.RateLimitExceeded, R>
} = internal.run
