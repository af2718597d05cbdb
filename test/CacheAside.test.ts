import { describe, expect, it } from "@effect/vitest"
import {
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Ref,
  Schema,
  TestClock
} from "effect"
import * as Cache from "../src/Cache.js"
import * as CacheAside from "../src/CacheAside.js"
import * as Chaos from "../src/Chaos.js"

/** A loader that counts its runs and waits for `gate`, answering `value-<run>`. */
const gatedLoad = Effect.gen(function*() {
  const runs = yield* Ref.make(0)
  const gate = yield* Deferred.make<void>()
  const load = Ref.updateAndGet(runs, (n) => n + 1).pipe(
    Effect.zipLeft(Deferred.await(gate)),
    Effect.map((n) => `value-${n}`)
  )
  return { gate, load, runs }
})

class SourceDown extends Data.TaggedError("SourceDown")<{ readonly attempt: number }> {}

const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

/** Snapshot of every CacheAside counter, to compare before and after. */
const counters = Effect.all({
  hits: count(CacheAside.metrics.hits),
  misses: count(CacheAside.metrics.misses),
  loads: count(CacheAside.metrics.loads),
  loadFailures: count(CacheAside.metrics.loadFailures),
  staleServed: count(CacheAside.metrics.staleServed),
  cacheErrors: count(CacheAside.metrics.cacheErrors)
})

const delta = (before: Effect.Effect.Success<typeof counters>) =>
  Effect.map(counters, (after) => ({
    hits: after.hits - before.hits,
    misses: after.misses - before.misses,
    loads: after.loads - before.loads,
    loadFailures: after.loadFailures - before.loadFailures,
    staleServed: after.staleServed - before.staleServed,
    cacheErrors: after.cacheErrors - before.cacheErrors
  }))

/** A loader that counts its runs and answers `value-N`. */
const countingLoader = Effect.map(Ref.make(0), (runs) => ({
  runs,
  load: Effect.map(Ref.updateAndGet(runs, (n) => n + 1), (n) => `value-${n}`)
}))

/** Collects the messages logged at Warning level. */
const captureWarnings = Effect.map(Ref.make<Array<string>>([]), (messages) => ({
  messages,
  layer: Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
        Effect.runSync(Ref.update(messages, (all) => [...all, String(Array.isArray(message) ? message[0] : message)]))
      }
    })
  )
}))

