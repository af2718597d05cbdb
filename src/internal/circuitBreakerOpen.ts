import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The rejection of a call that the breaker did not run.
 *
 * @internal
 */
export class CircuitBreakerOpen extends Data.TaggedError("CircuitBreakerOpen")<{
  readonly breaker: string
  readonly retryAfter: Duration.Duration
  readonly reason: "Open" | "HalfOpenFull" | "ForcedOpen" | "ProbePending"
}> {
  override get message(): string {
    const after = Duration.isFinite(this.retryAfter)
      ? `retry after ${Duration.format(this.retryAfter)}`
      : "until it is closed by hand"
    switch (this.reason) {
      case "Open":
        return `circuit breaker "${this.breaker}" is open: ${after}`
      case "HalfOpenFull":
        return `circuit breaker "${this.breaker}" is half-open and admits no more probes now: ${after}`
      case "ForcedOpen":
        return `circuit breaker "${this.breaker}" is forced open: ${after}`
      case "ProbePending":
        return `circuit breaker "${this.breaker}" is half-open and its probe has not answered yet: ${after}`
    }
  }
}

// A rejection made without its constructor has no own `stack`: it reads as its first line.
Object.defineProperty(CircuitBreakerOpen.prototype, "stack", {
  configurable: true,
  get(this: CircuitBreakerOpen) {
    return `CircuitBreakerOpen: ${this.message}`
  }
})

/**
 * A rejection is an expected outcome on the fail-fast path, which must stay cheap: this
 * builds a real `CircuitBreakerOpen` (same prototype, `_tag` and fields, so `instanceof`,
 * `catchTag` and structural equality hold) without running the `Error` constructor, whose
 * stack capture costs more than the rest of the rejection.
 *
 * @internal
 */
export const unsafeMakeWithoutStack = (
  breaker: string,
  retryAfter: Duration.Duration,
  reason: CircuitBreakerOpen["reason"]
): CircuitBreakerOpen => {
  const error = Object.create(CircuitBreakerOpen.prototype) as {
    breaker: string
    retryAfter: Duration.Duration
    reason: CircuitBreakerOpen["reason"]
    _tag: "CircuitBreakerOpen"
  }
  // The order of a constructed one: the fields, then `_tag`.
  error.breaker = breaker
  error.retryAfter = retryAfter
  error.reason = reason
  error._tag = "CircuitBreakerOpen"
  return error as CircuitBreakerOpen
}
