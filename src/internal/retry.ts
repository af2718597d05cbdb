import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Intervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import { InvalidOptions } from "../InvalidOptions.js"
import * as options from "./options.js"
import * as tracing from "./tracing.js"
import { retryAfterMillis } from "./retryAfter.js"
import type { BackoffOptions, Classifier, Jitter, PolicyOptions, RetriedClass, RetryBudget } from "../Retry.js"
import * as budget from "./retryBudget.js"
import { classify as defaultClassify } from "./retryClassify.js"

// -----------------------------------------------------------------------------
// backoff
// -----------------------------------------------------------------------------

interface BackoffConfig {
  readonly base: number
  readonly factor: number
  readonly max: number
  readonly jitter: Jitter
  readonly maxRetries: number
  readonly maxElapsed: number
}

const factorCheck = options.check(
  Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1)),
  "a finite number >= 1"
)

const jitterCheck: options.Check<Jitter> = options.check(
  Schema.Literal("full", "decorrelated", "none"),
  "\"full\", \"decorrelated\" or \"none\""
)

/** @internal */
export const validateBackoff = (input: BackoffOptions): Either.Either<BackoffConfig, InvalidOptions> =>
  Either.gen(function*() {
    const module = "Retry.backoff"
    const base = yield* options.duration(module, "base", input.base, Duration.millis(100))
    const max = yield* options.duration(module, "max", input.max, Duration.seconds(30))
    if (Duration.lessThan(max, base)) {
      return yield* Either.left(
        new InvalidOptions({
          module,
          field: "max",
          expected: `a duration >= base (${Duration.format(base)})`,
          received: input.max
        })
      )
    }
    const factor = yield* options.field(module, "factor", input.factor, factorCheck, 2)
    const jitter = yield* options.field<Jitter>(module, "jitter", input.jitter, jitterCheck, "full")
    const maxRetries = yield* options.field(
      module,
      "maxRetries",
      input.maxRetries,
      options.integerAtLeastOrInfinity(0),
      Number.POSITIVE_INFINITY
    )
    const maxElapsed = yield* options.duration(module, "maxElapsed", input.maxElapsed, Duration.infinity, {
      positive: true,
      finite: false
    })
    return {
      base: Duration.toMillis(base),
      factor,
      max: Duration.toMillis(max),
      jitter,
      maxRetries,
      maxElapsed: Duration.toMillis(maxElapsed)
    }
  })

interface BackoffState {
  /** Retries decided so far. */
  readonly attempt: number
  /** When the first failure was seen. */
  readonly start: number
  /** The un-jittered exponential delay of the last retry, capped at `max` (so it never overflows). */
  readonly exponential: number
  /** The last delay, for decorrelated jitter. */
  readonly previous: number
}

const initialBackoff: BackoffState = { attempt: 0, start: 0, exponential: 0, previous: 0 }

type Step = readonly [BackoffState, Duration.Duration, ScheduleDecision.ScheduleDecision]

/** @internal */
export const makeBackoff = (config: BackoffConfig): Schedule.Schedule<Duration.Duration> => {
  const { base, factor, jitter, max, maxElapsed, maxRetries } = config
  return Schedule.makeWithState(initialBackoff, (now, _input, state): Effect.Effect<Step> => {
    if (state.attempt >= maxRetries) return Effect.succeed([state, Duration.zero, ScheduleDecision.done])
    const first = state.attempt === 0
    const start = first ? now : state.start
    const exponential = first ? base : Math.min(max, state.exponential * factor)
    const decide = (delay: number): Step => {
      if (now - start + delay > maxElapsed) return [state, Duration.zero, ScheduleDecision.done]
      return [
        { attempt: state.attempt + 1, start, exponential, previous: delay },
        Duration.millis(delay),
        ScheduleDecision.continueWith(Interval.after(now + delay))
      ]
    }
    switch (jitter) {
      case "none":
        return Effect.succeed(decide(exponential))
      case "full":
        // AWS "full jitter": uniform in [0, exponential).
        return Effect.map(Random.next, (random) => decide(random * exponential))
      case "decorrelated": {
        // AWS "decorrelated jitter": uniform in [base, previous * factor], capped at max.
        const upper = Math.min(max, (first ? base : state.previous) * factor)
        return Effect.map(Random.next, (random) => decide(base + random * (upper - base)))
      }
    }
  })
}

/** @internal */
export const backoff = (input?: BackoffOptions): Schedule.Schedule<Duration.Duration> => {
  const config = Either.flatMap(options.object("Retry.backoff", input, false), validateBackoff)
  if (Either.isLeft(config)) throw config.left
  return makeBackoff(config.right)
}

