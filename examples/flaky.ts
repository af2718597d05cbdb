/**
 * A flaky dependency for the examples: it answers after some latency, and fails at a rate
 * that follows a timeline of phases (healthy, then an outage, then a recovery).
 *
 * Faults come from `Chaos` (seeded, so the same seed replays the same draws), time from the
 * `Clock`: on `TestClock` the whole timeline runs in no time.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { InvalidOptions } from "effect-resilience"
import { Chaos } from "effect-resilience"

/** One stretch of the timeline. */
export interface Phase {
  readonly name: string
  /** What happens to the dependency, in words, for printing. */
  readonly description: string
  readonly duration: Duration.DurationInput
  /** The chance, in [0, 1], that a call fails. */
  readonly failureRate: number
  /** Each call waits a latency drawn uniformly from `[min, max]`, failed calls included. */
  readonly latency: readonly [Duration.DurationInput, Duration.DurationInput]
}

/** A phase placed on the timeline, in milliseconds from the dependency's creation. */
export interface PlacedPhase extends Phase {
  readonly index: number
  readonly from: number
  readonly until: number
}

/** What a failed call of the dependency fails with. */
export class DependencyError extends Data.TaggedError("DependencyError")<{
  readonly dependency: string
  readonly phase: string
}> {
  override get message(): string {
    return `${this.dependency} did not answer (${this.phase})`
  }
}

/** What the dependency saw: calls that reached it, and how many of them it failed. */
export interface DependencyStats {
  readonly calls: number
  readonly failures: number
}

export interface FlakyDependency {
  readonly name: string
  /** When the timeline started, in epoch milliseconds of the `Clock`. */
  readonly startedAt: number
  readonly phases: ReadonlyArray<PlacedPhase>
  /** The length of the timeline, in milliseconds. */
  readonly duration: number
  /** The phase at `elapsed` milliseconds into the timeline (the last one once it is over). */
  readonly phaseAt: (elapsed: number) => PlacedPhase
  /** One call: answers `"<name>: ok"` or fails with `DependencyError`, as the current phase dictates. */
  readonly call: Effect.Effect<string, DependencyError>
  readonly stats: Effect.Effect<DependencyStats>
}

/** Makes a flaky dependency whose timeline starts now. */
export const make = (options: {
  readonly name: string
  readonly phases: ReadonlyArray<Phase>
  /** Seeds every fault, for a replayable run. */
  readonly seed: number
}): Effect.Effect<FlakyDependency, InvalidOptions> =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const placed: Array<PlacedPhase> = []
    const faults: Array<{ readonly fail: Chaos.Fault<DependencyError>; readonly delay: Chaos.Fault<never> }> = []
    let from = 0
    for (const [index, phase] of options.phases.entries()) {
      const until = from + Duration.toMillis(phase.duration)
      placed.push({ ...phase, index, from, until })
      faults.push({
        fail: yield* Chaos.fail({
          probability: phase.failureRate,
          error: () => new DependencyError({ dependency: options.name, phase: phase.name }),
          seed: `${options.seed}/${index}/fail`
        }),
        delay: yield* Chaos.delay({ latency: phase.latency, seed: `${options.seed}/${index}/delay` })
      })
      from = until
    }
    const phaseAt = (elapsed: number): PlacedPhase =>
      placed.find((phase) => elapsed < phase.until) ?? placed[placed.length - 1]!
    const answer = Effect.succeed(`${options.name}: ok`)
    const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const fault = faults[phaseAt(now - startedAt).index]!
      // The latency comes first: a dependency that fails often takes its time to say so.
      return answer.pipe(fault.fail, fault.delay)
    })
    const stats = Effect.map(
      Effect.forEach(faults, (fault) => fault.fail.stats),
      (all): DependencyStats => ({
        calls: all.reduce((sum, s) => sum + s.calls, 0),
        failures: all.reduce((sum, s) => sum + s.failures, 0)
      })
    )
    return { name: options.name, startedAt, phases: placed, duration: from, phaseAt, call, stats }
  })
