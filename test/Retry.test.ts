import { HttpClientError, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Config,
  ConfigProvider,
  Data,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Option,
  Random,
  Ref,
  Schedule,
  Schema,
  ScheduleDecision,
  TestClock
} from "effect"
import * as FastCheck from "effect/FastCheck"
import { ReplyError } from "ioredis"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import { CircuitBreakerOpen } from "../src/CircuitBreaker.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"
import { metricValue, taggedMetric } from "./support/metrics.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const nodeError = (code: string, message = `connect ${code} 127.0.0.1:6379`) =>
  Object.assign(new Error(message), { code, errno: -1, syscall: "connect" })

const http = (status: number, headers: Record<string, string> = {}) =>
  new HttpClientError.ResponseError({
    request: HttpClientRequest.get("http://127.0.0.1/resource"),
    response: HttpClientResponse.fromWeb(
      HttpClientRequest.get("http://127.0.0.1/resource"),
      new Response(null, { status, headers })
    ),
    reason: "StatusCode"
  })

/** An effect that fails with `error` on every attempt, and the count of its attempts. */
const failing = <E>(error: E) =>
  Effect.map(Ref.make(0), (attempts) => ({
    attempts,
    effect: Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(error))
  }))

/** Advances the test clock by `millis`, then lets woken fibers run. */
const advance = (millis: number) => Effect.zipRight(TestClock.adjust(millis), Effect.yieldNow())

/**
 * Forks `effect`, then walks `steps` ([millis to advance, attempts expected after it]) and
 * returns the fiber's exit.
 */
const timeline = <A, E>(
  effect: Effect.Effect<A, E>,
  attempts: Ref.Ref<number>,
  steps: ReadonlyArray<readonly [number, number]>
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* advance(0)
    const seen: Array<number> = []
    for (const [millis] of steps) {
      yield* advance(millis)
      seen.push(yield* Ref.get(attempts))
    }
    expect(seen).toEqual(steps.map(([, expected]) => expected))
    return yield* Fiber.await(fiber)
  })

/** The delays (ms) a schedule decides for up to `n` failures at time 0, until it is done. */
const delaysOf = (schedule: Schedule.Schedule<Duration.Duration>, n: number) =>
  Effect.gen(function*() {
    const delays: Array<number> = []
    let state = schedule.initial
    let now = 0
    for (let i = 0; i < n; i++) {
      const [next, out, decision] = yield* schedule.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) break
      delays.push(Duration.toMillis(out))
      state = next
      now += Duration.toMillis(out)
    }
    return delays
  })

const invalidField = (thunk: () => unknown): string => {
  try {
    thunk()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptions)
    return (error as InvalidOptions).field
  }
  throw new Error("expected InvalidOptions to be thrown")
}

describe("Retry.backoff", () => {
  it.effect("without jitter doubles from base and stops at max and maxRetries", () =>
    Effect.gen(function*() {
      const schedule = Retry.backoff({ base: "100 millis", factor: 2, max: "1 second", jitter: "none", maxRetries: 6 })
      expect(yield* delaysOf(schedule, 10)).toEqual([100, 200, 400, 800, 1000, 1000])
    }))

  it.effect("retries on the test clock at exactly those delays", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing("boom")
      const schedule = Retry.backoff({ base: "1 second", factor: 3, max: "5 seconds", jitter: "none", maxRetries: 3 })
      const exit = yield* timeline(Effect.retry(effect, schedule), attempts, [
        [999, 1],
        [1, 2],
        [2999, 2],
        [1, 3],
        [4999, 3],
        [1, 4],
        [60_000, 4]
      ])
      expect(exit).toEqual(Exit.fail("boom"))
    }))

  it.effect("draws full jitter from Random: uniform below the exponential delay", () =>
    Effect.gen(function*() {
      const schedule = Retry.backoff({ base: "100 millis", max: "10 seconds", jitter: "full", maxRetries: 4 })
      const delays = yield* delaysOf(schedule, 4).pipe(Effect.withRandom(Random.fixed([0.5, 0.25, 0, 0.999])))
      expect(delays).toEqual([50, 50, 0, 799.2])
    }))

  it.effect("draws decorrelated jitter between base and previous * factor, capped at max", () =>
    Effect.gen(function*() {
      const schedule = Retry.backoff({ base: "100 millis", factor: 3, max: "1 second", jitter: "decorrelated" })
      const highest = yield* delaysOf(schedule, 5).pipe(Effect.withRandom(Random.fixed([1])))
      expect(highest).toEqual([300, 900, 1000, 1000, 1000])
      const lowest = yield* delaysOf(schedule, 3).pipe(Effect.withRandom(Random.fixed([0])))
      expect(lowest).toEqual([100, 100, 100])
    }))

  it.effect("is deterministic under a seeded Random", () =>
    Effect.gen(function*() {
      const schedule = Retry.backoff({ jitter: "full", maxRetries: 20 })
      const a = yield* delaysOf(schedule, 20).pipe(Effect.withRandom(Random.make(42)))
      const b = yield* delaysOf(schedule, 20).pipe(Effect.withRandom(Random.make(42)))
      const c = yield* delaysOf(schedule, 20).pipe(Effect.withRandom(Random.make(43)))
      expect(a).toEqual(b)
      expect(a).not.toEqual(c)
    }))

  it.effect("stops before a retry would start later than maxElapsed after the first failure", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing("boom")
      // 1 s, 2 s, 4 s: retries at 1, 3, 7 s; the next (8 s) would start at 15 s > 10 s.
      const schedule = Retry.backoff({ base: "1 second", jitter: "none", maxElapsed: "10 seconds" })
      const exit = yield* timeline(Effect.retry(effect, schedule), attempts, [[1000, 2], [2000, 3], [4000, 4], [
        60_000,
        4
      ]])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it("keeps every delay finite and within [0, max] after 10,000 attempts (property)", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 1, max: 10_000 }),
        FastCheck.double({ min: 1, max: 100, noNaN: true }),
        FastCheck.integer({ min: 0, max: 1_000_000 }),
        FastCheck.constantFrom<Retry.Jitter>("full", "decorrelated", "none"),
        FastCheck.integer(),
        (base, factor, extra, jitter, seed) => {
          const max = base + extra
          const schedule = Retry.backoff({ base, factor, max, jitter })
          const delays = Effect.runSync(delaysOf(schedule, 10_000).pipe(Effect.withRandom(Random.make(seed))))
          expect(delays.length).toBe(10_000)
          const lower = jitter === "decorrelated" ? base : 0
          for (const delay of delays) {
            if (!(Number.isFinite(delay) && delay >= lower && delay <= max)) {
              throw new Error(`delay ${delay} out of [${lower}, ${max}]`)
            }
          }
          if (jitter === "none") {
            for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!)
          }
        }
      ),
      { numRuns: 30 }
    )
  })

  it("throws InvalidOptions naming the field", () => {
    expect(invalidField(() => Retry.backoff({ base: -1 }))).toBe("base")
    expect(invalidField(() => Retry.backoff({ base: "1 minute", max: "1 second" }))).toBe("max")
    expect(invalidField(() => Retry.backoff({ factor: 0.5 }))).toBe("factor")
    expect(invalidField(() => Retry.backoff({ factor: Number.POSITIVE_INFINITY }))).toBe("factor")
    expect(invalidField(() => Retry.backoff({ jitter: "equal" as never }))).toBe("jitter")
    expect(invalidField(() => Retry.backoff({ maxRetries: 1.5 }))).toBe("maxRetries")
    expect(invalidField(() => Retry.backoff({ maxElapsed: "forever" as never }))).toBe("maxElapsed")
    expect(() => Retry.backoff({ factor: 0 })).toThrow(
      /Retry.backoff: invalid option "factor": expected a finite number >= 1/
    )
  })
})

