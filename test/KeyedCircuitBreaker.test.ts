import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, Fiber, Logger, Schedule, Scope, Stream, TestClock } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Health from "../src/Health.js"
import { taggedMetric } from "./support/metrics.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const failOn = (keyed: CircuitBreaker.KeyedCircuitBreaker, key: string) =>
  Effect.fail("boom").pipe(keyed.protect(key), Effect.flip)

const stateOf = (keyed: CircuitBreaker.KeyedCircuitBreaker, key: string) =>
  Effect.flatMap(keyed.get(key), (breaker) => breaker.state)

describe("CircuitBreaker.keyed", () => {
  it.scoped("keeps one breaker per key: a key that opens leaves the others closed", () =>
    Effect.gen(function*() {
      const name = uniqueName("hosts")
      const keyed = yield* CircuitBreaker.keyed({ name, failureThreshold: 2 })
      yield* failOn(keyed, "a")
      yield* failOn(keyed, "a")
      expect(yield* stateOf(keyed, "a")).toBe("Open")
      expect(yield* stateOf(keyed, "b")).toBe("Closed")
      expect(yield* Effect.succeed(7).pipe(keyed.protect("b"))).toBe(7)
      const rejected = yield* Effect.succeed(7).pipe(keyed.protect("a"), Effect.flip)
      expect(rejected._tag).toBe("CircuitBreakerOpen")
      expect(rejected.breaker).toBe(`${name}:a`)
      expect((yield* keyed.get("b")).name).toBe(`${name}:b`)
      expect(yield* keyed.size).toBe(2)
    }))

  it.scoped("evicts the least recently used key first when over capacity; an evicted key comes back closed", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("lru"), capacity: 3, failureThreshold: 1 })
      yield* failOn(keyed, "a")
      yield* keyed.get("b")
      yield* keyed.get("c")
      yield* keyed.get("a") // a is now the most recently used
      expect(yield* keyed.keys).toEqual(["b", "c", "a"])
      yield* keyed.get("d")
      expect(yield* keyed.keys).toEqual(["c", "a", "d"])
      yield* keyed.get("e")
      expect(yield* keyed.keys).toEqual(["a", "d", "e"])
      expect(yield* stateOf(keyed, "a")).toBe("Open")
      // Reading a's state used it: d, then e, then a go.
      yield* keyed.get("f")
      expect(yield* keyed.keys).toEqual(["e", "a", "f"])
      yield* keyed.get("g")
      yield* keyed.get("h")
      // a was evicted: its state went with it.
      expect(yield* keyed.keys).toEqual(["f", "g", "h"])
      expect(yield* stateOf(keyed, "a")).toBe("Closed")
      expect(yield* keyed.size).toBe(3)
    }))

  it.scoped("invalidate drops a key's breaker; the next get makes a fresh one", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("invalidate"), failureThreshold: 1 })
      yield* failOn(keyed, "a")
      const before = yield* keyed.get("a")
      yield* keyed.invalidate("a")
      expect(yield* keyed.keys).toEqual([])
      const after = yield* keyed.get("a")
      expect(after).not.toBe(before)
      expect(yield* after.state).toBe("Closed")
      expect(yield* before.state).toBe("Open")
    }))

  it.scoped("evicts a key unused for idleTimeToLive, on read and by the background sweep", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("idle"), idleTimeToLive: "1 minute" })
      yield* keyed.get("a")
      yield* keyed.get("b")
      yield* TestClock.adjust("30 seconds")
      yield* Effect.void.pipe(keyed.protect("a"))
      yield* TestClock.adjust("40 seconds")
      // b unused for 70 s, a for 40 s.
      expect(yield* keyed.keys).toEqual(["a"])
      // Nobody reads: the sweep (every 30 s) evicts a by itself; its subscription ends.
      const b = yield* keyed.get("b")
      const ended = yield* b.changes.pipe(Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("2 minutes")
      const events = yield* Fiber.join(ended)
      expect(Chunk.size(events)).toBe(0)
      expect(yield* keyed.size).toBe(0)
    }))

  it.scoped("never evicts a key with a call in flight; it is idle from when its last call ends", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("busy"), idleTimeToLive: "1 minute", capacity: 2 })
      const gate = yield* Deferred.make<string>()
      const call = yield* Deferred.await(gate).pipe(keyed.protect("slow"), Effect.fork)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("5 minutes")
      expect(yield* keyed.keys).toEqual(["slow"])
      // Over capacity, the idle key goes before the busy one, though the busy one is older.
      yield* keyed.get("x")
      yield* keyed.get("y")
      expect(yield* keyed.keys).toEqual(["slow", "y"])
      yield* Deferred.succeed(gate, "done")
      expect(yield* Fiber.join(call)).toBe("done")
      const breaker = yield* keyed.get("slow")
      expect((yield* breaker.metrics).successfulCalls).toBe(1)
      yield* TestClock.adjust("59 seconds")
      // y was last used when it was made, before the call on slow ended.
      expect(yield* keyed.keys).toEqual(["y", "slow"])
      yield* TestClock.adjust("2 seconds")
      expect(yield* keyed.keys).toEqual([])
    }))

  it.scoped("over capacity with every key busy, evicts the least recently used anyway; its calls end on it", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("all-busy"), capacity: 1, failureThreshold: 1 })
      const gate = yield* Deferred.make<void>()
      const call = yield* Deferred.await(gate).pipe(
        Effect.zipRight(Effect.fail("boom")),
        keyed.protect("a"),
        Effect.fork
      )
      yield* Effect.yieldNow()
      const first = yield* keyed.get("a")
      yield* keyed.get("b")
      expect(yield* keyed.keys).toEqual(["b"])
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Effect.flip(Fiber.join(call))).toBe("boom")
      // Recorded on the breaker it started on, which opened and was dropped.
      expect((yield* first.metrics).failedCalls).toBe(1)
      expect(yield* first.state).toBe("Open")
      expect(yield* keyed.keys).toEqual(["b"])
      expect(yield* stateOf(keyed, "a")).toBe("Closed")
    }))

  it.scoped("gives many fibers asking for the same new key one breaker", () =>
    Effect.gen(function*() {
      // An open schedule whose step yields: making a breaker takes several fiber steps, so the
      // fibers really do ask for the key while its breaker is being made.
      const openSchedule = Schedule.spaced("1 minute").pipe(
        Schedule.modifyDelayEffect((_, delay) => Effect.as(Effect.yieldNow(), delay))
      )
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("race"), openSchedule })
      const breakers = yield* Effect.forEach(
        Array.from({ length: 200 }, () => keyed.get("new")),
        (get) => Effect.zipRight(Effect.yieldNow(), get),
        { concurrency: "unbounded" }
      )
      expect(new Set(breakers).size).toBe(1)
      const results = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => Effect.succeed(i).pipe(keyed.protect("other")),
        { concurrency: "unbounded" }
      )
      expect(results.length).toBe(100)
      expect(yield* keyed.size).toBe(2)
      expect((yield* (yield* keyed.get("other")).metrics).successfulCalls).toBe(100)
    }))

  it.scoped("ends an evicted key's subscriptions, whatever the subscriber's scope", () =>
    Effect.gen(function*() {
      const keyed = yield* CircuitBreaker.keyed({ name: uniqueName("subs"), capacity: 1 })
      const a = yield* keyed.get("a")
      const subscriberScope = yield* Scope.make()
      const stream = yield* Scope.extend(a.subscribe, subscriberScope)
      const collected = yield* stream.pipe(Stream.runCollect, Effect.fork)
      const viaChanges = yield* a.changes.pipe(Stream.runCollect, Effect.fork)
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      yield* a.forceOpen
      yield* Effect.yieldNow()
      yield* keyed.get("b") // evicts a
      const events = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      expect(events.map((event) => event.to)).toEqual(["ForcedOpen"])
      expect(Chunk.toReadonlyArray(yield* Fiber.join(viaChanges)).map((event) => event.to)).toEqual(["ForcedOpen"])
      // A subscription to an evicted key is empty at once.
      expect(Chunk.size(yield* Stream.runCollect(a.changes))).toBe(0)
      yield* Scope.close(subscriberScope, Exit.void)
    }))

  it.scoped("tags metrics by key only when asked, and at most maxTaggedKeys keys", () =>
    Effect.gen(function*() {
      const name = uniqueName("tagged")
      const keyed = yield* CircuitBreaker.keyed({ name, tagMetricsWithKey: true, maxTaggedKeys: 2 })
      for (const key of ["a", "b", "c"]) yield* Effect.void.pipe(keyed.protect(key))
      const calls = "effect_resilience_circuit_breaker_calls_total"
      expect((yield* taggedMetric(calls, { breaker: `${name}:a`, outcome: "success" }))?.count).toBe(1)
      expect((yield* taggedMetric(calls, { breaker: `${name}:b`, outcome: "success" }))?.count).toBe(1)
      expect(yield* taggedMetric(calls, { breaker: `${name}:c`, outcome: "success" })).toBeUndefined()
      // A tagged key evicted and made again keeps its tag (no new label set).
      yield* keyed.invalidate("a")
      yield* Effect.void.pipe(keyed.protect("a"))
      expect((yield* taggedMetric(calls, { breaker: `${name}:a`, outcome: "success" }))?.count).toBe(2)

      const plain = uniqueName("untagged")
      const untagged = yield* CircuitBreaker.keyed({ name: plain })
      yield* Effect.void.pipe(untagged.protect("a"))
      expect(yield* taggedMetric(calls, { breaker: `${plain}:a` })).toBeUndefined()
    }))

  it.effect("registers the keys in Health as one dependency", () =>
    Effect.gen(function*() {
      const name = uniqueName("tenants")
      const keyed = yield* CircuitBreaker.keyed({ name, failureThreshold: 1 })
      const dependency = () => Effect.map(Health.status, (status) => status.dependencies)
      let dependencies = yield* dependency()
      expect(dependencies.map((d) => [d.name, d.state])).toEqual([[name, "Operational"]])
      yield* keyed.get("a")
      yield* keyed.get("b")
      dependencies = yield* dependency()
      expect(dependencies.map((d) => d.name)).toEqual([name])
      expect(dependencies[0]!.breakers.map((b) => b.name)).toEqual([`${name}:a`, `${name}:b`])
      yield* failOn(keyed, "a")
      expect((yield* dependency())[0]!.state).toBe("Degraded")
      yield* failOn(keyed, "b")
      expect((yield* dependency())[0]!.state).toBe("Down")
      const found = yield* Health.breaker(`${name}:b`)
      expect(found.name).toBe(`${name}:b`)
      yield* keyed.invalidate("a")
      yield* keyed.invalidate("b")
      expect((yield* dependency())[0]!.state).toBe("Operational")
    }).pipe(Effect.scoped, Effect.provide(Health.layer()), Logger.withMinimumLogLevel("None" as never)))

  it.scoped("refuses invalid options, of the group or of the breakers, naming the field", () =>
    Effect.gen(function*() {
      const capacity = yield* Effect.flip(CircuitBreaker.keyed({ name: "k", capacity: 0 }))
      expect(capacity.field).toBe("capacity")
      const idle = yield* Effect.flip(CircuitBreaker.keyed({ name: "k", idleTimeToLive: -5 }))
      expect(idle.field).toBe("idleTimeToLive")
      const tag = yield* Effect.flip(CircuitBreaker.keyed({ name: "k", tagMetricsWithKey: "yes" as never }))
      expect(tag.field).toBe("tagMetricsWithKey")
      const threshold = yield* Effect.flip(CircuitBreaker.keyed({ name: "k", failureThreshold: 0 }))
      expect(threshold.field).toBe("failureThreshold")
      const name = yield* Effect.flip(CircuitBreaker.keyed({} as never))
      expect(name.field).toBe("name")
    }))

  it.effect("drops every key's breaker when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const keyed = yield* Scope.extend(CircuitBreaker.keyed({ name: uniqueName("scoped") }), scope)
      const a = yield* keyed.get("a")
      const changes = yield* a.changes.pipe(Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      yield* Scope.close(scope, Exit.void)
      expect(Chunk.size(yield* Fiber.join(changes))).toBe(0)
      expect(yield* keyed.size).toBe(0)
      // Used after its scope closed: a breaker still answers, but none is kept.
      expect(yield* Effect.succeed(1).pipe(keyed.protect("late"))).toBe(1)
      expect(yield* keyed.size).toBe(0)
    }))
})
