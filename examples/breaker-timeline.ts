/**
 * `npm run example:breaker-timeline`: a flaky dependency behind a circuit breaker, with nothing
 * but Node.
 *
 * The dependency is healthy, then down, then shaky, then healthy again. Traffic arrives at
 * a steady rate through `breaker.protect`; the timeline shows, second by second, which
 * calls succeeded, failed, or failed fast (rejected by the breaker without reaching the
 * dependency), and every state change the breaker announces on `breaker.changes`. A report
 * follows, checked against the breaker's own metrics.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { FlakyDependency, Phase, PlacedPhase } from "./flaky.js"
import * as Flaky from "./flaky.js"
import { CircuitBreaker } from "effect-resilience"
import { bold, cyan, dim, green, red, seconds, yellow } from "./terminal.js"

// -----------------------------------------------------------------------------
// The scenario
// -----------------------------------------------------------------------------

const phases: ReadonlyArray<Phase> = [
  {
    name: "healthy",
    description: "2% of calls fail, 5-25 ms",
    duration: "4 seconds",
    failureRate: 0.02,
    latency: ["5 millis", "25 millis"]
  },
  {
    name: "outage",
    description: "every call fails after 40-120 ms",
    duration: "5 seconds",
    failureRate: 1,
    latency: ["40 millis", "120 millis"]
  },
  {
    name: "recovering",
    description: "30% of calls fail, 20-80 ms",
    duration: "3 seconds",
    failureRate: 0.3,
    latency: ["20 millis", "80 millis"]
  },
  {
    name: "healthy",
    description: "2% of calls fail, 5-25 ms",
    duration: "3 seconds",
    failureRate: 0.02,
    latency: ["5 millis", "25 millis"]
  }
]

const breakerOptions = {
  name: "inventory",
  failureThreshold: 5,
  resetTimeout: "2 seconds",
  successThreshold: 2
} as const

/** Calls per second, evenly spaced. */
const rate = 20

// -----------------------------------------------------------------------------
// Records
// -----------------------------------------------------------------------------

type Outcome = "ok" | "failed" | "rejected"

/** One call as the caller saw it; times in milliseconds from the start of the timeline. */
interface CallRecord {
  readonly start: number
  readonly end: number
  readonly phase: PlacedPhase
  readonly outcome: Outcome
  readonly rejection: CircuitBreaker.CircuitBreakerOpen["reason"] | undefined
}

/** Runs one call through the breaker and records how it ended. */
const call = (
  breaker: CircuitBreaker.CircuitBreaker,
  dependency: FlakyDependency,
  records: Ref.Ref<ReadonlyArray<CallRecord>>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const start = (yield* Clock.currentTimeMillis) - dependency.startedAt
    const result = yield* Effect.either(breaker.protect(dependency.call))
    const end = (yield* Clock.currentTimeMillis) - dependency.startedAt
    const record: CallRecord = Either.match(result, {
      onRight: () => ({ start, end, phase: dependency.phaseAt(start), outcome: "ok", rejection: undefined }),
      onLeft: (error) =>
        error._tag === "CircuitBreakerOpen"
          ? { start, end, phase: dependency.phaseAt(start), outcome: "rejected", rejection: error.reason }
          : { start, end, phase: dependency.phaseAt(start), outcome: "failed", rejection: undefined }
    })
    yield* Ref.update(records, (all) => [...all, record])
  })

/** Sends `rate` calls per second for the whole timeline, each in its own fiber, and waits for them. */
const traffic = (
  breaker: CircuitBreaker.CircuitBreaker,
  dependency: FlakyDependency,
  records: Ref.Ref<ReadonlyArray<CallRecord>>
): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const calls = yield* FiberSet.make()
    const interval = 1000 / rate
    const total = Math.floor(dependency.duration / interval)
    for (let i = 0; i < total; i++) {
      // Sleep to the call's slot on the timeline, so that slow calls never slow the rate down.
      const now = yield* Clock.currentTimeMillis
      const wait = dependency.startedAt + i * interval - now
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      yield* FiberSet.run(calls, call(breaker, dependency, records))
    }
    yield* FiberSet.awaitEmpty(calls)
  }))

