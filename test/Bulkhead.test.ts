import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Random, Ref, TestClock } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import * as Retry from "../src/Retry.js"
import { metricValue, taggedMetric } from "./support/metrics.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

/** Lets forked fibers run until they block. */
const settle = Effect.zipRight(Effect.yieldNow(), Effect.yieldNow())

/**
 * Starts call `id` through the bulkhead: once admitted it records `id` in `started` and
 * stays in flight until its gate is opened.
 */
const call = (bulkhead: Bulkhead.Bulkhead, started: Ref.Ref<ReadonlyArray<string>>, id: string) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const fiber = yield* bulkhead.run(
      Effect.zipRight(Ref.update(started, (ids) => [...ids, id]), Deferred.await(gate))
    ).pipe(Effect.as(id), Effect.fork)
    yield* settle
    return { gate, fiber, open: Deferred.succeed(gate, undefined) }
  })

describe("Bulkhead", () => {
  it.effect("runs 2, queues 2 and rejects the 5th at once (maxConcurrent 2, maxQueue 2)", () =>
    Effect.gen(function*() {
      const name = uniqueName("five")
      const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 2, maxQueue: 2 })
      const started = yield* Ref.make<ReadonlyArray<string>>([])
      const c1 = yield* call(bulkhead, started, "c1")
      const c2 = yield* call(bulkhead, started, "c2")
      const c3 = yield* call(bulkhead, started, "c3")
      const c4 = yield* call(bulkhead, started, "c4")
      expect(yield* Ref.get(started)).toEqual(["c1", "c2"])
      expect(yield* bulkhead.stats).toEqual({ active: 2, queued: 2, rejected: 0, maxConcurrent: 2, maxQueue: 2 })

      // The 5th fails at once, without the clock moving, and never runs.
      const fifth = yield* bulkhead.run(Ref.update(started, (ids) => [...ids, "c5"])).pipe(Effect.flip)
      expect(fifth).toBeInstanceOf(Bulkhead.BulkheadFull)
      expect(fifth).toMatchObject({ _tag: "BulkheadFull", bulkhead: name, maxConcurrent: 2, maxQueue: 2 })
      expect(fifth.message).toBe(`bulkhead "${name}" is full: 2 calls running and 2 waiting`)
      expect(yield* Ref.get(started)).toEqual(["c1", "c2"])

      expect((yield* metricValue("effect_resilience_bulkhead_active", "bulkhead", name))?.value).toBe(2)
      expect((yield* metricValue("effect_resilience_bulkhead_queued", "bulkhead", name))?.value).toBe(2)
      expect((yield* metricValue("effect_resilience_bulkhead_rejected_total", "bulkhead", name))?.count).toBe(1)

      // The queued calls run in arrival order as permits free up.
      yield* c2.open
      yield* settle
      expect(yield* Ref.get(started)).toEqual(["c1", "c2", "c3"])
      yield* c1.open
      yield* settle
      expect(yield* Ref.get(started)).toEqual(["c1", "c2", "c3", "c4"])
      yield* c3.open
      yield* c4.open
      expect(yield* Effect.all([c1, c2, c3, c4].map((c) => Fiber.join(c.fiber)))).toEqual(["c1", "c2", "c3", "c4"])
      expect(yield* bulkhead.stats).toEqual({ active: 0, queued: 0, rejected: 1, maxConcurrent: 2, maxQueue: 2 })
      expect((yield* metricValue("effect_resilience_bulkhead_active", "bulkhead", name))?.value).toBe(0)
      expect((yield* metricValue("effect_resilience_bulkhead_queued", "bulkhead", name))?.value).toBe(0)
    }))

  it.effect("skips an interrupted waiter and gives its place to the next", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: uniqueName("interrupted"), maxConcurrent: 1, maxQueue: 3 })
      const started = yield* Ref.make<ReadonlyArray<string>>([])
      const a = yield* call(bulkhead, started, "a")
      const b = yield* call(bulkhead, started, "b")
      const c = yield* call(bulkhead, started, "c")
      const d = yield* call(bulkhead, started, "d")
      expect((yield* bulkhead.stats).queued).toBe(3)
      yield* Fiber.interrupt(c.fiber)
      expect((yield* bulkhead.stats).queued).toBe(2)
      // The freed queue slot takes a newcomer.
      const e = yield* call(bulkhead, started, "e")
      expect((yield* bulkhead.stats).queued).toBe(3)
      yield* a.open
      yield* settle
      yield* b.open
      yield* settle
      yield* d.open
      yield* settle
      yield* e.open
      yield* settle
      expect(yield* Ref.get(started)).toEqual(["a", "b", "d", "e"])
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0, rejected: 0 })
    }))

  it.effect("gives a released permit to the oldest waiter, never to a newcomer (no barging)", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: uniqueName("barging"), maxConcurrent: 1, maxQueue: 1 })
      const started = yield* Ref.make<ReadonlyArray<string>>([])
      const record = (id: string) => Ref.update(started, (ids) => [...ids, id])
      const aGate = yield* Deferred.make<void>()
      // The fiber of A calls again (C) right after A's permit is released: C arrives while the
      // permit is on its way to B, before B has resumed. A semaphore that puts the permit
      // back (as Effect's does) lets C take it ahead of B.
      const a = yield* bulkhead.run(Effect.zipRight(record("a"), Deferred.await(aGate))).pipe(
        Effect.zipRight(bulkhead.run(record("c"))),
        Effect.fork
      )
      yield* settle
      const b = yield* call(bulkhead, started, "b")
      yield* Deferred.succeed(aGate, undefined)
      yield* settle
      expect(yield* Ref.get(started)).toEqual(["a", "b"])
      expect(yield* bulkhead.stats).toMatchObject({ active: 1, queued: 1 })
      yield* b.open
      yield* Fiber.join(a)
      expect(yield* Ref.get(started)).toEqual(["a", "b", "c"])
    }))

  it.effect("gives back a permit handed to a waiter that is interrupted before it resumes", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: uniqueName("handoff"), maxConcurrent: 1, maxQueue: 2 })
      const started = yield* Ref.make<ReadonlyArray<string>>([])
      const aGate = yield* Deferred.make<void>()
      const waiter = yield* Deferred.make<Fiber.RuntimeFiber<unknown, unknown>>()
      // A's fiber interrupts B right after A's permit was handed to B, before B could resume.
      const a = yield* bulkhead.run(Effect.zipRight(Ref.update(started, (ids) => [...ids, "a"]), Deferred.await(aGate)))
        .pipe(
          Effect.zipRight(Effect.flatMap(Deferred.await(waiter), Fiber.interrupt)),
          Effect.fork
        )
      yield* settle
      const b = yield* call(bulkhead, started, "b")
      yield* Deferred.succeed(waiter, b.fiber)
      yield* Deferred.succeed(aGate, undefined)
      yield* Fiber.join(a)
      expect(Exit.isInterrupted(yield* Fiber.await(b.fiber))).toBe(true)
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
      expect(yield* bulkhead.run(Effect.succeed("next"))).toBe("next")
    }))

  it.effect("frees the permit of a running call that is interrupted or fails", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: uniqueName("release"), maxConcurrent: 1, maxQueue: 1 })
      const started = yield* Ref.make<ReadonlyArray<string>>([])
      const a = yield* call(bulkhead, started, "a")
      const b = yield* call(bulkhead, started, "b")
      yield* Fiber.interrupt(a.fiber)
      yield* settle
      expect(yield* Ref.get(started)).toEqual(["a", "b"])
      yield* b.open
      yield* Fiber.join(b.fiber)
      expect(yield* bulkhead.run(Effect.fail("boom")).pipe(Effect.flip)).toBe("boom")
      expect(yield* bulkhead.stats).toMatchObject({ active: 0, queued: 0 })
    }))

  it.effect("never exceeds maxConcurrent and never leaks a permit under many fibers and random interruptions", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: uniqueName("storm"), maxConcurrent: 5, maxQueue: 20 })
      const running = yield* Ref.make(0)
      const highest = yield* Ref.make(0)
      const completed = yield* Ref.make(0)
      const work = (millis: number) =>
        Effect.acquireUseRelease(
          Ref.updateAndGet(running, (n) => n + 1).pipe(Effect.tap((n) => Ref.update(highest, (h) => Math.max(h, n)))),
          () => Effect.sleep(millis),
          () => Ref.update(running, (n) => n - 1)
        )
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (let i = 0; i < 300; i++) {
        const millis = yield* Random.nextIntBetween(1, 50)
        const fiber = yield* bulkhead.run(work(millis)).pipe(
          Effect.zipRight(Ref.update(completed, (n) => n + 1)),
          Effect.fork
        )
        fibers.push(fiber)
        // Interrupt about a third of the calls at a random moment: running, queued, or just handed a permit.
        if ((yield* Random.nextIntBetween(0, 3)) === 0) {
          const after = yield* Random.nextIntBetween(0, 30)
          yield* Effect.fork(Effect.delay(Fiber.interrupt(fiber), after))
        }
        if (i % 3 === 0) yield* TestClock.adjust(1)
      }
      for (let t = 0; t < 200; t++) {
        yield* TestClock.adjust(10)
        expect((yield* bulkhead.stats).active).toBeLessThanOrEqual(5)
      }
      yield* Effect.forEach(fibers, Fiber.await)
      const stats = yield* bulkhead.stats
      expect(stats.active).toBe(0)
      expect(stats.queued).toBe(0)
      expect(yield* Ref.get(running)).toBe(0)
      expect(yield* Ref.get(highest)).toBe(5)
      expect(stats.rejected).toBeGreaterThan(0)
      expect(yield* Ref.get(completed)).toBeGreaterThan(0)
      // Every permit came back: a full round of calls is admitted at once.
      const gates = yield* Deferred.make<void>()
      const round = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.fork(bulkhead.run(Deferred.await(gates))),
        { concurrency: "unbounded" }
      )
      yield* Effect.yieldNow()
      expect((yield* bulkhead.stats).active).toBe(5)
      yield* Deferred.succeed(gates, undefined)
      yield* Effect.forEach(round, Fiber.join)
    }).pipe(Effect.withRandom(Random.make("bulkhead-storm"))))

  it.effect("is Degraded for retries, and composes with Bulkhead.run in a pipe", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Deferred.await(gate).pipe(Bulkhead.run(bulkhead)))
      yield* settle
      const error = yield* Effect.void.pipe(Bulkhead.run(bulkhead), Effect.flip)
      expect(error.bulkhead).toBe("bulkhead")
      expect(Retry.classify(error)).toBe("Degraded")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      expect(yield* Bulkhead.run(Effect.succeed(7), bulkhead)).toBe(7)
      expect(Bulkhead.isBulkhead(bulkhead)).toBe(true)
      expect(Bulkhead.isBulkhead({})).toBe(false)
    }))

  it.effect("its metrics carry the tags set around the caller with Effect.tagMetrics", () =>
    Effect.gen(function*() {
      const name = uniqueName("tagged")
      const bulkhead = yield* Bulkhead.make({ name, maxConcurrent: 1, maxQueue: 1 })
      const gate = yield* Deferred.make<void>()
      const tagged = <A, E>(effect: Effect.Effect<A, E>) => Effect.tagMetrics(effect, "service", "checkout")
      const holder = yield* Effect.fork(tagged(bulkhead.run(Deferred.await(gate))))
      const waiter = yield* Effect.fork(tagged(bulkhead.run(Effect.void)))
      yield* settle
      const rejected = yield* Effect.exit(tagged(bulkhead.run(Effect.void)))
      expect(Exit.isFailure(rejected)).toBe(true)
      const tags = { bulkhead: name, service: "checkout" }
      expect((yield* taggedMetric("effect_resilience_bulkhead_active", tags))?.value).toBe(1)
      expect((yield* taggedMetric("effect_resilience_bulkhead_queued", tags))?.value).toBe(1)
      expect((yield* taggedMetric("effect_resilience_bulkhead_rejected_total", tags))?.count).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(waiter)
      expect((yield* taggedMetric("effect_resilience_bulkhead_active", tags))?.value).toBe(0)
      expect((yield* taggedMetric("effect_resilience_bulkhead_queued", tags))?.value).toBe(0)
    }))

  it.effect("fails with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const field = (options: Bulkhead.Bulkhead.Options) =>
        Effect.map(Effect.flip(Bulkhead.make(options)), (error) => error.field)
      expect(yield* field({ maxConcurrent: 0 })).toBe("maxConcurrent")
      expect(yield* field({ maxConcurrent: 1.5 })).toBe("maxConcurrent")
      expect(yield* field({} as never)).toBe("maxConcurrent")
      expect(yield* field({ maxConcurrent: 1, maxQueue: -1 })).toBe("maxQueue")
      expect(yield* field({ maxConcurrent: 1, name: "" })).toBe("name")
      // Anything but an object: one rule for every constructor, a typed failure naming "options".
      for (const options of [null, undefined, 3, "four", [1]]) {
        const error = yield* Effect.flip(Bulkhead.make(options as never))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.field).toBe("options")
      }
      const exit = yield* Effect.exit(Bulkhead.make({ maxConcurrent: 2, maxQueue: Number.POSITIVE_INFINITY }))
      expect(Exit.isSuccess(exit)).toBe(true)
    }))
})
