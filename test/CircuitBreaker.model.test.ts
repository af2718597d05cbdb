/**
 * Model-based tests: random scenarios of calls (kept in flight and ended later with a success,
 * a failure, an ignored failure, a defect or an interruption), time jumps on the `TestClock`,
 * forced commands, resets, health checks, isolations and reads drive the real breaker and the
 * reference model in `support/breakerModel.ts` side by side. After every step the admission
 * decisions, the transitions seen by a subscriber, and (at random points, since reads observe
 * lazy transitions) the state and metrics must agree, and the invariants must hold.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { BreakerModel } from "./support/breakerModel.js"
import type { Admission, ModelConfig, ModelMetrics, Outcome, Transition } from "./support/breakerModel.js"

class Boom extends Data.TaggedError("Boom")<{}> {}
class Ignorable extends Data.TaggedError("Ignorable")<{}> {}

type Ending = Outcome | "defect"

type Step =
  | { readonly _tag: "Start" }
  | { readonly _tag: "End"; readonly pick: number; readonly outcome: Ending }
  /** Calls that start and end at once, one after the other, all with the same outcome. */
  | { readonly _tag: "Calls"; readonly outcome: Ending; readonly times: number }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "ForceOpen" }
  | { readonly _tag: "ForceClosed" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "HealthCheck" }
  | { readonly _tag: "Isolate" }
  | { readonly _tag: "Release"; readonly pick: number }
  | { readonly _tag: "Read"; readonly what: "state" | "isCallPermitted" | "retryAfter" | "metrics" }

interface Setup {
  readonly label: string
  readonly options: Omit<CircuitBreaker.CircuitBreaker.Options, "name" | "isFailure">
  readonly model: ModelConfig
  /** A typical open duration, to scale the time jumps. */
  readonly unit: number
  /** Situations (as the model names them) the generated scenarios must reach with this option set. */
  readonly mustCover: ReadonlyArray<string>
  /** How often a burst of instant calls comes up (default 16, as often as a start or an end). */
  readonly burstWeight?: number
}

const base = {
  failureRateThreshold: undefined,
  slowCallMillis: undefined,
  slowCallRateThreshold: undefined,
  minimumCalls: 10,
  recoveryFactor: 1,
  window: { _tag: "Time", durationMillis: 300_000, buckets: 10 },
  // Finding: where the implementation departs from the decided semantics (see the model).
  // Set it to false once fixed, and the comparison checks the decided semantics again.
  deviations: { halfOpenCommandIgnoresIsolation: false }
} as const

const constant = (millis: number) => () => millis

