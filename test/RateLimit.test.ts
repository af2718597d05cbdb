import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, Fiber, Metric, Random, Ref, Schedule, TestClock } from "effect"
import { InvalidOptions } from "../src/InvalidOptions.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Retry from "../src/Retry.js"
import { taggedMetric } from "./support/metrics.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const advance = (millis: number) => Effect.zipRight(TestClock.adjust(millis), Effect.yieldNow())

/** Tries one call now: the wait asked for in millis, or 0 when admitted. */
const attempt = (limiter: RateLimit.RejectingRateLimiter) =>
  limiter.acquire.pipe(
    Effect.as(0),
    Effect.catchTag("RateLimitExceeded", (error) => Effect.succeed(Duration.toMillis(error.retryAfter)))
  )

describe("RateLimit (reject mode)", () => {
  it.effect("token bucket: admits limit at once, then one per interval / limit, rejecting with retryAfter", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limit: 3, interval: "3 seconds", mode: "reject" })
      expect([yield* attempt(limiter), yield* attempt(limiter), yield* attempt(limiter)]).toEqual([0, 0, 0])
      expect(yield* attempt(limiter)).toBe(1000)
      yield* TestClock.adjust(400)
      expect(yield* attempt(limiter)).toBe(600)
      yield* TestClock.adjust(600)
      expect(yield* attempt(limiter)).toBe(0)
      expect(yield* attempt(limiter)).toBe(1000)
      // After a long idle period the bucket is full again, never fuller.
      yield* TestClock.adjust("1 hour")
      expect([yield* attempt(limiter), yield* attempt(limiter), yield* attempt(limiter)]).toEqual([0, 0, 0])
      expect(yield* attempt(limiter)).toBe(1000)
    }))

  it.effect("fixed window: admits limit per window opened by the first call", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({
        limit: 2,
        interval: "1 second",
        algorithm: "fixed-window",
        mode: "reject"
      })
      yield* TestClock.adjust(250)
      expect([yield* attempt(limiter), yield* attempt(limiter)]).toEqual([0, 0])
      expect(yield* attempt(limiter)).toBe(1000)
      yield* TestClock.adjust(400)
      expect(yield* attempt(limiter)).toBe(600)
      yield* TestClock.adjust(600)
      expect([yield* attempt(limiter), yield* attempt(limiter), yield* attempt(limiter)]).toEqual([0, 0, 1000])
    }))

  it.effect("at its edges: a token one millisecond early is refused, on time admitted (interval not divisible)", () =>
    Effect.gen(function*() {
      // 1000 / 3 rounds up to 334 ms per token, as Effect's RateLimiter.
      const bucket = yield* RateLimit.make({ limit: 3, interval: "1 second", mode: "reject" })
      expect([yield* attempt(bucket), yield* attempt(bucket), yield* attempt(bucket)]).toEqual([0, 0, 0])
      expect(yield* attempt(bucket)).toBe(334)
      yield* TestClock.adjust(333)
      expect(yield* attempt(bucket)).toBe(1)
      yield* TestClock.adjust(1)
      expect(yield* attempt(bucket)).toBe(0)
      // Two tokens' worth of time gives exactly two tokens.
      yield* TestClock.adjust(668)
      expect([yield* attempt(bucket), yield* attempt(bucket), yield* attempt(bucket)]).toEqual([0, 0, 334])

      const window = yield* RateLimit.make({
        limit: 1,
        interval: "1 second",
        algorithm: "fixed-window",
        mode: "reject"
      })
      expect(yield* attempt(window)).toBe(0)
      yield* TestClock.adjust(999)
      expect(yield* attempt(window)).toBe(1)
      yield* TestClock.adjust(1)
      expect(yield* attempt(window)).toBe(0)
      expect(yield* attempt(window)).toBe(1000)
    }))

  it.effect("fails at once with a typed error, without running the effect, and counts it", () =>
    Effect.gen(function*() {
      const name = uniqueName("typed")
      const limiter = yield* RateLimit.make({ name, limit: 1, interval: "1 minute", mode: "reject" })
      const runs = yield* Ref.make(0)
      const work = Ref.updateAndGet(runs, (n) => n + 1)
      expect(yield* limiter.run(work)).toBe(1)
      const error = yield* work.pipe(RateLimit.run(limiter), Effect.flip)
      expect(error).toBeInstanceOf(RateLimit.RateLimitExceeded)
      expect(error).toMatchObject({ _tag: "RateLimitExceeded", limiter: name, limit: 1 })
      expect(Duration.toMillis(error.interval)).toBe(60_000)
      expect(Duration.toMillis(error.retryAfter)).toBe(60_000)
      expect(error.message).toBe(`rate limiter "${name}" allows 1 calls per 1m: retry after 1m`)
      expect(yield* Ref.get(runs)).toBe(1)
      const pairs = yield* Metric.snapshot
      const rejected = pairs.find((pair) =>
        pair.metricKey.name === "effect_resilience_rate_limit_rejected_total" &&
        pair.metricKey.tags.some((label) => label.key === "limiter" && label.value === name)
      )
      expect((rejected?.metricState as { count: number } | undefined)?.count).toBe(1)
    }))

  it.effect("its rejection counter carries the tags set around the caller with Effect.tagMetrics", () =>
    Effect.gen(function*() {
      const name = uniqueName("tagged")
      const limiter = yield* RateLimit.make({ name, limit: 1, interval: "1 minute", mode: "reject" })
      const call = limiter.run(Effect.void).pipe(Effect.tagMetrics("service", "checkout"), Effect.exit)
      yield* call
      yield* call
      yield* call
      const tags = { limiter: name, service: "checkout" }
      expect((yield* taggedMetric("effect_resilience_rate_limit_rejected_total", tags))?.count).toBe(2)
    }))

  it.effect("admits exactly limit calls out of many concurrent fibers", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limit: 10, interval: "1 second", mode: "reject" })
      const exits = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => Effect.exit(limiter.run(Effect.yieldNow())),
        { concurrency: "unbounded" }
      )
      expect(exits.filter(Exit.isSuccess).length).toBe(10)
    }))

  it.effect("is Degraded for Retry.policy, which waits at least its retryAfter", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limit: 1, interval: "5 seconds", mode: "reject" })
      const runs = yield* Ref.make(0)
      const work = limiter.run(Ref.update(runs, (n) => n + 1))
      yield* work
      const error = yield* Effect.flip(work)
      expect(Retry.classify(error)).toBe("Degraded")
      const fiber = yield* Retry.policy({ schedules: { Degraded: Schedule.recurs(3) } })(work).pipe(Effect.fork)
      yield* advance(4999)
      expect(yield* Ref.get(runs)).toBe(1)
      expect(fiber.unsafePoll()).toBeNull()
      yield* advance(1)
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(runs)).toBe(2)
    }).pipe(Effect.withRandom(Random.fixed([0.5]))))
})

