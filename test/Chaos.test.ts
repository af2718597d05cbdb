import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Context,
  Data,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck,
  Fiber,
  Layer,
  Option,
  Stream,
  TestClock
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../src/Cache.js"
import * as Chaos from "../src/Chaos.js"
import * as internalChaos from "../src/internal/chaos.js"
import * as Sql from "../src/Sql.js"
import * as Sqlite from "../src/Sql/Sqlite.js"

class Boom extends Data.TaggedError("Boom")<{ readonly n: number }> {}

/** Runs `n` calls through `wrap` one after the other; true where the call failed. */
const failurePattern = <E>(n: number, wrap: (self: Effect.Effect<string>) => Effect.Effect<string, E>) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    () => Effect.map(Effect.either(wrap(Effect.succeed("ok"))), Either.isLeft)
  )

const ChaosMemory = (options: Chaos.CacheOptions) => Chaos.layerCache(options).pipe(Layer.provide(Cache.layerMemory()))

describe("Chaos.fail", () => {
  it.effect("the same seed gives the same fault sequence; another seed a different one", () =>
    Effect.gen(function*() {
      const a = yield* Chaos.fail({ probability: 0.3, error: () => new Boom({ n: 1 }), seed: 42 })
      const b = yield* Chaos.fail({ probability: 0.3, error: () => new Boom({ n: 1 }), seed: 42 })
      const c = yield* Chaos.fail({ probability: 0.3, error: () => new Boom({ n: 1 }), seed: 43 })
      const pa = yield* failurePattern(300, a)
      const pb = yield* failurePattern(300, b)
      const pc = yield* failurePattern(300, c)
      expect(pa).toEqual(pb)
      expect(pa).not.toEqual(pc)
      const failures = pa.filter(Boolean).length
      // 300 draws at 0.3: about 90, far from 0 and from 300
      expect(failures).toBeGreaterThan(60)
      expect(failures).toBeLessThan(120)
      const stats = yield* a.stats
      expect(stats.calls).toBe(300)
      expect(stats.failures).toBe(failures)
    }))

  it.effect("fails with the error built by the function, without running the effect", () =>
    Effect.gen(function*() {
      let ran = 0
      let built = 0
      const always = yield* Chaos.fail({ probability: 1, error: () => new Boom({ n: ++built }) })
      const never = yield* Chaos.fail({ probability: 0, error: () => new Boom({ n: -1 }) })
      const effect = Effect.sync(() => ++ran)
      expect(yield* Effect.flip(always(effect))).toEqual(new Boom({ n: 1 }))
      expect(yield* Effect.flip(always(effect))).toEqual(new Boom({ n: 2 }))
      expect(ran).toBe(0)
      expect(yield* never(effect)).toBe(1)
      expect(yield* effect.pipe(never)).toBe(2)
    }))

  it.effect("refuses a probability outside [0, 1]", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Chaos.fail({ probability: 1.5, error: () => "x" }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.field).toBe("probability")
    }))
})

describe("Chaos.delay", () => {
  it.effect("delays every call by a fixed latency on the Clock", () =>
    Effect.gen(function*() {
      const slow = yield* Chaos.delay({ latency: "200 millis" })
      const fiber = yield* Effect.fork(slow(Effect.succeed("done")))
      yield* TestClock.adjust("199 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("done")
      const stats = yield* slow.stats
      expect(stats.delayed).toBe(1)
      expect(Duration.toMillis(stats.totalDelay)).toBe(200)
    }))

  it.effect("draws delays within [min, max], the same ones for the same seed", () =>
    Effect.gen(function*() {
      const timed = (fault: Chaos.Fault<never>) =>
        Effect.forEach(Array.from({ length: 25 }, (_, i) => i), () =>
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(Effect.timed(fault(Effect.void)))
            yield* TestClock.adjust("1 second")
            const [elapsed] = yield* Fiber.join(fiber)
            return Duration.toMillis(elapsed)
          }))
      const a = yield* timed(yield* Chaos.delay({ latency: ["10 millis", "50 millis"], seed: "s" }))
      const b = yield* timed(yield* Chaos.delay({ latency: ["10 millis", "50 millis"], seed: "s" }))
      expect(a).toEqual(b)
      expect(Math.min(...a)).toBeGreaterThanOrEqual(10)
      expect(Math.max(...a)).toBeLessThanOrEqual(50)
      expect(a.every(Number.isInteger)).toBe(true)
      expect(new Set(a).size).toBeGreaterThan(10)
    }))

  it.effect("refuses a range whose min exceeds its max", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Chaos.delay({ latency: ["50 millis", "10 millis"] }))
      expect(error.field).toBe("latency")
    }))
})

