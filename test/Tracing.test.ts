import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import * as Bulkhead from "../src/Bulkhead.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CircuitBreakerOpen } from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"
import * as tracing from "../src/internal/tracing.js"
import { makeRecordingTracer } from "./support/recordingTracer.js"

/** An error as a driver throws it: its message carries a URL with a password. */
class Unavailable extends Error {
  readonly _tag = "Unavailable"
  readonly status = 503
  constructor() {
    super("connect failed: redis://admin:s3cret-password@cache.internal:6379")
  }
}

class NotFound extends Error {
  readonly _tag = "NotFound"
  readonly status = 404
  constructor() {
    super("GET https://user:s3cret-password@api.internal/items/1: not found")
  }
}

/** Fails with `error()` the first `failures` times, then answers `"ok"`. */
const flaky = <E>(failures: number, error: () => E) => {
  let calls = 0
  return Effect.suspend(() => ++calls <= failures ? Effect.fail(error()) : Effect.succeed("ok"))
}

/** Every attribute value of every span and event, as text. */
const everything = (recorder: ReturnType<typeof makeRecordingTracer>): string =>
  JSON.stringify(
    recorder.spans.map((span) => [span.name, span.attributeRecord, span.events]),
    (_, value) => typeof value === "bigint" ? value.toString() : value
  )

describe("Retry traces", () => {
  it.effect("each retry is an event on the caller's span with the attempt, its delay, the error's type and class", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* flaky(2, () => new Unavailable()).pipe(
        Retry.policy({ schedules: { Transient: Schedule.spaced("100 millis") } }),
        Effect.withSpan("GET /users"),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(recorder.spans.map((span) => span.name)).toEqual(["GET /users"])
      const events = recorder.eventsOf("GET /users")
      expect(events.map((event) => event.name)).toEqual([
        "resilience.retry.scheduled",
        "resilience.retry.scheduled",
        "resilience.retry.succeeded"
      ])
      expect(events[0].attributes).toEqual({
        "resilience.policy": "retry",
        "resilience.outcome": "scheduled",
        "resilience.attempt": 2,
        "resilience.delay_ms": 100,
        "error.type": "Unavailable",
        "resilience.error_class": "Transient"
      })
      expect(events[1].attributes["resilience.attempt"]).toBe(3)
      expect(events[2].attributes).toEqual({
        "resilience.policy": "retry",
        "resilience.outcome": "success",
        "resilience.attempt": 3
      })
      expect(everything(recorder)).not.toContain("s3cret")
    }))

  it.effect("the retries' end says why: exhausted, fatal, breaker open, Retry-After too long", () =>
    Effect.gen(function*() {
      const stopped = (error: unknown, options: Retry.PolicyOptions = {}) =>
        Effect.gen(function*() {
          const recorder = makeRecordingTracer()
          const fiber = yield* Effect.fail(error).pipe(
            Retry.policy({ schedules: { Transient: Schedule.recurs(1) }, ...options }),
            Effect.withSpan("call"),
            recorder.run,
            Effect.fork
          )
          yield* TestClock.adjust("1 minute")
          expect(Exit.isFailure(yield* Fiber.await(fiber))).toBe(true)
          expect(everything(recorder)).not.toContain("s3cret")
          const events = recorder.eventsOf("call")
          return events.filter((event) => event.name === "resilience.retry.stopped").map((event) => event.attributes)
        })
      expect(yield* stopped(new Unavailable())).toEqual([{
        "resilience.policy": "retry",
        "resilience.outcome": "exhausted",
        "resilience.attempt": 2,
        "error.type": "Unavailable"
      }])
      expect(yield* stopped(new NotFound())).toEqual([{
        "resilience.policy": "retry",
        "resilience.outcome": "fatal",
        "resilience.attempt": 1,
        "error.type": "NotFound"
      }])
      const rejection = new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(5), reason: "Open" })
      expect((yield* stopped(rejection))[0]["resilience.outcome"]).toBe("breaker_open")
      const busy = { _tag: "Busy", status: 429, retryAfter: Duration.minutes(10) }
      expect(
        (yield* stopped(busy, { maxRetryAfter: "1 minute" }))[0]
      ).toMatchObject({ "resilience.outcome": "retry_after_too_long", "error.type": "Busy" })
    }))

  it.effect("a retry refused by the budget ends the retries with outcome budget_exhausted", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const budget = yield* Retry.budget({ name: "tracing-budget", ratio: 0.1, minPerSecond: 0 })
      const exit = yield* Effect.fail(new Unavailable()).pipe(
        Retry.policy({ budget, schedules: { Transient: Schedule.recurs(3) } }),
        Effect.withSpan("call"),
        recorder.run,
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(recorder.eventsOf("call").map((event) => [event.name, event.attributes["resilience.outcome"]])).toEqual([
        ["resilience.retry.stopped", "budget_exhausted"]
      ])
    }))

  it.effect("Retry.withBudget records its retries as Retry.policy does", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const budget = yield* Retry.budget({ name: "tracing-with-budget", ratio: 1, minPerSecond: 10 })
      const exit = yield* Effect.fail("boom").pipe(
        Retry.withBudget({ budget, schedule: Schedule.recurs(2) }),
        Effect.withSpan("call"),
        recorder.run,
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(recorder.eventsOf("call").map((event) => [event.name, event.attributes["resilience.attempt"]])).toEqual([
        ["resilience.retry.scheduled", 2],
        ["resilience.retry.scheduled", 3],
        ["resilience.retry.stopped", 3]
      ])
      expect(recorder.eventsOf("call")[0].attributes["error.type"]).toBe("string")
    }))

  it.effect("a call outside any span records nothing and starts no trace", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* flaky(1, () => new Unavailable()).pipe(
        Retry.policy({ schedules: { Transient: Schedule.spaced("10 millis") } }),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(recorder.spans).toEqual([])
    }))
})

