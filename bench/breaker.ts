/**
 * The circuit breaker suite: what `protect` costs per call, against the least a breaker must
 * do (the floor) and against cockatiel and opossum bridged into Effect.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Ref from "effect/Ref"
import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleAll } from "cockatiel"
import OpossumBreaker from "opossum"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"
import type { Case, Figure, Measurement, Suite } from "./harness.js"
import { byId, measureCases, ratio, target } from "./harness.js"

/** The rejection the floor would fail with; never raised in the bench (the floor stays closed). */
class FloorOpen extends Data.TaggedError("FloorOpen") {}

/** The state the floor keeps: what any breaker must track to decide the next call. */
interface FloorState {
  readonly inFlight: number
  readonly consecutiveFailures: number
  readonly lastCallAt: number
}

/**
 * The least a breaker must do, written inline: read the clock and decide with one
 * `Ref.modify` before the call; observe its outcome, read the clock and record it with one
 * `Ref.modify` after it; give the outcome back.
 */
const floor = <A, E, R>(
  ref: Ref.Ref<FloorState>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | FloorOpen, R> => {
  const record = (success: boolean) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Ref.modify(ref, (s): readonly [void, FloorState] => [undefined, {
        inFlight: s.inFlight - 1,
        consecutiveFailures: success ? 0 : s.consecutiveFailures + 1,
        lastCallAt: now
      }]))
  return Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.flatMap(
      Ref.modify(ref, (s): readonly [boolean, FloorState] =>
        s.consecutiveFailures >= 5
          ? [false, s]
          : [true, { inFlight: s.inFlight + 1, consecutiveFailures: s.consecutiveFailures, lastCallAt: now }]),
      (permitted): Effect.Effect<A, E | FloorOpen, R> =>
        permitted
          ? Effect.matchCauseEffect(effect, {
            onFailure: (cause) => Effect.zipRight(record(false), Effect.failCause(cause)),
            onSuccess: (a) => Effect.as(record(true), a)
          })
          : Effect.fail(new FloorOpen())
    ))
}

const noop = async (): Promise<void> => {}

/** How the peers are configured: their fastest settings that still make them a breaker. */
const cockatielOptions = { halfOpenAfter: 10_000, breaker: "new ConsecutiveBreaker(5)" }
const opossumOptions = {
  // no per-call timer (ours has none either); latency percentiles off: the cheapest opossum.
  timeout: false as const,
  resetTimeout: 10_000,
  errorThresholdPercentage: 50,
  rollingPercentilesEnabled: false
}

const expect = (condition: boolean, reason: string): Effect.Effect<void, string> =>
  condition ? Effect.void : Effect.fail(reason)