describe("Chaos.outage", () => {
  it.effect("fails every call inside the window on the Clock, and none outside", () =>
    Effect.gen(function*() {
      const outage = yield* Chaos.outage({ start: "1 minute", duration: "10 minutes", error: () => new Boom({ n: 0 }) })
      const call = Effect.either(outage(Effect.succeed("ok")))
      expect(Either.isRight(yield* call)).toBe(true)
      yield* TestClock.adjust("1 minute")
      expect(yield* call).toEqual(Either.left(new Boom({ n: 0 })))
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(10), Duration.millis(1)))
      expect(Either.isLeft(yield* call)).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* call).toEqual(Either.right("ok"))
      const stats = yield* outage.stats
      expect(stats).toMatchObject({ calls: 4, outageFailures: 2 })
    }))

  it.effect("repeats with `every`", () =>
    Effect.gen(function*() {
      const outage = yield* Chaos.outage({ start: 0, duration: "1 minute", every: "5 minutes", error: () => "down" })
      const states: Array<boolean> = []
      for (let minute = 0; minute < 12; minute++) {
        states.push(Either.isLeft(yield* Effect.either(outage(Effect.void))))
        yield* TestClock.adjust("1 minute")
      }
      expect(states).toEqual([true, false, false, false, false, true, false, false, false, false, true, false])
    }))

  it.effect("in hang mode, a call in the window waits for its end and then runs", () =>
    Effect.gen(function*() {
      const frozen = yield* Chaos.outage({ start: "1 minute", duration: "10 minutes", mode: "hang" })
      yield* TestClock.adjust("2 minutes")
      const fiber = yield* Effect.fork(frozen(Effect.succeed("late")))
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(9), Duration.millis(1)))
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      // a caller's timeout bounds it
      const bounded = yield* Effect.fork(frozen(Effect.succeed("late")).pipe(Effect.timeout("100 millis")))
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("late")
      expect(Exit.isSuccess(yield* Fiber.await(bounded))).toBe(true)
      expect((yield* frozen.stats).outageHangs).toBe(2)
    }))

  it.effect("refuses a fail-mode outage without an error, and a period not longer than the window", () =>
    Effect.gen(function*() {
      const noError = yield* Effect.flip(
        Chaos.outage({ start: 0, duration: "1 minute" } as unknown as Chaos.OutageOptions.Fail<string>)
      )
      expect(noError.field).toBe("error")
      const period = yield* Effect.flip(
        Chaos.outage({ start: 0, duration: "1 minute", every: "1 minute", error: () => "x" })
      )
      expect(period.field).toBe("outage.every")
    }))
})