// -----------------------------------------------------------------------------
// budget
// -----------------------------------------------------------------------------

/**
 * Why a retry schedule stopped, as its `resilience.retry.stopped` event says.
 *
 * @internal
 */
export type StopOutcome = "exhausted" | "fatal" | "breaker_open" | "retry_after_too_long" | "budget_exhausted"

/**
 * What the trace says of an error: why the schedule stopped on it, and its class.
 *
 * @internal
 */
export interface Describe<E> {
  readonly stopped: (error: E, now: number) => StopOutcome
  readonly errorClass: ((error: E) => string) | undefined
}

const describeUnclassified: Describe<unknown> = { stopped: () => "exhausted", errorClass: undefined }

/**
 * `schedule`, paying for each retry it allows from `retryBudget` (stopping when refused),
 * and recording each decision on the caller's span: `resilience.retry.scheduled` (the
 * attempt about to run, its delay, the error's type and class) or `resilience.retry.stopped`
 * (why, after how many attempts). These run only after a failure.
 *
 * @internal
 */
export const traced = <Out, E, R>(
  schedule: Schedule.Schedule<Out, E, R>,
  retryBudget: RetryBudget | undefined,
  describe: Describe<E>
): Schedule.Schedule<Out, E, R> =>
  Schedule.makeWithState(
    [schedule.initial, 0] as readonly [unknown, number],
    (now, error: E, [inner, retries]) =>
      Effect.flatMap(schedule.step(now, error, inner), ([state, out, decision]) => {
        const next = [state, retries + 1] as const
        // Why it stopped is worked out only for a caller in a span (it may classify again).
        const stop = (outcome: () => StopOutcome) =>
          Effect.as(
            tracing.event("resilience.retry.stopped", () => ({
              "resilience.policy": "retry",
              "resilience.outcome": outcome(),
              "resilience.attempt": retries + 1,
              "error.type": tracing.errorType(error)
            })),
            [next, out, ScheduleDecision.done] as const
          )
        if (ScheduleDecision.isDone(decision)) return stop(() => describe.stopped(error, now))
        const go = Effect.as(
          tracing.event("resilience.retry.scheduled", () => {
            const attributes: tracing.Attributes = {
              "resilience.policy": "retry",
              "resilience.outcome": "scheduled",
              "resilience.attempt": retries + 2,
              "resilience.delay_ms": Math.max(0, Intervals.start(decision.intervals) - now),
              "error.type": tracing.errorType(error)
            }
            if (describe.errorClass !== undefined) attributes["resilience.error_class"] = describe.errorClass(error)
            return attributes
          }),
          [next, out, decision] as const
        )
        if (retryBudget === undefined) return go
        return Effect.flatMap(retryBudget.withdraw, (allowed) => allowed ? go : stop(() => "budget_exhausted"))
      })
  )

/**
 * Runs `self` once and, only when it fails, retries it with `schedule` (fed the first
 * failure too). The success path pays for one `catchAll` and nothing else; a success after
 * retries is recorded on the caller's span (`resilience.retry.succeeded`).
 */