const setups: ReadonlyArray<Setup> = [
  {
    label: "consecutive failures, one probe, one success closes",
    options: { failureThreshold: 3, successThreshold: 1, halfOpenMaxCalls: 1, resetTimeout: 1000 },
    model: {
      ...base,
      failureThreshold: 3,
      successThreshold: 1,
      halfOpenMaxCalls: 1,
      openDuration: constant(1000)
    },
    unit: 1000,
    mustCover: [
      "transition Closed -> Open (FailureThreshold)",
      "transition HalfOpen -> Closed (ProbesSucceeded)",
      "transition HalfOpen -> Open (ProbeFailed)",
      "HalfOpen full"
    ]
  },
  {
    label: "count window with failure rate, three probes, three successes close",
    options: {
      failureThreshold: 6,
      successThreshold: 3,
      halfOpenMaxCalls: 3,
      resetTimeout: 1000,
      window: { _tag: "Count", size: 6 },
      failureRateThreshold: 0.5,
      minimumCalls: 4
    },
    model: {
      ...base,
      failureThreshold: 6,
      successThreshold: 3,
      halfOpenMaxCalls: 3,
      window: { _tag: "Count", size: 6 },
      failureRateThreshold: 0.5,
      minimumCalls: 4,
      openDuration: constant(1000)
    },
    unit: 1000,
    mustCover: [
      "transition Closed -> Open (FailureRate)",
      "transition HalfOpen -> Closed (ProbesSucceeded)",
      "transition HalfOpen -> Open (ProbeFailed)"
    ]
  },
  {
    label: "time window with failure rate",
    options: {
      failureThreshold: 4,
      successThreshold: 1,
      halfOpenMaxCalls: 3,
      resetTimeout: 1000,
      window: { _tag: "Time", duration: 4000, buckets: 4 },
      failureRateThreshold: 0.6,
      minimumCalls: 3
    },
    model: {
      ...base,
      failureThreshold: 4,
      successThreshold: 1,
      halfOpenMaxCalls: 3,
      window: { _tag: "Time", durationMillis: 4000, buckets: 4 },
      failureRateThreshold: 0.6,
      minimumCalls: 3,
      openDuration: constant(1000)
    },
    unit: 1000,
    mustCover: [
      "transition Closed -> Open (FailureRate)",
      "rates judged after the time window forgot calls",
      "transition HalfOpen -> Closed (ProbesSucceeded)",
      "transition HalfOpen -> Open (ProbeFailed)"
    ]
  },
  {
    label: "gradual recovery (recoveryFactor 0.5)",
    options: { failureThreshold: 2, successThreshold: 3, halfOpenMaxCalls: 3, recoveryFactor: 0.5, resetTimeout: 1000 },
    model: {
      ...base,
      failureThreshold: 2,
      successThreshold: 3,
      halfOpenMaxCalls: 3,
      recoveryFactor: 0.5,
      openDuration: constant(1000)
    },
    unit: 1000,
    mustCover: [
      "HalfOpen arrival turned away by recoveryFactor",
      "transition HalfOpen -> Closed (ProbesSucceeded)",
      "transition HalfOpen -> Open (ProbeFailed)"
    ]
  },
  {
    label: "exponential open schedule",
    options: {
      failureThreshold: 2,
      successThreshold: 3,
      halfOpenMaxCalls: 1,
      openSchedule: Schedule.exponential(Duration.millis(500))
    },
    model: {
      ...base,
      failureThreshold: 2,
      successThreshold: 3,
      halfOpenMaxCalls: 1,
      openDuration: (opening) => 500 * 2 ** (opening - 1)
    },
    unit: 1000,
    mustCover: [
      "HalfOpen full",
      "transition HalfOpen -> Closed (ProbesSucceeded)",
      "transition HalfOpen -> Open (ProbeFailed)"
    ]
  },
  {
    label: "slow calls over a count window (failures alone never open)",
    options: {
      failureThreshold: Number.POSITIVE_INFINITY,
      successThreshold: 1,
      halfOpenMaxCalls: 1,
      resetTimeout: 1000,
      window: { _tag: "Count", size: 5 },
      slowCallDuration: 250,
      slowCallRateThreshold: 0.5,
      minimumCalls: 3
    },
    model: {
      ...base,
      failureThreshold: Number.POSITIVE_INFINITY,
      successThreshold: 1,
      halfOpenMaxCalls: 1,
      window: { _tag: "Count", size: 5 },
      slowCallMillis: 250,
      slowCallRateThreshold: 0.5,
      minimumCalls: 3,
      openDuration: constant(1000)
    },
    unit: 1000,
    mustCover: [
      "transition Closed -> Open (SlowCallRate)"
    ],
    // Instant calls are never slow: this set needs calls that stay in flight while time passes.
    burstWeight: 2
  }
]

/** Situations every option set must reach. */
const mustCover: ReadonlyArray<string> = [
  "late Closed call",
  "reset from Closed",
  "transition Closed -> ForcedOpen (Isolated)",
  "transition Closed -> ForcedClosed (ForceClosed)",
  "transition Closed -> ForcedOpen (ForceOpen)",
  "transition Open -> HalfOpen (OpenDurationElapsed)",
  "HalfOpen arrival while a reclaimed or late call runs"
]