class Custom extends Data.TaggedError("Custom")<{ readonly retryAfter?: Duration.DurationInput }> {}

describe("Retry.classify", () => {
  it("knows connection errors, timeouts, Redis and HTTP statuses", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]) {
      expect(Retry.classify(nodeError(code)), code).toBe("Transient")
    }
    expect(Retry.classify(nodeError("ENOTFOUND", "getaddrinfo ENOTFOUND db.internal"))).toBe("Persistent")
    expect(Retry.classify(new ReplyError("OOM command not allowed when used memory > 'maxmemory'."))).toBe("Degraded")
    expect(Retry.classify(new ReplyError("LOADING Redis is loading the dataset in memory"))).toBe("Persistent")
    expect(Retry.classify(new ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")))
      .toBe("Fatal")
    expect(Retry.classify(http(429))).toBe("Degraded")
    expect(Retry.classify(http(500))).toBe("Transient")
    expect(Retry.classify(http(503))).toBe("Transient")
    expect(Retry.classify(http(408))).toBe("Transient")
    expect(Retry.classify(http(400))).toBe("Fatal")
    expect(Retry.classify(http(404))).toBe("Fatal")
    expect(Retry.classify({ statusCode: 502 })).toBe("Transient")
    expect(Retry.classify({ status: 429 })).toBe("Degraded")
    expect(Retry.classify({ response: { status: 403 } })).toBe("Fatal")
    expect(Retry.classify({ code: "40001", message: "could not serialize access" })).toBe("Transient")
    expect(Retry.classify({ code: "23505", message: "duplicate key value" })).toBe("Fatal")
  })

  it.effect("knows the timeouts of Timeout and of Effect", () =>
    Effect.gen(function*() {
      const ours = yield* Effect.never.pipe(Timeout.timeout("1 second", { operation: "op" }), Effect.flip, Effect.fork)
      const effects = yield* Effect.never.pipe(Effect.timeout("1 second"), Effect.flip, Effect.fork)
      yield* advance(1000)
      const timeoutError = yield* Fiber.join(ours)
      const timeoutException = yield* Fiber.join(effects)
      expect(timeoutError._tag).toBe("TimeoutError")
      expect(timeoutException._tag).toBe("TimeoutException")
      expect(Retry.classify(timeoutError)).toBe("Transient")
      expect(Retry.classify(timeoutException)).toBe("Transient")
    }))

  it.effect("knows parse, syntax and config errors as Fatal", () =>
    Effect.gen(function*() {
      const parseError = yield* Schema.decodeUnknown(Schema.Number)("nope").pipe(Effect.flip)
      const configError = yield* Config.integer("PORT").pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["PORT", "abc"]]))),
        Effect.flip
      )
      const syntaxError = Either.try(() => JSON.parse("{")).pipe(Either.flip, Either.getOrThrow)
      const invalidOptions = Either.try(() => Retry.backoff({ factor: 0 })).pipe(Either.flip, Either.getOrThrow)
      expect(Retry.classify(parseError)).toBe("Fatal")
      expect(Retry.classify(configError)).toBe("Fatal")
      expect(Retry.classify(syntaxError)).toBe("Fatal")
      expect(Retry.classify(invalidOptions)).toBe("Fatal")
    }))

  it("follows the cause chain, and calls what it does not know Degraded", () => {
    const fetchFailed = new TypeError("fetch failed", { cause: nodeError("ECONNREFUSED") })
    expect(Retry.classify(fetchFailed)).toBe("Transient")
    const transport = new HttpClientError.RequestError({
      request: HttpClientRequest.get("http://127.0.0.1/"),
      reason: "Transport",
      cause: nodeError("ENOTFOUND")
    })
    expect(Retry.classify(transport)).toBe("Persistent")
    const bareTransport = new HttpClientError.RequestError({
      request: HttpClientRequest.get("http://127.0.0.1/"),
      reason: "Transport"
    })
    expect(Retry.classify(bareTransport)).toBe("Transient")
    expect(Retry.classify(new Error("something odd"))).toBe("Degraded")
    expect(Retry.classify("a string")).toBe("Degraded")
    expect(Retry.classify(undefined)).toBe("Degraded")
  })

  it("classifies a breaker's rejection as Transient", () => {
    const open = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(30), reason: "Open" })
    expect(Retry.classify(open)).toBe("Transient")
  })

  it("extends with classifyWith, before the default", () => {
    const classifier = Retry.classifyWith<unknown>((error) =>
      error instanceof Custom ? Option.some("Persistent") : Option.none()
    )
    expect(classifier(new Custom({}))).toBe("Persistent")
    expect(classifier(http(404))).toBe("Fatal")
    const strict = Retry.classifyWith<unknown>(
      (error) => Retry.classify(error) === "Degraded" ? Option.some("Fatal") : Option.none()
    )
    expect(strict(new Error("unknown"))).toBe("Fatal")
    expect(strict(http(503))).toBe("Transient")
  })
})

