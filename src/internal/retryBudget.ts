import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as MetricLabel from "effect/MetricLabel"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { InvalidOptions } from "../InvalidOptions.js"
import type { BudgetOptions, RetryBudget, RetryBudgetTypeId } from "../Retry.js"
import * as options from "./options.js"
import { counter } from "./metric.js"
import { withLabels } from "./metricLabels.js"

/** @internal */
export const TypeId: RetryBudgetTypeId = Symbol.for("effect-resilience/RetryBudget") as RetryBudgetTypeId

/**
 * The calls and retries of the window, one slot per bucket, `bucket` being the index
 * (time / bucket length) of the newest slot. `refused` is a lifetime count.
 *
 * @internal
 */
export interface BudgetState {
  readonly bucket: number
  readonly calls: ReadonlyArray<number>
  readonly retries: ReadonlyArray<number>
  readonly refused: number
}

/** @internal */
export interface BudgetConfig {
  readonly buckets: number
  readonly bucketMillis: number
  readonly ratio: number
  readonly reserve: number
}

/** @internal */
export const BUCKETS = 10

/** @internal */
export const initialState = (buckets: number): BudgetState => ({
  bucket: Number.NEGATIVE_INFINITY,
  calls: new Array(buckets).fill(0),
  retries: new Array(buckets).fill(0),
  refused: 0
})

// Moves the window to `bucket`, forgetting the slots that fell out of it. A clock that goes
// back writes into the newest slot rather than rewinding.
const advance = (state: BudgetState, bucket: number, config: BudgetConfig): BudgetState => {
  if (bucket <= state.bucket) return state
  const size = config.buckets
  if (bucket - state.bucket >= size) {
    return { bucket, calls: new Array(size).fill(0), retries: new Array(size).fill(0), refused: state.refused }
  }
  const calls = state.calls.slice()
  const retries = state.retries.slice()
  for (let b = state.bucket + 1; b <= bucket; b++) {
    calls[b % size] = 0
    retries[b % size] = 0
  }
  return { bucket, calls, retries, refused: state.refused }
}

const sum = (values: ReadonlyArray<number>): number => {
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]!
  return total
}

// Floating point: 0.29 * 100 is 28.999999999999996, which must still allow 29 retries.
const EPSILON = 1e-9

/** @internal */
export const allowance = (state: BudgetState, config: BudgetConfig): number =>
  Math.max(0, Math.floor(config.ratio * sum(state.calls) + config.reserve + EPSILON) - sum(state.retries))

/** @internal */
export const deposit = (state: BudgetState, now: number, config: BudgetConfig): BudgetState => {
  const bucket = Math.floor(now / config.bucketMillis)
  const next = advance(state, bucket, config)
  // `advance` returns fresh arrays when it moved; otherwise copy before writing.
  const calls = next === state ? state.calls.slice() : next.calls as Array<number>
  const slot = next.bucket % config.buckets
  calls[slot] = calls[slot]! + 1
  return { bucket: next.bucket, calls, retries: next.retries, refused: next.refused }
}

/**
 * Takes one retry from the budget: allowed while the window's retries stay within
 * `ratio * calls + reserve`.
 *
 * @internal
 */
export const withdraw = (state: BudgetState, now: number, config: BudgetConfig): readonly [boolean, BudgetState] => {
  const bucket = Math.floor(now / config.bucketMillis)
  const next = advance(state, bucket, config)
  if (allowance(next, config) < 1) {
    return [false, { ...next, refused: next.refused + 1 }]
  }
  const retries = next === state ? state.retries.slice() : next.retries as Array<number>
  const slot = next.bucket % config.buckets
  retries[slot] = retries[slot]! + 1
  return [true, { bucket: next.bucket, calls: next.calls, retries, refused: next.refused }]
}

const nonNegative = options.check(
  Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(0)),
  "a finite number >= 0"
)

/** @internal */
export const refusedCounter = counter(
  "effect_resilience_retry_budget_refused_total",
  "Retries refused by a retry budget"
)

/** @internal */
export const make = (given?: BudgetOptions): Effect.Effect<RetryBudget, InvalidOptions> =>
  Effect.gen(function*() {
    const input = yield* options.object("Retry.budget", given, false)
    const name = yield* options.field("Retry.budget", "name", input.name, options.nonEmptyString, "default")
    const ratio = yield* options.field("Retry.budget", "ratio", input.ratio, nonNegative, 0.2)
    const minPerSecond = yield* options.field("Retry.budget", "minPerSecond", input.minPerSecond, nonNegative, 10)
    const window = yield* options.duration("Retry.budget", "window", input.window, Duration.seconds(10))
    const windowMillis = Duration.toMillis(window)
    const config: BudgetConfig = {
      buckets: BUCKETS,
      bucketMillis: windowMillis / BUCKETS,
      ratio,
      reserve: minPerSecond * windowMillis / 1000
    }
    const ref = yield* Ref.make(initialState(BUCKETS))
    // Tagged `budget=<name>` and with the tags the calling fiber carries (`Effect.tagMetrics`).
    const countRefused = withLabels([MetricLabel.make("budget", name)])((labels) =>
      refusedCounter.unsafeUpdate(1, labels)
    )
    const withdrawEffect = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => Ref.modify(ref, (state) => withdraw(state, now, config))
    ).pipe(
      Effect.flatMap((allowed) => allowed ? Effect.succeed(true) : Effect.as(countRefused, false))
    )
    const budget: RetryBudget = {
      [TypeId]: TypeId,
      name,
      ratio,
      minPerSecond,
      window,
      deposit: Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Ref.update(ref, (state) => deposit(state, now, config))
      ),
      withdraw: withdrawEffect,
      stats: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(Ref.get(ref), (state) => {
          const current = advance(state, Math.floor(now / config.bucketMillis), config)
          return {
            calls: sum(current.calls),
            retries: sum(current.retries),
            available: allowance(current, config),
            refused: current.refused
          }
        }))
    }
    return budget
  })

/** @internal */
export const isRetryBudget = (u: unknown): u is RetryBudget => typeof u === "object" && u !== null && TypeId in u

/** @internal */
export const validate = (value: unknown): Either.Either<RetryBudget, InvalidOptions> =>
  isRetryBudget(value)
    ? Either.right(value)
    : Either.left(
      new InvalidOptions({
        module: "Retry.policy",
        field: "budget",
        expected: "a RetryBudget made by Retry.budget",
        received: value
      })
    )
