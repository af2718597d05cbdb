import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Cache from "../src/Cache.js"
import * as Chaos from "../src/Chaos.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as ResilientCache from "../src/ResilientCache.js"

const forever = { start: 0, duration: Duration.infinity }

/** A memory cache behind a chaos layer behind a resilient cache, with the chaos handle. */
const stack = (chaos: Chaos.CacheOptions, options: ResilientCache.Options) =>
  ResilientCache.layer(options).pipe(
    Layer.provideMerge(Chaos.layerCache(chaos)),
    Layer.provide(Cache.layerMemory())
  )

const services = Effect.all({
  cache: ResilientCache.ResilientCache,
  chaos: Chaos.CacheChaos
})

const callsReached = (chaos: Chaos.CacheChaosService) => Effect.map(chaos.stats, (stats) => stats.calls)

const fallbackCount = (name: string, operation: string, cause: ResilientCache.FallbackCause) =>
  Effect.map(
    Metric.value(
      ResilientCache.fallbacks.pipe(
        Metric.tagged("cache", name),
        Metric.tagged("operation", operation),
        Metric.tagged("cause", cause)
      )
    ),
    (state) => state.count
  )

/** A cache whose every operation fails with the given reason (or dies, for "Defect"). */
const failingCache = (
  reason: Cache.CacheError["reason"] | "Defect"
): Cache.CacheService & { readonly calls: () => number } => {
  let calls = 0
  const fail = (operation: Cache.CacheError["operation"], key: string) =>
    Effect.suspend(() => {
      calls++
      return reason === "Defect"
        ? Effect.die(new Error("bug in the cache"))
        : Effect.fail(new Cache.CacheError({ operation, key, reason, outcome: "NotApplied" }))
    })
  return {
    get: (key) => fail("get", key),
    set: (key) => fail("set", key),
    delete: (key) => fail("delete", key),
    invalidate: (prefix) => fail("invalidate", prefix),
    calls: () => calls
  }
}

