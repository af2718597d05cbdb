import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"

/**
 * What every policy adds to the user's traces, through Effect's tracer.
 *
 * The library never starts a trace: it adds events to the span the caller is in (and, for
 * hedged attempts, child spans under it). A caller outside any span pays for one map lookup.
 * Attributes name the policy, its instance and the outcome, and an error only by its tag
 * (`error.type`): never a message, which may carry a URL with a password.
 */

/** @internal */
export type Attributes = Record<string, unknown>

/*
 * Attribute keys, written as literals where events are built (an object literal with constant
 * keys is the cheapest object V8 makes): `resilience.policy` (retry, timeout, fallback,
 * failover, hedge, bulkhead, rate_limit, circuit_breaker), `resilience.name` (operation,
 * provider, bulkhead, limiter or breaker), `resilience.outcome`, `error.type`, and per policy
 * `resilience.attempt`, `resilience.delay_ms`, `resilience.wait_ms`, `resilience.retry_after_ms`,
 * `resilience.timeout_ms`, `resilience.elapsed_ms`, `resilience.error_class`,
 * `resilience.reason`, `resilience.from`, `resilience.to`, `resilience.max_concurrent`,
 * `resilience.max_queue`, `resilience.queue_position`.
 */

/**
 * The span the calling fiber runs in, when it is a span of this process (an external span,
 * a parent from another process, takes no events).
 *
 * @internal
 */
export const unsafeCurrentSpan = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Tracer.Span | undefined => {
  const span: Tracer.AnySpan | undefined = fiber.currentContext.unsafeMap.get(Tracer.ParentSpan.key)
  return span !== undefined && span._tag === "Span" ? span : undefined
}

/**
 * Adds an event to the calling fiber's current span, if it is in one. `attributes` is only
 * called then: a caller outside any span allocates nothing.
 *
 * @internal
 */
export const unsafeEvent = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  name: string,
  attributes: () => Attributes
): void => {
  const span = unsafeCurrentSpan(fiber)
  if (span === undefined) return
  const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
  span.event(name, clock.unsafeCurrentTimeNanos(), attributes())
}

/**
 * The effect of `unsafeEvent`.
 *
 * @internal
 */
export const event = (name: string, attributes: () => Attributes): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    unsafeEvent(fiber, name, attributes)
    return Effect.void
  })

/**
 * Adds an event as `event` does, then goes on with `next()`: one step, for paths where a
 * fallback or a rejection is an everyday outcome.
 *
 * @internal
 */
export const eventThen = <A, E, R>(
  name: string,
  attributes: () => Attributes,
  next: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    unsafeEvent(fiber, name, attributes)
    return next()
  })

/**
 * Runs `self` in a child span of the caller's current span, setting `resilience.outcome`
 * when it ends (`success`, `failure`, `interrupted`). Outside any span, `self` runs as it
 * is: the library never starts a trace of its own.
 *
 * @internal
 */
export const childSpan = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  name: string,
  attributes: () => Attributes
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    if (unsafeCurrentSpan(fiber) === undefined) return self
    return Effect.withSpan(
      Effect.onExit(self, (exit) => Effect.annotateCurrentSpan("resilience.outcome", outcomeOf(exit))),
      name,
      { attributes: attributes(), captureStackTrace: false }
    )
  })

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string =>
  exit._tag === "Success" ? "success" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failure"

/**
 * The type of an error for `error.type`: its `_tag`, else its `name` when it is an `Error`,
 * else its JavaScript type. Never its message.
 *
 * @internal
 */
export const errorType = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    if (error instanceof Error) return error.name
    return "object"
  }
  return typeof error
}

// -----------------------------------------------------------------------------
// Circuit breaker: one call each, where the breaker rejects and where it publishes
// -----------------------------------------------------------------------------

/**
 * Records a breaker's rejection on the caller's span: event `resilience.circuit_breaker.rejected`
 * with the breaker, the reason (`Open`, `HalfOpenFull`, `ForcedOpen`, ...) and `retryAfter`.
 *
 * @internal
 */
export const unsafeBreakerRejected = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  rejection: { readonly breaker: string; readonly reason: string; readonly retryAfter: Duration.Duration }
): void =>
  unsafeEvent(fiber, "resilience.circuit_breaker.rejected", () => ({
    "resilience.policy": "circuit_breaker",
    "resilience.name": rejection.breaker,
    "resilience.outcome": "rejected",
    "resilience.reason": rejection.reason,
    "resilience.retry_after_ms": millisOf(rejection.retryAfter)
  }))

/**
 * Records a breaker's transitions on the span of the call (or read) that caused them: one
 * event `resilience.circuit_breaker.transition` each, with the breaker, `from`, `to` and the
 * reason.
 *
 * @internal
 */
export const breakerTransitions = (
  breaker: string,
  changes: ReadonlyArray<{ readonly from: string; readonly to: string; readonly reason: string }>
): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    for (const change of changes) {
      unsafeEvent(fiber, "resilience.circuit_breaker.transition", () => ({
        "resilience.policy": "circuit_breaker",
        "resilience.name": breaker,
        "resilience.from": change.from,
        "resilience.to": change.to,
        "resilience.reason": change.reason
      }))
    }
    return Effect.void
  })

/** @internal */
export const millisOf = (duration: Duration.Duration): number => {
  const millis = Duration.toMillis(duration)
  // An infinite wait (a breaker forced open) is written as -1: exporters refuse Infinity.
  return Number.isFinite(millis) ? millis : -1
}