const retryAfterFailure = <A, E, R, Out, R2>(
  self: Effect.Effect<A, E, R>,
  schedule: Schedule.Schedule<Out, E, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catchAll(self, (error) =>
    Effect.suspend(() => {
      let attempts = 0
      const attempt = Effect.suspend(() => {
        attempts++
        return attempts === 1 ? Effect.fail(error) : self
      })
      return Effect.tap(Effect.retry(attempt, schedule), () =>
        tracing.event("resilience.retry.succeeded", () => ({
          "resilience.policy": "retry",
          "resilience.outcome": "success",
          "resilience.attempt": attempts
        })))
    }))

/** @internal */
export const withBudget = dual<
  <Out, E, R2>(
    options: { readonly budget: RetryBudget; readonly schedule: Schedule.Schedule<Out, NoInfer<E>, R2> }
  ) => <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | R2>,
  <A, E, R, Out, R2>(
    self: Effect.Effect<A, E, R>,
    options: { readonly budget: RetryBudget; readonly schedule: Schedule.Schedule<Out, NoInfer<E>, R2> }
  ) => Effect.Effect<A, E, R | R2>
>(2, (self, input) => {
  const module = "Retry.withBudget"
  const given = options.object(module, input, true, "an object { budget, schedule }")
  if (Either.isLeft(given)) throw given.left
  const { budget: retryBudget, schedule } = given.right
  if (!budget.isRetryBudget(retryBudget)) {
    throw new InvalidOptions({
      module,
      field: "budget",
      expected: "a RetryBudget made by Retry.budget",
      received: retryBudget
    })
  }
  if (!Schedule.isSchedule(schedule)) {
    throw new InvalidOptions({ module, field: "schedule", expected: "a Schedule", received: schedule })
  }
  return Effect.zipRight(
    retryBudget.deposit,
    retryAfterFailure(self, traced(schedule, retryBudget, describeUnclassified as Describe<any>))
  )
})

// -----------------------------------------------------------------------------
// policy
// -----------------------------------------------------------------------------

/** @internal */
export const defaultSchedules: { readonly [K in RetriedClass]: Schedule.Schedule<unknown> } = {
  // Two immediate retries, then three short jittered backoffs: 0, 0, <100ms, <200ms, <400ms.
  Transient: Schedule.andThen(
    Schedule.recurs(2),
    backoff({ base: "100 millis", factor: 2, max: "2 seconds", jitter: "full", maxRetries: 3 })
  ),
  // Exponential with full jitter: <1s, <2s, <4s, <8s, <16s.
  Degraded: backoff({ base: "1 second", factor: 2, max: "30 seconds", jitter: "full", maxRetries: 5 }),
  // Long delays: <10s, <20s, <40s.
  Persistent: backoff({ base: "10 seconds", factor: 2, max: "2 minutes", jitter: "full", maxRetries: 3 })
}

const CLASSES: ReadonlyArray<RetriedClass> = ["Transient", "Degraded", "Persistent"]

type PolicyState = { readonly [K in RetriedClass]: unknown }

const MAX_DEPTH = 5

/**
 * Whether the error is a breaker's rejection (`CircuitBreakerOpen`), or is caused by one.
 *
 * @internal
 */
export const isBreakerRejection = (error: unknown): boolean => {
  let current = error
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (typeof current !== "object" || current === null) return false
    if ((current as { readonly _tag?: unknown })._tag === "CircuitBreakerOpen") return true
    current = (current as { readonly cause?: unknown }).cause
  }
  return false
}

/**
 * The schedule of a policy: a breaker's rejection stops at once (an open breaker means "do
 * not wait for this dependency") unless `waitOutOpenBreaker`; otherwise each error is
 * classified; `Fatal` stops; otherwise the schedule of its class (each class keeps its own
 * state) decides, and the delay is raised to the error's `retryAfter`, stopping when that is
 * longer than `maxRetryAfter`.
 *
 * @internal
 */
export const policySchedule = <E, R>(
  classifier: Classifier<E>,
  schedules: { readonly [K in RetriedClass]: Schedule.Schedule<unknown, E, R> | undefined },
  maxRetryAfter: number,
  waitOutOpenBreaker = false
): Schedule.Schedule<Duration.Duration, E, R> => {
  const initial: PolicyState = {
    Transient: schedules.Transient?.initial,
    Degraded: schedules.Degraded?.initial,
    Persistent: schedules.Persistent?.initial
  }
  const stop = (state: PolicyState) => Effect.succeed([state, Duration.zero, ScheduleDecision.done] as const)
  return Schedule.makeWithState(initial, (now, error: E, state) => {
    if (!waitOutOpenBreaker && isBreakerRejection(error)) return stop(state)
    const errorClass = classifier(error)
    if (errorClass === "Fatal") return stop(state)
    const schedule = schedules[errorClass]
    if (schedule === undefined) return stop(state)
    return Effect.map(schedule.step(now, error, state[errorClass]), ([classState, _, decision]) => {
      const next: PolicyState = { ...state, [errorClass]: classState }
      if (ScheduleDecision.isDone(decision)) return [next, Duration.zero, ScheduleDecision.done] as const
      let delay = Math.max(0, Intervals.start(decision.intervals) - now)
      const retryAfter = retryAfterMillis(error, now)
      if (retryAfter !== undefined) {
        // An infinite wait (a breaker forced open) is never retried.
        if (retryAfter === Number.POSITIVE_INFINITY || retryAfter > maxRetryAfter) {
          return [next, Duration.zero, ScheduleDecision.done] as const
        }
        if (retryAfter > delay) delay = retryAfter
      }
      return [next, Duration.millis(delay), ScheduleDecision.continueWith(Interval.after(now + delay))] as const
    })
  })
}

/** @internal */
export const validatePolicy = <E, R>(
  raw: PolicyOptions<E, R> | undefined
): Either.Either<
  {
    readonly classify: Classifier<E>
    readonly schedules: { readonly [K in RetriedClass]: Schedule.Schedule<unknown, E, R> | undefined }
    readonly budget: RetryBudget | undefined
    readonly maxRetryAfter: number
    readonly waitOutOpenBreaker: boolean
  },
  InvalidOptions