/** Rarer situations that the option sets must reach between them. */
const mustCoverTogether: ReadonlyArray<string> = [
  "transition ForcedOpen -> Closed (IsolationReleased)",
  "transition ForcedOpen -> HalfOpen (IsolationReleased)",
  "transition Open -> HalfOpen (HealthCheckPassed)",
  "probe interrupted",
  "probe ignored",
  "late Probe call",
  "probe ended after its permit was reclaimed",
  "HalfOpen full",
  "isolated over HalfOpen with calls in flight",
  "probe of an earlier epoch ended in HalfOpen",
  "reset from HalfOpen while isolated",
  "open period ended while isolated"
]

/**
 * One step. `successWeight` (out of 10 endings that succeed or fail) and `commands` (how
 * often forced commands and isolation come up) vary from scenario to scenario, so that some
 * runs recover and close, some keep failing, and some never leave the automatic states.
 */
const stepArbitrary = (setup: Setup, successWeight: number, commands: number): FastCheck.Arbitrary<Step> => {
  const unit = setup.unit
  const outcome = FastCheck.oneof(
    { weight: 10 - successWeight, arbitrary: FastCheck.constant<Ending>("failure") },
    { weight: successWeight, arbitrary: FastCheck.constant<Ending>("success") },
    { weight: 1, arbitrary: FastCheck.constant<Ending>("ignored") },
    { weight: 1, arbitrary: FastCheck.constant<Ending>("interrupted") },
    { weight: 1, arbitrary: FastCheck.constant<Ending>("defect") }
  )
  return FastCheck.oneof(
    { weight: 16, arbitrary: FastCheck.constant<Step>({ _tag: "Start" }) },
    {
      weight: 16,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("End" as const),
        // Counted from the newest call in flight, and mostly the newest: those are the probes.
        pick: FastCheck.oneof(
          { weight: 2, arbitrary: FastCheck.constant(0) },
          { weight: 1, arbitrary: FastCheck.nat() }
        ),
        outcome
      })
    },
    {
      weight: setup.burstWeight ?? 16,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Calls" as const),
        outcome,
        times: FastCheck.integer({ min: 1, max: 4 })
      })
    },
    {
      weight: 16,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Advance" as const),
        // Quarter units land exactly on the boundaries (open periods, probe leases, buckets)
        // often; arbitrary amounts land between them.
        millis: FastCheck.oneof(
          FastCheck.integer({ min: 0, max: 12 }).map((quarters) => (quarters * unit) / 4),
          FastCheck.integer({ min: 0, max: 3 * unit })
        )
      })
    },
    { weight: commands, arbitrary: FastCheck.constant<Step>({ _tag: "ForceOpen" }) },
    { weight: commands, arbitrary: FastCheck.constant<Step>({ _tag: "ForceClosed" }) },
    { weight: commands, arbitrary: FastCheck.constant<Step>({ _tag: "Isolate" }) },
    {
      weight: 2 * commands,
      arbitrary: FastCheck.record({ _tag: FastCheck.constant("Release" as const), pick: FastCheck.nat() })
    },
    { weight: 2, arbitrary: FastCheck.constant<Step>({ _tag: "Reset" }) },
    { weight: 2, arbitrary: FastCheck.constant<Step>({ _tag: "HealthCheck" }) },
    {
      weight: 4,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Read" as const),
        what: FastCheck.constantFrom<Array<"state" | "isCallPermitted" | "retryAfter" | "metrics">>(
          "state",
          "isCallPermitted",
          "retryAfter",
          "metrics"
        )
      })
    }
  )
}

/** Each step, plus whether to read state and metrics after it (reads observe lazy transitions). */
const scenarioArbitrary = (setup: Setup) =>
  FastCheck.tuple(FastCheck.constantFrom(2, 5, 8, 9, 9), FastCheck.integer({ min: 0, max: 2 })).chain((
    [successWeight, commands]
  ) =>
    FastCheck.array(FastCheck.tuple(stepArbitrary(setup, successWeight, commands), FastCheck.boolean()), {
      minLength: 1,
      maxLength: 60,
      size: "max"
    })
  )