describe("Timeout traces", () => {
  const timeoutEvents = (recorder: ReturnType<typeof makeRecordingTracer>) =>
    recorder.eventsOf("handler").filter((event) => event.name === "resilience.timeout").map((event) => event.attributes)

  it.effect("a timeout that fires is an event on the caller's span: operation, limit, elapsed, outcome timed_out", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* Effect.never.pipe(
        Timeout.timeout("2 seconds", { operation: "GET /users" }),
        Effect.withSpan("handler"),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      expect(Exit.isFailure(yield* Fiber.await(fiber))).toBe(true)
      expect(timeoutEvents(recorder)).toEqual([{
        "resilience.policy": "timeout",
        "resilience.name": "GET /users",
        "resilience.outcome": "timed_out",
        "resilience.timeout_ms": 2000,
        "resilience.elapsed_ms": 2000
      }])
    }))

  it.effect("a timeout that does not fire says so, for an operation that waits and for one that answers at once", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* Effect.sleep("500 millis").pipe(
        Effect.as("slow"),
        Timeout.timeout("2 seconds", { operation: "slow" }),
        Effect.zip(Effect.succeed("fast").pipe(Timeout.timeout("1 second", { operation: "fast" }))),
        Effect.withSpan("handler"),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toEqual(["slow", "fast"])
      expect(timeoutEvents(recorder)).toEqual([
        {
          "resilience.policy": "timeout",
          "resilience.name": "slow",
          "resilience.outcome": "completed",
          "resilience.timeout_ms": 2000,
          "resilience.elapsed_ms": 500
        },
        {
          "resilience.policy": "timeout",
          "resilience.name": "fast",
          "resilience.outcome": "completed",
          "resilience.timeout_ms": 1000,
          "resilience.elapsed_ms": 0
        }
      ])
    }))

  it.effect("the operation's own spans are children of the caller's span, though it runs in a fiber of its own", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* Effect.sleep("100 millis").pipe(
        Effect.withSpan("query"),
        Timeout.timeout("1 second", { operation: "query" }),
        Effect.withSpan("handler"),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const [handler] = recorder.named("handler")
      const [query] = recorder.named("query")
      expect(query.parentId).toBe(handler.spanId)
      expect(query.traceId).toBe(handler.traceId)
    }))
})