describe("ResilientCache", () => {
  it.effect("passes operations through to a healthy cache and counts hits and misses", () =>
    Effect.gen(function*() {
      const { cache, chaos } = yield* services
      expect(yield* cache.get("user:1")).toEqual(Option.none())
      yield* cache.set("user:1", "Ada")
      yield* cache.set("user:2", "Grace")
      expect(yield* cache.get("user:1")).toEqual(Option.some("Ada"))
      expect(yield* cache.delete("user:1")).toBe(true)
      expect(yield* cache.invalidate("user:")).toBe(1)
      expect(yield* cache.get("user:2")).toEqual(Option.none())
      expect(yield* cache.stats).toEqual({ hits: 1, memoryHits: 0, misses: 2, fallbacks: 0, probeFallbacks: 0 })
      expect(yield* cache.degraded).toBe(false)
      expect(yield* callsReached(chaos)).toBe(7)
      const hits = yield* Metric.value(
        ResilientCache.hits.pipe(Metric.tagged("cache", "healthy"), Metric.tagged("source", "primary"))
      )
      const misses = yield* Metric.value(ResilientCache.misses.pipe(Metric.tagged("cache", "healthy")))
      expect(hits.count).toBe(1)
      expect(misses.count).toBe(2)
    }).pipe(Effect.provide(stack({}, { name: "healthy" }))))

  it.effect("answers every operation from the fallback table while the cache is down, never failing", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      const [faulty] = yield* Chaos.makeCache(base, { outages: [forever] })
      const cache = yield* ResilientCache.fromCache(faulty, { name: "table" })
      // The error channel is `never`: these assignments only compile because it is.
      const get: Effect.Effect<Option.Option<string>> = cache.get("k")
      const set: Effect.Effect<void> = cache.set("k", "v")
      const del: Effect.Effect<boolean> = cache.delete("k")
      const inv: Effect.Effect<number> = cache.invalidate("k")
      expect(yield* Effect.exit(set)).toEqual(Exit.void)
      expect(yield* Effect.exit(get)).toEqual(Exit.succeed(Option.none()))
      expect(yield* Effect.exit(del)).toEqual(Exit.succeed(false))
      expect(yield* Effect.exit(inv)).toEqual(Exit.succeed(0))
      // "success without storing": nothing reached the cache beneath.
      expect(yield* base.get("k")).toEqual(Option.none())
      expect(yield* cache.stats).toEqual({ hits: 0, memoryHits: 0, misses: 1, fallbacks: 4, probeFallbacks: 0 })
      for (const operation of ["get", "set", "delete", "invalidate"]) {
        expect(yield* fallbackCount("table", operation, "Failure")).toBe(1)
      }
    }).pipe(Effect.scoped))

  it.effect("opens the breaker after 5 consecutive failures, then stops calling the cache", () =>
    Effect.gen(function*() {
      const { cache, chaos } = yield* services
      for (let i = 0; i < 4; i++) yield* cache.get(`k${i}`)
      expect(yield* cache.breaker.state).toBe("Closed")
      expect(yield* cache.degraded).toBe(false)
      yield* cache.get("k4")
      expect(yield* cache.breaker.state).toBe("Open")
      expect(yield* cache.degraded).toBe(true)
      expect(yield* callsReached(chaos)).toBe(5)
      for (let i = 0; i < 20; i++) {
        expect(yield* cache.get(`k${i}`)).toEqual(Option.none())
        yield* cache.set(`k${i}`, "v")
      }
      expect(yield* callsReached(chaos)).toBe(5)
      expect(yield* fallbackCount("opens", "get", "Failure")).toBe(5)
      expect(yield* fallbackCount("opens", "get", "CircuitOpen")).toBe(20)
      expect(yield* fallbackCount("opens", "set", "CircuitOpen")).toBe(20)
      expect((yield* cache.stats).fallbacks).toBe(45)
      // 29 seconds later it is still open: the cache's default reset timeout is 30 seconds.
      yield* TestClock.adjust("29 seconds")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* cache.breaker.state).toBe("HalfOpen")
    }).pipe(Effect.provide(stack({ outages: [forever] }, { name: "opens" }))))

  it.effect("closes by itself once the outage ends: reset timeout, then 3 successful probes", () =>
    Effect.gen(function*() {
      const { cache, chaos } = yield* services
      yield* cache.set("kept", "v")
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 5; i++) yield* cache.get("kept")
      expect(yield* cache.breaker.state).toBe("Open")
      // Reset timeout passes during the outage: the probe fails and the breaker reopens.
      yield* TestClock.adjust("30 seconds")
      expect(yield* cache.get("kept")).toEqual(Option.none())
      expect(yield* cache.breaker.state).toBe("Open")
      expect(yield* callsReached(chaos)).toBe(7)
      // The outage ends at 61 s; the next open period ends at 61 s too.
      yield* TestClock.adjust("30 seconds")
      expect(yield* chaos.outageActive).toBe(false)
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      expect(yield* cache.degraded).toBe(true)
      expect(yield* cache.get("kept")).toEqual(Option.some("v"))
      expect(yield* cache.get("kept")).toEqual(Option.some("v"))
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      expect(yield* cache.get("kept")).toEqual(Option.some("v"))
      expect(yield* cache.breaker.state).toBe("Closed")
      expect(yield* cache.degraded).toBe(false)
      const transitions = (yield* cache.breaker.metrics).stateChanges
      expect(transitions).toBe(5) // Closed→Open→HalfOpen→Open→HalfOpen→Closed
    }).pipe(Effect.provide(stack({ outages: [{ start: "1 second", duration: "1 minute" }] }, { name: "recovers" }))))

  it.effect("bounds a hanging cache with the timeout, and answers at once when open", () =>
    Effect.gen(function*() {
      const { cache } = yield* services
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.fork(cache.get("k"))
        yield* TestClock.adjust("999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toEqual(Option.none())
      }
      expect(yield* fallbackCount("hangs", "get", "Timeout")).toBe(5)
      expect(yield* cache.breaker.state).toBe("Open")
      // Open: answered without waiting for the clock.
      const fiber = yield* Effect.fork(cache.set("k", "v"))
      yield* Effect.yieldNow()
      expect(yield* Fiber.join(fiber)).toBeUndefined()
      expect(yield* fallbackCount("hangs", "set", "CircuitOpen")).toBe(1)
    }).pipe(Effect.provide(stack({ outages: [{ ...forever, mode: "hang" }] }, { name: "hangs", timeout: "1 second" }))))

  it.effect("with memoryFallback, reads are answered from memory during an outage", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      const [faulty, chaos] = yield* Chaos.makeCache(base, { outages: [{ start: "1 minute", duration: "10 minutes" }] })
      const cache = yield* ResilientCache.fromCache(faulty, { name: "memory", memoryFallback: { capacity: 10 } })
      yield* cache.set("a", "1")
      yield* base.set("read-only-in-primary", "2")
      expect(yield* cache.get("read-only-in-primary")).toEqual(Option.some("2"))
      // A value gone from the primary is dropped from memory too.
      yield* cache.set("gone", "3")
      yield* base.delete("gone")
      expect(yield* cache.get("gone")).toEqual(Option.none())

      yield* TestClock.adjust("1 minute")
      expect(yield* chaos.outageActive).toBe(true)
      expect(yield* cache.get("a")).toEqual(Option.some("1"))
      expect(yield* cache.get("read-only-in-primary")).toEqual(Option.some("2"))
      expect(yield* cache.get("gone")).toEqual(Option.none())
      yield* cache.set("b", "written during the outage")
      expect(yield* cache.get("b")).toEqual(Option.some("written during the outage"))
      expect(yield* base.get("b")).toEqual(Option.none())
      expect(yield* cache.delete("a")).toBe(false)
      expect(yield* cache.get("a")).toEqual(Option.none())
      expect(yield* cache.invalidate("read-")).toBe(0)
      expect(yield* cache.get("read-only-in-primary")).toEqual(Option.none())
      const stats = yield* cache.stats
      expect(stats.memoryHits).toBe(3)
      expect(stats.hits).toBe(4)
      const memoryHits = yield* Metric.value(
        ResilientCache.hits.pipe(Metric.tagged("cache", "memory"), Metric.tagged("source", "memory"))
      )
      expect(memoryHits.count).toBe(3)
    }).pipe(Effect.scoped))

  it.effect("a memory copy made by a read keeps the entry's remaining TTL: no expired entry during an outage", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      const [faulty] = yield* Chaos.makeCache(base, { outages: [{ start: "1500 millis", duration: "10 minutes" }] })
      const cache = yield* ResilientCache.fromCache(faulty, { name: "copy-ttl", memoryFallback: true })
      // Written through the resilient cache, and written beside it: both live 1 second.
      yield* cache.set("through", "a", { ttl: "1 second" })
      yield* base.set("beside", "b", { ttl: "1 second" })
      yield* TestClock.adjust("500 millis")
      expect(yield* cache.get("through")).toEqual(Option.some("a"))
      expect(yield* cache.get("beside")).toEqual(Option.some("b"))
      // Still within their TTL during the outage (1.5 s): served from memory.
      yield* TestClock.adjust("499 millis")
      expect(yield* cache.get("beside")).toEqual(Option.some("b"))
      yield* TestClock.adjust("1001 millis")
      // 2 s: the outage is on and both entries have expired: the memory copy must not answer.
      expect(yield* cache.get("through")).toEqual(Option.none())
      expect(yield* cache.get("beside")).toEqual(Option.none())
      expect((yield* cache.stats).memoryHits).toBe(0)
    }).pipe(Effect.scoped))

  it.effect("a memory copy keeps the remaining TTL down to the millisecond, and no TTL stays no TTL", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory({ ttl: "1 hour" })
      const [faulty] = yield* Chaos.makeCache(base, { outages: [{ start: "10 seconds", duration: "10 hours" }] })
      const cache = yield* ResilientCache.fromCache(faulty, {
        name: "copy-ttl-edge",
        memoryFallback: { ttl: "1 minute" }
      })
      yield* base.set("short", "s", { ttl: "10001 millis" })
      yield* base.set("forever", "f", { ttl: Duration.infinity })
      // Set without a TTL through the resilient cache: the primary's default (1 hour), not memory's (1 minute).
      yield* cache.set("default", "d")
      expect(yield* cache.get("short")).toEqual(Option.some("s"))
      expect(yield* cache.get("forever")).toEqual(Option.some("f"))
      yield* TestClock.adjust("10 seconds")
      expect(yield* cache.get("short")).toEqual(Option.some("s"))
      yield* TestClock.adjust("1 millis")
      expect(yield* cache.get("short")).toEqual(Option.none())
      // Past memory's own TTL (1 minute), within the primary's default (1 hour).
      yield* TestClock.setTime(Duration.toMillis("2 minutes"))
      expect(yield* cache.get("default")).toEqual(Option.some("d"))
      yield* TestClock.setTime(Duration.toMillis("1 hour"))
      expect(yield* cache.get("default")).toEqual(Option.none())
      yield* TestClock.adjust("5 hours")
      expect(yield* cache.get("forever")).toEqual(Option.some("f"))
    }).pipe(Effect.scoped))

  it.effect("over a backend that cannot tell a TTL, reads copy nothing and drop a copy the primary contradicts", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      const plain: Cache.CacheService = {
        get: base.get,
        set: base.set,
        delete: base.delete,
        invalidate: base.invalidate
      }
      const [faulty] = yield* Chaos.makeCache(plain, { outages: [{ start: "1 minute", duration: "1 hour" }] })
      const cache = yield* ResilientCache.fromCache(faulty, { name: "no-ttl", memoryFallback: true })
      yield* cache.set("same", "1", { ttl: "10 minutes" })
      yield* cache.set("changed", "old", { ttl: "10 minutes" })
      yield* base.set("changed", "new")
      yield* base.set("beside", "b", { ttl: "1 second" })
      expect(yield* cache.get("same")).toEqual(Option.some("1"))
      expect(yield* cache.get("changed")).toEqual(Option.some("new"))
      expect(yield* cache.get("beside")).toEqual(Option.some("b"))
      yield* TestClock.adjust("1 minute")
      expect(yield* cache.get("same")).toEqual(Option.some("1"))
      expect(yield* cache.get("changed")).toEqual(Option.none())
      expect(yield* cache.get("beside")).toEqual(Option.none())
      expect((yield* cache.stats).memoryHits).toBe(1)
    }).pipe(Effect.scoped))

  it.effect("trusts a backend's own command timeout within its timeout, and races the rest", () =>
    Effect.gen(function*() {
      const hanging = (commandTimeout: Duration.DurationInput): Cache.CacheService => ({
        get: () => Effect.never,
        set: () => Effect.never,
        delete: () => Effect.never,
        invalidate: () => Effect.never,
        commandTimeout: Duration.decode(commandTimeout)
      })
      const within = yield* ResilientCache.fromCache(hanging("2 seconds"), { name: "trusted", timeout: "2 seconds" })
      const longer = yield* ResilientCache.fromCache(hanging("3 seconds"), { name: "raced", timeout: "2 seconds" })
      const trustedGet = yield* Effect.fork(within.get("k"))
      const trustedSet = yield* Effect.fork(within.set("k", "v"))
      const racedInvalidate = yield* Effect.fork(within.invalidate("k"))
      const racedGet = yield* Effect.fork(longer.get("k"))
      yield* TestClock.adjust("1999 millis")
      expect(racedInvalidate.unsafePoll()).toBeNull()
      expect(racedGet.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(racedInvalidate)).toBe(0)
      expect(yield* Fiber.join(racedGet)).toEqual(Option.none())
      expect(yield* fallbackCount("raced", "get", "Timeout")).toBe(1)
      // The backend said it bounds these itself: no timer of ours (this one never answers).
      yield* TestClock.adjust("1 hour")
      expect(trustedGet.unsafePoll()).toBeNull()
      expect(trustedSet.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(trustedGet)
      yield* Fiber.interrupt(trustedSet)
    }).pipe(Effect.scoped))

  it.effect("every row of the fallback table, for every cause, answers its fallback and counts that cause once", () =>
    Effect.gen(function*() {
      const causes = ["Failure", "Timeout", "Defect", "CircuitOpen"] as const
      for (const cause of causes) {
        const backend = failingCache(cause === "Failure" ? "Unavailable" : cause === "Timeout" ? "Timeout" : "Defect")
        const name = `table-${cause}`
        const cache = yield* ResilientCache.fromCache(backend, { name })
        if (cause === "CircuitOpen") yield* cache.breaker.forceOpen
        expect(yield* Effect.exit(cache.get("k"))).toEqual(Exit.succeed(Option.none()))
        expect(yield* Effect.exit(cache.set("k", "v"))).toEqual(Exit.void)
        expect(yield* Effect.exit(cache.delete("k"))).toEqual(Exit.succeed(false))
        expect(yield* Effect.exit(cache.invalidate("k"))).toEqual(Exit.succeed(0))
        expect(backend.calls()).toBe(cause === "CircuitOpen" ? 0 : 4)
        expect(yield* cache.stats).toEqual({ hits: 0, memoryHits: 0, misses: 1, fallbacks: 4, probeFallbacks: 0 })
        for (const operation of ["get", "set", "delete", "invalidate"]) {
          for (const counted of causes) {
            expect(yield* fallbackCount(name, operation, counted)).toBe(counted === cause ? 1 : 0)
          }
        }
      }
    }).pipe(Effect.scoped))

  it.effect("with memoryFallback, every row of the table also keeps memory in step", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      const [faulty] = yield* Chaos.makeCache(base, { outages: [{ start: "1 minute", duration: "1 hour" }] })
      const cache = yield* ResilientCache.fromCache(faulty, {
        name: "table-memory",
        memoryFallback: true,
        breaker: { failureThreshold: 100 }
      })
      yield* cache.set("a:1", "1")
      yield* cache.set("a:2", "2")
      yield* cache.set("b", "3")
      yield* TestClock.adjust("1 minute")
      // set: stored in memory only
      yield* cache.set("c", "4")
      expect(yield* cache.get("c")).toEqual(Option.some("4"))
      expect(yield* base.get("c")).toEqual(Option.none())
      // delete: removed from memory, still false
      expect(yield* cache.delete("b")).toBe(false)
      expect(yield* cache.get("b")).toEqual(Option.none())
      // invalidate: invalidated in memory, still 0
      expect(yield* cache.invalidate("a:")).toBe(0)
      expect(yield* cache.get("a:1")).toEqual(Option.none())
      expect(yield* cache.get("a:2")).toEqual(Option.none())
      // The backend still holds what it held: the fallbacks never claim a write reached it.
      expect(yield* base.get("b")).toEqual(Option.some("3"))
      expect(yield* base.get("a:1")).toEqual(Option.some("1"))
      expect(yield* cache.stats).toEqual({ hits: 1, memoryHits: 1, misses: 3, fallbacks: 7, probeFallbacks: 0 })
    }).pipe(Effect.scoped))

  it.effect("every failure reason but TooLarge and Protocol counts against the breaker", () =>
    Effect.gen(function*() {
      const reasons: ReadonlyArray<readonly [Cache.CacheError["reason"], boolean]> = [
        ["Unavailable", true],
        ["Timeout", true],
        ["OutOfMemory", true],
        ["Unknown", true],
        ["TooLarge", false],
        ["Protocol", false]
      ]
      for (const [reason, counts] of reasons) {
        const cache = yield* ResilientCache.fromCache(failingCache(reason), { name: `reason-${reason}` })
        for (let i = 0; i < 5; i++) yield* cache.get("k")
        expect([reason, yield* cache.breaker.state]).toEqual([reason, counts ? "Open" : "Closed"])
      }
    }).pipe(Effect.scoped))

  it.effect("no caller waits on a probe: its caller gets the fallback after probePatience, the probe decides", () =>
    Effect.gen(function*() {
      const { cache, chaos } = yield* services
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.fork(cache.get("k"))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(fiber)).toEqual(Option.none())
      }
      expect(yield* cache.breaker.state).toBe("Open")
      for (let period = 0; period < 3; period++) {
        yield* TestClock.adjust("30 seconds")
        expect(yield* cache.breaker.state).toBe("HalfOpen")
        const reached = yield* callsReached(chaos)
        // Reads and writes alike: the second probe is a write.
        const probe = yield* Effect.fork<Option.Option<string> | string, never, never>(
          period === 1 ? Effect.as(cache.set("k", "v"), "written") : cache.get("k")
        )
        yield* Effect.yieldNow()
        expect(probe.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        // The default patience is 1 ms: the probe's caller has its fallback, the probe runs on.
        expect(yield* Fiber.join(probe)).toEqual(period === 1 ? "written" : Option.none())
        expect(yield* callsReached(chaos)).toBe(reached + 1)
        // Meanwhile every read and write is answered at once, and none reaches the cache.
        for (let i = 0; i < 10; i++) {
          const read = yield* Effect.fork(cache.get(`k${i}`))
          const write = yield* Effect.fork(cache.set(`k${i}`, "v"))
          yield* Effect.yieldNow()
          expect(read.unsafePoll()).not.toBeNull()
          expect(write.unsafePoll()).not.toBeNull()
        }
        expect(yield* callsReached(chaos)).toBe(reached + 1)
        // The probe times out at 1 s in the background, and its failure reopens the breaker.
        expect(yield* cache.breaker.state).toBe("HalfOpen")
        yield* TestClock.adjust("998 millis")
        expect(yield* cache.breaker.state).toBe("HalfOpen")
        yield* TestClock.adjust("1 millis")
        expect(yield* cache.breaker.state).toBe("Open")
      }
      expect(yield* fallbackCount("patience", "get", "Timeout")).toBe(5)
      // Two reads and one write were probes answered after probePatience; the rest were refused.
      expect(yield* fallbackCount("patience", "get", "ProbePending")).toBe(2)
      expect(yield* fallbackCount("patience", "set", "ProbePending")).toBe(1)
      expect(yield* fallbackCount("patience", "get", "CircuitOpen")).toBe(30)
      expect(yield* fallbackCount("patience", "set", "CircuitOpen")).toBe(30)
      expect((yield* cache.stats).probeFallbacks).toBe(3)
      expect((yield* cache.breaker.metrics).failedCalls).toBe(8)
    }).pipe(
      Effect.provide(stack({ outages: [{ ...forever, mode: "hang" }] }, { name: "patience", timeout: "1 second" }))
    ))

  it.effect("a slow probe still closes the breaker; one that answers within probePatience answers its caller", () =>
    Effect.gen(function*() {
      for (const [patience, answered] of [[undefined, Option.none()], ["50 millis", Option.some("v")]] as const) {
        const base = yield* Cache.makeMemory()
        yield* base.set("k", "v", { ttl: "1 hour" })
        // A slow cache (20 ms per call) that hangs until 31 s.
        const [slow] = yield* Chaos.makeCache(base, {
          outages: [{ start: 0, duration: "31 seconds", mode: "hang" }],
          latency: "20 millis"
        })
        const cache = yield* ResilientCache.fromCache(slow, {
          name: `patience-${patience}`,
          timeout: "1 second",
          ...(patience === undefined ? {} : { probePatience: patience })
        })
        for (let i = 0; i < 5; i++) {
          const fiber = yield* Effect.fork(cache.get("k"))
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(fiber)
        }
        expect(yield* cache.breaker.state).toBe("Open")
        yield* TestClock.adjust("30 seconds")
        for (let probe = 0; probe < 3; probe++) {
          expect(yield* cache.breaker.state).toBe("HalfOpen")
          const fiber = yield* Effect.fork(cache.get("k"))
          yield* TestClock.adjust("20 millis")
          expect(yield* Fiber.join(fiber)).toEqual(answered)
        }
        expect(yield* cache.breaker.state).toBe("Closed")
      }
    }).pipe(Effect.scoped))

  it.effect("probePatience 0: a probe's caller is answered from the fallback at once, the probe runs on and decides", () =>
    Effect.gen(function*() {
      const base = yield* Cache.makeMemory()
      yield* base.set("k", "v", { ttl: "1 hour" })
      // Down until 31 s, then a healthy cache answering in 20 ms.
      const [slow] = yield* Chaos.makeCache(base, {
        outages: [{ start: 0, duration: "31 seconds", mode: "hang" }],
        latency: "20 millis"
      })
      const cache = yield* ResilientCache.fromCache(slow, { name: "patience-zero", timeout: "1 second", probePatience: 0 })
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.fork(cache.get("k"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
      }
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("30 seconds")
      for (let probe = 0; probe < 3; probe++) {
        expect(yield* cache.breaker.state).toBe("HalfOpen")
        // Answered without the clock moving: the caller never waits on the probe.
        expect(yield* cache.get("k")).toEqual(Option.none())
        expect((yield* cache.breaker.metrics).probesInFlight).toBe(1)
        yield* TestClock.adjust("20 millis")
      }
      expect(yield* cache.breaker.state).toBe("Closed")
      expect((yield* cache.stats).probeFallbacks).toBe(3)
      // Closed again: a read waits for the cache, as any call admitted while Closed does.
      const fresh = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("20 millis")
      expect(yield* Fiber.join(fresh)).toEqual(Option.some("v"))
    }).pipe(Effect.scoped))

  it.effect("its metrics carry the tags a caller sets with Effect.tagMetrics", () =>
    Effect.gen(function*() {
      const cache = yield* ResilientCache.fromCache(failingCache("Unavailable"), { name: "tagged" })
      const base = yield* Cache.makeMemory()
      const healthy = yield* ResilientCache.fromCache(base, { name: "tagged-healthy" })
      yield* base.set("k", "v")
      yield* Effect.all([cache.get("k"), healthy.get("k"), healthy.get("absent")]).pipe(
        Effect.tagMetrics("service", "checkout")
      )
      const withService = <T, I, O>(metric: Metric.Metric<T, I, O>) =>
        metric.pipe(Metric.tagged("service", "checkout"))
      const fallback = yield* Metric.value(withService(
        ResilientCache.fallbacks.pipe(
          Metric.tagged("cache", "tagged"),
          Metric.tagged("operation", "get"),
          Metric.tagged("cause", "Failure")
        )
      ))
      const hit = yield* Metric.value(withService(
        ResilientCache.hits.pipe(Metric.tagged("cache", "tagged-healthy"), Metric.tagged("source", "primary"))
      ))
      const miss = yield* Metric.value(
        withService(ResilientCache.misses.pipe(Metric.tagged("cache", "tagged-healthy")))
      )
      expect([fallback.count, hit.count, miss.count]).toEqual([1, 1, 1])
    }).pipe(Effect.scoped))

  it.effect("TooLarge and Protocol failures get the fallback but do not open the breaker", () =>
    Effect.gen(function*() {
      for (const reason of ["TooLarge", "Protocol"] as const) {
        const failing = failingCache(reason)
        const cache = yield* ResilientCache.fromCache(failing, { name: `ignored-${reason}` })
        for (let i = 0; i < 10; i++) {
          yield* cache.set("k", "v")
          expect(yield* cache.get("k")).toEqual(Option.none())
        }
        expect(failing.calls()).toBe(20)
        expect(yield* cache.breaker.state).toBe("Closed")
        expect(yield* fallbackCount(`ignored-${reason}`, "set", "Failure")).toBe(10)
      }
      // Any other reason counts.
      const failing = failingCache("OutOfMemory")
      const cache = yield* ResilientCache.fromCache(failing, { name: "counted" })
      for (let i = 0; i < 5; i++) yield* cache.set("k", "v")
      expect(yield* cache.breaker.state).toBe("Open")
    }).pipe(Effect.scoped))

  it.effect("a defect in the cache is answered by the fallback and counts as a failure", () =>
    Effect.gen(function*() {
      const failing = failingCache("Defect")
      const cache = yield* ResilientCache.fromCache(failing, { name: "defect" })
      for (let i = 0; i < 5; i++) expect(yield* cache.invalidate("p")).toBe(0)
      expect(yield* cache.breaker.state).toBe("Open")
      expect(yield* fallbackCount("defect", "invalidate", "Defect")).toBe(5)
    }).pipe(Effect.scoped))

  it.effect("does not turn the caller's interruption into a fallback", () =>
    Effect.gen(function*() {
      const { cache } = yield* services
      const fiber = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("1 hour")
      expect(fiber.unsafePoll()).toBeNull()
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect((yield* cache.stats).fallbacks).toBe(0)
      expect((yield* cache.breaker.metrics).failedCalls).toBe(0)
    }).pipe(
      Effect.provide(
        stack({ outages: [{ ...forever, mode: "hang" }] }, { name: "interrupt", timeout: Duration.infinity })
      )
    ))

  it.effect("provides Cache as the resilient cache, so code written against Cache never fails", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.Cache
      yield* cache.set("k", "v")
      expect(yield* Effect.either(cache.get("k"))).toEqual(Effect.runSync(Effect.either(Effect.succeedNone)))
      expect(yield* Effect.exit(cache.invalidate(""))).toEqual(Exit.succeed(0))
      const resilient = yield* ResilientCache.ResilientCache
      expect((yield* resilient.stats).fallbacks).toBe(3)
    }).pipe(
      Effect.provide(
        ResilientCache.layer({ name: "as-cache" }).pipe(
          Layer.provide(Chaos.layerCache({ outages: [forever] })),
          Layer.provide(Cache.layerMemory())
        )
      )
    ))

  it.effect("uses a breaker given in the options, so it can be shared and forced open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "shared" })
      const base = yield* Cache.makeMemory()
      const [faulty, chaos] = yield* Chaos.makeCache(base, {})
      const cache = yield* ResilientCache.fromCache(faulty, { name: "shared", breaker })
      expect(cache.breaker).toBe(breaker)
      yield* breaker.forceOpen
      expect(yield* cache.degraded).toBe(true)
      yield* cache.set("k", "v")
      expect(yield* callsReached(chaos)).toBe(0)
      yield* breaker.forceClosed
      expect(yield* cache.degraded).toBe(false)
      yield* cache.set("k", "v")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
    }).pipe(Effect.scoped))

  it.effect("passes breaker options through", () =>
    Effect.gen(function*() {
      const failing = failingCache("Unavailable")
      const cache = yield* ResilientCache.fromCache(failing, {
        name: "tuned",
        breaker: { failureThreshold: 2, resetTimeout: "5 seconds", successThreshold: 1 }
      })
      yield* cache.get("a")
      yield* cache.get("b")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("5 seconds")
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      expect(cache.breaker.name).toBe("tuned")
    }).pipe(Effect.scoped))

  it.effect("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const cases: Array<[ResilientCache.Options, string]> = [
        [{ name: "" }, "name"],
        [{ timeout: 0 }, "timeout"],
        [{ probePatience: -1 }, "probePatience"],
        [{ probePatience: "soon" as unknown as Duration.DurationInput }, "probePatience"],
        [{ memoryFallback: "yes" as unknown as boolean }, "memoryFallback"],
        [{ memoryFallback: { capacity: 0 } }, "capacity"],
        [{ breaker: { failureThreshold: 0 } }, "failureThreshold"],
        [{ breaker: "fast" as unknown as ResilientCache.Options["breaker"] }, "breaker"]
      ]
      // Options that are not an object follow the one rule of every constructor.
      for (const options of [null, 5, "fast", []]) {
        cases.push([options as unknown as ResilientCache.Options, "options"])
      }
      cases.push([{ memoryFallback: null as unknown as boolean }, "memoryFallback"])
      for (const [options, field] of cases) {
        const error = yield* Effect.flip(Effect.scoped(ResilientCache.fromCache(failingCache("Unknown"), options)))
        expect(error._tag).toBe("InvalidOptions")
        expect(error.field).toBe(field)
        expect(error.message).toContain(field)
      }
    }))

  it.effect("many concurrent callers during an outage all get answers; once open, none reaches the cache", () =>
    Effect.gen(function*() {
      const { cache, chaos } = yield* services
      const wave = Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) =>
          i % 2 === 0
            ? Effect.map(cache.get(`k${i}`), Option.isNone)
            : Effect.as(cache.set(`k${i}`, "v"), true),
        { concurrency: "unbounded" }
      )
      // A closed breaker admits every concurrent call: the first wave reaches the cache.
      const first = yield* wave
      expect(first.every((answered) => answered)).toBe(true)
      expect(yield* cache.breaker.state).toBe("Open")
      const reached = yield* callsReached(chaos)
      expect(reached).toBeGreaterThanOrEqual(5)
      const second = yield* wave
      expect(second.every((answered) => answered)).toBe(true)
      expect(yield* callsReached(chaos)).toBe(reached)
      expect((yield* cache.stats).fallbacks).toBe(400)
      expect(yield* fallbackCount("concurrent", "get", "CircuitOpen")).toBeGreaterThanOrEqual(100)
    }).pipe(Effect.provide(stack({ outages: [forever] }, { name: "concurrent" }))))
})