// -----------------------------------------------------------------------------
// Printing
// -----------------------------------------------------------------------------



const stateColor = (state: CircuitBreaker.State): (text: string) => string =>
  state === "Closed" || state === "ForcedClosed" ? green : state === "HalfOpen" ? yellow : red

const glyph: Record<Outcome, string> = { ok: green("▪"), failed: red("✗"), rejected: dim("·") }

/** Why the breaker moved, in words. */
const explain = (change: CircuitBreaker.StateChange): string => {
  switch (change.reason) {
    case "FailureThreshold":
      return `${breakerOptions.failureThreshold} consecutive failures`
    case "FailureRate":
      return "failure rate over the threshold"
    case "SlowCallRate":
      return "slow-call rate over the threshold"
    case "OpenDurationElapsed":
      return `open for ${breakerOptions.resetTimeout}: the next call is a probe`
    case "ProbeFailed":
      return "the probe failed: open again"
    case "ProbesSucceeded":
      return `${breakerOptions.successThreshold} probes in a row succeeded`
    case "HealthCheckPassed":
      return "a health check passed"
    case "ForceOpen":
      return "forced open"
    case "ForceClosed":
      return "forced closed"
    case "Reset":
      return "reset"
    case "Isolated":
      return "isolated"
    case "IsolationReleased":
      return "isolation released"
  }
}

const countOf = (records: ReadonlyArray<CallRecord>, outcome: Outcome): number =>
  records.filter((r) => r.outcome === outcome).length

const summary = (records: ReadonlyArray<CallRecord>): string => {
  const parts: Array<string> = []
  const ok = countOf(records, "ok")
  const failed = countOf(records, "failed")
  const rejected = countOf(records, "rejected")
  if (ok > 0) parts.push(green(`${ok} ok`))
  if (failed > 0) parts.push(red(`${failed} failed`))
  if (rejected > 0) parts.push(dim(`${rejected} failed fast`))
  return parts.join(dim(", "))
}

/** The line announcing a phase. */
const phaseLine = (phase: PlacedPhase): string =>
  cyan(`  ── ${seconds(phase.from, 0)}  ${phase.name}: ${phase.description} ──`)

/** The line of one second: its calls (by start time) as glyphs, and their counts. */
const secondLine = (second: number, phase: PlacedPhase, records: ReadonlyArray<CallRecord>): string => {
  const bar = records.map((r) => glyph[r.outcome]).join("")
  const pad = " ".repeat(Math.max(0, rate - records.length))
  return `  ${`${second}–${second + 1} s`.padStart(7)}  ${phase.name.padEnd(10)}  ${bar}${pad}  ${summary(records)}`
}

/** The line of one state change, indented under the second it happened in. */
const changeLine = (change: CircuitBreaker.StateChange, startedAt: number): string => {
  const at = seconds(change.at - startedAt).padStart(7)
  const move = `${stateColor(change.from)(change.from)} → ${stateColor(change.to)(bold(change.to))}`
  const width = change.from.length + change.to.length + 3
  return `  ${dim("↳")} ${at}  ${move}${" ".repeat(Math.max(1, 20 - width))}${dim(explain(change))}`
}

/**
 * Prints the timeline while the traffic runs: once a second has passed (and the calls it
 * started have had time to end), its line, then the state changes that happened in it.
 * Returns how many state changes it printed.
 */
