/**
 * The Redis outage suite: a real `redis-server`, frozen with SIGSTOP while reads arrive at a
 * steady rate, once through plain `layerRedis` and once through `ResilientCache` over
 * `layerRedis` (same `commandTimeout`). It measures the read latency each caller sees, and
 * how many reads reached the frozen server: counted by the server itself (`INFO
 * commandstats`, read after SIGCONT, once the server has processed what was sent to it while
 * it was frozen).
 *
 * Targets: once the breaker is open, p99 read latency <= 1 ms, and only probes reach the
 * frozen server (at most `halfOpenMaxCalls` per open period). When `redis-server` is not
 * installed the suite says so and measures nothing.
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as Cache from "../src/Cache.js"
import { layerRedis } from "../src/Cache/Redis.js"
import type * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { findRedisServer, type RedisServer, redisServer } from "../test/integration/redisServer.js"
import type { Figure, Suite, SuiteResult, Target } from "./harness.js"
import { median } from "./harness.js"

/** The same for both callers: each read gives up after this long without a reply. */
const commandTimeout = 100

const breakerOptions = {
  failureThreshold: 5,
  resetTimeout: "1 second",
  successThreshold: 2,
  halfOpenMaxCalls: 1
} as const

/** Reads per second, each in its own fiber, whatever the previous ones are doing. */
const rate = 200
/** Reads against the running server first (for reference), then against the frozen one. */
const healthyMillis = 1_000
const frozenMillis = 5_000

const key = "bench:outage"

/** One read as its caller saw it; times in milliseconds from the start of the frozen phase. */
interface Read {
  readonly start: number
  readonly end: number
  readonly latency: number
  readonly outcome: "value" | "miss" | "error"
}

/**
 * Whether a read waited for the frozen server: such a read ends only when `commandTimeout`
 * fires, while a read the breaker answers takes microseconds (a margin of 10% for timers).
 */
const waited = (read: Read): boolean => read.latency >= commandTimeout * 0.9

/** The value below which `p` of `values` fall (nearest rank). */
const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

const promise = <A>(run: () => Promise<A>): Effect.Effect<A, Error> =>
  Effect.tryPromise({ try: run, catch: (error) => (error instanceof Error ? error : new Error(String(error))) })

/** GETs the server has processed since it started, from `INFO commandstats`. */
const getsProcessed = (server: RedisServer): Effect.Effect<number, Error> =>
  Effect.map(promise(() => server.admin("INFO", "commandstats")), (info) => {
    const match = /cmdstat_get:calls=(\d+)/.exec(String(info))
    return match === null ? 0 : Number(match[1])
  })

/** After SIGCONT: waits until the server has worked through its backlog (two equal counts in a row). */
const settledGets = (server: RedisServer): Effect.Effect<number, Error> =>
  Effect.gen(function*() {
    let last = yield* getsProcessed(server)
    for (let attempt = 0; attempt < 60; attempt++) {
      yield* Effect.sleep("100 millis")
      const now = yield* getsProcessed(server)
      if (now === last) return now
      last = now
    }
    return last
  })

/** Sends `rate` reads a second for `millis`, each in its own fiber, and waits for all of them. */
const traffic = (
  read: Effect.Effect<"value" | "miss" | "error">,
  millis: number
): Effect.Effect<ReadonlyArray<Read>> =>
  Effect.scoped(Effect.gen(function*() {
    const reads = yield* Ref.make<Array<Read>>([])
    const running = yield* FiberSet.make()
    const origin = yield* Clock.currentTimeNanos
    const sinceOrigin = Effect.map(Clock.currentTimeNanos, (now) => Number(now - origin) / 1e6)
    const interval = 1000 / rate
    for (let i = 0; i * interval < millis; i++) {
      const wait = i * interval - (yield* sinceOrigin)
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      yield* FiberSet.run(
        running,
        Effect.gen(function*() {
          const start = yield* sinceOrigin
          const outcome = yield* read
          const end = yield* sinceOrigin
          yield* Ref.update(reads, (all) => {
            all.push({ start, end, latency: end - start, outcome })
            return all
          })
        })
      )
    }
    yield* FiberSet.awaitEmpty(running)
    return yield* Ref.get(reads)
  }))

interface Outcome {
  readonly healthy: ReadonlyArray<Read>
  readonly frozen: ReadonlyArray<Read>
  /** GETs the server processed from the reads of the frozen phase (counted after SIGCONT). */
  readonly reachedServer: number
}

/**
 * Runs reads against the running server, then freezes it (SIGSTOP) and runs reads for
 * `frozenMillis`; resumes it (SIGCONT, also on failure or interruption) once every read has
 * returned, and counts the GETs the server processed in between.
 */
