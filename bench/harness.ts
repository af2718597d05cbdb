/**
 * The measuring machinery shared by every benchmark suite.
 *
 * A suite is an Effect that produces a `SuiteResult`. Suites that time calls build a list of
 * `Case`s (one effect each, run in a loop of N iterations inside Effect, or a loop of the
 * case's own, such as a Promise loop) and hand them to `measureCases`, which calibrates N,
 * warms every case up, then runs the timed rounds interleaved across cases (round 1 of every
 * case, then round 2, ...), so that no case profits from running first on a runtime the JIT
 * has seen only one shape of, and keeps the median. Each round is timed twice: wall-clock
 * time from the `Clock`, and the CPU time of this process, which ratios and targets use
 * because it stays put when other processes compete for the machine's cores. Scenario suites
 * (an outage, a pipeline under load) report `figures` and `targets` of their own and may
 * have no cases at all.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** How long one timed round of one case should last, and how many rounds to run. */
export interface Settings {
  /** Untimed rounds per case before the timed ones (after calibration). */
  readonly warmupRounds: number
  /** Timed rounds per case; the figure is their median. */
  readonly rounds: number
  /** N is chosen so that one round of a case lasts about this long. */
  readonly roundMillis: number
}

/** One timed case: `call` is run `iterations` times in a loop per round. */
export interface Case {
  /** A stable key, used in ratios and in the JSON file. */
  readonly id: string
  /** What the case measures, in words, for the table. */
  readonly label: string
  /** The effect whose cost per run is measured. It must not fail (catch what you expect). */
  readonly call: Effect.Effect<unknown>
  /**
   * Checks, after the timed rounds, that the case did what it claims (for instance, that an
   * open breaker rejected every call). Receives the number of calls run in total.
   */
  readonly verify?: ((calls: number) => Effect.Effect<void, string>) | undefined
  /**
   * Runs the case `iterations` times in a loop of its own, instead of `call` in an Effect
   * loop: for code that is not an Effect, such as `await Effect.runPromise(...)` in a
   * Promise loop. `call` is then unused.
   */
  readonly run?: ((iterations: number) => Effect.Effect<void>) | undefined
}

/** The result of one case. */
export interface Measurement {
  readonly id: string
  readonly label: string
  readonly iterations: number
  /**
   * Median over the timed rounds of the CPU time this process spent per call, in
   * nanoseconds: unlike wall-clock time, it does not count the time other processes of a
   * busy machine took from us. Ratios and targets use it.
   */
  readonly nsPerCall: number
  readonly minNsPerCall: number
  readonly maxNsPerCall: number
  /** Median over the timed rounds of the wall-clock time per call (from the `Clock`), in nanoseconds. */
  readonly wallNsPerCall: number
  /** Every timed round, CPU nanoseconds per call, in the order they ran. */
  readonly roundsNsPerCall: ReadonlyArray<number>
  /** Every timed round, wall-clock nanoseconds per call, in the order they ran. */
  readonly roundsWallNsPerCall: ReadonlyArray<number>
  /** Ratios of `nsPerCall` to other cases, keyed by the suite's `ratioColumns` (filled in by the suite). */
  readonly ratios?: Readonly<Record<string, number>> | undefined
}

/** A derived number: a ratio of two measurements, a latency, a count. */
export interface Figure {
  readonly id: string
  readonly label: string
  readonly value: number
  readonly unit: string
}

/** A target a suite promises, with the figure that decides it. */
export interface Target {
  readonly id: string
  readonly label: string
  readonly value: number
  readonly limit: number
  readonly comparison: "<=" | ">="
  readonly unit: string
  readonly pass: boolean
}

/** A column of ratios in the table of measurements: `measurement.ratios[key]`, headed `label`. */
export interface RatioColumn {
  readonly key: string
  readonly label: string
}

/** What a suite hands back: printed as a table and written to `<results>/<name>.json`. */
export interface SuiteResult {
  readonly name: string
  readonly title: string
  readonly measurements: ReadonlyArray<Measurement>
  /** Ratio columns printed beside the measurements. */
  readonly ratioColumns?: ReadonlyArray<RatioColumn> | undefined
  /** Lines printed under the table (what a list of probes looked like, what was skipped). */
  readonly notes?: ReadonlyArray<string> | undefined
  readonly figures: ReadonlyArray<Figure>
  readonly targets: ReadonlyArray<Target>
  /** Anything else worth keeping with the figures (options of the peers, descriptions). */
  readonly details: Readonly<Record<string, unknown>>
}

/** A benchmark suite. `run` may acquire resources in its `Scope`; they are released after it. */
export interface Suite {
  readonly name: string
  readonly title: string
  readonly run: (settings: Settings) => Effect.Effect<SuiteResult, unknown, Scope.Scope>
}

/** Runs `call` `n` times in a loop (`Effect.whileLoop`, the cheapest loop the runtime has). */
const loop = (call: Effect.Effect<unknown>, n: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    let i = 0
    return Effect.whileLoop({
      while: () => i < n,
      body: () => call,
      step: () => {
        i++
      }
    })
  })

/** The loop that runs a case `n` times. */
const runnerOf = (c: Case) => (n: number): Effect.Effect<void> => c.run !== undefined ? c.run(n) : loop(c.call, n)

/** What one round took: wall-clock time from the `Clock`, and the CPU time of this process. */
interface Elapsed {
  readonly wallNanos: number
  readonly cpuNanos: number
}

const cpuNanos = Effect.sync(() => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) * 1_000
})

