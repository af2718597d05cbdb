import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { InvalidOptions } from "../InvalidOptions.js"

/**
 * Validation of constructor options. Each check decides with a `Schema` and, when the
 * value is refused, builds an `InvalidOptions` naming the module, the field and the
 * accepted range: options are validated once, at construction, never on a hot path. The
 * checks (and their compiled decoders) are built once per module, not per construction.
 *
 * @internal
 */
export interface Check<A> {
  readonly schema: Schema.Schema<A, any>
  readonly expected: string
  readonly decode: (value: unknown) => Either.Either<A, unknown>
}

/** @internal */
export const check = <A>(schema: Schema.Schema<A, any>, expected: string): Check<A> => ({
  schema,
  expected,
  decode: Schema.decodeUnknownEither(schema)
})

/** One check per distinct argument, made on first use and kept: there are only a few. */
const memoized = <K, A>(make: (key: K) => Check<A>): (key: K) => Check<A> => {
  const made = new Map<K, Check<A>>()
  return (key) => {
    let found = made.get(key)
    if (found === undefined) {
      found = make(key)
      made.set(key, found)
    }
    return found
  }
}

/** @internal */
export const integerAtLeast: (min: number) => Check<number> = memoized((min: number) =>
  check(Schema.Int.pipe(Schema.greaterThanOrEqualTo(min)), `an integer >= ${min}`)
)

/** @internal */
export const integerAtLeastOrInfinity: (min: number) => Check<number> = memoized((min: number) =>
  check(
    Schema.Union(Schema.Int.pipe(Schema.greaterThanOrEqualTo(min)), Schema.Literal(Number.POSITIVE_INFINITY)),
    `an integer >= ${min}, or Infinity`
  )
)

const exclusiveFraction = check(
  Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)),
  "a number in (0, 1]"
)
const inclusiveFraction = check(Schema.Number.pipe(Schema.between(0, 1)), "a number in [0, 1]")

/** @internal */
export const fraction = (options: { readonly exclusiveMin: boolean }): Check<number> =>
  options.exclusiveMin ? exclusiveFraction : inclusiveFraction

/** @internal */
export const nonEmptyString: Check<string> = check(Schema.NonEmptyTrimmedString, "a non-empty string")

/**
 * Validates one field. `undefined` means "not given" and yields `fallback`.
 *
 * @internal
 */
export const field = <A, B = A>(
  module: string,
  name: string,
  value: unknown,
  rule: Check<A>,
  fallback: B
): Either.Either<A | B, InvalidOptions> => {
  if (value === undefined) return Either.right(fallback)
  const decoded = rule.decode(value)
  return Either.isRight(decoded)
    ? Either.right(decoded.right)
    : Either.left(new InvalidOptions({ module, field: name, expected: rule.expected, received: value }))
}

/**
 * Validates a `DurationInput`: it must decode, be finite when `finite` is set, and be
 * strictly positive when `positive` is set.
 *
 * @internal
 */
export const duration = (
  module: string,
  name: string,
  value: unknown,
  fallback: Duration.Duration,
  constraints: { readonly positive: boolean; readonly finite: boolean } = { positive: true, finite: true }
): Either.Either<Duration.Duration, InvalidOptions> => {
  if (value === undefined) return Either.right(fallback)
  const expected = `a ${constraints.finite ? "finite " : ""}${
    constraints.positive ? "positive" : "non-negative"
  } duration (a Duration, milliseconds, or a string such as "30 seconds")`
  // Duration.decode turns a negative number of milliseconds into zero: refuse it here.
  if (typeof value === "number" && !(value >= 0)) {
    return Either.left(new InvalidOptions({ module, field: name, expected, received: value }))
  }
  const decoded = Duration.decodeUnknown(value)
  if (Option.isNone(decoded)) return Either.left(new InvalidOptions({ module, field: name, expected, received: value }))
  const d = decoded.value
  const millis = Duration.toMillis(d)
  if (Number.isNaN(millis)) return Either.left(new InvalidOptions({ module, field: name, expected, received: value }))
  if (constraints.finite && !Duration.isFinite(d)) {
    return Either.left(new InvalidOptions({ module, field: name, expected, received: value }))
  }
  if (constraints.positive ? millis <= 0 : millis < 0) {
    return Either.left(new InvalidOptions({ module, field: name, expected, received: value }))
  }
  return Either.right(d)
}

/**
 * The options object given to a constructor, one rule for all: anything that is not an
 * object (`null`, a number, a string, an array) fails with `InvalidOptions` naming
 * `options`; `undefined` means "no options" (`{}`) unless the constructor has a required
 * option (`required`), when it fails the same way.
 *
 * @internal
 */
export const object = <A extends object>(
  module: string,
  value: A | undefined,
  required: boolean,
  expected = "an object of options"
): Either.Either<A, InvalidOptions> => {
  if (value === undefined && !required) return Either.right({} as A)
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Either.left(new InvalidOptions({ module, field: "options", expected, received: value }))
  }
  return Either.right(value)
}