const outage = (
  server: RedisServer,
  read: Effect.Effect<"value" | "miss" | "error">
): Effect.Effect<Outcome, Error> =>
  Effect.gen(function*() {
    const healthy = yield* traffic(read, healthyMillis)
    const before = yield* getsProcessed(server)
    const frozen = yield* Effect.acquireUseRelease(
      Effect.sync(() => server.stop()),
      () => traffic(read, frozenMillis),
      () => Effect.sync(() => server.cont())
    )
    const after = yield* settledGets(server)
    return { healthy, frozen, reachedServer: after - before }
  })

const redisLayer = (server: RedisServer, name: string) =>
  layerRedis({
    url: server.url,
    name,
    commandTimeout: Duration.millis(commandTimeout),
    requireConnection: true
  })

/** Plain `layerRedis`: a read of the frozen server fails after `commandTimeout`. */
const withoutBreaker = (server: RedisServer): Effect.Effect<Outcome, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const cache = Context.get(yield* Layer.build(redisLayer(server, "bench-plain")), Cache.Cache)
    const read = cache.get(key).pipe(
      Effect.map(Option.match({ onNone: () => "miss" as const, onSome: () => "value" as const })),
      Effect.catchAll(() => Effect.succeed("error" as const))
    )
    return yield* outage(server, read)
  }))

interface BreakerOutcome extends Outcome {
  readonly changes: ReadonlyArray<CircuitBreaker.StateChange>
  readonly metrics: CircuitBreaker.Metrics
  /** When the breaker opened, in milliseconds from the start of the frozen phase. */
  readonly openedAt: number | undefined
}

/** `ResilientCache` over `layerRedis`: a read of the frozen server is a miss, at once once the breaker is open. */
const withBreaker = (server: RedisServer): Effect.Effect<BreakerOutcome, unknown> =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(
      ResilientCache.layer({ name: "bench-resilient", breaker: breakerOptions }).pipe(
        Layer.provide(redisLayer(server, "bench-resilient"))
      )
    )
    const cache = Context.get(context, ResilientCache.ResilientCache)
    const changes = yield* Ref.make<Array<CircuitBreaker.StateChange>>([])
    yield* Effect.forkScoped(
      Stream.runForEach(cache.breaker.changes, (change) => Ref.update(changes, (all) => [...all, change]))
    )
    yield* Effect.repeatN(Effect.yieldNow(), 10)
    const read = Effect.map(
      cache.get(key),
      Option.match({ onNone: () => "miss" as const, onSome: () => "value" as const })
    )
    const outcome = yield* outage(server, read)
    const metrics = yield* cache.breaker.metrics
    // The breaker opens when the `failureThreshold`-th read fails: the end of that read, on the
    // same clock as the reads' starts. Reads that started before it were all let through.
    const failures = outcome.frozen.filter(waited).map((r) => r.end).sort((a, b) => a - b)
    const openedAt = failures[breakerOptions.failureThreshold - 1]
    return { ...outcome, changes: yield* Ref.get(changes), metrics, openedAt }
  }))

const figure = (id: string, label: string, value: number, unit: string): Figure => ({ id, label, value, unit })

const targetOf = (f: Figure, label: string, comparison: "<=" | ">=", limit: number): Target => ({
  id: f.id,
  label,
  value: f.value,
  limit,
  comparison,
  unit: f.unit,
  pass: comparison === "<=" ? f.value <= limit : f.value >= limit
})

const title = "Redis outage: a frozen server (SIGSTOP), with and without the breaker"

const skipped = (reason: string): SuiteResult => ({
  name: "redis-outage",
  title,
  measurements: [],
  figures: [],
  targets: [],
  details: { skipped: reason }
})

