/**
 * The circuit breaker suite: what `protect` costs per call, side by side in one loop with
 *
 * - lbMask, the interrupt-safe lower bound of any Effect breaker: a hand-written breaker on
 *   a mutable cell that reads `Date.now` once and runs the call in one `matchCauseEffect`
 *   inside `uninterruptibleMask` (a Closed and an Open variant);
 * - `Effect.either(Effect.void)`, the cost of one effect observed in the same loop;
 * - cockatiel and opossum bridged into Effect the same way as ours (`protect` over
 *   `Effect.tryPromise` against `Effect.tryPromise(() => peer.execute(...))`);
 * - `Effect.runPromise`, for Promise users: `runPromise(protect(x))` against `runPromise(x)`.
 *
 * Also: the recommended pipeline, `Timeout.timeout` against `Effect.timeout` on an operation
 * that never suspends, and `CircuitBreaker.make` plus one call.
 */
import * as Cause from "effect/Cause"
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
import { addRatios, measureCases, ratio, target } from "./harness.js"

/** The mutable cell lbMask keeps: what a breaker must track to decide the next call. */
interface Cell {
  inFlight: number
  consecutiveFailures: number
  openUntil: number
}

/** lbMask's rejection: a typed value with the time to wait, built per rejection, no stack. */
class LowerBoundOpen {
  readonly _tag = "LowerBoundOpen"
  constructor(readonly retryAfterMillis: number) {}
}

/**
 * The interrupt-safe lower bound: decide from the clock and the cell, run the call restored
 * to interruptibility inside one `matchCauseEffect`, record its outcome in the continuation.
 * The mask is what makes the bookkeeping survive an interruption between admission and record.
 */