const printTimeline = (
  dependency: FlakyDependency,
  records: Ref.Ref<ReadonlyArray<CallRecord>>,
  changes: Ref.Ref<ReadonlyArray<CircuitBreaker.StateChange>>
): Effect.Effect<number> =>
  Effect.gen(function*() {
    let printed = 0
    const grace = 300
    const total = Math.ceil(dependency.duration / 1000)
    const legend = `${glyph.ok} ok  ${glyph.failed} failed  ${glyph.rejected} failed fast`
    yield* Console.log(dim("     time  phase       calls: ") + legend)
    let phaseIndex = -1
    for (let second = 0; second < total; second++) {
      const from = second * 1000
      const until = from + 1000
      const phase = dependency.phaseAt(from)
      if (phase.index !== phaseIndex) {
        phaseIndex = phase.index
        yield* Console.log(phaseLine(phase))
      }
      const wait = dependency.startedAt + until + grace - (yield* Clock.currentTimeMillis)
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      const inSecond = (yield* Ref.get(records)).filter((r) => r.start >= from && r.start < until)
      yield* Console.log(secondLine(second, phase, [...inSecond].sort((a, b) => a.start - b.start)))
      const changed = (yield* Ref.get(changes)).filter((c) => {
        const at = c.at - dependency.startedAt
        return at >= from && (at < until || second === total - 1)
      })
      for (const change of changed) {
        yield* Console.log(changeLine(change, dependency.startedAt))
      }
      printed += changed.length
    }
    return printed
  })

const row = (label: string, value: string | number, note = ""): string =>
  `  ${label.padEnd(28)}${String(value).padStart(7)}` + (note === "" ? "" : `   ${dim(note)}`)

/** The report after the run: counts, a table by phase, the breaker's metrics, and a cross-check. */
const printReport = (
  breaker: CircuitBreaker.CircuitBreaker,
  dependency: FlakyDependency,
  all: ReadonlyArray<CallRecord>,
  changes: ReadonlyArray<CircuitBreaker.StateChange>
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const metrics = yield* breaker.metrics
    const seen = yield* dependency.stats
    const ok = countOf(all, "ok")
    const failed = countOf(all, "failed")
    const rejected = all.filter((r) => r.outcome === "rejected")
    const outage = dependency.phases.find((p) => p.failureRate >= 1)
    const outageEnd = outage?.until ?? 0
    const recovered = all.filter((r) => r.outcome === "ok" && r.start >= outageEnd).length
    const closedAgain = changes.find((c) => c.to === "Closed" && c.at - dependency.startedAt >= outageEnd)
    const byReason = (reason: string) => rejected.filter((r) => r.rejection === reason).length

    const lines: Array<string> = [
      "",
      bold("Report"),
      row("calls made", all.length, `${rate} per second for ${seconds(dependency.duration, 0)}`),
      row("calls run", ok + failed, "reached the dependency"),
      row("  succeeded", ok),
      row("  failed", failed),
      row("failed fast", rejected.length, "rejected by the breaker: the dependency was spared"),
      row("  while Open", byReason("Open")),
      row("  while HalfOpen (probe busy)", byReason("HalfOpenFull")),
      row("recovered", recovered, `successful calls after the outage ended at ${seconds(outageEnd, 0)}`),
      row(
        "back to Closed",
        closedAgain === undefined ? "never" : seconds(closedAgain.at - dependency.startedAt - outageEnd),
        closedAgain === undefined ? "" : "after the outage ended"
      ),
      "",
      bold("By phase"),
      dim(`  ${"phase".padEnd(12)}${"time".padEnd(10)}${"calls".padStart(6)}${"ok".padStart(6)}` +
        `${"failed".padStart(8)}${"failed fast".padStart(13)}`)
    ]
    for (const phase of dependency.phases) {
      const records = all.filter((r) => r.phase.index === phase.index)
      lines.push(
        `  ${phase.name.padEnd(12)}${`${phase.from / 1000}–${phase.until / 1000} s`.padEnd(10)}` +
          `${String(records.length).padStart(6)}${String(countOf(records, "ok")).padStart(6)}` +
          `${String(countOf(records, "failed")).padStart(8)}${String(countOf(records, "rejected")).padStart(13)}`
      )
    }
    const lastFailure = metrics.recentFailures[metrics.recentFailures.length - 1]
    lines.push(
      "",
      bold("Breaker metrics") + dim(" (breaker.metrics)"),
      `  state ${stateColor(metrics.state)(metrics.state)} for ${Duration.format(metrics.timeInState)}` +
        ` · ${metrics.stateChanges} state changes` +
        ` · failure rate ${(metrics.failureRate * 100).toFixed(1)}% over the window`,
      `  ${metrics.totalCalls} calls = ${metrics.successfulCalls} successful + ${metrics.failedCalls} failed` +
        ` + ${metrics.rejectedCalls} rejected + ${metrics.ignoredCalls} ignored` +
        ` + ${metrics.interruptedCalls} interrupted`,
      `  consecutive successes ${metrics.consecutiveSuccesses} · consecutive failures ${metrics.consecutiveFailures}` +
        ` · next open duration ${Duration.format(metrics.openDuration)}`,
      `  recent failures kept: ${metrics.recentFailures.length}` +
        (lastFailure === undefined
          ? ""
          : `, last at ${seconds(lastFailure.at - dependency.startedAt)}: ${dim(lastFailure.message)}`)
    )
    const checks: ReadonlyArray<readonly [string, boolean]> = [
      ["calls made = breaker's totalCalls", all.length === metrics.totalCalls],
      ["succeeded = successfulCalls", ok === metrics.successfulCalls],
      ["failed = failedCalls", failed === metrics.failedCalls],
      ["failed fast = rejectedCalls", rejected.length === metrics.rejectedCalls],
      ["calls run = calls the dependency saw", ok + failed === seen.calls],
      ["timeline changes = stateChanges", changes.length === metrics.stateChanges]
    ]
    const agree = checks.every(([, pass]) => pass)
    lines.push(
      "",
      agree
        ? green("  ✓ the demo's counts agree with the breaker's metrics and with the dependency")
        : red(`  ✗ counts disagree: ${checks.filter(([, pass]) => !pass).map(([label]) => label).join("; ")}`),
      ""
    )
    yield* Console.log(lines.join("\n"))
    return agree
  })