/** Fails with both values in the message: fast-check's report keeps the message, not vitest's diff. */
const same = <A>(actual: A, expected: A, what: string, where: () => string): void => {
  const show = (value: unknown) => JSON.stringify(value, (_, v) => v === Number.POSITIVE_INFINITY ? "Infinity" : v)
  if (show(actual) !== show(expected)) {
    throw new Error(`${what}: breaker ${show(actual)}\n  model ${show(expected)}\n${where()}`)
  }
}

const legal = (event: Transition): boolean => {
  switch (event.reason) {
    case "FailureThreshold":
    case "FailureRate":
    case "SlowCallRate":
      return event.from === "Closed" && event.to === "Open"
    case "OpenDurationElapsed":
    case "HealthCheckPassed":
      return event.from === "Open" && event.to === "HalfOpen"
    case "ProbeFailed":
      return event.from === "HalfOpen" && event.to === "Open"
    case "ProbesSucceeded":
      return event.from === "HalfOpen" && event.to === "Closed"
    case "ForceOpen":
    case "Isolated":
      return event.to === "ForcedOpen" && event.from !== "ForcedOpen"
    case "ForceClosed":
      return event.to === "ForcedClosed" && event.from !== "ForcedClosed"
    case "IsolationReleased":
      return event.from === "ForcedOpen" && event.to !== "ForcedOpen"
    case "Reset":
      // Back to Closed, unless an isolation still holds the breaker.
      return event.to === "Closed" || event.to === "ForcedOpen"
  }
}

const millisOf = (duration: Duration.Duration): number =>
  Duration.isFinite(duration) ? Duration.toMillis(duration) : Number.POSITIVE_INFINITY

const pickMetrics = (metrics: CircuitBreaker.Metrics): ModelMetrics => ({
  state: metrics.state,
  totalCalls: metrics.totalCalls,
  successfulCalls: metrics.successfulCalls,
  failedCalls: metrics.failedCalls,
  ignoredCalls: metrics.ignoredCalls,
  interruptedCalls: metrics.interruptedCalls,
  rejectedCalls: metrics.rejectedCalls,
  slowCalls: metrics.slowCalls,
  consecutiveFailures: metrics.consecutiveFailures,
  consecutiveSuccesses: metrics.consecutiveSuccesses,
  stateChanges: metrics.stateChanges,
  probesInFlight: metrics.probesInFlight,
  windowCalls: metrics.windowCalls,
  failureRate: metrics.failureRate,
  slowCallRate: metrics.slowCallRate,
  timeInState: Duration.toMillis(metrics.timeInState),
  openDuration: Duration.toMillis(metrics.openDuration)
})

interface InFlight {
  readonly modelId: number
  readonly gate: Deferred.Deferred<void, Boom | Ignorable>
  readonly fiber: Fiber.RuntimeFiber<void, unknown>
}

type Observed =
  | { readonly _tag: "Admitted" }
  | { readonly _tag: "Rejected"; readonly reason: string; readonly retryAfter: number }

const observedOf = (admission: Admission): Observed =>
  admission._tag === "Admitted" ? { _tag: "Admitted" } : admission

