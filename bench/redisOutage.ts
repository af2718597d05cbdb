/**
 * The Redis outage suite: `ResilientCache` over the Redis layer (`commandTimeout` 100 ms), in
 * front of a real `redis-server` that is frozen with SIGSTOP while reads keep arriving.
 *
 * The traffic is open-loop: read `i` is scheduled at `i / rate` seconds, sent in a fiber of
 * its own whatever the previous reads are doing, and its latency is measured from its
 * scheduled send time to its answer, so a stall of the sender shows as well as a stall of
 * the read. Latency percentiles are taken over the reads scheduled after the breaker first
 * opened, at 50 and 200 reads/s, each rate with a fresh cache and breaker.
 *
 * The calls that reach the server are seen twice: by a thin `Cache` layer between the
 * resilient cache and the Redis layer, which records when each one started and how it ended
 * (whether a user's read or a probe of the cache's own), and by the server itself (`INFO
 * commandstats`, read after SIGCONT once it has processed what it was sent while frozen).
 * They are listed per open period.
 *
 * When `redis-server` is not installed the suite says so and measures nothing.
 */
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { PerformanceObserver } from "node:perf_hooks"
import * as Cache from "../src/Cache.js"
import * as RedisCache from "../src/Cache/Redis.js"
import type * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { findRedisServer, type RedisServer, redisServer } from "../test/integration/redisServer.js"
import type { Figure, Suite, SuiteResult, Target } from "./harness.js"
import { target } from "./harness.js"

/** The Redis layer gives up on a command after this long. */
const commandTimeout = 100

/** Short open periods, so that a run sees several probes; one probe at a time. */
const breakerOptions = {
  failureThreshold: 5,
  resetTimeout: "1 second",
  successThreshold: 2,
  halfOpenMaxCalls: 1
} as const

/** Reads per second, one run each. */
const rates: ReadonlyArray<number> = [50, 200]
/** Reads against the running server first (connections and JIT warm), then against the frozen one. */
const healthyMillis = 1_000
const frozenMillis = 6_000
/**
 * Before the measured rates, one outage of this length at the first rate, as the healthy
 * phase warms connections: the first outage a process sees runs the open, half-open and
 * probe paths for the first time, and pays V8's compilation of them (its figures are
 * reported apart, as "first outage of the process").
 */
const warmUpFrozenMillis = 3_000

const key = "bench:outage"

/** Milliseconds since the start of the frozen phase, on one clock for reads, calls and transitions. */
interface Timeline {
  readonly now: () => number
  /** `Date.now()` at the start of the phase, to place the breaker's transitions (epoch milliseconds). */
  readonly epoch: number
  /** `performance.now()` at the start of the phase. */
  readonly origin: number
}

const timeline = (): Timeline => {
  const origin = performance.now()
  return { now: () => performance.now() - origin, epoch: Date.now(), origin }
}

/** One read as its caller saw it. */
interface Read {
  readonly scheduled: number
  /** When its fiber started the read: after `scheduled` when the sender or the machine stalled. */
  readonly sent: number
  readonly end: number
  /**
   * From the scheduled send time to the answer (from the send time for a read that a timer
   * firing a fraction of a millisecond early sent before its scheduled time).
   */
  readonly latency: number
  readonly outcome: "value" | "miss"
}

/** One call that the resilient cache made to the Redis layer, i.e. a command sent to the server. */
interface ServerCall {
  readonly operation: string
  readonly start: number
  end: number | undefined
  failed: boolean
}

/** The nearest-rank percentile `p` of `values`. */
const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

/**
 * The Redis layer's service, recording every call into `calls` with the time from `clock`
 * (`clock` is read at each call, so the timeline can be restarted between phases).
 */