describe("RateLimit (wait mode)", () => {
  it.scoped("is Effect's RateLimiter: calls beyond the rate wait their turn", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make({ limit: 2, interval: "1 second" })
      const done = yield* Ref.make<ReadonlyArray<number>>([])
      const fibers = yield* Effect.forEach(
        [1, 2, 3, 4],
        (id) => Effect.fork(limiter(Ref.update(done, (ids) => [...ids, id]))),
        { concurrency: 1 }
      )
      yield* advance(0)
      expect(yield* Ref.get(done)).toEqual([1, 2])
      yield* advance(500)
      expect(yield* Ref.get(done)).toEqual([1, 2, 3])
      yield* advance(500)
      expect(yield* Ref.get(done)).toEqual([1, 2, 3, 4])
      yield* Effect.forEach(fibers, Fiber.join)
    }))
})

describe("RateLimit.make", () => {
  it.effect("fails with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const field = (options: RateLimit.RateLimit.Options & { readonly mode: "reject" }) =>
        Effect.map(Effect.flip(RateLimit.make(options)), (error) => error.field)
      expect(yield* field({ limit: 0, interval: "1 second", mode: "reject" })).toBe("limit")
      expect(yield* field({ limit: 1.5, interval: "1 second", mode: "reject" })).toBe("limit")
      expect(yield* field({ limit: 1, interval: 0, mode: "reject" })).toBe("interval")
      expect(yield* field({ limit: 1, interval: Duration.infinity, mode: "reject" })).toBe("interval")
      expect(yield* field({ limit: 1, interval: "1 second", algorithm: "leaky" as never, mode: "reject" })).toBe(
        "algorithm"
      )
      expect(yield* field({ limit: 1, interval: "1 second", mode: "drop" as never })).toBe("mode")
      const waiting = yield* Effect.scoped(Effect.either(RateLimit.make({ limit: -1, interval: "1 second" })))
      expect(Either.isLeft(waiting) && waiting.left.field).toBe("limit")
      for (const options of [null, undefined, 3, "four", [1]]) {
        const error = yield* Effect.scoped(Effect.flip(RateLimit.make(options as never)))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.field).toBe("options")
      }
    }))
})