/** Drives the real breaker and the model side by side through `steps`, comparing after every step. */
const runScenario = (
  setup: Setup,
  steps: ReadonlyArray<readonly [Step, boolean]>,
  coverage: Map<string, number>
) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      ...setup.options,
      name: "model",
      isFailure: (error: unknown) => !(error instanceof Ignorable)
    })
    const model = new BreakerModel(setup.model)
    const scope = yield* Scope.make()
    const changes = yield* breaker.subscribe.pipe(Scope.extend(scope))
    const seen: Array<Transition> = []
    yield* Stream.runForEach(changes, (event) =>
      Effect.sync(() => {
        seen.push({ from: event.from, to: event.to, at: event.at, reason: event.reason })
      })).pipe(Effect.forkIn(scope))
    const inFlight: Array<InFlight> = []
    const isolations: Array<Scope.CloseableScope> = []
    const trace: Array<string> = []
    const where = () => `${setup.label}\nsteps:\n  ${trace.join("\n  ")}`

    const checkEvents = (extraTurns: number) => Effect.gen(function*() {
      // The collector fiber drains the subscription concurrently: let it catch up, then give
      // it more turns so that an extra event would show (here or at the next step's check).
      for (let i = 0; i < 100 && seen.length < model.events.length; i++) yield* Effect.yieldNow()
      for (let i = 0; i < extraTurns; i++) yield* Effect.yieldNow()
      same(seen, model.events, "transitions", where)
      for (let i = 0; i < seen.length; i++) {
        const event = seen[i]!
        expect(legal(event), `illegal transition ${JSON.stringify(event)}\n${where()}`).toBe(true)
        if (i > 0) {
          expect(event.from, `transition does not start where the last one ended\n${where()}`).toBe(seen[i - 1]!.to)
          expect(event.at, `transitions out of order\n${where()}`).toBeGreaterThanOrEqual(seen[i - 1]!.at)
        }
      }
    })

    const checkStateAndMetrics = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const state = yield* breaker.state
      same(state, model.state(now), "state", where)
      const metrics = yield* breaker.metrics
      same(pickMetrics(metrics), model.metrics(now), "metrics", where)
      expect(metrics.state).toBe(state)
      expect(metrics.probesInFlight).toBeLessThanOrEqual(setup.model.halfOpenMaxCalls)
      expect(metrics.totalCalls, `counters do not add up\n${where()}`).toBe(
        metrics.successfulCalls + metrics.failedCalls + metrics.ignoredCalls + metrics.interruptedCalls +
          metrics.rejectedCalls
      )
    })

    /** Starts a call that stays in flight until `end`; returns it when it was admitted. */
    const start = (now: number) =>
      Effect.gen(function*() {
        const admission = yield* Deferred.make<Option.Option<CircuitBreaker.CircuitBreakerOpen>>()
        const gate = yield* Deferred.make<void, Boom | Ignorable>()
        const fiber = yield* breaker.protect(
          Effect.zipRight(Deferred.succeed(admission, Option.none()), Deferred.await(gate))
        ).pipe(
          Effect.catchTag("CircuitBreakerOpen", (error) => Deferred.succeed(admission, Option.some(error))),
          Effect.asVoid,
          Effect.fork
        )
        const decided = yield* Deferred.await(admission)
        const observed: Observed = Option.isNone(decided) ?
          { _tag: "Admitted" } :
          { _tag: "Rejected", reason: decided.value.reason, retryAfter: millisOf(decided.value.retryAfter) }
        const expected = model.acquire(now)
        same(observed, observedOf(expected), "admission", where)
        if (expected._tag === "Rejected") return undefined
        const call: InFlight = { modelId: expected.id, gate, fiber }
        inFlight.push(call)
        return call
      })

    const end = (call: InFlight, outcome: Ending, now: number) =>
      Effect.gen(function*() {
        const index = inFlight.indexOf(call)
        if (index >= 0) inFlight.splice(index, 1)
        switch (outcome) {
          case "success":
            yield* Deferred.succeed(call.gate, undefined)
            break
          case "failure":
            yield* Deferred.fail(call.gate, new Boom())
            break
          case "ignored":
            yield* Deferred.fail(call.gate, new Ignorable())
            break
          case "defect":
            yield* Deferred.die(call.gate, new Error("defect"))
            break
          case "interrupted":
            yield* Fiber.interrupt(call.fiber)
            break
        }
        yield* Fiber.await(call.fiber)
        model.end(call.modelId, outcome === "defect" ? "failure" : outcome, now)
      })

    for (const [step, check] of steps) {
      const now = yield* Clock.currentTimeMillis
      trace.push(`@${now} ${JSON.stringify(step)}`)
      switch (step._tag) {
        case "Start":
          yield* start(now)
          break
        case "End": {
          if (inFlight.length === 0) break
          const [call] = inFlight.splice(inFlight.length - 1 - (step.pick % inFlight.length), 1)
          yield* end(call!, step.outcome, now)
          break
        }
        case "Calls":
          for (let i = 0; i < step.times; i++) {
            const call = yield* start(now)
            if (call !== undefined) yield* end(call, step.outcome, now)
          }
          break
        case "Advance":
          yield* TestClock.adjust(Duration.millis(step.millis))
          break
        case "ForceOpen":
          yield* breaker.forceOpen
          model.forceOpen(now)
          break
        case "ForceClosed":
          yield* breaker.forceClosed
          model.forceClosed(now)
          break
        case "Reset":
          yield* breaker.reset
          model.reset(now)
          break
        case "HealthCheck":
          yield* breaker.halfOpen
          model.halfOpen(now)
          break
        case "Isolate": {
          const isolation = yield* Scope.make()
          yield* breaker.isolate.pipe(Scope.extend(isolation))
          isolations.push(isolation)
          model.isolate(now)
          break
        }
        case "Release": {
          if (isolations.length === 0) break
          const [isolation] = isolations.splice(step.pick % isolations.length, 1)
          yield* Scope.close(isolation!, Exit.void)
          model.release(now)
          break
        }
        case "Read":
          switch (step.what) {
            case "state":
              same(yield* breaker.state, model.state(now), "state", where)
              break
            case "isCallPermitted":
              same(yield* breaker.isCallPermitted, model.isCallPermitted(now), "isCallPermitted", where)
              break
            case "retryAfter":
              same(millisOf(yield* breaker.retryAfter), model.retryAfter(now), "retryAfter", where)
              break
            case "metrics":
              same(pickMetrics(yield* breaker.metrics), model.metrics(now), "metrics", where)
              break
          }
          break
      }
      if (check) yield* checkStateAndMetrics
      yield* checkEvents(1)
    }
    yield* checkStateAndMetrics
    yield* checkEvents(20)
    for (const [situation, count] of model.coverage) coverage.set(situation, (coverage.get(situation) ?? 0) + count)
    for (const call of inFlight) yield* Fiber.interrupt(call.fiber)
    for (const isolation of isolations) yield* Scope.close(isolation, Exit.void)
    yield* Scope.close(scope, Exit.void)
  })

