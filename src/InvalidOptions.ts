/**
 * The typed error every constructor of this library fails with when an option is out of
 * range, of the wrong type, or combined with an option it excludes.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * An option given to a constructor (`CircuitBreaker.make`, `Bulkhead.make`, a Layer...) is
 * invalid. `field` names the option, `module` the constructor's module, and `message`
 * says what was expected and what was received.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * const program = CircuitBreaker.make({ name: "db", failureThreshold: 0 }).pipe(
 *   Effect.catchTag("InvalidOptions", (error) => Effect.logError(error.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOptions extends Data.TaggedError("InvalidOptions")<{
  /** The module whose constructor refused the options, e.g. `"CircuitBreaker"`. */
  readonly module: string
  /** The option at fault, e.g. `"failureThreshold"`, or `"resetTimeout, openSchedule"`. */
  readonly field: string
  /** What was expected, e.g. `"an integer >= 1"`. */
  readonly expected: string
  /** The value that was received. */
  readonly received: unknown
}> {
  override get message(): string {
    return `${this.module}: invalid option "${this.field}": expected ${this.expected}, received ${
      describe(this.received)
    }`
  }
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
  if (value === undefined) return "undefined"
  if (value === null) return "null"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