/** Builds every case; the breakers and peers it creates live as long as the suite's scope. */
const cases = Effect.gen(function*() {
  const floorRef = yield* Ref.make<FloorState>({ inFlight: 0, consecutiveFailures: 0, lastCallAt: 0 })

  const closed = yield* CircuitBreaker.make({ name: "bench-closed" })
  const open = yield* CircuitBreaker.make({ name: "bench-open", failureThreshold: 1, resetTimeout: "1 hour" })
  yield* Effect.ignore(open.protect(Effect.fail("boom")))
  const openState = yield* open.state
  if (openState !== "Open") {
    return yield* Effect.fail(`the breaker to bench in Open is ${openState} after a failure`)
  }

  const cockatielClosed = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  const cockatielOpen = circuitBreaker(handleAll, { halfOpenAfter: 3_600_000, breaker: new ConsecutiveBreaker(5) })
  for (let i = 0; i < 5; i++) {
    yield* Effect.ignore(Effect.tryPromise(() => cockatielOpen.execute(() => Promise.reject(new Error("boom")))))
  }
  if (cockatielOpen.state !== CircuitState.Open) {
    return yield* Effect.fail("the cockatiel breaker to bench in Open did not open after 5 failures")
  }

  const opossum = (resetTimeout: number) =>
    Effect.acquireRelease(
      Effect.sync(() => new OpossumBreaker(noop, { ...opossumOptions, resetTimeout })),
      (breaker) => Effect.sync(() => breaker.shutdown())
    )
  const opossumClosed = yield* opossum(opossumOptions.resetTimeout)
  const opossumOpen = yield* opossum(3_600_000)
  // opossum's action is fixed at construction, so it is opened by hand (the same state as a
  // failure-opened breaker: `fire` checks `opened` first).
  opossumOpen.open()

  const metrics = (breaker: CircuitBreaker.CircuitBreaker) => breaker.metrics

  // The composition docs/policies.md recommends, outermost first: fallback, retry, breaker,
  // timeout, call. Everything is built once; the loop runs the same effect value.
  const pipelineBreaker = yield* CircuitBreaker.make({ name: "bench-pipeline" })
  const pipelineRuns = yield* Ref.make(0)
  const pipeline = Ref.update(pipelineRuns, (n) => n + 1).pipe(
    Timeout.timeout("1 second", { operation: "bench" }),
    CircuitBreaker.protect(pipelineBreaker),
    Retry.policy(),
    Fallback.to("fallback")
  )

  const list: ReadonlyArray<Case> = [
    { id: "effect.void", label: "Effect.void", call: Effect.void },
    {
      id: "floor",
      label: "floor: clock + Ref.modify, call, clock + Ref.modify",
      call: Effect.orDie(floor(floorRef, Effect.void)),
      verify: () =>
        Effect.flatMap(Ref.get(floorRef), (s) =>
          expect(
            s.inFlight === 0 && s.consecutiveFailures === 0 && s.lastCallAt > 0,
            `the floor's state is off: ${JSON.stringify(s)}`
          ))
    },
    {
      id: "protect.closed",
      label: "breaker.protect(Effect.void), Closed",
      call: Effect.orDie(closed.protect(Effect.void)),
      verify: (calls) =>
        Effect.flatMap(metrics(closed), (m) =>
          expect(
            m.state === "Closed" && m.successfulCalls >= calls,
            `expected Closed with >= ${calls} successes, got ${m.state} with ${m.successfulCalls}`
          ))
    },
    {
      id: "protect.open",
      label: "breaker.protect(Effect.void), Open (rejection caught)",
      call: Effect.catchTag(open.protect(Effect.void), "CircuitBreakerOpen", () => Effect.void),
      verify: (calls) =>
        Effect.flatMap(metrics(open), (m) =>
          expect(
            m.state === "Open" && m.rejectedCalls >= calls,
            `expected Open with >= ${calls} rejections, got ${m.state} with ${m.rejectedCalls}`
          ))
    },
    {
      id: "pipeline",
      label: "fallback(retry(protect(timeout(call)))), success path",
      call: pipeline,
      verify: (calls) =>
        Effect.flatMap(Effect.zip(Ref.get(pipelineRuns), metrics(pipelineBreaker)), ([runs, m]) =>
          expect(
            runs >= calls && m.successfulCalls >= calls && m.failedCalls === 0,
            `expected >= ${calls} successful runs through the pipeline, got ${runs} (${m.failedCalls} failed)`
          ))
    },
    {
      id: "tryPromise",
      label: "Effect.tryPromise(async no-op), no breaker",
      call: Effect.orDie(Effect.tryPromise(noop))
    },
    {
      id: "cockatiel.closed",
      label: "cockatiel 3.2 via Effect.tryPromise, Closed",
      call: Effect.orDie(Effect.tryPromise(() => cockatielClosed.execute(noop))),
      verify: () => expect(cockatielClosed.state === CircuitState.Closed, "cockatiel left Closed")
    },
    {
      id: "cockatiel.open",
      label: "cockatiel 3.2 via Effect.tryPromise, Open (caught)",
      call: Effect.ignore(Effect.tryPromise(() => cockatielOpen.execute(noop))),
      verify: () => expect(cockatielOpen.state === CircuitState.Open, "cockatiel left Open")
    },
    {
      id: "opossum.closed",
      label: "opossum 9 via Effect.tryPromise, Closed",
      call: Effect.orDie(Effect.tryPromise(() => opossumClosed.fire())),
      verify: () => expect(opossumClosed.closed, "opossum left Closed")
    },
    {
      id: "opossum.open",
      label: "opossum 9 via Effect.tryPromise, Open (caught)",
      call: Effect.ignore(Effect.tryPromise(() => opossumOpen.fire())),
      verify: () => expect(opossumOpen.opened, "opossum left Open")
    }
  ]
  return list
})

