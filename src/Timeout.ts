/**
 * A per-operation timeout that interrupts the operation and fails with a typed error
 * naming the operation and the limit.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as internal from "./internal/timeout.js"

export {
  /**
   * The failure of an operation that did not finish within its limit: `operation` (its
   * name) and `timeout` (the limit). Classified `Transient` by `Retry.classify`.
   *
   * @since 0.1.0
   * @category errors
   */
  TimeoutError
} from "./internal/timeout.js"

/**
 * Options of `timeout`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimeoutOptions {
  /** Names the operation in the error (default `"unnamed"`). */
  readonly operation?: string | undefined
}

/**
 * Fails with `TimeoutError` when `self` has not finished within `duration`, interrupting it
 * (its finalizers run before the error is returned). An infinite duration adds nothing.
 * Throws `InvalidOptions` when the duration is not a positive duration or the operation name
 * is empty.
 *
 * The operation runs in a fiber of its own, started synchronously: one that completes
 * before it first yields or suspends pays for no timer and no race. Any other operation
 * races the deadline and takes turns with the other fibers, so one that never waits on I/O
 * (`Effect.forever(Effect.sync(f))`, a loop of `Effect.yieldNow()`, a long `Effect.forEach`)
 * is timed out like any other. As with `Fiber.await`, `FiberRef` changes made inside the
 * operation stay with it. Each call adds a `resilience.timeout` event (`completed` or
 * `timed_out`) to the caller's span, if it is in one.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Timeout } from "effect-resilience"
 *
 * const program = Effect.never.pipe(Timeout.timeout("2 seconds", { operation: "GET /users" }))
 * // fails with TimeoutError: operation "GET /users" timed out after 2s
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const timeout: {
  (
    duration: Duration.DurationInput,
    options?: TimeoutOptions
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | internal.TimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput,
    options?: TimeoutOptions
  ): Effect.Effect<A, E | internal.TimeoutError, R>
} = internal.timeout