const recording = (
  inner: Cache.CacheService,
  calls: Array<ServerCall>,
  clock: () => Timeline
): Cache.CacheService => {
  const track = <A, E>(operation: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      const call: ServerCall = { operation, start: clock().now(), end: undefined, failed: false }
      calls.push(call)
      return Effect.onExit(effect, (exit) =>
        Effect.sync(() => {
          call.end = clock().now()
          call.failed = Exit.isFailure(exit)
        }))
    })
  const getWithTtl = inner.getWithTtl
  return {
    ...inner,
    get: (k) => track("get", inner.get(k)),
    getWithTtl: getWithTtl === undefined ? undefined : (k) => track("getWithTtl", getWithTtl(k)),
    set: (k, v, options) => track("set", inner.set(k, v, options)),
    delete: (k) => track("delete", inner.delete(k)),
    invalidate: (prefix) => track("invalidate", inner.invalidate(prefix))
  }
}

const isRead = (call: ServerCall): boolean => call.operation === "get" || call.operation === "getWithTtl"

/** Data commands the server has processed since it started (connection handshakes and INFO left out). */
const commandsProcessed = (server: RedisServer): Effect.Effect<number> =>
  Effect.map(Effect.promise(() => server.admin("INFO", "commandstats")), (info) => {
    let total = 0
    for (const match of String(info).matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) {
      if (!["info", "client", "hello", "ping", "command", "select", "config"].includes(match[1]!.split("|")[0]!)) {
        total += Number(match[2])
      }
    }
    return total
  })

/** After SIGCONT: waits until the server has worked through its backlog (two equal counts in a row). */
const settledCommands = (server: RedisServer): Effect.Effect<number> =>
  Effect.gen(function*() {
    let last = yield* commandsProcessed(server)
    for (let attempt = 0; attempt < 60; attempt++) {
      yield* Effect.sleep("100 millis")
      const now = yield* commandsProcessed(server)
      if (now === last) return now
      last = now
    }
    return last
  })

/**
 * Schedules read `i` at `i / rate` seconds for `millis`, runs each in a fiber of its own,
 * and waits for all of them. A read sent late (the sender was stalled) counts its lateness.
 */
const traffic = (
  read: Effect.Effect<"value" | "miss">,
  rate: number,
  millis: number,
  clock: Timeline
): Effect.Effect<ReadonlyArray<Read>> =>
  Effect.scoped(Effect.gen(function*() {
    const reads: Array<Read> = []
    const running = yield* FiberSet.make()
    const interval = 1000 / rate
    for (let i = 0; i * interval < millis; i++) {
      const scheduled = i * interval
      const wait = scheduled - clock.now()
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      yield* FiberSet.run(
        running,
        Effect.suspend(() => {
          const sent = clock.now()
          return Effect.map(read, (outcome) => {
            const end = clock.now()
            reads.push({ scheduled, sent, end, latency: end - Math.min(scheduled, sent), outcome })
          })
        })
      )
    }
    yield* FiberSet.awaitEmpty(running)
    return reads
  }))

/** What one rate produced. */
interface RunResult {
  readonly rate: number
  readonly frozen: ReadonlyArray<Read>
  readonly calls: ReadonlyArray<ServerCall>
  readonly changes: ReadonlyArray<CircuitBreaker.StateChange & { readonly atMillis: number }>
  /** Data commands the server processed from the frozen phase, counted after SIGCONT. */
  readonly serverCommands: number
  /** GC pauses and late timers during the frozen phase, on the phase's timeline. */
  readonly trace: ProcessTrace
}

/** One pause of the garbage collector (`kind`: V8's, e.g. minor = scavenge, major = mark-compact). */
interface GcPause {
  readonly start: number
  readonly duration: number
  readonly kind: string
}

const gcKinds: Record<number, string> = { 1: "major", 2: "minor", 4: "incremental", 8: "weakcb" }

/** A timer of the event loop that fired late, with the CPU time the process used meanwhile. */
interface Stall {
  readonly start: number
  readonly late: number
  readonly cpu: number
}

/** What happened in the process besides the reads: GC pauses and late timers, on the phase's timeline. */
interface ProcessTrace {
  readonly gcPauses: ReadonlyArray<GcPause>
  /** Every firing of the 2 ms timer. */
  readonly ticks: ReadonlyArray<Stall>
}

/**
 * Records every GC pause while `effect` runs, and runs a plain 2 ms timer beside it: a timer
 * that fires late while the process used little CPU meanwhile means the process was not
 * scheduled (the machine), one that fires late after a burst of CPU means work in the process.
 */
