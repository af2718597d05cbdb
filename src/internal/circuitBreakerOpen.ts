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
  readonly reason: "Open" | "HalfOpenFull" | "ForcedOpen"
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
    }
  }
}
