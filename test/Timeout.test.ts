import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Ref, TestClock } from "effect"
import { InvalidOptions } from "../src/InvalidOptions.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"

const advance = (millis: number) => Effect.zipRight(TestClock.adjust(millis), Effect.yieldNow())

describe("Timeout.timeout", () => {
  it.effect("interrupts a slow operation, runs its finalizer and fails naming operation and limit", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const finished = yield* Ref.make(false)
      const slow = Effect.sleep("10 seconds").pipe(
        Effect.zipRight(Ref.set(finished, true)),
        Effect.onInterrupt(() => Ref.set(finalized, true))
      )
      const fiber = yield* slow.pipe(Timeout.timeout("2 seconds", { operation: "GET /users" }), Effect.fork)
      yield* advance(1999)
      expect(yield* Ref.get(finalized)).toBe(false)
      expect(fiber.unsafePoll()).toBeNull()
      yield* advance(1)
      const exit = yield* Fiber.await(fiber)
      expect(yield* Ref.get(finalized)).toBe(true)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(exit)
      expect(error).toBeInstanceOf(Timeout.TimeoutError)
      expect(error._tag).toBe("TimeoutError")
      if (error._tag !== "TimeoutError") throw new Error("unreachable")
      expect(error.operation).toBe("GET /users")
      expect(Duration.toMillis(error.timeout)).toBe(2000)
      expect(error.message).toBe("operation \"GET /users\" timed out after 2s")
      // The operation never completed, even once the clock passes its own end.
      yield* advance(60_000)
      expect(yield* Ref.get(finished)).toBe(false)
    }))

  it.effect("waits for the interrupted operation's finalizers before failing", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const operation = Effect.never.pipe(
        Effect.ensuring(Effect.sleep("500 millis").pipe(Effect.zipRight(Effect.sync(() => order.push("released")))))
      )
      const fiber = yield* operation.pipe(
        Timeout.timeout("1 second", { operation: "slow release" }),
        Effect.catchTag("TimeoutError", () => Effect.sync(() => order.push("timed out"))),
        Effect.fork
      )
      yield* advance(1000)
      expect(order).toEqual([])
      yield* advance(500)
      yield* Fiber.join(fiber)
      expect(order).toEqual(["released", "timed out"])
    }))

  it.effect("returns the value of an operation that finishes in time, and passes its failures through", () =>
    Effect.gen(function*() {
      const quick = Effect.as(Effect.sleep("999 millis"), "done")
      const fiber = yield* Effect.fork(Timeout.timeout(quick, "1 second", { operation: "quick" }))
      yield* advance(999)
      expect(yield* Fiber.join(fiber)).toBe("done")
      const failed = yield* Effect.fail("boom").pipe(Timeout.timeout("1 second"), Effect.flip)
      expect(failed).toBe("boom")
    }))

  it.effect("names an unnamed operation and is Transient for retries", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.never.pipe(Timeout.timeout(250), Effect.flip, Effect.fork)
      yield* advance(250)
      const error = yield* Fiber.join(fiber)
      expect(error.operation).toBe("unnamed")
      expect(error.message).toBe("operation \"unnamed\" timed out after 250ms")
      expect(Retry.classify(error)).toBe("Transient")
    }))

  it.effect("adds nothing for an infinite limit", () =>
    Effect.gen(function*() {
      const effect = Effect.succeed(1)
      expect(Timeout.timeout(effect, Duration.infinity)).toBe(effect)
    }))

  it.effect("an operation that completes without suspending pays for no timer", () =>
    Effect.gen(function*() {
      const result = yield* Effect.succeed(21).pipe(
        Effect.map((n) => n * 2),
        Effect.zipLeft(Effect.sync(() => "side effect")),
        Timeout.timeout("1 second", { operation: "sync" })
      )
      expect(result).toBe(42)
      // Nothing sleeps on the clock afterwards: no timer was started.
      expect(yield* TestClock.sleeps()).toHaveLength(0)
    }))

  it.effect("an operation that suspends and finishes before the deadline returns its value", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.sleep("1500 millis").pipe(
        Effect.as("done"),
        Timeout.timeout("2 seconds", { operation: "async" }),
        Effect.fork
      )
      yield* advance(1500)
      expect(yield* Fiber.join(fiber)).toBe("done")
    }))

  it.effect("interrupting the caller interrupts the operation", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const fiber = yield* Effect.never.pipe(
        Effect.onInterrupt(() => Ref.set(finalized, true)),
        Timeout.timeout("1 minute", { operation: "never" }),
        Effect.fork
      )
      yield* advance(10)
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(finalized)).toBe(true)
    }))

  it.effect("the operation sees the caller's services", () =>
    Effect.gen(function*() {
      const read = Effect.map(Effect.context<never>(), () => "seen")
      expect(yield* read.pipe(Timeout.timeout("1 second"))).toBe("seen")
      const clockTime = yield* Effect.gen(function*() {
        yield* TestClock.setTime(123_456)
        return yield* Effect.clockWith((clock) => clock.currentTimeMillis).pipe(Timeout.timeout("1 second"))
      })
      expect(clockTime).toBe(123_456)
    }))

  it.effect("times out Effect.forever(Effect.sync(...)) at its deadline and stops it", () =>
    Effect.gen(function*() {
      let steps = 0
      const fiber = yield* Effect.forever(Effect.sync(() => steps++)).pipe(
        Timeout.timeout("100 millis", { operation: "spin" }),
        Effect.flip,
        Effect.fork
      )
      yield* advance(99)
      expect(fiber.unsafePoll()).toBeNull()
      expect(steps).toBeGreaterThan(0)
      yield* advance(1)
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("TimeoutError")
      expect(error.operation).toBe("spin")
      // Interrupted: it no longer runs.
      const after = steps
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      expect(steps).toBe(after)
    }))

  it.effect("times out a loop of Effect.yieldNow() before it ends", () =>
    Effect.gen(function*() {
      let steps = 0
      const loop = Effect.gen(function*() {
        for (let i = 0; i < 100_000; i++) {
          steps++
          yield* Effect.yieldNow()
        }
        return "finished"
      })
      const fiber = yield* loop.pipe(Timeout.timeout("100 millis"), Effect.either, Effect.fork)
      yield* advance(100)
      const result = yield* Fiber.join(fiber)
      expect(result._tag).toBe("Left")
      expect(steps).toBeGreaterThan(0)
      expect(steps).toBeLessThan(100_000)
    }))

  it.effect("other fibers keep running while a large synchronous forEach runs under a timeout", () =>
    Effect.gen(function*() {
      let other = 0
      let otherSeenDuringForEach = 0
      const ticker = yield* Effect.fork(Effect.forever(Effect.sync(() => other++)))
      const result = yield* Effect.forEach(
        Array.from({ length: 20_000 }, (_, i) => i),
        (i) => Effect.sync(() => {
          otherSeenDuringForEach = other
          return i
        })
      ).pipe(Timeout.timeout("1 minute", { operation: "forEach" }))
      yield* Fiber.interrupt(ticker)
      expect(result).toHaveLength(20_000)
      expect(result[19_999]).toBe(19_999)
      // The ticker ran between the forEach's steps: the operation yielded to it.
      expect(otherSeenDuringForEach).toBeGreaterThan(0)
    }))

  it.live("times out a spinning operation on the real clock, and timers of other fibers still fire", () =>
    Effect.gen(function*() {
      let timerFired = false
      yield* Effect.fork(Effect.zipRight(Effect.sleep("20 millis"), Effect.sync(() => (timerFired = true))))
      const error = yield* Effect.forever(Effect.sync(() => Math.sqrt(2))).pipe(
        Timeout.timeout("100 millis", { operation: "spin" }),
        Effect.flip
      )
      expect(error._tag).toBe("TimeoutError")
      expect(timerFired).toBe(true)
    }))

  it.effect("nested timeouts: the inner deadline interrupts a spinning operation", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forever(Effect.yieldNow()).pipe(
        Timeout.timeout("100 millis", { operation: "inner" }),
        Timeout.timeout("1 second", { operation: "outer" }),
        Effect.flip,
        Effect.fork
      )
      yield* advance(100)
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("TimeoutError")
      expect(error.operation).toBe("inner")
    }))

  it.effect("an operation that yields once and then completes still returns its value", () =>
    Effect.gen(function*() {
      const result = yield* Effect.succeed(21).pipe(
        Effect.zipLeft(Effect.yieldNow()),
        Effect.map((n) => n * 2),
        Timeout.timeout("1 second", { operation: "yields" })
      )
      expect(result).toBe(42)
    }))

  it("throws InvalidOptions for a limit that is not a positive duration or an empty operation name", () => {
    const field = (thunk: () => unknown) => {
      try {
        thunk()
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidOptions)
        return (error as InvalidOptions).field
      }
      return "nothing thrown"
    }
    expect(field(() => Timeout.timeout(Effect.void, 0))).toBe("duration")
    expect(field(() => Timeout.timeout(Effect.void, -5))).toBe("duration")
    expect(field(() => Timeout.timeout(Effect.void, "soon" as never))).toBe("duration")
    expect(field(() => Timeout.timeout(Effect.void, "1 second", { operation: " " }))).toBe("operation")
    for (const options of [null, 3, "four", [1]]) {
      expect(field(() => Timeout.timeout(Effect.void, "1 second", options as never))).toBe("options")
    }
  })
})