describe("Retry-After", () => {
  it("parses delay-seconds and the three HTTP-date forms", () => {
    const now = Date.parse("2015-10-21T07:28:00Z")
    const millis = (value: string) => Option.map(Retry.parseRetryAfter(value, now), Duration.toMillis)
    expect(millis("120")).toEqual(Option.some(120_000))
    expect(millis(" 0 ")).toEqual(Option.some(0))
    expect(millis("Wed, 21 Oct 2015 07:28:30 GMT")).toEqual(Option.some(30_000))
    expect(millis("Wednesday, 21-Oct-15 07:29:00 GMT")).toEqual(Option.some(60_000))
    expect(millis("Wed Oct 21 07:28:05 2015")).toEqual(Option.some(5_000))
    expect(millis("Wed, 21 Oct 2015 07:00:00 GMT")).toEqual(Option.some(0))
    expect(millis("soon")).toEqual(Option.none())
    expect(millis("-5")).toEqual(Option.none())
    expect(millis("1.5")).toEqual(Option.none())
  })

  it("reads retryAfter fields and retry-after headers", () => {
    const millis = (error: unknown) => Option.map(Retry.retryAfter(error, 0), Duration.toMillis)
    expect(millis(new Custom({ retryAfter: "3 seconds" }))).toEqual(Option.some(3000))
    expect(millis(new Custom({ retryAfter: Duration.millis(250) }))).toEqual(Option.some(250))
    expect(millis(http(429, { "retry-after": "7" }))).toEqual(Option.some(7000))
    expect(millis({ headers: new Headers({ "Retry-After": "2" }) })).toEqual(Option.some(2000))
    expect(millis(new Error("wrapped", { cause: new Custom({ retryAfter: "1 second" }) }))).toEqual(Option.some(1000))
    expect(millis(http(500))).toEqual(Option.none())
    const forced = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.infinity, reason: "ForcedOpen" })
    expect(millis(forced)).toEqual(Option.some(Number.POSITIVE_INFINITY))
  })
})