const observingProcess = <A, E>(origin: number, effect: Effect.Effect<A, E>): Effect.Effect<[A, ProcessTrace], E> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const gcPauses: Array<GcPause> = []
      const ticks: Array<Stall> = []
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind ?? 0
          gcPauses.push({ start: entry.startTime - origin, duration: entry.duration, kind: gcKinds[kind] ?? String(kind) })
        }
      })
      observer.observe({ entryTypes: ["gc"] })
      const probe = { timer: undefined as NodeJS.Timeout | undefined }
      const tick = (due: number, cpu: NodeJS.CpuUsage) => {
        probe.timer = setTimeout(() => {
          const now = performance.now()
          const used = process.cpuUsage(cpu)
          ticks.push({ start: due - origin, late: Math.max(0, now - due), cpu: (used.user + used.system) / 1000 })
          tick(now + 2, process.cpuUsage())
        }, 2)
      }
      tick(performance.now() + 2, process.cpuUsage())
      return { observer, gcPauses, ticks, probe }
    }),
    ({ gcPauses, ticks }) => Effect.map(effect, (a): [A, ProcessTrace] => [a, { gcPauses, ticks }]),
    ({ observer, probe }) =>
      Effect.sync(() => {
        observer.disconnect()
        clearTimeout(probe.timer)
      })
  )

/** One rate: a fresh resilient cache over a fresh Redis layer, healthy traffic, then frozen traffic. */
const run = (
  server: RedisServer,
  rate: number,
  frozenFor = frozenMillis,
  probePatience?: Duration.DurationInput
): Effect.Effect<RunResult, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    let clock = timeline()
    const allCalls: Array<ServerCall> = []
    const redis = Context.get(
      yield* Layer.build(
        RedisCache.layer({
          url: server.url,
          name: `bench-outage-${rate}`,
          commandTimeout: Duration.millis(commandTimeout),
          requireConnection: true
        })
      ),
      Cache.Cache
    )
    const cache = Context.get(
      yield* Layer.build(
        ResilientCache.layer({
          name: `bench-outage-${rate}`,
          breaker: breakerOptions,
          ...(probePatience === undefined ? {} : { probePatience })
        }).pipe(
          Layer.provide(Layer.succeed(Cache.Cache, recording(redis, allCalls, () => clock)))
        )
      ),
      ResilientCache.ResilientCache
    )
    const changes: Array<CircuitBreaker.StateChange> = []
    yield* Effect.forkScoped(
      Stream.runForEach(cache.breaker.changes, (change) => Effect.sync(() => changes.push(change)))
    )
    yield* Effect.repeatN(Effect.yieldNow(), 10)
    const read = Effect.map(
      cache.get(key),
      Option.match({ onNone: () => "miss" as const, onSome: () => "value" as const })
    )

    yield* traffic(read, rate, healthyMillis, clock)
    const healthyChanges = changes.length
    const before = yield* commandsProcessed(server)
    clock = timeline()
    const firstFrozenCall = allCalls.length
    const [frozen, trace] = yield* observingProcess(
      clock.origin,
      Effect.acquireUseRelease(
        Effect.sync(() => server.stop()),
        () => traffic(read, rate, frozenFor, clock),
        () => Effect.sync(() => server.cont())
      )
    )
    const after = yield* settledCommands(server)
    const epoch = clock.epoch
    return {
      rate,
      frozen,
      calls: allCalls.slice(firstFrozenCall),
      changes: changes.slice(healthyChanges).map((change) => ({ ...change, atMillis: change.at - epoch })),
      serverCommands: after - before,
      trace
    }
  }))

const figure = (id: string, label: string, value: number, unit: string): Figure => ({ id, label, value, unit })

const seconds = (millis: number): string => `${(millis / 1000).toFixed(2)} s`