> =>
  Either.gen(function*() {
    const module = "Retry.policy"
    const input = yield* options.object(module, raw, false)
    if (input.classify !== undefined && typeof input.classify !== "function") {
      return yield* Either.left(
        new InvalidOptions({ module, field: "classify", expected: "a function", received: input.classify })
      )
    }
    const given = input.schedules ?? {}
    if (typeof given !== "object" || given === null) {
      return yield* Either.left(
        new InvalidOptions({ module, field: "schedules", expected: "an object of Schedules", received: given })
      )
    }
    for (const key of Object.keys(given)) {
      const value = (given as Record<string, unknown>)[key]
      if (!(CLASSES as ReadonlyArray<string>).includes(key)) {
        return yield* Either.left(
          new InvalidOptions({
            module,
            field: `schedules.${key}`,
            expected: "one of Transient, Degraded, Persistent (Fatal is never retried)",
            received: key
          })
        )
      }
      if (value !== undefined && !Schedule.isSchedule(value)) {
        return yield* Either.left(
          new InvalidOptions({ module, field: `schedules.${key}`, expected: "a Schedule", received: value })
        )
      }
    }
    const retryBudget = input.budget === undefined ? undefined : yield* budget.validate(input.budget)
    // Duration.decode turns a negative number into zero: refuse it here rather than read it as "never wait".
    const maxRetryAfter = typeof input.maxRetryAfter === "number" && input.maxRetryAfter < 0
      ? yield* Either.left(
        new InvalidOptions({
          module,
          field: "maxRetryAfter",
          expected: "a non-negative duration",
          received: input.maxRetryAfter
        })
      )
      : yield* options.duration(module, "maxRetryAfter", input.maxRetryAfter, Duration.infinity, {
        positive: false,
        finite: false
      })
    const waitOutOpenBreaker = input.waitOutOpenBreaker ?? false
    if (typeof waitOutOpenBreaker !== "boolean") {
      return yield* Either.left(
        new InvalidOptions({ module, field: "waitOutOpenBreaker", expected: "a boolean", received: waitOutOpenBreaker })
      )
    }
    const pick = (key: RetriedClass): Schedule.Schedule<unknown, E, R> | undefined =>
      given[key] ?? defaultSchedules[key]
    return {
      classify: input.classify ?? defaultClassify,
      schedules: { Transient: pick("Transient"), Degraded: pick("Degraded"), Persistent: pick("Persistent") },
      budget: retryBudget,
      maxRetryAfter: Duration.toMillis(maxRetryAfter),
      waitOutOpenBreaker
    }
  })

/** @internal */
export const policy = <E = unknown, R = never>(
  input?: PolicyOptions<E, R>
): <A, E2 extends E, R2>(self: Effect.Effect<A, E2, R2>) => Effect.Effect<A, E2, R | R2> => {
  const validated = validatePolicy(input)
  if (Either.isLeft(validated)) throw validated.left
  const config = validated.right
  const base = policySchedule(config.classify, config.schedules, config.maxRetryAfter, config.waitOutOpenBreaker)
  const retryBudget = config.budget
  const schedule = traced(base, retryBudget, describePolicy(config))
  if (retryBudget === undefined) {
    return <A, E2 extends E, R2>(self: Effect.Effect<A, E2, R2>) =>
      retryAfterFailure(self, schedule as Schedule.Schedule<Duration.Duration, E2, R>)
  }
  return <A, E2 extends E, R2>(self: Effect.Effect<A, E2, R2>) =>
    Effect.zipRight(
      retryBudget.deposit,
      retryAfterFailure(self, schedule as Schedule.Schedule<Duration.Duration, E2, R>)
    )
}

/** Why `policySchedule` stopped on an error: the checks it makes, in its order. */
const describePolicy = <E>(
  config: {
    readonly classify: Classifier<E>
    readonly maxRetryAfter: number
    readonly waitOutOpenBreaker: boolean
  }
): Describe<E> => ({
  stopped: (error, now) => {
    if (!config.waitOutOpenBreaker && isBreakerRejection(error)) return "breaker_open"
    if (config.classify(error) === "Fatal") return "fatal"
    const retryAfter = retryAfterMillis(error, now)
    if (retryAfter !== undefined && retryAfter > config.maxRetryAfter) return "retry_after_too_long"
    return "exhausted"
  },
  errorClass: config.classify
})

/** @internal */
export const retryAfter = (error: unknown, now: number): Option.Option<Duration.Duration> => {
  const millis = retryAfterMillis(error, now)
  return millis === undefined ? Option.none() : Option.some(Duration.millis(millis))
}