// MODEL_RUNS=5000 explores further; MODEL_SEED=<seed> replays a reported failure; MODEL_STATS=1 prints
// how often each situation was reached.
const fastCheck = {
  numRuns: Number(process.env.MODEL_RUNS ?? 200),
  ...(process.env.MODEL_SEED === undefined ? {} : { seed: Number(process.env.MODEL_SEED) })
}

/** What @effect/vitest gives every `it.effect` run: test services, no log output. */
const TestEnvironment = TestContext.TestContext.pipe(Layer.provide(Logger.remove(Logger.defaultLogger)))

describe("CircuitBreaker model", () => {
  const reached = new Map<string, number>()
  for (const setup of setups) {
    it(`agrees with the reference model: ${setup.label}`, { timeout: 60_000 + fastCheck.numRuns * 100 }, async () => {
      const coverage = new Map<string, number>()
      await FastCheck.assert(
        FastCheck.asyncProperty(
          scenarioArbitrary(setup),
          (steps) => Effect.runPromise(runScenario(setup, steps, coverage).pipe(Effect.provide(TestEnvironment)))
        ),
        fastCheck
      )
      if (process.env.MODEL_STATS !== undefined) {
        console.log(setup.label, Object.fromEntries([...coverage].sort(([a], [b]) => a.localeCompare(b))))
      }
      // The generator must reach the situations this option set exists for, or the agreement above proves little.
      for (const situation of [...mustCover, ...setup.mustCover]) {
        expect(coverage.get(situation) ?? 0, `never reached: ${situation}`).toBeGreaterThan(0)
      }
      for (const [situation, count] of coverage) reached.set(situation, (reached.get(situation) ?? 0) + count)
    })
  }

  it("the option sets between them reach the rarer situations", () => {
    for (const situation of mustCoverTogether) {
      expect(reached.get(situation) ?? 0, `never reached: ${situation}`).toBeGreaterThan(0)
    }
  })
})