describe("Fallback traces", () => {
  it.effect("a fallback taken is an event on the caller's span with the failure's type; none when it answers", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const result = yield* Effect.all([
        Effect.fail(new Unavailable()).pipe(Fallback.to("cached")),
        Effect.fail(new NotFound()).pipe(Fallback.orElse(() => Effect.succeed("default"))),
        Effect.succeed("fresh").pipe(Fallback.to("cached"))
      ]).pipe(Effect.withSpan("handler"), recorder.run)
      expect(result).toEqual(["cached", "default", "fresh"])
      expect(recorder.eventsOf("handler").map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.fallback", {
          "resilience.policy": "fallback",
          "resilience.outcome": "taken",
          "error.type": "Unavailable"
        }],
        ["resilience.fallback", {
          "resilience.policy": "fallback",
          "resilience.outcome": "taken",
          "error.type": "NotFound"
        }]
      ])
      expect(everything(recorder)).not.toContain("s3cret")
    }))

  it.effect("a failover records each provider skipped or failed, and which one answered", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const openBreaker = yield* CircuitBreaker.make({ name: "openai" })
      yield* openBreaker.forceOpen
      const answer = yield* Fallback.firstSuccess([
        { name: "openai", breaker: openBreaker, run: Effect.succeed("never") },
        { name: "anthropic", run: Effect.fail(new Unavailable()) },
        { name: "local", run: Effect.succeed("answer") }
      ]).pipe(Effect.withSpan("complete"), recorder.run)
      expect(answer.provider).toBe("local")
      expect(recorder.eventsOf("complete").map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.failover.provider", {
          "resilience.policy": "failover",
          "resilience.name": "openai",
          "resilience.outcome": "skipped",
          "error.type": "CircuitBreakerOpen",
          "resilience.reason": "ForcedOpen"
        }],
        ["resilience.failover.provider", {
          "resilience.policy": "failover",
          "resilience.name": "anthropic",
          "resilience.outcome": "failed",
          "error.type": "Unavailable"
        }],
        ["resilience.failover", {
          "resilience.policy": "failover",
          "resilience.name": "local",
          "resilience.outcome": "answered",
          "resilience.attempt": 3
        }]
      ])
      expect(everything(recorder)).not.toContain("s3cret")
    }))

  it.effect("a failover where every provider fails ends with outcome all_failed", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const exit = yield* Fallback.firstSuccess([
        { name: "a", run: Effect.fail(new Unavailable()) },
        { name: "b", run: Effect.fail(new NotFound()) }
      ]).pipe(Effect.withSpan("complete"), recorder.run, Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      const events = recorder.eventsOf("complete")
      expect(events.map((event) => event.attributes["resilience.outcome"])).toEqual(["failed", "failed", "all_failed"])
      expect(events[2].attributes).toEqual({
        "resilience.policy": "failover",
        "resilience.outcome": "all_failed",
        "resilience.attempt": 2
      })
    }))

  it.effect("each hedged attempt is a child span of the caller's; a hedge started is an event with its delay", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      let calls = 0
      // The first attempt hangs; the hedge started after 100 millis answers 50 millis later.
      const call = Effect.suspend(() =>
        ++calls === 1 ? Effect.never : Effect.as(Effect.sleep("50 millis"), `answer ${calls}`)
      ).pipe(Effect.withSpan("http"))
      const fiber = yield* call.pipe(
        Fallback.hedge({ delay: "100 millis", maxAttempts: 3 }),
        Effect.withSpan("handler"),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("answer 2")
      const [handler] = recorder.named("handler")
      const attempts = recorder.named("resilience.hedge.attempt")
      expect(attempts.map((span) => [span.parentId, span.attributeRecord])).toEqual([
        [handler.spanId, {
          "resilience.policy": "hedge",
          "resilience.attempt": 1,
          "resilience.outcome": "interrupted"
        }],
        [handler.spanId, { "resilience.policy": "hedge", "resilience.attempt": 2, "resilience.outcome": "success" }]
      ])
      // The attempts' own spans are under their attempt.
      expect(recorder.named("http").map((span) => span.parentId)).toEqual(attempts.map((span) => span.spanId))
      expect(handler.events.map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.hedge.started", {
          "resilience.policy": "hedge",
          "resilience.outcome": "started",
          "resilience.attempt": 2,
          "resilience.delay_ms": 100
        }]
      ])
    }))

  it.effect("a hedged call outside any span records nothing", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const fiber = yield* Effect.sleep("300 millis").pipe(
        Fallback.hedge({ delay: "100 millis", maxAttempts: 2 }),
        recorder.run,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(recorder.spans).toEqual([])
    }))
})