describe("Chaos.layerCache", () => {
  it.effect("replays a 10-minute outage on TestClock in milliseconds of real time", () =>
    Effect.gen(function*() {
      const realStart = performance.now()
      const cache = yield* Cache.Cache
      const chaos = yield* Chaos.CacheChaos
      yield* cache.set("k", "v", { ttl: "1 hour" })
      const errors: Array<Cache.CacheError> = []
      let hits = 0
      // twenty reads every 20 seconds for 15 minutes; the outage runs from minute 2 to minute 12
      for (let step = 0; step < 45; step++) {
        for (let read = 0; read < 20; read++) {
          const result = yield* Effect.either(cache.get("k"))
          if (Either.isLeft(result)) errors.push(result.left)
          else if (Option.isSome(result.right)) hits++
        }
        yield* TestClock.adjust("20 seconds")
      }
      const realMillis = performance.now() - realStart
      expect(errors.length).toBe(600)
      expect(hits).toBe(300)
      expect(errors.every((e) => e.reason === "Unavailable" && e.operation === "get" && e.key === "k")).toBe(true)
      const stats = yield* chaos.stats
      expect(stats.outageFailures).toBe(600)
      expect(stats.calls).toBe(901)
      expect(realMillis).toBeLessThan(3_000)
      console.log(`15-minute timeline with a 10-minute outage (900 reads) replayed in ${realMillis.toFixed(0)} ms`)
    }).pipe(Effect.provide(ChaosMemory({ outages: [{ start: "2 minutes", duration: "10 minutes" }] }))))

  it.effect("the same seed gives the same failure sequence on the cache", () =>
    Effect.gen(function*() {
      const run = (seed: number) =>
        Effect.gen(function*() {
          const cache = yield* Cache.Cache
          return yield* Effect.forEach(
            Array.from({ length: 200 }, (_, i) => i),
            (i) => Effect.map(Effect.either(cache.set(`k${i}`, "v")), Either.isLeft)
          )
        }).pipe(Effect.provide(ChaosMemory({ failureRate: 0.25, seed })))
      const a = yield* run(7)
      expect(yield* run(7)).toEqual(a)
      expect(yield* run(8)).not.toEqual(a)
      expect(a.filter(Boolean).length).toBeGreaterThan(25)
      expect(a.filter(Boolean).length).toBeLessThan(75)
    }))

  it.effect("failed writes are not applied; the cache beneath holds exactly the successful ones", () =>
    Effect.gen(function*() {
      const memory = yield* Cache.makeMemory()
      const [chaotic, chaos] = yield* Chaos.makeCache(memory, { failureRate: 0.5, seed: 3 })
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => Effect.map(Effect.either(chaotic.set(`k${i}`, "v")), Either.isRight)
      )
      const stored = yield* Effect.forEach(outcomes, (_, i) => Effect.map(memory.get(`k${i}`), Option.isSome))
      expect(stored).toEqual(outcomes)
      expect((yield* chaos.stats).failures).toBe(outcomes.filter((ok) => !ok).length)
    }))

  it.effect("timeouts wait, fail with reason Timeout and, for writes, an unknown outcome", () =>
    Effect.gen(function*() {
      const memory = yield* Cache.makeMemory()
      const [chaotic, chaos] = yield* Chaos.makeCache(memory, { timeoutRate: 1, timeout: "2 seconds", seed: 1 })
      const read = yield* Effect.fork(Effect.flip(chaotic.get("k")))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(read))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(read)).toMatchObject({ reason: "Timeout", outcome: "NotApplied" })
      const writes = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) => Effect.flip(chaotic.set(`k${i}`, "v")))
      )
      yield* TestClock.adjust("80 seconds")
      const errors = yield* Fiber.join(writes)
      expect(errors.every((e) => e.reason === "Timeout" && e.outcome === "Unknown")).toBe(true)
      // some timed-out writes landed, some did not: the outcome is really unknown
      const landed = (yield* Effect.forEach(errors, (_, i) => memory.get(`k${i}`))).filter(Option.isSome).length
      expect(landed).toBeGreaterThan(5)
      expect(landed).toBeLessThan(35)
      expect((yield* chaos.stats).timeouts).toBe(41)
    }))

  it.effect("adds latency to the calls it lets through", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.Cache
      const fiber = yield* Effect.fork(cache.set("k", "v"))
      yield* TestClock.adjust("49 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      const stats = yield* (yield* Chaos.CacheChaos).stats
      expect(stats.delayed).toBe(1)
    }).pipe(Effect.provide(ChaosMemory({ latency: "50 millis" }))))

  it.effect("a hang-mode outage holds calls until it ends, like a frozen server", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.Cache
      const chaos = yield* Chaos.CacheChaos
      yield* cache.set("k", "v", { ttl: "1 hour" })
      expect(yield* chaos.outageActive).toBe(false)
      yield* TestClock.adjust("1 minute")
      expect(yield* chaos.outageActive).toBe(true)
      const timedOut = yield* cache.get("k").pipe(Effect.timeout("1 second"), Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(Exit.isFailure(yield* Fiber.await(timedOut))).toBe(true)
      const waiting = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("59 seconds")
      expect(yield* Fiber.join(waiting)).toEqual(Option.some("v"))
      expect(yield* chaos.outageActive).toBe(false)
    }).pipe(Effect.provide(ChaosMemory({ outages: [{ start: "1 minute", duration: "1 minute", mode: "hang" }] }))))

  it.effect("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const build = (options: Chaos.CacheOptions) =>
        Effect.flip(Effect.provide(Cache.Cache, ChaosMemory(options)))
      expect((yield* build({ failureRate: -0.1 })).field).toBe("failureRate")
      expect((yield* build({ failureRate: 0.6, timeoutRate: 0.6 })).field).toBe("failureRate, timeoutRate")
      expect((yield* build({ outages: [{ start: "1 minute", duration: 0 }] })).field).toBe("outages[0].duration")
      expect((yield* build({ outages: [{ start: -1, duration: "1 minute" }] })).field).toBe("outages[0].start")
      expect((yield* build({ latency: "fast" as Duration.DurationInput })).field).toBe("latency")
    }))
})