/** Figures, targets and notes of one rate. */
const analyse = (result: RunResult) => {
  const { calls, changes, frozen, rate } = result
  // A transition's time is whole milliseconds of `Date.now`, placed on the reads' timeline
  // (`performance.now`) through the phase's epoch, itself truncated: the transition happened
  // within a millisecond either side of `at`. A read sent in that margin raced the transition
  // (it could still be admitted while Closed and wait out the command timeout): reads count as
  // "after opening" from `at + 2`.
  const opens = changes.filter((change) => change.to === "Open").map((change) => change.atMillis + 2)
  const openedAt = opens[0]
  if (openedAt === undefined) {
    return Either.left(`at ${rate} reads/s the breaker never opened while the server was frozen`)
  }
  const afterOpening = frozen.filter((r) => r.scheduled >= openedAt)
  const latencies = afterOpening.map((r) => r.latency)
  const lateness = afterOpening.map((r) => Math.max(0, r.sent - r.scheduled))
  const fromSend = afterOpening.map((r) => r.end - r.sent)
  const readsSent = calls.filter(isRead)
  const sentAfterOpening = readsSent.filter((call) => call.start >= openedAt)
  // Open periods: from each transition to Open to the next one (the last to the end of the phase).
  const periods = opens.map((start, i) => ({
    start,
    calls: sentAfterOpening.filter((call) =>
      call.start >= start && (i + 1 >= opens.length || call.start < opens[i + 1]!)
    )
  }))
  const maxPerPeriod = Math.max(0, ...periods.map((period) => period.calls.length))
  const userWaits = afterOpening.filter((r) => r.latency >= commandTimeout * 0.9).length
  // A read "met" a GC pause when the pause overlapped the time from its scheduled send to its answer.
  const gcAfterOpening = result.trace.gcPauses.filter((pause) => pause.start + pause.duration >= openedAt)
  const metGc = (r: Read) =>
    gcAfterOpening.some((pause) => pause.start <= r.end && pause.start + pause.duration >= r.scheduled)
  const slow = afterOpening.filter((r) => r.latency > 2)
  // The plain timer beside the reads: late while the process used under a quarter of the time
  // as CPU means the process was not running at all (the machine); otherwise work in the process.
  const ticks = result.trace.ticks.filter((tick) => tick.start >= openedAt)
  const stalls = ticks.filter((tick) => tick.late > 1)
  const unscheduled = stalls.filter((tick) => tick.cpu < (tick.late + 2) / 4)
  const metStall = (r: Read, among: ReadonlyArray<Stall>) =>
    among.some((tick) => tick.start <= r.end && tick.start + tick.late >= r.scheduled)
  const withoutGc = afterOpening.filter((r) => !metGc(r)).map((r) => r.latency)
  const id = (name: string) => `${rate}.${name}`
  const p99 = figure(id("p99"), `${rate} reads/s, after opening: p99`, percentile(latencies, 0.99), "ms")
  const max = figure(id("max"), `${rate} reads/s, after opening: max`, Math.max(...latencies), "ms")
  const perPeriod = figure(
    id("probesPerPeriod"),
    `${rate} reads/s: most reads reaching the server in one open period`,
    maxPerPeriod,
    "reads"
  )
  const figures: ReadonlyArray<Figure> = [
    figure(id("openedAt"), `${rate} reads/s: breaker first opened after`, openedAt, "ms"),
    figure(id("reads"), `${rate} reads/s, after opening: reads`, afterOpening.length, "reads"),
    figure(id("p50"), `${rate} reads/s, after opening: p50`, percentile(latencies, 0.5), "ms"),
    p99,
    figure(id("p999"), `${rate} reads/s, after opening: p99.9`, percentile(latencies, 0.999), "ms"),
    max,
    figure(
      id("sendLateness.p99"),
      `${rate} reads/s, after opening: sender late by (p99; a stalled machine)`,
      percentile(lateness, 0.99),
      "ms"
    ),
    figure(id("sendLateness.max"), `${rate} reads/s, after opening: sender late by (max)`, Math.max(...lateness), "ms"),
    figure(
      id("fromSend.p99"),
      `${rate} reads/s, after opening: p99 from the actual send`,
      percentile(fromSend, 0.99),
      "ms"
    ),
    figure(id("fromSend.max"), `${rate} reads/s, after opening: max from the actual send`, Math.max(...fromSend), "ms"),
    figure(
      id("userWaits"),
      `${rate} reads/s, after opening: user reads waiting >= ${commandTimeout * 0.9} ms`,
      userWaits,
      "reads"
    ),
    figure(id("gc.pauses"), `${rate} reads/s, after opening: GC pauses`, gcAfterOpening.length, "pauses"),
    figure(
      id("gc.longest"),
      `${rate} reads/s, after opening: longest GC pause`,
      Math.max(0, ...gcAfterOpening.map((pause) => pause.duration)),
      "ms"
    ),
    figure(
      id("gc.total"),
      `${rate} reads/s, after opening: GC pauses in all`,
      gcAfterOpening.reduce((sum, pause) => sum + pause.duration, 0),
      "ms"
    ),
    figure(id("slow"), `${rate} reads/s, after opening: reads over 2 ms`, slow.length, "reads"),
    figure(id("slow.gc"), `${rate} reads/s, after opening: reads over 2 ms that met a GC pause`, slow.filter(metGc).length, "reads"),
    figure(
      id("slow.unscheduled"),
      `${rate} reads/s, after opening: reads over 2 ms while the process was not running`,
      slow.filter((r) => metStall(r, unscheduled)).length,
      "reads"
    ),
    figure(
      id("timer.p99"),
      `${rate} reads/s, after opening: a plain 2 ms timer in the process, late by (p99)`,
      percentile(ticks.map((tick) => tick.late), 0.99),
      "ms"
    ),
    figure(
      id("timer.unscheduled"),
      `${rate} reads/s, after opening: that timer late > 1 ms while the process was not running`,
      unscheduled.length,
      "times"
    ),
    figure(id("timer.stalls"), `${rate} reads/s, after opening: that timer late > 1 ms`, stalls.length, "times"),
    figure(
      id("p99.noGc"),
      `${rate} reads/s, after opening: p99 of reads that met no GC pause`,
      percentile(withoutGc, 0.99),
      "ms"
    ),
    figure(id("openPeriods"), `${rate} reads/s: open periods`, opens.length, "periods"),
    figure(id("probes"), `${rate} reads/s, after opening: reads sent to the server`, sentAfterOpening.length, "reads"),
    perPeriod,
    figure(
      id("beforeOpening"),
      `${rate} reads/s, before opening: reads sent to the server`,
      readsSent.length - sentAfterOpening.length,
      "reads"
    )
  ]
  const targets: ReadonlyArray<Target> = [
    target(p99, `${rate} reads/s: p99 after opening <= 2 ms`, "<=", 2),
    target(max, `${rate} reads/s: max after opening <= 30 ms`, "<=", 30),
    target(
      perPeriod,
      `${rate} reads/s: <= halfOpenMaxCalls (${breakerOptions.halfOpenMaxCalls}) reads to the server per open period`,
      "<=",
      breakerOptions.halfOpenMaxCalls
    )
  ]
  const notes: Array<string> = [
    `${rate} reads/s: ${calls.length} calls reached the Redis layer while frozen, the server processed ` +
      `${result.serverCommands} data commands from them` +
      (calls.length === result.serverCommands ? " (they agree)" : " (they differ: see the JSON)"),
    ...periods.map((period) =>
      `  open at ${seconds(period.start)}: ` +
      (period.calls.length === 0
        ? "no read reached the server"
        : period.calls.map((call) =>
          `${call.operation} at ${seconds(call.start)}, ` +
          (call.end === undefined
            ? "unfinished"
            : `${(call.end - call.start).toFixed(0)} ms, ${call.failed ? "failed" : "ok"}`)
        ).join("; "))
    )
  ]
  const details = {
    rate,
    openPeriods: periods.map((period) => ({
      openedAtMillis: Math.round(period.start),
      callsToServer: period.calls.map((call) => ({
        operation: call.operation,
        startMillis: Math.round(call.start * 10) / 10,
        millis: call.end === undefined ? null : Math.round((call.end - call.start) * 10) / 10,
        failed: call.failed
      }))
    })),
    transitions: changes.map((change) => ({
      from: change.from,
      to: change.to,
      reason: change.reason,
      atMillis: Math.round(change.atMillis)
    })),
    slowestReadsAfterOpening: [...afterOpening].sort((a, b) => b.latency - a.latency).slice(0, 10).map((r) => ({
      scheduledMillis: Math.round(r.scheduled * 10) / 10,
      lateMillis: Math.round(Math.max(0, r.sent - r.scheduled) * 1000) / 1000,
      latencyMillis: Math.round(r.latency * 1000) / 1000,
      outcome: r.outcome,
      metGcPause: metGc(r)
    })),
    gcPauses: gcAfterOpening.map((pause) => ({
      startMillis: Math.round(pause.start * 10) / 10,
      millis: Math.round(pause.duration * 100) / 100,
      kind: pause.kind
    })),
    serverCommands: result.serverCommands,
    callsToRedisLayer: calls.length
  }
  return Either.right({ figures, targets, notes, details })
}