describe("Retry.policy", () => {
  // Jitter drawn as 0.5: each jittered delay is half the exponential one.
  const half = Effect.withRandom(Random.fixed([0.5]))

  it.effect("retries Transient errors twice at once, then with short backoff: 6 attempts", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(nodeError("ECONNRESET"))
      const exit = yield* timeline(Retry.policy()(effect).pipe(half), attempts, [
        [0, 3],
        [49, 3],
        [1, 4],
        [99, 4],
        [1, 5],
        [199, 5],
        [1, 6],
        [600_000, 6]
      ])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("retries Degraded errors with exponential jittered backoff: 6 attempts", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing({ status: 429 })
      const exit = yield* timeline(Retry.policy()(effect).pipe(half), attempts, [
        [499, 1],
        [1, 2],
        [999, 2],
        [1, 3],
        [1999, 3],
        [1, 4],
        [3999, 4],
        [1, 5],
        [7999, 5],
        [1, 6],
        [600_000, 6]
      ])
      expect(exit).toEqual(Exit.fail({ status: 429 }))
    }))

  it.effect("retries Persistent errors after long delays: 4 attempts", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(nodeError("ENOTFOUND"))
      const exit = yield* timeline(Retry.policy()(effect).pipe(half), attempts, [
        [4999, 1],
        [1, 2],
        [9999, 2],
        [1, 3],
        [19_999, 3],
        [1, 4],
        [600_000, 4]
      ])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("never retries Fatal errors", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(http(404))
      const exit = yield* Effect.exit(Retry.policy()(effect))
      expect(yield* Ref.get(attempts)).toBe(1)
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("runs a succeeding effect once and returns its value", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const value = yield* Retry.policy()(Effect.as(Ref.update(attempts, (n) => n + 1), "ok"))
      expect(value).toBe("ok")
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it.effect("returns the first success after failures", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const flaky = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => n < 3 ? Effect.fail(nodeError("ECONNRESET")) : Effect.succeed(n)
      )
      expect(yield* Retry.policy()(flaky)).toBe(3)
    }))

  it.effect("uses the schedules given per class, keeping a separate count per class", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      // Transient, Degraded, Transient, Degraded, ...
      const alternating = Effect.flatMap(
        Ref.updateAndGet(attempts, (n) => n + 1),
        (n) => Effect.fail(n % 2 === 1 ? { status: 503 } : { status: 429 })
      )
      const retrying = Retry.policy({
        schedules: {
          Transient: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))),
          Degraded: Schedule.spaced("10 seconds").pipe(Schedule.intersect(Schedule.recurs(5)))
        }
      })
      // Attempt 1 (503) +1s, 2 (429) +10s, 3 (503) +1s, 4 (429) +10s, 5 (503): Transient exhausted.
      const exit = yield* timeline(retrying(alternating), attempts, [
        [1000, 2],
        [9999, 2],
        [1, 3],
        [1000, 4],
        [10_000, 5],
        [600_000, 5]
      ])
      expect(exit).toEqual(Exit.fail({ status: 503 }))
    }))

  it.effect("honours Retry-After in seconds: never sooner, even when the schedule says sooner", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(http(429, { "retry-after": "30" }))
      const retrying = Retry.policy({ schedules: { Degraded: Schedule.recurs(2) } })
      const exit = yield* timeline(retrying(effect), attempts, [[29_999, 1], [1, 2], [29_999, 2], [1, 3], [60_000, 3]])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("honours Retry-After as an HTTP date", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2030-01-01T00:00:00Z"))
      const { attempts, effect } = yield* failing(http(503, { "retry-after": "Tue, 01 Jan 2030 00:00:45 GMT" }))
      const retrying = Retry.policy({ schedules: { Transient: Schedule.recurs(1) } })
      const exit = yield* timeline(retrying(effect), attempts, [[44_999, 1], [1, 2], [600_000, 2]])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("takes the schedule's delay when it is longer than retryAfter", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(new Custom({ retryAfter: "1 second" }))
      const retrying = Retry.policy({
        schedules: { Degraded: Schedule.spaced("5 seconds").pipe(Schedule.intersect(Schedule.recurs(1))) }
      })
      const exit = yield* timeline(retrying(effect), attempts, [[1000, 1], [3999, 1], [1, 2], [60_000, 2]])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("fails at once when retryAfter exceeds maxRetryAfter", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(http(429, { "retry-after": "3600" }))
      const exit = yield* Effect.exit(Retry.policy({ maxRetryAfter: "1 minute" })(effect))
      expect(yield* Ref.get(attempts)).toBe(1)
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("ends its retries at once on a breaker's rejection, whatever its class or retryAfter", () =>
    Effect.gen(function*() {
      for (const reason of ["Open", "HalfOpenFull", "ForcedOpen"] as const) {
        for (const retryAfter of [Duration.zero, Duration.seconds(20), Duration.infinity]) {
          const rejection = new CircuitBreakerOpen({ breaker: "db", retryAfter, reason })
          const { attempts, effect } = yield* failing(rejection)
          const retrying = Retry.policy({ schedules: { Transient: Schedule.recurs(5) } })
          const fiber = yield* Effect.fork(retrying(effect))
          yield* Effect.yieldNow()
          // No clock time passes: the fiber is done without the clock moving.
          const exit = fiber.unsafePoll()
          expect(exit).toEqual(Exit.fail(rejection))
          expect(yield* Ref.get(attempts)).toBe(1)
        }
      }
      // Wrapped in a caller's error (as its cause), it still ends the retries.
      const wrapped = new Custom({})
      Object.assign(wrapped, {
        cause: new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.zero, reason: "Open" })
      })
      const { attempts, effect } = yield* failing(wrapped)
      yield* Effect.exit(Retry.policy({ schedules: { Degraded: Schedule.recurs(5) } })(effect))
      expect(yield* Ref.get(attempts)).toBe(1)
      expect(yield* TestClock.currentTimeMillis).toBe(0)
    }))

  it.effect("with waitOutOpenBreaker, waits out an open breaker's retryAfter, never a forced-open one", () =>
    Effect.gen(function*() {
      const open = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(20), reason: "Open" })
      const opened = yield* failing(open)
      const retrying = Retry.policy({ schedules: { Transient: Schedule.recurs(1) }, waitOutOpenBreaker: true })
      yield* timeline(retrying(opened.effect), opened.attempts, [[19_999, 1], [1, 2]])

      const forced = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.infinity, reason: "ForcedOpen" })
      const forcedOpen = yield* failing(forced)
      const exit = yield* Effect.exit(Retry.policy({ waitOutOpenBreaker: true })(forcedOpen.effect))
      expect(yield* Ref.get(forcedOpen.attempts)).toBe(1)
      expect(exit).toEqual(Exit.fail(forced))
    }))

  it.effect("uses a custom classifier", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(new Custom({}))
      const retrying = Retry.policy({
        classify: Retry.classifyWith((error) => error instanceof Custom ? Option.some("Fatal") : Option.none())
      })
      yield* Effect.exit(retrying(effect))
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it("throws InvalidOptions naming the field", () => {
    expect(invalidField(() => Retry.policy({ schedules: { Fatal: Schedule.recurs(1) } as never }))).toBe(
      "schedules.Fatal"
    )
    expect(invalidField(() => Retry.policy({ schedules: { Transient: 3 as never } }))).toBe("schedules.Transient")
    expect(invalidField(() => Retry.policy({ classify: "yes" as never }))).toBe("classify")
    expect(invalidField(() => Retry.policy({ budget: {} as never }))).toBe("budget")
    expect(invalidField(() => Retry.policy({ maxRetryAfter: -1 }))).toBe("maxRetryAfter")
    expect(invalidField(() => Retry.policy({ waitOutOpenBreaker: "yes" as never }))).toBe("waitOutOpenBreaker")
    for (const options of [null, 3, "four", [1]]) {
      expect(invalidField(() => Retry.policy(options as never))).toBe("options")
      expect(invalidField(() => Retry.backoff(options as never))).toBe("options")
      expect(invalidField(() => Retry.withBudget(Effect.void, options as never))).toBe("options")
    }
  })
})