describe("Bulkhead traces", () => {
  it.effect("a queued call waits in a child span; a rejected call is an event; one admitted at once adds nothing", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const bulkhead = yield* Bulkhead.make({ name: "payments", maxConcurrent: 1, maxQueue: 1 })
      const gate = yield* Deferred.make<void>()
      const first = yield* bulkhead.run(Deferred.await(gate)).pipe(Effect.withSpan("first"), recorder.run, Effect.fork)
      yield* Effect.yieldNow()
      const second = yield* bulkhead.run(Effect.succeed("second")).pipe(
        Effect.withSpan("second"),
        recorder.run,
        Effect.fork
      )
      yield* Effect.yieldNow()
      const third = yield* bulkhead.run(Effect.succeed("third")).pipe(
        Effect.withSpan("third"),
        recorder.run,
        Effect.exit
      )
      expect(Exit.isFailure(third)).toBe(true)
      yield* TestClock.adjust("250 millis")
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(first)
      expect(yield* Fiber.join(second)).toBe("second")

      expect(recorder.named("first")[0].events).toEqual([])
      const [secondSpan] = recorder.named("second")
      const [wait] = recorder.named("resilience.bulkhead.wait")
      expect(wait.parentId).toBe(secondSpan.spanId)
      expect(wait.attributeRecord).toEqual({
        "resilience.policy": "bulkhead",
        "resilience.name": "payments",
        "resilience.queue_position": 1,
        "resilience.outcome": "success"
      })
      expect(recorder.named("third")[0].events.map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.bulkhead.rejected", {
          "resilience.policy": "bulkhead",
          "resilience.name": "payments",
          "resilience.outcome": "rejected",
          "resilience.max_concurrent": 1,
          "resilience.max_queue": 1
        }]
      ])
    }))

  it.effect("a waiter interrupted in the queue ends its wait span as interrupted", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 1, maxQueue: 5 })
      const holder = yield* bulkhead.run(Effect.never).pipe(Effect.fork)
      yield* Effect.yieldNow()
      const waiter = yield* bulkhead.run(Effect.void).pipe(Effect.withSpan("waiter"), recorder.run, Effect.fork)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiter)
      yield* Fiber.interrupt(holder)
      const [wait] = recorder.named("resilience.bulkhead.wait")
      expect(wait.attributeRecord["resilience.outcome"]).toBe("interrupted")
      expect((yield* bulkhead.stats).queued).toBe(0)
    }))
})

describe("RateLimit traces", () => {
  it.effect("a call turned away by a rejecting limiter is an event with the limiter and when to retry", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const limiter = yield* RateLimit.make({ name: "search", limit: 1, interval: "1 second", mode: "reject" })
      yield* limiter.run(Effect.void).pipe(Effect.withSpan("first"), recorder.run)
      const exit = yield* limiter.run(Effect.void).pipe(Effect.withSpan("second"), recorder.run, Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(recorder.named("first")[0].events).toEqual([])
      expect(recorder.named("second")[0].events.map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.rate_limit.rejected", {
          "resilience.policy": "rate_limit",
          "resilience.name": "search",
          "resilience.outcome": "rejected",
          "resilience.retry_after_ms": 1000
        }]
      ])
    }))

  it.effect("a call that waits for a limiter is an event with how long it waited; one that does not adds nothing", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const limiter = yield* RateLimit.make({ name: "geocoder", limit: 1, interval: "1 second" })
      yield* limiter(Effect.void).pipe(Effect.withSpan("first"), recorder.run)
      const second = yield* limiter(Effect.succeed("second")).pipe(Effect.withSpan("second"), recorder.run, Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(second)).toBe("second")
      expect(recorder.named("first")[0].events).toEqual([])
      expect(recorder.named("second")[0].events.map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.rate_limit.waited", {
          "resilience.policy": "rate_limit",
          "resilience.name": "geocoder",
          "resilience.outcome": "waited",
          "resilience.wait_ms": 1000
        }]
      ])
    }).pipe(Effect.scoped))
})