/** Times `n` runs of a case. */
const time = (run: (n: number) => Effect.Effect<void>, n: number): Effect.Effect<Elapsed> =>
  Effect.gen(function*() {
    const cpuStart = yield* cpuNanos
    const start = yield* Clock.currentTimeNanos
    yield* run(n)
    const end = yield* Clock.currentTimeNanos
    const cpuEnd = yield* cpuNanos
    return { wallNanos: Number(end - start), cpuNanos: cpuEnd - cpuStart }
  })

/** Two significant digits: 123456 -> 120000. */
const roundIterations = (n: number): number => {
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(n)) - 1)
  return Math.max(100, Math.round(n / magnitude) * magnitude)
}

/**
 * Picks N so that a round of `call` takes about `roundMillis` of CPU time: grows N until a
 * round takes 10 ms, then rescales three times (the first runs are slower, before the JIT
 * has compiled the case). The runs it makes warm the case up too.
 */
const calibrate = (run: (n: number) => Effect.Effect<void>, roundMillis: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const target = roundMillis * 1_000_000
    let n = 1_000
    let elapsed = (yield* time(run, n)).cpuNanos
    while (elapsed < 10_000_000) {
      n *= elapsed <= 0 ? 10 : Math.min(10, Math.ceil(12_000_000 / elapsed))
      elapsed = (yield* time(run, n)).cpuNanos
    }
    for (let pass = 0; pass < 3; pass++) {
      n = roundIterations((n * target) / elapsed)
      elapsed = (yield* time(run, n)).cpuNanos
    }
    return n
  })

/** The median of a non-empty list. */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/**
 * Measures every case: calibration and warm-up per case, then `settings.rounds` timed rounds,
 * interleaved (round 1 of every case, then round 2, ...), median per case. Fails when a case's
 * `verify` fails, so a case that did not take the path it claims cannot report a figure.
 */
export const measureCases = (
  cases: ReadonlyArray<Case>,
  settings: Settings
): Effect.Effect<ReadonlyArray<Measurement>, string> =>
  Effect.gen(function*() {
    const iterations: Array<number> = []
    const calls: Array<number> = []
    for (const c of cases) {
      iterations.push(yield* calibrate(runnerOf(c), settings.roundMillis))
      calls.push(0)
    }
    for (let round = 0; round < settings.warmupRounds; round++) {
      for (let i = 0; i < cases.length; i++) {
        yield* runnerOf(cases[i]!)(iterations[i]!)
      }
    }
    const rounds: Array<Array<number>> = cases.map(() => [])
    const wallRounds: Array<Array<number>> = cases.map(() => [])
    for (let round = 0; round < settings.rounds; round++) {
      for (let i = 0; i < cases.length; i++) {
        const elapsed = yield* time(runnerOf(cases[i]!), iterations[i]!)
        rounds[i]!.push(elapsed.cpuNanos / iterations[i]!)
        wallRounds[i]!.push(elapsed.wallNanos / iterations[i]!)
        calls[i]! += iterations[i]!
      }
    }
    for (let i = 0; i < cases.length; i++) {
      const verify = cases[i]!.verify
      if (verify !== undefined) {
        yield* Effect.mapError(verify(calls[i]!), (reason) => `case "${cases[i]!.id}": ${reason}`)
      }
    }
    return cases.map((c, i): Measurement => ({
      id: c.id,
      label: c.label,
      iterations: iterations[i]!,
      nsPerCall: median(rounds[i]!),
      minNsPerCall: Math.min(...rounds[i]!),
      maxNsPerCall: Math.max(...rounds[i]!),
      wallNsPerCall: median(wallRounds[i]!),
      roundsNsPerCall: rounds[i]!,
      roundsWallNsPerCall: wallRounds[i]!
    }))
  })

/** Looks a measurement up by id; a typo in a suite is a bug, so it throws. */
export const byId = (measurements: ReadonlyArray<Measurement>, id: string): Measurement => {
  const found = measurements.find((m) => m.id === id)
  if (found === undefined) {
    throw new Error(`no measurement with id "${id}"`)
  }
  return found
}

/** `numerator / denominator` of two measurements (by id), as a figure in "x" with id `numerator/denominator`. */
export const ratio = (
  measurements: ReadonlyArray<Measurement>,
  label: string,
  numerator: string,
  denominator: string
): Figure => ({
  id: `${numerator}/${denominator}`,
  label,
  value: byId(measurements, numerator).nsPerCall / byId(measurements, denominator).nsPerCall,
  unit: "x"
})

/** A target decided by a figure. */
export const target = (
  figure: Figure,
  label: string,
  comparison: "<=" | ">=",
  limit: number
): Target => ({
  id: figure.id,
  label,
  value: figure.value,
  limit,
  comparison,
  unit: figure.unit,
  pass: comparison === "<=" ? figure.value <= limit : figure.value >= limit
})

/**
 * Adds to every measurement its ratio to the measurement that `denominator` names for it
 * (`undefined`: no ratio), under `key` of `ratios`.
 */
export const addRatios = (
  measurements: ReadonlyArray<Measurement>,
  key: string,
  denominator: (measurement: Measurement) => string | undefined
): ReadonlyArray<Measurement> =>
  measurements.map((m) => {
    const id = denominator(m)
    if (id === undefined) return m
    return { ...m, ratios: { ...m.ratios, [key]: m.nsPerCall / byId(measurements, id).nsPerCall } }
  })

/** `global.gc` when node runs with `--expose-gc` (as `npm run bench` does). */
export const gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc

/**
 * The heap in use after full collections, in bytes: a few `gc()` calls with a macrotask in
 * between, so that objects freed by finalizers and weak references are gone too. Needs `gc`.
 */
export const heapAfterGc = (collect: () => void): Effect.Effect<number> =>
  Effect.promise(async () => {
    for (let i = 0; i < 4; i++) {
      collect()
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    return process.memoryUsage().heapUsed
  })