// -----------------------------------------------------------------------------
// Main
// -----------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make(breakerOptions)
  const records = yield* Ref.make<ReadonlyArray<CallRecord>>([])
  const changes = yield* Ref.make<ReadonlyArray<CircuitBreaker.StateChange>>([])
  // Subscribe before the first call, so that no transition is missed.
  // The consumer subscribes as soon as it starts, long before the first transition can happen
  // (it takes `failureThreshold` failed calls).
  yield* Effect.forkScoped(
    Stream.runForEach(breaker.changes, (change) => Ref.update(changes, (all) => [...all, change]))
  )
  yield* Effect.yieldNow()

  const dependency = yield* Flaky.make({ name: "inventory service", phases, seed: 7 })
  yield* Console.log(
    [
      "",
      bold(`A flaky "${dependency.name}" behind a circuit breaker`),
      dim(
        `  breaker: opens after ${breakerOptions.failureThreshold} consecutive failures,` +
          ` probes after ${breakerOptions.resetTimeout},` +
          ` closes after ${breakerOptions.successThreshold} successful probes`
      ),
      dim(`  traffic: ${rate} calls per second for ${seconds(dependency.duration, 0)}`),
      ""
    ].join("\n")
  )
  const [, printed] = yield* Effect.all([
    traffic(breaker, dependency, records),
    printTimeline(dependency, records, changes)
  ], { concurrency: "unbounded" })
  // Reading the state applies a transition that is due, so that the timeline is complete.
  yield* breaker.state
  const expected = (yield* breaker.metrics).stateChanges
  yield* Effect.repeat(Ref.get(changes), {
    until: (all) => all.length >= expected,
    schedule: Schedule.spaced("10 millis")
  }).pipe(Effect.timeout("1 second"), Effect.ignore)
  for (const change of (yield* Ref.get(changes)).slice(printed)) {
    yield* Console.log(changeLine(change, dependency.startedAt))
  }
  const agree = yield* printReport(breaker, dependency, yield* Ref.get(records), yield* Ref.get(changes))
  if (!agree) return yield* Effect.fail("the demo's counts disagree with the breaker's metrics")
})

NodeRuntime.runMain(
  program.pipe(
    Effect.scoped,
    // The breaker logs every transition; the timeline above shows them already.
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )
)