describe("CacheAside.get", () => {
  it.effect("loads on a miss, stores, serves from the cache while fresh, loads again after ttl", () =>
    Effect.gen(function*() {
      const { load, runs } = yield* countingLoader
      const before = yield* counters
      const first = yield* CacheAside.get("k", load, { ttl: "1 minute" })
      expect(first).toEqual({ value: "value-1", stale: false, age: Duration.zero, source: "Load" })
      yield* TestClock.adjust("30 seconds")
      const second = yield* CacheAside.get("k", load, { ttl: "1 minute" })
      expect(second).toEqual({ value: "value-1", stale: false, age: Duration.seconds(30), source: "Cache" })
      yield* TestClock.adjust("30 seconds")
      const third = yield* CacheAside.get("k", load, { ttl: "1 minute" })
      expect(third.value).toBe("value-2")
      expect(third.source).toBe("Load")
      expect(yield* Ref.get(runs)).toBe(2)
      expect(yield* delta(before)).toEqual({
        hits: 1,
        misses: 2,
        loads: 2,
        loadFailures: 0,
        staleServed: 0,
        cacheErrors: 0
      })
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("100 concurrent misses for one key run load exactly once and all get its value", () =>
    Effect.gen(function*() {
      const { gate, load, runs } = yield* gatedLoad
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const before = yield* counters
      const fibers = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        () => Effect.fork(aside.get("hot", load)),
        { concurrency: "unbounded" }
      )
      // every caller is now waiting on the one load
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      expect(yield* Ref.get(runs)).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.joinAll(fibers)
      expect(results.length).toBe(100)
      expect(results.every((r) => r.value === "value-1" && r.source === "Load")).toBe(true)
      expect(yield* Ref.get(runs)).toBe(1)
      const d = yield* delta(before)
      expect(d.loads).toBe(1)
      expect(d.misses).toBe(100)
      // and the value is now cached
      expect((yield* aside.get("hot", load)).source).toBe("Cache")
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("concurrent misses share the failure of the single load", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const load = Ref.updateAndGet(runs, (n) => n + 1).pipe(
        Effect.zipLeft(Effect.sleep("1 second")),
        Effect.flatMap((attempt) => Effect.fail(new SourceDown({ attempt })))
      )
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const fibers = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        () => Effect.fork(Effect.flip(aside.get("k", load))),
        { concurrency: "unbounded" }
      )
      yield* TestClock.adjust("1 second")
      const errors = yield* Fiber.joinAll(fibers)
      expect(errors.every((e) => e._tag === "SourceDown" && e.attempt === 1)).toBe(true)
      expect(yield* Ref.get(runs)).toBe(1)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("misses for one key on two different caches load once per cache", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const load = Ref.updateAndGet(runs, (n) => n + 1).pipe(Effect.delay("1 second"), Effect.map((n) => `v${n}`))
      const first = yield* Cache.makeMemory()
      const second = yield* Cache.makeMemory()
      const fibers = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Effect.fork(aside.get("k", load).pipe(Effect.provideService(Cache.Cache, i % 2 === 0 ? first : second))),
        { concurrency: "unbounded" }
      )
      yield* TestClock.adjust("1 second")
      const values = (yield* Fiber.joinAll(fibers)).map((r) => r.value)
      expect(yield* Ref.get(runs)).toBe(2)
      expect(new Set(values.filter((_, i) => i % 2 === 0)).size).toBe(1)
      expect(new Set(values.filter((_, i) => i % 2 === 1)).size).toBe(1)
      expect(values[0]).not.toBe(values[1])
    }))

  it.effect("misses on different keys load independently", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const load = (key: string) => Ref.update(runs, (n) => n + 1).pipe(Effect.delay("1 second"), Effect.as(key))
      const fibers = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => `k${i % 5}`),
        (key) => Effect.fork(aside.get(key, load(key))),
        { concurrency: "unbounded" }
      )
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.joinAll(fibers)
      expect(results.map((r) => r.value)).toEqual(Array.from({ length: 20 }, (_, i) => `k${i % 5}`))
      expect(yield* Ref.get(runs)).toBe(5)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("an interrupted leader does not strand its followers", () =>
    Effect.gen(function*() {
      const { gate, load, runs } = yield* gatedLoad
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const leader = yield* Effect.fork(aside.get("k", load))
      yield* Effect.yieldNow()
      const followers = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        () => Effect.fork(aside.get("k", load))
      )
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(leader)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.joinAll(followers)
      expect(results.every((r) => r.value === "value-1")).toBe(true)
      expect(yield* Ref.get(runs)).toBe(1)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("when every caller is interrupted, the load is interrupted and the next miss starts afresh", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(0)
      const runs = yield* Ref.make(0)
      const load = Ref.updateAndGet(runs, (n) => n + 1).pipe(
        Effect.zipLeft(Effect.sleep("1 minute")),
        Effect.map((n) => `value-${n}`),
        Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1))
      )
      const aside = yield* CacheAside.make({ ttl: "1 minute" })
      const callers = yield* Effect.forEach(
        Array.from({ length: 3 }, (_, i) => i),
        () => Effect.fork(aside.get("k", load))
      )
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      expect(yield* Ref.get(runs)).toBe(1)
      yield* Effect.forEach(callers, Fiber.interrupt)
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      expect(yield* Ref.get(interrupted)).toBe(1)
      const next = yield* Effect.fork(aside.get("k", load))
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(next)).value).toBe("value-2")
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("serves a stale copy when load fails, just under ttl + staleIfError, and not just over it", () =>
    Effect.gen(function*() {
      const warnings = yield* captureWarnings
      const failing = Effect.fail(new SourceDown({ attempt: 0 }))
      // written by a reader that keeps entries for 3 hours, so only the reader's age limit decides
      yield* CacheAside.get("k", Effect.succeed("v"), { ttl: "1 minute", staleIfError: "3 hours" })
      const options = { ttl: "1 minute", staleIfError: "1 hour" } as const
      const before = yield* counters

      yield* TestClock.adjust(Duration.subtract(Duration.minutes(61), Duration.millis(1)))
      const stale = yield* CacheAside.get("k", failing, options).pipe(Effect.provide(warnings.layer))
      expect(stale).toEqual({
        value: "v",
        stale: true,
        age: Duration.subtract(Duration.minutes(61), Duration.millis(1)),
        source: "Stale"
      })
      expect(yield* Ref.get(warnings.messages)).toEqual(["load failed: serving a stale cached value"])

      yield* TestClock.adjust(Duration.millis(2))
      const error = yield* Effect.flip(CacheAside.get("k", failing, options))
      expect(error).toEqual(new SourceDown({ attempt: 0 }))
      expect(yield* delta(before)).toMatchObject({ loads: 2, loadFailures: 2, staleServed: 1 })
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("keeps entries in the cache for ttl + staleIfError", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      yield* CacheAside.get("k", Effect.succeed("v"), { ttl: "1 minute", staleIfError: "10 minutes" })
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(11), Duration.millis(1)))
      expect(Option.isSome(yield* raw.get("k"))).toBe(true)
      const stale = yield* CacheAside.get("k", Effect.fail("down"), { ttl: "1 minute", staleIfError: "10 minutes" })
      expect(stale.stale).toBe(true)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* raw.get("k")).toEqual(Option.none())
    }).pipe(Effect.provide(Cache.layerMemory({ ttl: "1 second" }))))

  it.effect("staleIfError defaults to 1 hour and 0 disables it", () =>
    Effect.gen(function*() {
      yield* CacheAside.get("k", Effect.succeed("v"), { ttl: "1 minute", staleIfError: "1 day" })
      yield* TestClock.adjust("60 minutes")
      expect((yield* CacheAside.get("k", Effect.fail("down"), { ttl: "1 minute" })).stale).toBe(true)
      yield* TestClock.adjust("1 minute")
      expect(yield* Effect.flip(CacheAside.get("k", Effect.fail("down"), { ttl: "1 minute" }))).toBe("down")
      expect(
        yield* Effect.flip(CacheAside.get("k", Effect.fail("down"), { ttl: "1 minute", staleIfError: 0 }))
      ).toBe("down")
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("a defect in load is not answered with a stale copy", () =>
    Effect.gen(function*() {
      yield* CacheAside.get("k", Effect.succeed("v"), { ttl: "1 minute" })
      yield* TestClock.adjust("2 minutes")
      const exit = yield* Effect.exit(CacheAside.get("k", Effect.die("bug"), { ttl: "1 minute" }))
      expect(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.exists((c) => c._tag === "Die"))).toBe(true)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("over a cache that always fails, answers from load and never fails", () =>
    Effect.gen(function*() {
      const { load, runs } = yield* countingLoader
      const before = yield* counters
      const results = yield* Effect.forEach(
        Array.from({ length: 5 }, (_, i) => i),
        () => CacheAside.get("k", load, { ttl: "1 minute" })
      )
      expect(results.map((r) => r.value)).toEqual(["value-1", "value-2", "value-3", "value-4", "value-5"])
      expect(yield* Ref.get(runs)).toBe(5)
      // each read: a failed cache read and a failed cache write
      expect(yield* delta(before)).toMatchObject({ loads: 5, misses: 5, cacheErrors: 10 })
      const stats = yield* (yield* Chaos.CacheChaos).stats
      expect(stats.failures).toBe(10)
    }).pipe(Effect.provide(Chaos.layerCache({ failureRate: 1, seed: 1 }).pipe(Layer.provide(Cache.layerMemory())))))

  it.effect("over the degraded cache, loads every time", () =>
    Effect.gen(function*() {
      const { load, runs } = yield* countingLoader
      yield* CacheAside.get("k", load, { ttl: "1 minute" })
      yield* CacheAside.get("k", load, { ttl: "1 minute" })
      expect(yield* Ref.get(runs)).toBe(2)
    }).pipe(Effect.provide(Cache.layerDegraded)))

  it.effect("stores typed values through a schema; a payload that does not decode is a miss", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const Price = Schema.Struct({ sku: Schema.String, at: Schema.DateFromString })
      const prices = yield* CacheAside.make({ ttl: "1 minute", schema: Price })
      const price = { sku: "abc", at: new Date("2024-05-06T07:08:09.000Z") }
      expect((yield* prices.get("p", Effect.succeed(price))).value).toEqual(price)
      const cached = yield* prices.get("p", Effect.die("not called"))
      expect(cached.value).toEqual(price)
      expect(cached.value.at instanceof Date).toBe(true)
      const before = yield* count(Cache.decodeFailures)
      yield* raw.set("p", "{\"storedAt\":0,\"value\":{\"sku\":42}}")
      const reloaded = yield* prices.get("p", Effect.succeed({ ...price, sku: "new" }))
      expect(reloaded).toMatchObject({ source: "Load", value: { sku: "new" } })
      expect((yield* count(Cache.decodeFailures)) - before).toBe(1)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("invalid options fail with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const noTtl = yield* Effect.flip(CacheAside.make({} as CacheAside.Options))
      expect(noTtl).toMatchObject({ _tag: "InvalidOptions", field: "ttl" })
      const zero = yield* Effect.flip(CacheAside.get("k", Effect.succeed("v"), { ttl: 0 }))
      expect(zero).toMatchObject({ _tag: "InvalidOptions", field: "ttl" })
      const stale = yield* Effect.flip(
        CacheAside.make({ ttl: "1 minute", staleIfError: "forever" as Duration.DurationInput })
      )
      expect(stale).toMatchObject({ _tag: "InvalidOptions", field: "staleIfError" })
    }).pipe(Effect.provide(Cache.layerMemory())))
})