describe("outage windows (pure)", () => {
  it.prop(
    "a time is in a window exactly when it falls in one of its occurrences, which ends where it says",
    [
      FastCheck.integer({ min: 0, max: 10_000 }),
      FastCheck.integer({ min: 1, max: 5_000 }),
      FastCheck.option(FastCheck.integer({ min: 1, max: 5_000 }), { nil: undefined }),
      FastCheck.integer({ min: 0, max: 1_000_000 }),
      FastCheck.integer({ min: 0, max: 100_000 })
    ],
    ([start, duration, extra, anchor, offset]) => {
      const every = extra === undefined ? undefined : duration + extra
      const window = { start, duration, every, mode: "fail" as const }
      const now = anchor + offset
      let expected: number | undefined
      for (let k = 0; expected === undefined; k++) {
        const from = start + k * (every ?? 0)
        if (from > offset || (every === undefined && k > 0)) break
        if (offset >= from && offset < from + duration) expected = anchor + from + duration
      }
      expect(internalChaos.windowEnd(window, anchor, now)).toBe(expected)
    }
  )
})

describe("options of every Chaos constructor", () => {
  it.effect("null or a non-object is InvalidOptions naming options, never a TypeError", () =>
    Effect.gen(function*() {
      const field = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.map(Effect.flip(effect), (error) => {
          expect(error).toMatchObject({ _tag: "InvalidOptions", module: "Chaos" })
          return (error as { readonly field: string }).field
        })
      for (const bad of [null, undefined, 42, "x"]) {
        expect(yield* field(Chaos.fail(bad as never))).toBe("options")
        expect(yield* field(Chaos.delay(bad as never))).toBe("options")
        expect(yield* field(Chaos.outage(bad as never))).toBe("options")
        expect(yield* field(Chaos.makeCache({} as Cache.CacheService, bad as never))).toBe("options")
        expect(yield* field(Effect.provide(Cache.Cache, ChaosMemory(bad as never)))).toBe("options")
      }
    }))

  it("the chaos tags are classes keyed under effect-resilience/Chaos", () => {
    expect(Chaos.CacheChaos.key).toBe("effect-resilience/Chaos/CacheChaos")
    expect(Chaos.SqlChaos.key).toBe("effect-resilience/Chaos/SqlChaos")
    expect(typeof Chaos.CacheChaos).toBe("function")
    expect(typeof Chaos.SqlChaos).toBe("function")
  })
})