/** Overhead over the bare call: (a - base) / (b - base). */
const overheadRatio = (
  measurements: ReadonlyArray<Measurement>,
  label: string,
  a: string,
  b: string,
  base: string
): Figure => {
  const baseline = byId(measurements, base).nsPerCall
  return {
    id: `${a}/${b}.net`,
    label,
    value: (byId(measurements, a).nsPerCall - baseline) / (byId(measurements, b).nsPerCall - baseline),
    unit: "x"
  }
}

/** The circuit breaker suite. */
export const suite: Suite = {
  name: "breaker",
  title: "Circuit breaker: cost per call",
  run: (settings) =>
    Effect.gen(function*() {
      // The breakers log their transitions; opening one during setup would print in the table.
      const list = yield* Logger.withMinimumLogLevel(cases, LogLevel.Warning)
      const measurements = yield* measureCases(list, settings)
      const overFloor = ratio(measurements, "protect (Closed) / floor", "protect.closed", "floor")
      const cockatiel = ratio(measurements, "cockatiel / protect (Closed)", "cockatiel.closed", "protect.closed")
      const opossum = ratio(measurements, "opossum / protect (Closed)", "opossum.closed", "protect.closed")
      const pipelineOverFloor = ratio(measurements, "pipeline / floor", "pipeline", "floor")
      const figures: ReadonlyArray<Figure> = [
        overFloor,
        overheadRatio(
          measurements,
          "protect (Closed) / floor, both net of Effect.void",
          "protect.closed",
          "floor",
          "effect.void"
        ),
        cockatiel,
        opossum,
        pipelineOverFloor,
        ratio(measurements, "protect (Open) / floor", "protect.open", "floor"),
        ratio(measurements, "cockatiel / protect (Open)", "cockatiel.open", "protect.open"),
        ratio(measurements, "opossum / protect (Open)", "opossum.open", "protect.open")
      ]
      return {
        name: "breaker",
        title: "Circuit breaker: cost per call",
        measurements,
        figures,
        targets: [
          target(overFloor, "protect in Closed at most 1.5x the floor", "<=", 1.5),
          target(pipelineOverFloor, "timeout + retry + breaker + fallback at most 3x the floor", "<=", 3),
          target(cockatiel, "protect in Closed at least 5x faster than cockatiel", ">=", 5),
          target(opossum, "protect in Closed at least 5x faster than opossum", ">=", 5)
        ],
        details: {
          floor: "Clock.currentTimeMillis + Ref.modify (admit), Effect.matchCauseEffect over the call, " +
            "Clock.currentTimeMillis + Ref.modify (record outcome), outcome given back",
          pipeline: "Ref.update (the call) |> Timeout.timeout(1 s) |> CircuitBreaker.protect |> " +
            "Retry.policy() |> Fallback.to(value)",
          breakerOptions: { closed: { name: "bench-closed" }, open: { failureThreshold: 1, resetTimeout: "1 hour" } },
          cockatiel: cockatielOptions,
          opossum: opossumOptions,
          peersOpen: "cockatiel opened by 5 failures; opossum opened with breaker.open()",
          loop: "Effect.whileLoop over the same effect value; the loop's own cost is in every figure " +
            "(see effect.void)"
        }
      }
    })
}