describe("Retry.budget", () => {
  const refusedMetric = (name: string) => metricValue("effect_resilience_retry_budget_refused_total", "budget", name)

  it.effect("refuses retries beyond its ratio when many callers meet an outage", () =>
    Effect.gen(function*() {
      const name = uniqueName("outage")
      const budget = yield* Retry.budget({ name, ratio: 0.1, minPerSecond: 0 })
      const { attempts, effect } = yield* failing(nodeError("ECONNREFUSED"))
      const retrying = Retry.policy({ budget, schedules: { Transient: Schedule.recurs(3) } })
      const exits = yield* Effect.forEach(Array.from({ length: 100 }), () => Effect.exit(retrying(effect)), {
        concurrency: "unbounded"
      })
      // Without a budget: 100 calls x 4 attempts. With it: 100 calls + 10 % of them as retries.
      expect(yield* Ref.get(attempts)).toBe(110)
      expect(exits.every((exit) => Exit.isFailure(exit))).toBe(true)
      const stats = yield* budget.stats
      expect(stats).toEqual({ calls: 100, retries: 10, available: 0, refused: 100 })
      expect((yield* refusedMetric(name))?.count).toBe(100)
    }))

  it.effect("lets every retry through when no budget is given (the storm it prevents)", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(nodeError("ECONNREFUSED"))
      const retrying = Retry.policy({ schedules: { Transient: Schedule.recurs(3) } })
      yield* Effect.forEach(Array.from({ length: 100 }), () => Effect.exit(retrying(effect)), {
        concurrency: "unbounded"
      })
      expect(yield* Ref.get(attempts)).toBe(400)
    }))

  it.effect("fails a refused retry with the last error, without waiting", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("last"), ratio: 0, minPerSecond: 0 })
      const attempts = yield* Ref.make(0)
      const effect = Effect.flatMap(Ref.updateAndGet(attempts, (n) => n + 1), (n) => Effect.fail(`error ${n}`))
      const retrying = Retry.policy({ budget, schedules: { Degraded: Schedule.spaced("1 hour") } })
      expect(yield* Effect.exit(retrying(effect))).toEqual(Exit.fail("error 1"))
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it.effect("allows minPerSecond * window seconds of retries whatever the traffic", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("reserve"), ratio: 0, minPerSecond: 0.5 })
      const { attempts, effect } = yield* failing(nodeError("ECONNRESET"))
      yield* Retry.withBudget(effect, { budget, schedule: Schedule.recurs(100) }).pipe(Effect.exit)
      // 0.5 per second over a 10 second window: 5 retries.
      expect(yield* Ref.get(attempts)).toBe(6)
    }))

  it.effect("forgets calls and retries older than its window", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({
        name: uniqueName("window"),
        ratio: 0.5,
        minPerSecond: 0,
        window: "10 seconds"
      })
      for (let i = 0; i < 10; i++) yield* budget.deposit
      expect((yield* budget.stats).available).toBe(5)
      for (let i = 0; i < 5; i++) expect(yield* budget.withdraw).toBe(true)
      expect(yield* budget.withdraw).toBe(false)
      yield* TestClock.adjust("5 seconds")
      for (let i = 0; i < 4; i++) yield* budget.deposit
      expect((yield* budget.stats).calls).toBe(14)
      expect(yield* budget.withdraw).toBe(true) // floor(0.5 * 14) = 7 > 5
      expect(yield* budget.withdraw).toBe(true)
      expect(yield* budget.withdraw).toBe(false)
      // The first 10 calls and 5 retries leave the window; 4 calls and 2 retries remain.
      yield* TestClock.adjust("5 seconds")
      expect(yield* budget.stats).toEqual({ calls: 4, retries: 2, available: 0, refused: 2 })
      yield* TestClock.adjust("1 hour")
      expect(yield* budget.stats).toEqual({ calls: 0, retries: 0, available: 0, refused: 2 })
    }))

  it.effect("keeps retries within ratio * calls + reserve under concurrent callers", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("concurrent"), ratio: 0.25, minPerSecond: 1 })
      const attempts = yield* Ref.make(0)
      const effect = Effect.zipRight(
        Ref.update(attempts, (n) => n + 1),
        Effect.flatMap(Random.nextBoolean, (ok) => ok ? Effect.void : Effect.fail(nodeError("ECONNRESET")))
      )
      const retrying = Retry.policy({
        budget,
        schedules: { Transient: Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(5))) }
      })
      const fiber = yield* Effect.forEach(
        Array.from({ length: 200 }),
        (_, i) => Effect.delay(Effect.exit(retrying(effect)), Duration.millis(i * 20)),
        { concurrency: "unbounded", discard: true }
      ).pipe(Effect.withRandom(Random.make(7)), Effect.fork)
      for (let t = 0; t < 50; t++) {
        yield* advance(100)
        const stats = yield* budget.stats
        expect(stats.retries).toBeLessThanOrEqual(Math.floor(0.25 * stats.calls + 10 + 1e-9))
      }
      yield* Fiber.join(fiber)
      const stats = yield* budget.stats
      // Retries happened, and some were refused: the bound above was tested under pressure.
      expect(yield* Ref.get(attempts)).toBeGreaterThan(200)
      expect(stats.refused).toBeGreaterThan(0)
    }))

  it.effect("a breaker's rejection ending the retries takes nothing from the budget", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("rejected"), ratio: 1, minPerSecond: 0 })
      const rejection = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(5), reason: "Open" })
      const { attempts, effect } = yield* failing(rejection)
      const exit = yield* Effect.exit(Retry.policy({ budget })(effect))
      expect(exit).toEqual(Exit.fail(rejection))
      expect(yield* Ref.get(attempts)).toBe(1)
      expect(yield* budget.stats).toEqual({ calls: 1, retries: 0, available: 1, refused: 0 })
    }))

  it.effect("its refused-retries counter carries the tags set around the caller with Effect.tagMetrics", () =>
    Effect.gen(function*() {
      const name = uniqueName("tagged")
      const budget = yield* Retry.budget({ name, ratio: 0, minPerSecond: 0 })
      const refused = yield* budget.withdraw.pipe(Effect.tagMetrics("service", "checkout"))
      expect(refused).toBe(false)
      const tags = { budget: name, service: "checkout" }
      expect((yield* taggedMetric("effect_resilience_retry_budget_refused_total", tags))?.count).toBe(1)
    }))

  it.effect("fails with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      expect((yield* Effect.flip(Retry.budget({ ratio: -1 }))).field).toBe("ratio")
      expect((yield* Effect.flip(Retry.budget({ minPerSecond: Number.NaN }))).field).toBe("minPerSecond")
      expect((yield* Effect.flip(Retry.budget({ window: 0 }))).field).toBe("window")
      expect((yield* Effect.flip(Retry.budget({ name: "" }))).field).toBe("name")
      for (const options of [null, 3, "four", [1]]) {
        const error = yield* Effect.flip(Retry.budget(options as never))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.field).toBe("options")
      }
      expect((yield* Retry.budget(undefined)).ratio).toBe(0.2)
    }))
})