const fail = (reason: string): Effect.Effect<never, string> => Effect.fail(`redis-outage: ${reason}`)

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
        return skipped(reason)
      }
      const server = yield* redisServer()
      yield* promise(() => server.admin("SET", key, "x".repeat(100)))

      const plain = yield* withoutBreaker(server)
      const resilient = yield* withBreaker(server)

      // What each read did, seen by its caller: a read that waited had sent a GET to the
      // frozen server; the server's own count after SIGCONT must say the same.
      if (plain.frozen.some((r) => r.outcome !== "error")) {
        return yield* fail("a read of the frozen server without the breaker did not fail")
      }
      if (plain.reachedServer !== plain.frozen.length) {
        return yield* fail(
          `without the breaker, ${plain.frozen.length} reads were sent but the server counted ${plain.reachedServer}`
        )
      }
      if (resilient.frozen.some((r) => r.outcome === "error")) {
        return yield* fail("a read through the resilient cache failed")
      }
      const resilientWaited = resilient.frozen.filter(waited).length
      if (resilient.reachedServer !== resilientWaited) {
        return yield* fail(
          `with the breaker, ${resilientWaited} reads waited for the server but it counted ${resilient.reachedServer}`
        )
      }
      const openedAt = resilient.openedAt
      if (openedAt === undefined) return yield* fail("the breaker never opened")

      const beforeOpening = resilient.frozen.filter((r) => r.start < openedAt)
      const afterOpening = resilient.frozen.filter((r) => r.start >= openedAt)
      // Every read before opening was let through (the breaker was closed); the rest of what
      // the server counted came after opening.
      const reachedAfterOpening = resilient.reachedServer - beforeOpening.filter(waited).length
      // Open periods: the first opening, then one per failed probe.
      const openPeriods = resilient.changes.filter((c) => c.to === "Open").length
      const probes = afterOpening.filter(waited).length

      const latencies = (reads: ReadonlyArray<Read>) => reads.map((r) => r.latency)
      const p99AfterOpening = figure(
        "breaker.afterOpening.p99",
        "with the breaker, after opening: p99 read latency",
        percentile(latencies(afterOpening), 0.99),
        "ms"
      )
      const reachedAfter = figure(
        "breaker.afterOpening.reachedServer",
        "with the breaker, after opening: reads that reached the server",
        reachedAfterOpening,
        "reads"
      )
      // The same figures for both runs over the frozen server.
      const frozenFigures = (
        id: string,
        label: string,
        run: { readonly frozen: typeof plain.frozen; readonly reachedServer: number }
      ): ReadonlyArray<Figure> => [
        figure(`${id}.p50`, `frozen, ${label}: p50 read latency`, median(latencies(run.frozen)), "ms"),
        figure(`${id}.p99`, `frozen, ${label}: p99 read latency`, percentile(latencies(run.frozen), 0.99), "ms"),
        figure(`${id}.reads`, `frozen, ${label}: reads`, run.frozen.length, "reads"),
        figure(
          `${id}.errors`,
          `frozen, ${label}: reads that failed`,
          run.frozen.filter((r) => r.outcome === "error").length,
          "reads"
        ),
        figure(`${id}.reachedServer`, `frozen, ${label}: reads that reached the server`, run.reachedServer, "reads")
      ]
      const figures: ReadonlyArray<Figure> = [
        figure("healthy.p50", "running server, plain: p50 read latency", median(latencies(plain.healthy)), "ms"),
        figure(
          "healthy.p99",
          "running server, plain: p99 read latency",
          percentile(latencies(plain.healthy), 0.99),
          "ms"
        ),
        ...frozenFigures("plain", "without the breaker", plain),
        ...frozenFigures("breaker", "with the breaker", resilient),
        figure("breaker.openedAt", "with the breaker: opened after", openedAt, "ms"),
        figure(
          "breaker.beforeOpening.reachedServer",
          "with the breaker, before opening: reads that reached the server",
          beforeOpening.filter(waited).length,
          "reads"
        ),
        figure(
          "breaker.afterOpening.p50",
          "with the breaker, after opening: p50 read latency",
          median(latencies(afterOpening)),
          "ms"
        ),
        p99AfterOpening,
        reachedAfter,
        figure("breaker.openPeriods", "with the breaker: open periods", openPeriods, "periods")
      ]
      const targets: ReadonlyArray<Target> = [
        targetOf(p99AfterOpening, "after opening, p99 read latency", "<=", 1),
        targetOf(
          reachedAfter,
          `after opening, only probes reach the server (${breakerOptions.halfOpenMaxCalls} per open period)`,
          "<=",
          breakerOptions.halfOpenMaxCalls * openPeriods
        )
      ]
      return {
        name: "redis-outage",
        title,
        measurements: [],
        figures,
        targets,
        details: {
          server: `redis-server on a free loopback port (${binary.right}), frozen with SIGSTOP, resumed with SIGCONT`,
          counting: "reads that reached the server: the increase of cmdstat_get in INFO commandstats, read after " +
            "SIGCONT once the server had processed its backlog; cross-checked against the reads that waited for " +
            "commandTimeout on the client side",
          traffic: { readsPerSecond: rate, healthyMillis, frozenMillis, key },
          withoutBreaker: { layer: "layerRedis", commandTimeout },
          withBreaker: {
            layer: "ResilientCache.layer over layerRedis",
            commandTimeout,
            breaker: breakerOptions,
            probes
          },
          slowestReadsAfterOpening: [...afterOpening].sort((a, b) => b.latency - a.latency).slice(0, 12).map((r) => ({
            startMillis: Math.round(r.start * 10) / 10,
            latencyMillis: Math.round(r.latency * 1000) / 1000,
            reachedServer: waited(r)
          })),
          transitions: resilient.changes.map((c) => ({ from: c.from, to: c.to, reason: c.reason })),
          breakerMetrics: {
            successfulCalls: resilient.metrics.successfulCalls,
            failedCalls: resilient.metrics.failedCalls,
            rejectedCalls: resilient.metrics.rejectedCalls
          }
        }
      } satisfies SuiteResult
    }).pipe(
      // The cache and its breaker log every timeout and transition; the table says what matters.
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
}