const lbMask = <A, E, R>(cell: Cell, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | LowerBoundOpen, R> =>
  Effect.uninterruptibleMask((restore): Effect.Effect<A, E | LowerBoundOpen, R> => {
    const now = Date.now()
    if (now < cell.openUntil) {
      return Effect.fail(new LowerBoundOpen(cell.openUntil - now))
    }
    cell.inFlight++
    return Effect.matchCauseEffect(restore(effect), {
      onFailure: (cause) => {
        cell.inFlight--
        if (!Cause.isInterruptedOnly(cause) && ++cell.consecutiveFailures >= 5) {
          cell.openUntil = now + 60_000
        }
        return Effect.failCause(cause)
      },
      onSuccess: (a) => {
        cell.inFlight--
        cell.consecutiveFailures = 0
        return Effect.succeed(a)
      }
    })
  })

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

/** A case that awaits `Effect.runPromise(effect)` `n` times in a Promise loop, as a Promise user would. */
const promiseLoop = (effect: Effect.Effect<unknown, unknown>) => (n: number): Effect.Effect<void> =>
  Effect.promise(async () => {
    for (let i = 0; i < n; i++) {
      await Effect.runPromise(effect)
    }
  })

/** Verifies that a breaker stayed Closed and counted at least `calls` successes. */
const closedWith = (breaker: CircuitBreaker.CircuitBreaker) => (calls: number): Effect.Effect<void, string> =>
  Effect.flatMap(breaker.metrics, (m) =>
    expect(
      m.state === "Closed" && m.successfulCalls >= calls,
      `expected Closed with >= ${calls} successes, got ${m.state} with ${m.successfulCalls}`
    ))

/** Builds every case; the breakers and peers it creates live as long as the suite's scope. */
const cases = Effect.gen(function*() {
  const lbClosed: Cell = { inFlight: 0, consecutiveFailures: 0, openUntil: 0 }
  const lbOpen: Cell = { inFlight: 0, consecutiveFailures: 0, openUntil: Date.now() + 3_600_000 }
  const lbPromise: Cell = { inFlight: 0, consecutiveFailures: 0, openUntil: 0 }

  const closed = yield* CircuitBreaker.make({ name: "bench-closed" })
  const promised = yield* CircuitBreaker.make({ name: "bench-promise" })
  const forPromiseUsers = yield* CircuitBreaker.make({ name: "bench-run-promise" })
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

  // An operation that never suspends, under both timeouts.
  const runs = { ours: 0, effect: 0 }
  const ourTimeout = Effect.orDie(Timeout.timeout(Effect.sync(() => {
    runs.ours++
  }), "1 second", { operation: "bench" }))
  const effectTimeout = Effect.orDie(Effect.timeout(
    Effect.sync(() => {
      runs.effect++
    }),
    "1 second"
  ))

  // One name for every breaker made in the loop: the registry of metrics does not grow with
  // the iterations (residual memory per distinct name is measured by the memory suite).
  let made = 0
  const makeAndCall = Effect.orDie(
    Effect.flatMap(CircuitBreaker.make({ name: "bench-make" }), (breaker) => {
      made++
      return breaker.protect(Effect.void)
    })
  )

  const list: ReadonlyArray<Case> = [
    { id: "effect.void", label: "Effect.void", call: Effect.void },
    { id: "either", label: "Effect.either(Effect.void)", call: Effect.either(Effect.void) },
    {
      id: "lbMask.closed",
      label: "lbMask, Closed",
      call: Effect.orDie(lbMask(lbClosed, Effect.void)),
      verify: () =>
        expect(lbClosed.inFlight === 0 && lbClosed.consecutiveFailures === 0, "lbMask's Closed cell is off")
    },
    {
      id: "lbMask.open",
      label: "lbMask, Open (rejection caught)",
      call: Effect.catchTag(lbMask(lbOpen, Effect.void), "LowerBoundOpen", () => Effect.void),
      verify: () => expect(lbOpen.inFlight === 0 && lbOpen.openUntil > Date.now(), "lbMask's Open cell is off")
    },
    {
      id: "protect.closed",
      label: "breaker.protect(Effect.void), Closed",
      call: Effect.orDie(closed.protect(Effect.void)),
      verify: closedWith(closed)
    },
    {
      id: "protect.open",
      label: "breaker.protect(Effect.void), Open (rejection caught)",
      call: Effect.catchTag(open.protect(Effect.void), "CircuitBreakerOpen", () => Effect.void),
      verify: (calls) =>
        Effect.flatMap(open.metrics, (m) =>
          expect(
            m.state === "Open" && m.rejectedCalls >= calls,
            `expected Open with >= ${calls} rejections, got ${m.state} with ${m.rejectedCalls}`
          ))
    },
    {
      id: "pipeline",
      label: "fallback(retry(protect(timeout(call)))), success",
      call: pipeline,
      verify: (calls) =>
        Effect.flatMap(Effect.zip(Ref.get(pipelineRuns), pipelineBreaker.metrics), ([runs, m]) =>
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
      id: "protect.tryPromise",
      label: "breaker.protect(Effect.tryPromise(no-op)), Closed",
      call: Effect.orDie(promised.protect(Effect.tryPromise(noop))),
      verify: closedWith(promised)
    },
    {
      id: "cockatiel.closed",
      label: "cockatiel 3.2, Effect.tryPromise(() => execute(no-op))",
      call: Effect.orDie(Effect.tryPromise(() => cockatielClosed.execute(noop))),
      verify: () => expect(cockatielClosed.state === CircuitState.Closed, "cockatiel left Closed")
    },
    {
      id: "opossum.closed",
      label: "opossum 9, Effect.tryPromise(() => fire()) of no-op",
      call: Effect.orDie(Effect.tryPromise(() => opossumClosed.fire())),
      verify: () => expect(opossumClosed.closed, "opossum left Closed")
    },
    {
      id: "cockatiel.open",
      label: "cockatiel 3.2 bridged, Open (caught)",
      call: Effect.ignore(Effect.tryPromise(() => cockatielOpen.execute(noop))),
      verify: () => expect(cockatielOpen.state === CircuitState.Open, "cockatiel left Open")
    },
    {
      id: "opossum.open",
      label: "opossum 9 bridged, Open (caught)",
      call: Effect.ignore(Effect.tryPromise(() => opossumOpen.fire())),
      verify: () => expect(opossumOpen.opened, "opossum left Open")
    },
    {
      id: "runPromise.void",
      label: "await Effect.runPromise(Effect.void)",
      call: Effect.void,
      run: promiseLoop(Effect.void)
    },
    {
      id: "runPromise.lbMask",
      label: "await Effect.runPromise(lbMask(Effect.void))",
      call: Effect.void,
      run: promiseLoop(Effect.orDie(lbMask(lbPromise, Effect.void))),
      verify: () => expect(lbPromise.inFlight === 0 && lbPromise.consecutiveFailures === 0, "lbMask's cell is off")
    },
    {
      id: "runPromise.protect",
      label: "await Effect.runPromise(breaker.protect(Effect.void))",
      call: Effect.void,
      run: promiseLoop(forPromiseUsers.protect(Effect.void)),
      verify: closedWith(forPromiseUsers)
    },
    {
      id: "effect.timeout",
      label: "Effect.timeout(sync op, 1 s)",
      call: effectTimeout,
      verify: (calls) => expect(runs.effect >= calls, `the operation ran ${runs.effect} times for ${calls} calls`)
    },
    {
      id: "timeout",
      label: "Timeout.timeout(sync op, 1 s)",
      call: ourTimeout,
      verify: (calls) => expect(runs.ours >= calls, `the operation ran ${runs.ours} times for ${calls} calls`)
    },
    {
      id: "make",
      label: "CircuitBreaker.make + one protect call",
      call: makeAndCall,
      verify: (calls) => expect(made >= calls, `${made} breakers made for ${calls} calls`)
    }
  ]
  return list
})

/** The lbMask variant a case is compared with: Open cases with the Open variant. */
const lowerBoundOf = (m: Measurement): string | undefined =>
  m.id === "effect.void" || m.id.startsWith("runPromise") ? undefined :
  m.id.endsWith(".open") ? "lbMask.open" :
  "lbMask.closed"

/** The circuit breaker suite. */
export const suite: Suite = {
  name: "breaker",
  title: "Circuit breaker: cost per call (compiled, one loop, same run)",
  run: (settings) =>
    Effect.gen(function*() {
      // The breakers log their transitions; opening one during setup would print in the table.
      const list = yield* Logger.withMinimumLogLevel(cases, LogLevel.Warning)
      const measured = yield* measureCases(list, settings)
      const measurements = addRatios(
        addRatios(measured, "lbMask", lowerBoundOf),
        "either",
        (m) => m.id === "effect.void" || m.id.startsWith("runPromise") ? undefined : "either"
      )
      const closedOverLb = ratio(measurements, "protect Closed / lbMask Closed", "protect.closed", "lbMask.closed")
      const openOverLb = ratio(measurements, "protect Open / lbMask Open", "protect.open", "lbMask.open")
      const closedOverEither = ratio(
        measurements,
        "protect Closed / Effect.either(Effect.void)",
        "protect.closed",
        "either"
      )
      const overCockatiel = ratio(
        measurements,
        "protect(tryPromise(no-op)) / cockatiel bridged",
        "protect.tryPromise",
        "cockatiel.closed"
      )
      const overOpossum = ratio(
        measurements,
        "protect(tryPromise(no-op)) / opossum bridged",
        "protect.tryPromise",
        "opossum.closed"
      )
      const runPromise = ratio(
        measurements,
        "runPromise(protect(void)) / runPromise(void)",
        "runPromise.protect",
        "runPromise.void"
      )
      const runPromiseBound = ratio(
        measurements,
        "runPromise(lbMask(void)) / runPromise(void): the lower bound of that ratio",
        "runPromise.lbMask",
        "runPromise.void"
      )
      const timeoutRatio = ratio(
        measurements,
        "Timeout.timeout / Effect.timeout, sync op",
        "timeout",
        "effect.timeout"
      )
      const make = byIdMicros(measurements, "make")
      const figures: ReadonlyArray<Figure> = [
        closedOverLb,
        openOverLb,
        closedOverEither,
        ratio(measurements, "pipeline / lbMask Closed", "pipeline", "lbMask.closed"),
        overCockatiel,
        overOpossum,
        ratio(measurements, "protect(tryPromise(no-op)) / tryPromise(no-op)", "protect.tryPromise", "tryPromise"),
        ratio(measurements, "protect Open / cockatiel bridged Open", "protect.open", "cockatiel.open"),
        ratio(measurements, "protect Open / opossum bridged Open", "protect.open", "opossum.open"),
        runPromise,
        runPromiseBound,
        timeoutRatio,
        make
      ]
      return {
        name: "breaker",
        title: "Circuit breaker: cost per call (compiled, one loop, same run)",
        measurements,
        ratioColumns: [{ key: "lbMask", label: "÷ lbMask" }, { key: "either", label: "÷ either" }],
        figures,
        targets: [
          target(closedOverLb, "protect Closed <= 1.5x lbMask", "<=", 1.5),
          target(openOverLb, "protect Open <= 1.5x lbMask", "<=", 1.5),
          target(closedOverEither, "protect Closed <= 6x Effect.either(Effect.void)", "<=", 6),
          target(overCockatiel, "protect(tryPromise(no-op)) <= 2.0x cockatiel bridged", "<=", 2),
          target(overOpossum, "protect(tryPromise(no-op)) <= 1.3x opossum bridged", "<=", 1.3),
          target(runPromise, "runPromise(protect(void)) <= 1.5x runPromise(void)", "<=", 1.5),
          target(make, "CircuitBreaker.make + one call <= 20 µs", "<=", 20),
          target(timeoutRatio, "Timeout.timeout <= 0.25x Effect.timeout on a sync op", "<=", 0.25)
        ],
        details: {
          lbMask: "Effect.uninterruptibleMask: Date.now once, decide on a mutable cell, " +
            "Effect.matchCauseEffect(restore(call)) recording the outcome in its continuations; " +
            "the Open variant fails with a plain tagged object carrying the time to wait",
          either: "Effect.either(Effect.void): one effect observed, in the same loop",
          pipeline: "Ref.update (the call) |> Timeout.timeout(1 s) |> CircuitBreaker.protect |> " +
            "Retry.policy() |> Fallback.to(value)",
          breakerOptions: { closed: { name: "bench-closed" }, open: { failureThreshold: 1, resetTimeout: "1 hour" } },
          cockatiel: cockatielOptions,
          opossum: opossumOptions,
          peersOpen: "cockatiel opened by 5 failures; opossum opened with breaker.open()",
          runPromise: "a Promise loop: for (...) await Effect.runPromise(effect)",
          timeout: "Effect.sync(() => n++) under Timeout.timeout(1 s) and Effect.timeout(1 s); it never times out",
          make: "CircuitBreaker.make({ name: \"bench-make\" }) then breaker.protect(Effect.void)",
          loop: "Effect.whileLoop over the same effect value; the loop's own cost is in every figure " +
            "(see Effect.void)"
        }
      }
    })
}

/** The cost of one case in microseconds, as a figure. */
const byIdMicros = (measurements: ReadonlyArray<Measurement>, id: string): Figure => {
  const m = measurements.find((candidate) => candidate.id === id)
  return {
    id: `${id}.micros`,
    label: "CircuitBreaker.make + one call",
    value: m === undefined ? Number.NaN : m.nsPerCall / 1000,
    unit: "µs"
  }
}