describe("Retry around a CircuitBreaker", () => {
  const title = "retry (7 attempts) around a breaker (3 consecutive failures): " +
    "the protected function runs exactly 3 times"
  it.effect(title, () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("retry-around-breaker"),
        failureThreshold: 3,
        resetTimeout: "60 seconds"
      })
      const { attempts: runs, effect: dependency } = yield* failing(nodeError("ECONNREFUSED"))
      const attempts = yield* Ref.make(0)
      const protectedCall = Effect.zipRight(Ref.update(attempts, (n) => n + 1), breaker.protect(dependency))
      // 6 retries, 100 ms doubling: all within 6.3 s, long before the breaker's 60 s are over.
      const schedule = Retry.backoff({ base: "100 millis", jitter: "none", maxRetries: 6 })
      const fiber = yield* Effect.fork(Effect.retry(protectedCall, schedule))
      for (let i = 0; i < 10; i++) yield* advance(1000)
      const exit = yield* Fiber.await(fiber)
      expect(yield* Ref.get(attempts)).toBe(7)
      expect(yield* Ref.get(runs)).toBe(3)
      const error = yield* Effect.flip(exit)
      expect(error).toBeInstanceOf(CircuitBreakerOpen)
      expect(yield* breaker.state).toBe("Open")
      expect((yield* breaker.metrics).rejectedCalls).toBe(4)
    }))

  it.effect("Retry.policy (Transient: recurs(6)), breaker of threshold 3: 3 runs, 1 rejection, no clock time", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("policy-around-breaker-fast"),
        failureThreshold: 3,
        resetTimeout: "60 seconds"
      })
      const { attempts: runs, effect: dependency } = yield* failing(nodeError("ECONNREFUSED"))
      const attempts = yield* Ref.make(0)
      const protectedCall = Effect.zipRight(Ref.update(attempts, (n) => n + 1), breaker.protect(dependency))
      const retrying = Retry.policy({ schedules: { Transient: Schedule.recurs(6) } })
      const fiber = yield* Effect.fork(retrying(protectedCall))
      yield* Effect.yieldNow()
      const exit = fiber.unsafePoll()
      expect(exit).toEqual(Exit.fail(expect.any(CircuitBreakerOpen)))
      expect(yield* Ref.get(runs)).toBe(3)
      expect(yield* Ref.get(attempts)).toBe(4)
      expect((yield* breaker.metrics).rejectedCalls).toBe(1)
      expect(yield* TestClock.currentTimeMillis).toBe(0)
    }))

  it.effect("the README pipeline answers its fallback with no clock time passing while the breaker is open", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const fetchStock = (_sku: string): Effect.Effect<number, Error> =>
        Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.fail(new Error("inventory down")))
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("inventory"),
        failureThreshold: 5,
        resetTimeout: "30 seconds"
      })
      const stock = (sku: string) =>
        fetchStock(sku).pipe(
          Timeout.timeout("2 seconds", { operation: "GET /stock" }),
          CircuitBreaker.protect(breaker),
          Retry.policy(),
          Fallback.to(0)
        )
      // The first call meets the outage: its backoffs (Degraded) run until the breaker opens,
      // then the rejection ends the retries at once.
      const first = yield* Effect.fork(stock("sku-1"))
      for (let i = 0; i < 60 && first.unsafePoll() === null; i++) yield* advance(1000)
      expect(yield* Fiber.join(first)).toBe(0)
      expect(yield* Ref.get(calls)).toBe(5)
      expect(yield* breaker.state).toBe("Open")
      // While it is open, every call answers 0 at once: no clock time passes, nothing runs.
      const openedAt = yield* TestClock.currentTimeMillis
      for (let i = 0; i < 3; i++) {
        const fiber = yield* Effect.fork(stock(`sku-${i}`))
        yield* Effect.yieldNow()
        expect(fiber.unsafePoll()).toEqual(Exit.succeed(0))
      }
      expect(yield* TestClock.currentTimeMillis).toBe(openedAt)
      expect(yield* Ref.get(calls)).toBe(5)
      expect((yield* breaker.metrics).rejectedCalls).toBe(4)
    }))

  it.effect("with waitOutOpenBreaker, waits for the breaker's retryAfter, or gives up beyond maxRetryAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("policy-around-breaker"),
        failureThreshold: 3,
        resetTimeout: "60 seconds"
      })
      const { attempts: runs, effect: dependency } = yield* failing(nodeError("ECONNREFUSED"))
      const attempts = yield* Ref.make(0)
      const protectedCall = Effect.zipRight(Ref.update(attempts, (n) => n + 1), breaker.protect(dependency))

      // Unwilling to wait 60 s: three runs open the breaker, the 4th attempt is rejected and ends it.
      const impatient = Retry.policy({
        schedules: { Transient: Schedule.recurs(6) },
        maxRetryAfter: "10 seconds",
        waitOutOpenBreaker: true
      })
      const exit = yield* Effect.exit(impatient(protectedCall))
      expect(yield* Ref.get(runs)).toBe(3)
      expect(yield* Ref.get(attempts)).toBe(4)
      expect(exit).toEqual(Exit.fail(expect.any(CircuitBreakerOpen)))

      // Willing to wait: the next attempt comes exactly when the breaker lets a probe through.
      const patient = Retry.policy({ schedules: { Transient: Schedule.recurs(1) }, waitOutOpenBreaker: true })
      const fiber = yield* Effect.fork(patient(protectedCall))
      yield* advance(0)
      expect(yield* Ref.get(attempts)).toBe(5)
      yield* advance(59_999)
      expect(yield* Ref.get(runs)).toBe(3)
      yield* advance(1)
      expect(yield* Ref.get(runs)).toBe(4)
      expect(Exit.isFailure(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* Ref.get(attempts)).toBe(6)
    }))
})