describe("Chaos.layerSql", () => {
  const tempFile = Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-chaos-sql-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => path.join(dir, "app.sqlite")))

  /** A SQLite client behind the faults, with a table `t`, in the test's scope. */
  const chaosSql = (options: Chaos.SqlOptions) =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const base = Sqlite.layerClient({ filename, busyTimeout: 0 })
      const raw = Context.get(yield* Layer.build(base), SqlClient.SqlClient)
      yield* raw`CREATE TABLE t (x INTEGER NOT NULL)`
      const context = yield* Layer.build(
        Chaos.layerSql(options).pipe(Layer.provide(Layer.succeed(SqlClient.SqlClient, raw)))
      )
      return { raw, sql: Context.get(context, SqlClient.SqlClient), chaos: Context.get(context, Chaos.SqlChaos) }
    })

  const count = (sql: SqlClient.SqlClient) =>
    Effect.map(sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM t`, (rows) => Number(rows[0]!.n))

  it.scoped("an outage window on the Clock refuses every statement as ECONNREFUSED; nothing runs", () =>
    Effect.gen(function*() {
      const { chaos, raw, sql } = yield* chaosSql({ outages: [{ start: "2 seconds", duration: "3 seconds" }] })
      yield* sql`INSERT INTO t (x) VALUES (1)`
      yield* TestClock.adjust("2 seconds")
      expect(yield* chaos.outageActive).toBe(true)
      const errors = yield* Effect.forEach(
        [
          sql`INSERT INTO t (x) VALUES (2)`,
          sql.unsafe("INSERT INTO t (x) VALUES (3)"),
          sql`INSERT INTO t (x) VALUES (4)`.raw,
          sql`SELECT x FROM t`.values,
          sql`SELECT x FROM t`.unprepared,
          Stream.runCollect(sql`SELECT x FROM t`.stream),
          Effect.scoped(sql.reserve)
        ],
        (effect) => Effect.flip(effect as Effect.Effect<unknown, unknown>)
      )
      for (const error of errors) {
        expect(error).toMatchObject({ _tag: "SqlError", cause: { code: "ECONNREFUSED" } })
        expect(Sql.toDatabaseError("db", error)).toMatchObject({ reason: "Unavailable", outcome: "NotApplied" })
      }
      expect(yield* count(raw)).toBe(1)
      expect((yield* chaos.stats).outageFailures).toBe(7)
      yield* TestClock.adjust("3 seconds")
      expect(yield* chaos.outageActive).toBe(false)
      yield* sql`INSERT INTO t (x) VALUES (5)`
      expect(yield* raw<{ readonly x: number }>`SELECT x FROM t ORDER BY x`).toEqual([{ x: 1 }, { x: 5 }])
    }))

  it.scoped("statements behind the faults still compile, nest and run in transactions", () =>
    Effect.gen(function*() {
      const { raw, sql } = yield* chaosSql({})
      const where = sql`x > ${1}`
      expect(sql`SELECT x FROM t WHERE ${where}`.compile()[0]).toBe("SELECT x FROM t WHERE x > ?")
      yield* sql.withTransaction(
        Effect.zipRight(sql`INSERT INTO t ${sql.insert({ x: 1 })}`, sql`INSERT INTO t ${sql.insert({ x: 2 })}`)
      )
      expect(yield* sql<{ readonly x: number }>`SELECT x FROM t WHERE ${where}`).toEqual([{ x: 2 }])
      expect(sql.safe).toBe(sql)
      expect(yield* count(raw)).toBe(2)
    }))

  it.scoped("failureRate is deterministic from the seed; failed statements did not run", () =>
    Effect.gen(function*() {
      const pattern = (seed: number) =>
        Effect.gen(function*() {
          const { chaos, raw, sql } = yield* chaosSql({ failureRate: 0.3, seed })
          const failed = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) => Effect.map(Effect.either(sql`INSERT INTO t (x) VALUES (${i})`), Either.isLeft)
          )
          expect(yield* count(raw)).toBe(failed.filter((f) => !f).length)
          expect((yield* chaos.stats).failures).toBe(failed.filter(Boolean).length)
          return failed
        })
      const a = yield* pattern(3)
      expect(yield* pattern(3)).toEqual(a)
      expect(yield* pattern(4)).not.toEqual(a)
      expect(a.filter(Boolean).length).toBeGreaterThan(15)
      expect(a.filter(Boolean).length).toBeLessThan(45)
    }))

  it.scoped("latency and timeouts wait on the Clock; a timeout is 57014 (Timeout, outcome Unknown)", () =>
    Effect.gen(function*() {
      const slow = yield* chaosSql({ latency: "250 millis" })
      const fiber = yield* Effect.fork(slow.sql`INSERT INTO t (x) VALUES (1)`)
      yield* TestClock.adjust("249 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(yield* slow.chaos.stats).toMatchObject({ delayed: 1, totalDelay: Duration.millis(250) })

      const lost = yield* chaosSql({ timeoutRate: 1, timeout: "2 seconds", seed: 1 })
      const results = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const attempt = yield* Effect.fork(Effect.flip(lost.sql`INSERT INTO t (x) VALUES (${i})`))
          yield* TestClock.adjust("2 seconds")
          return yield* Fiber.join(attempt)
        }))
      for (const error of results) {
        expect(Sql.toDatabaseError("db", error)).toMatchObject({ reason: "Timeout", outcome: "Unknown", code: "57014" })
      }
      // Half the lost replies were applied.
      const landed = yield* count(lost.raw)
      expect(landed).toBeGreaterThan(3)
      expect(landed).toBeLessThan(17)
      expect((yield* lost.chaos.stats).timeouts).toBe(20)
    }))

  it.scoped("in front of ResilientSql: the outage opens the breaker, read-only mode, and recovery after it", () =>
    Effect.gen(function*() {
      const filename = yield* tempFile
      const context = yield* Layer.build(
        Sql.layer({ name: "orders", retry: false, healthCheck: { interval: "1 second" } }).pipe(
          Layer.provideMerge(Chaos.layerSql({ outages: [{ start: "10 seconds", duration: "20 seconds" }] })),
          Layer.provide(Sqlite.layerClient({ filename }))
        )
      )
      const db = Context.get(context, Sql.ResilientSql)
      yield* db.query((sql) => sql`CREATE TABLE t (x INTEGER)`)
      yield* TestClock.adjust("10 seconds")
      for (let i = 0; i < 3; i++) {
        expect(yield* Effect.flip(db.query((sql) => sql`SELECT 1`))).toMatchObject({ reason: "Unavailable" })
      }
      expect(yield* db.mode).toBe("ReadOnly")
      yield* TestClock.adjust("19 seconds")
      expect(yield* db.breaker.state).toBe("Open")
      yield* TestClock.adjust("2 seconds")
      expect(yield* db.breaker.state).toBe("HalfOpen")
      yield* db.query((sql) => sql`SELECT 1`)
      yield* db.query((sql) => sql`SELECT 1`)
      yield* db.query((sql) => sql`SELECT 1`)
      expect(yield* db.mode).toBe("ReadWrite")
    }))

  it.effect("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const fake = {} as SqlClient.SqlClient
      const field = (options: Chaos.SqlOptions) =>
        Effect.map(Effect.flip(Chaos.makeSql(fake, options)), (error) => error.field)
      expect(yield* field({ failureRate: 2 })).toBe("failureRate")
      expect(yield* field({ timeoutRate: -1 })).toBe("timeoutRate")
      expect(yield* field({ latency: ["2 seconds", "1 second"] })).toBe("latency")
      expect(yield* field({ outages: [{ start: 0, duration: "1 second", every: "1 second" }] })).toBe(
        "outages[0].every"
      )
      expect(yield* field({ seed: Number.NaN })).toBe("seed")
      expect(yield* field(null as never)).toBe("options")
    }))
})

describe("Chaos boundaries", () => {
  it.effect("rates at their bounds: 0 never fails, 1 always does, failureRate + timeoutRate may be exactly 1", () =>
    Effect.gen(function*() {
      const never = yield* Chaos.fail({ probability: 0, error: () => new Boom({ n: 0 }), seed: 1 })
      const always = yield* Chaos.fail({ probability: 1, error: () => new Boom({ n: 1 }), seed: 1 })
      expect((yield* failurePattern(200, never)).filter(Boolean).length).toBe(0)
      expect((yield* failurePattern(200, always)).filter(Boolean).length).toBe(200)
      const fake = {} as SqlClient.SqlClient
      expect(Either.isRight(yield* Effect.either(Chaos.makeSql(fake, { failureRate: 0.5, timeoutRate: 0.5 })))).toBe(
        true
      )
      const over = yield* Effect.flip(Chaos.makeSql(fake, { failureRate: 0.5, timeoutRate: 0.5000001 }))
      expect(over.field).toBe("failureRate, timeoutRate")
    }))

  it.effect("an outage window includes its start and excludes its end", () =>
    Effect.gen(function*() {
      const down = yield* Chaos.outage({ start: "10 seconds", duration: "5 seconds", error: () => new Boom({ n: 2 }) })
      const failsNow = Effect.map(Effect.either(down(Effect.void)), Either.isLeft)
      yield* TestClock.adjust("9999 millis")
      expect(yield* failsNow).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* failsNow).toBe(true)
      yield* TestClock.adjust("4999 millis")
      expect(yield* failsNow).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* failsNow).toBe(false)
    }))
})