describe("Circuit breaker trace helpers", () => {
  it.effect("a rejection and transitions are events on the caller's span, by breaker, reason and states", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      // The breaker's own `StateChange`s, as it publishes them.
      const opened: CircuitBreaker.StateChange = {
        breaker: "postgres",
        from: "Closed",
        to: "Open",
        at: 0,
        reason: "FailureThreshold"
      }
      yield* Effect.withFiberRuntime<void>((fiber) => {
        tracing.unsafeBreakerRejected(
          fiber,
          new CircuitBreakerOpen({ breaker: "postgres", retryAfter: Duration.seconds(30), reason: "Open" })
        )
        tracing.unsafeBreakerRejected(
          fiber,
          new CircuitBreakerOpen({ breaker: "postgres", retryAfter: Duration.infinity, reason: "ForcedOpen" })
        )
        return Effect.void
      }).pipe(
        Effect.zipRight(tracing.breakerTransitions(opened.breaker, [opened])),
        Effect.withSpan("handler"),
        recorder.run
      )
      expect(recorder.eventsOf("handler").map((event) => [event.name, event.attributes])).toEqual([
        ["resilience.circuit_breaker.rejected", {
          "resilience.policy": "circuit_breaker",
          "resilience.name": "postgres",
          "resilience.outcome": "rejected",
          "resilience.reason": "Open",
          "resilience.retry_after_ms": 30000
        }],
        ["resilience.circuit_breaker.rejected", {
          "resilience.policy": "circuit_breaker",
          "resilience.name": "postgres",
          "resilience.outcome": "rejected",
          "resilience.reason": "ForcedOpen",
          "resilience.retry_after_ms": -1
        }],
        ["resilience.circuit_breaker.transition", {
          "resilience.policy": "circuit_breaker",
          "resilience.name": "postgres",
          "resilience.from": "Closed",
          "resilience.to": "Open",
          "resilience.reason": "FailureThreshold"
        }]
      ])
    }))

  it.effect("outside any span the helpers record nothing", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      yield* tracing.breakerTransitions("redis", [
        { from: "Open", to: "HalfOpen", reason: "OpenDurationElapsed" }
      ]).pipe(recorder.run)
      expect(recorder.spans).toEqual([])
    }))
})

describe("Circuit breaker in traces", () => {
  it.effect("the call that trips a breaker carries its transition, logged with the breaker, states and reason", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const breaker = yield* CircuitBreaker.make({ name: "traced-db", failureThreshold: 1 })
      const exit = yield* breaker.protect(Effect.fail(new Unavailable())).pipe(
        Effect.withSpan("handler"),
        recorder.run,
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const transition = recorder.eventsOf("handler").find((event) => event.name.includes("Closed -> Open"))
      expect(transition?.name).toBe("circuit breaker \"traced-db\": Closed -> Open (FailureThreshold)")
      expect(transition?.attributes).toMatchObject({
        breaker: "traced-db",
        from: "Closed",
        to: "Open",
        reason: "FailureThreshold"
      })
      expect(everything(recorder)).not.toContain("s3cret")
    }))

  it.effect("a breaker's transitions and rejections are events on the caller's span", () =>
    Effect.gen(function*() {
      const recorder = makeRecordingTracer()
      const breaker = yield* CircuitBreaker.make({ name: "traced-api", failureThreshold: 1, resetTimeout: "30 seconds" })
      yield* breaker.protect(Effect.fail(new Unavailable())).pipe(Effect.withSpan("tripping"), recorder.run, Effect.exit)
      yield* breaker.protect(Effect.void).pipe(Effect.withSpan("refused"), recorder.run, Effect.exit)
      yield* breaker.forceOpen
      yield* breaker.protect(Effect.void).pipe(Effect.withSpan("forced"), recorder.run, Effect.exit)
      const named = (span: string, event: string) =>
        recorder.eventsOf(span).filter((e) => e.name === event).map((e) => e.attributes)
      expect(named("tripping", "resilience.circuit_breaker.transition")).toEqual([{
        "resilience.policy": "circuit_breaker",
        "resilience.name": "traced-api",
        "resilience.from": "Closed",
        "resilience.to": "Open",
        "resilience.reason": "FailureThreshold"
      }])
      expect(named("refused", "resilience.circuit_breaker.rejected")).toEqual([{
        "resilience.policy": "circuit_breaker",
        "resilience.name": "traced-api",
        "resilience.outcome": "rejected",
        "resilience.reason": "Open",
        "resilience.retry_after_ms": 30000
      }])
      expect(named("forced", "resilience.circuit_breaker.rejected").map((a) => a["resilience.reason"])).toEqual([
        "ForcedOpen"
      ])
    }))
})