describe("Retry at its boundaries", () => {
  it.effect("waits out a Retry-After exactly equal to maxRetryAfter, and refuses one a millisecond longer", () =>
    Effect.gen(function*() {
      const retrying = Retry.policy({ schedules: { Degraded: Schedule.recurs(1) }, maxRetryAfter: "1 minute" })
      const equal = yield* failing(http(429, { "retry-after": "60" }))
      yield* timeline(retrying(equal.effect), equal.attempts, [[59_999, 1], [1, 2], [600_000, 2]])
      const field = yield* failing(new Custom({ retryAfter: Duration.minutes(1) }))
      yield* timeline(retrying(field.effect), field.attempts, [[59_999, 1], [1, 2]])
      const longer = yield* failing(new Custom({ retryAfter: Duration.millis(60_001) }))
      const exit = yield* Effect.exit(retrying(longer.effect))
      expect(exit).toEqual(Exit.fail(new Custom({ retryAfter: Duration.millis(60_001) })))
      expect(yield* Ref.get(longer.attempts)).toBe(1)
    }))

  it.effect("a budget allows exactly floor(ratio × calls): 29 of 100 calls at 0.29, and every ratio k/100", () =>
    Effect.gen(function*() {
      for (let k = 0; k <= 100; k++) {
        const ratio = k / 100
        const budget = yield* Retry.budget({ name: uniqueName("ratio"), ratio, minPerSecond: 0 })
        for (let i = 0; i < 100; i++) yield* budget.deposit
        expect((yield* budget.stats).available, `ratio ${ratio}`).toBe(k)
        let allowed = 0
        while (yield* budget.withdraw) allowed++
        expect(allowed, `ratio ${ratio}`).toBe(k)
      }
      // The same through floating point the other way: 0.1 + 0.2 per call.
      const budget = yield* Retry.budget({ name: uniqueName("ratio"), ratio: 0.1 + 0.2, minPerSecond: 0 })
      for (let i = 0; i < 10; i++) yield* budget.deposit
      expect((yield* budget.stats).available).toBe(3)
    }))

  it.effect("a budget's reserve is minPerSecond × window seconds exactly, fractions rounded down", () =>
    Effect.gen(function*() {
      const exact = yield* Retry.budget({
        name: uniqueName("reserve"),
        ratio: 0,
        minPerSecond: 0.3,
        window: "10 seconds"
      })
      expect((yield* exact.stats).available).toBe(3)
      const fraction = yield* Retry.budget({ name: uniqueName("reserve"), ratio: 0, minPerSecond: 0.35 })
      expect((yield* fraction.stats).available).toBe(3)
    }))

  it.effect("a call counts in the budget until exactly one window later", () =>
    Effect.gen(function*() {
      const budget = yield* Retry.budget({ name: uniqueName("edge"), ratio: 1, minPerSecond: 0, window: "10 seconds" })
      yield* budget.deposit
      yield* TestClock.adjust(9_999)
      expect((yield* budget.stats).calls).toBe(1)
      yield* TestClock.adjust(1)
      expect((yield* budget.stats).calls).toBe(0)
    }))

  it("reads a Retry-After header from a plain record in any casing, on the error or its response", () => {
    const millis = (error: unknown) => Option.map(Retry.retryAfter(error, 0), Duration.toMillis)
    for (const key of ["retry-after", "Retry-After", "RETRY-AFTER", "Retry-after"]) {
      expect(millis({ headers: { [key]: "5" } }), key).toEqual(Option.some(5000))
      expect(millis({ response: { headers: { [key]: "6" } } }), key).toEqual(Option.some(6000))
      expect(millis({ headers: { [key]: ["7"] } }), key).toEqual(Option.some(7000))
    }
    expect(millis({ headers: new Headers({ "retry-after": "8" }) })).toEqual(Option.some(8000))
    expect(millis({ headers: { "x-retry-after": "9" } })).toEqual(Option.none())
  })

  it("parses a Retry-After date equal to now or past as zero, and an asctime date with a one-digit day", () => {
    const now = Date.parse("2015-10-01T07:28:00Z")
    const millis = (value: string) => Option.map(Retry.parseRetryAfter(value, now), Duration.toMillis)
    expect(millis("Thu, 01 Oct 2015 07:28:00 GMT")).toEqual(Option.some(0))
    expect(millis("Thu, 01 Oct 2015 07:27:59 GMT")).toEqual(Option.some(0))
    expect(millis("Thu, 01 Oct 2015 07:28:01 GMT")).toEqual(Option.some(1000))
    expect(millis("Thu Oct  1 07:28:05 2015")).toEqual(Option.some(5000))
    expect(millis("0")).toEqual(Option.some(0))
  })

  it.effect("backoff retries when a retry starts exactly at maxElapsed, not a millisecond later", () =>
    Effect.gen(function*() {
      // 1 s, 2 s, 4 s: retries at 1, 3 and 7 s.
      const exactly = yield* failing("boom")
      const atLimit = Retry.backoff({ base: "1 second", jitter: "none", maxElapsed: "7 seconds" })
      yield* timeline(Effect.retry(exactly.effect, atLimit), exactly.attempts, [[1000, 2], [2000, 3], [4000, 4], [
        60_000,
        4
      ]])
      const under = yield* failing("boom")
      const belowLimit = Retry.backoff({ base: "1 second", jitter: "none", maxElapsed: "6999 millis" })
      yield* timeline(Effect.retry(under.effect, belowLimit), under.attempts, [[1000, 2], [2000, 3], [60_000, 3]])
    }))

  it("classifies every Node error code of its tables", () => {
    const table: ReadonlyArray<readonly [Retry.ErrorClass, ReadonlyArray<string>]> = [
      ["Transient", [
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "ESOCKETTIMEDOUT", "EHOSTUNREACH",
        "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "EAI_AGAIN", "EADDRNOTAVAIL",
        "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_SOCKET",
        "UND_ERR_CLOSED"
      ]],
      ["Degraded", ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EBUSY", "EAGAIN"]],
      ["Persistent", ["ENOTFOUND"]],
      ["Fatal", [
        "EACCES", "EPERM", "ENOENT", "EINVAL", "ERR_INVALID_ARG_TYPE", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_URL",
        "CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN",
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "ERR_TLS_CERT_ALTNAME_INVALID"
      ]]
    ]
    for (const [errorClass, codes] of table) {
      for (const code of codes) expect(Retry.classify(nodeError(code)), code).toBe(errorClass)
    }
  })

  it("classifies HTTP statuses at every edge of their ranges", () => {
    const table: ReadonlyArray<readonly [number, Retry.ErrorClass]> = [
      [399, "Degraded"],
      [400, "Fatal"],
      [407, "Fatal"],
      [408, "Transient"],
      [409, "Fatal"],
      [424, "Fatal"],
      [425, "Transient"],
      [426, "Fatal"],
      [428, "Fatal"],
      [429, "Degraded"],
      [430, "Fatal"],
      [499, "Fatal"],
      [500, "Transient"],
      [599, "Transient"],
      [600, "Degraded"]
    ]
    for (const [status, errorClass] of table) {
      expect(Retry.classify({ status }), `status ${status}`).toBe(errorClass)
      expect(Retry.classify({ statusCode: String(status) }), `statusCode "${status}"`).toBe(errorClass)
      expect(Retry.classify({ response: { statusCode: status } }), `response.statusCode ${status}`).toBe(errorClass)
    }
  })

  it("classifies every SQLSTATE class of its table, and an unknown class as Degraded", () => {
    const table: ReadonlyArray<readonly [string, Retry.ErrorClass]> = [
      ["08006", "Transient"],
      ["40P01", "Transient"],
      ["53300", "Degraded"],
      ["57P01", "Transient"],
      ["57014", "Transient"],
      ["22001", "Fatal"],
      ["23505", "Fatal"],
      ["28P01", "Fatal"],
      ["42601", "Fatal"],
      ["XX000", "Degraded"],
      ["0800", "Degraded"]
    ]
    for (const [code, errorClass] of table) expect(Retry.classify({ code }), code).toBe(errorClass)
  })

  it("classifies every Redis error code of its table by the whole word, never by a prefix", () => {
    const table: ReadonlyArray<readonly [string, Retry.ErrorClass]> = [
      ["OOM", "Degraded"],
      ["BUSY", "Degraded"],
      ["TRYAGAIN", "Transient"],
      ["CLUSTERDOWN", "Transient"],
      ["LOADING", "Persistent"],
      ["MASTERDOWN", "Persistent"],
      ["READONLY", "Persistent"],
      ["NOAUTH", "Fatal"],
      ["WRONGPASS", "Fatal"],
      ["WRONGTYPE", "Fatal"],
      ["NOPERM", "Fatal"]
    ]
    for (const [code, errorClass] of table) {
      expect(Retry.classify(new ReplyError(`${code} something went wrong`)), code).toBe(errorClass)
      expect(Retry.classify(new ReplyError(code)), code).toBe(errorClass)
      // A longer word that starts with the code is another error: not known, so Degraded.
      expect(Retry.classify(new ReplyError(`${code}X something else`)), `${code}X`).toBe("Degraded")
    }
    expect(Retry.classify(new Error("Connection is closed."))).toBe("Transient")
    expect(Retry.classify(Object.assign(new Error("timed out"), { name: "TimeoutError" }))).toBe("Transient")
    expect(Retry.classify(Object.assign(new Error("max"), { name: "MaxRetriesPerRequestError" }))).toBe("Transient")
  })

  it("classifies the errors of this library by their tag", () => {
    const table: ReadonlyArray<readonly [string, Retry.ErrorClass]> = [
      ["CircuitBreakerOpen", "Transient"],
      ["TimeoutError", "Transient"],
      ["TimeoutException", "Transient"],
      ["RateLimitExceeded", "Degraded"],
      ["BulkheadFull", "Degraded"],
      ["InvalidOptions", "Fatal"],
      ["ParseError", "Fatal"]
    ]
    for (const [tag, errorClass] of table) expect(Retry.classify({ _tag: tag }), tag).toBe(errorClass)
    const request = HttpClientRequest.get("http://127.0.0.1/")
    const requestErrors: ReadonlyArray<readonly [HttpClientError.RequestError["reason"], Retry.ErrorClass]> = [
      ["Transport", "Transient"],
      ["Encode", "Fatal"],
      ["InvalidUrl", "Fatal"]
    ]
    for (const [reason, errorClass] of requestErrors) {
      expect(Retry.classify(new HttpClientError.RequestError({ request, reason })), reason).toBe(errorClass)
    }
    const response = HttpClientResponse.fromWeb(request, new Response(null, { status: 200 }))
    const decode = new HttpClientError.ResponseError({ request, response, reason: "Decode" })
    expect(Retry.classify(decode)).toBe("Fatal")
    expect(Retry.classify(new Cause.UnknownException(nodeError("ECONNRESET")))).toBe("Transient")
  })
})