const title = "Frozen Redis (SIGSTOP): ResilientCache, commandTimeout 100 ms, open-loop reads"

/** The Redis outage suite. */
export const suite: Suite = {
  name: "redis-outage",
  title,
  run: () =>
    Effect.gen(function*() {
      const binary = Either.try(() => findRedisServer())
      if (Either.isLeft(binary)) {
        const reason = "redis-server is not installed (Debian: apt-get install -y redis-server)"
        yield* Console.log(`${title}\n  skipped: ${reason}\n`)
        return { name: "redis-outage", title, measurements: [], figures: [], targets: [], details: { skipped: reason } }
      }
      const server = yield* redisServer()
      yield* Effect.promise(() => server.admin("SET", key, "x".repeat(100)))
      const figures: Array<Figure> = []
      const targets: Array<Target> = []
      const notes: Array<string> = []
      const perRate: Array<unknown> = []
      const firstOutage = analyse(yield* run(server, rates[0]!, warmUpFrozenMillis))
      if (Either.isRight(firstOutage)) {
        const cold = (id: string) => firstOutage.right.figures.find((f) => f.id === `${rates[0]}.${id}`)
        for (const [id, label] of [["p50", "p50"], ["p99", "p99"], ["max", "max"]] as const) {
          const measured = cold(id)
          if (measured !== undefined) {
            figures.push({
              ...measured,
              id: `firstOutage.${id}`,
              label: `first outage of the process (cold code), ${rates[0]} reads/s, after opening: ${label}`
            })
          }
        }
      }
      for (const rate of rates) {
        const analysed = analyse(yield* run(server, rate))
        if (Either.isLeft(analysed)) {
          return yield* Effect.fail(`redis-outage: ${analysed.left}`)
        }
        figures.push(...analysed.right.figures)
        targets.push(...analysed.right.targets)
        notes.push(...analysed.right.notes)
        perRate.push(analysed.right.details)
      }
      // The same at the first rate with `probePatience: 0`: no probe's caller waits at all.
      const noPatience = analyse(yield* run(server, rates[0]!, frozenMillis, 0))
      if (Either.isRight(noPatience)) {
        for (const id of ["p50", "p99", "p999", "max"]) {
          const measured = noPatience.right.figures.find((f) => f.id === `${rates[0]}.${id}`)
          if (measured !== undefined) {
            figures.push({
              ...measured,
              id: `noPatience.${id}`,
              label: `probePatience 0: ${measured.label}`
            })
          }
        }
      }
      return {
        name: "redis-outage",
        title,
        measurements: [],
        figures,
        targets,
        notes,
        details: {
          server: `redis-server on a free loopback port (${binary.right}), frozen with SIGSTOP, resumed with SIGCONT`,
          traffic: `open-loop: read i scheduled at i / rate; latency from the scheduled send time; ` +
            `${healthyMillis} ms healthy, then ${frozenMillis} ms frozen, per rate, after one outage of ` +
            `${warmUpFrozenMillis} ms at ${rates[0]} reads/s (the first outage of the process, reported apart)`,
          cache: {
            layer: "ResilientCache.layer({ name, breaker }) over the Redis layer",
            commandTimeout,
            breaker: breakerOptions
          },
          counting: "calls to the Redis layer recorded by a Cache layer in between; data commands processed " +
            "by the server (INFO commandstats after SIGCONT, once its backlog is processed)",
          perRate
        }
      } satisfies SuiteResult
    }).pipe(
      // The cache and its breaker log every timeout and transition; the table says what matters.
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
}
