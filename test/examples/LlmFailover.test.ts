import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Fiber, Option, Random, TestClock } from "effect"
import * as Scenario from "../../examples/llm/scenario.js"
import type * as Server from "../../examples/llm/server.js"
import { Wire } from "../../examples/llm/wire.js"

/**
 * The scenario runs for real over loopback HTTP, with every `Clock` read and sleep (server
 * timeline, timeouts, retries, breakers) on the `TestClock`. This drives it: it waits, in
 * real time, until no response is on its way (the wire says so) and every fiber of the test
 * is suspended, then moves the `TestClock` to the next instant something is due. Network
 * I/O therefore never races test time, and the times measured are exact.
 */
const drive = <A, E>(fiber: Fiber.Fiber<A, E>, wire: Wire) =>
  Effect.gen(function*() {
    const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))
    while (true) {
      // Runs nothing that is not due: waits until every fiber of the test is suspended.
      yield* TestClock.adjust(0)
      if (Option.isSome(yield* Fiber.poll(fiber))) return yield* Fiber.join(fiber)
      const now = yield* Clock.currentTimeMillis
      if (wire.inTransit(now) > 0) {
        yield* realPause
        continue
      }
      const due = [...Chunk.toReadonlyArray(yield* TestClock.sleeps()), wire.nextAnswer() ?? Infinity]
        .filter((at) => at > now)
      const next = Math.min(...due)
      if (next === Infinity) {
        yield* realPause
        continue
      }
      yield* TestClock.setTime(next)
    }
  })

const providers = [Scenario.provider("alpha"), Scenario.provider("beta"), Scenario.provider("gamma")] as const

/** Runs the scenario on the TestClock with a seeded Random. */
const runOnTestClock = (timeline: Server.Timeline, requests: number) =>
  Effect.gen(function*() {
    const wire = new Wire()
    const fiber = yield* Scenario.run({
      timeline,
      providers,
      requests,
      interval: "250 millis",
      deadline: "6 seconds",
      wire
    }).pipe(Effect.withRandom(Random.make("llm-failover")), Effect.fork)
    const report = yield* drive(fiber, wire)
    return { report, elapsed: yield* Clock.currentTimeMillis }
  })

const byName = (report: Scenario.ScenarioReport, name: string) => report.providers.find((p) => p.name === name)!

describe("examples/llm-failover", () => {
  it.effect("with the primary down, every request succeeds through the second provider, failing over in < 5 s", () =>
    Effect.gen(function*() {
      const timeline: Server.Timeline = {
        alpha: [{ at: 0, behaviour: { _tag: "Down" } }],
        beta: [{ at: 0, behaviour: { _tag: "Healthy", latency: "200 millis" } }],
        gamma: [{ at: 0, behaviour: { _tag: "Healthy", latency: "200 millis" } }]
      }
      const { elapsed, report } = yield* runOnTestClock(timeline, 20)

      expect(report.requests).toBe(20)
      expect(report.successRate).toBe(1)
      expect(report.outcomes.every((outcome) => outcome.provider === "beta")).toBe(true)
      // Failover time, measured on the TestClock: the primary failed first at 0.
      expect(report.primaryFirstFailureAt).toBe(0)
      expect(report.failoverMillis).toBeDefined()
      expect(report.failoverMillis!).toBeGreaterThanOrEqual(200) // beta's own latency
      expect(report.failoverMillis!).toBeLessThan(5_000)

      const alpha = byName(report, "alpha")
      const beta = byName(report, "beta")
      expect(alpha.answered).toBe(0)
      // After its breaker opened, most requests skipped the primary without calling it.
      expect(alpha.skipped).toBeGreaterThanOrEqual(10)
      expect(alpha.calls).toBe(alpha.failures)
      expect(alpha.calls).toBeLessThan(10)
      expect(alpha.received).toBe(alpha.calls)
      expect(beta.answered).toBe(20)
      expect(beta.failures).toBe(0)
      expect(byName(report, "gamma").calls).toBe(0)
      // 20 requests 250 ms apart, each 200 ms through beta once alpha is skipped.
      expect(elapsed).toBeLessThan(6_000)
    }))

  it.effect("the failover time is measured on the TestClock: the same seed gives the same figures", () =>
    Effect.gen(function*() {
      const timeline: Server.Timeline = {
        alpha: [
          { at: 0, behaviour: { _tag: "Healthy", latency: "50 millis" } },
          { at: "1 second", behaviour: { _tag: "Failing" } }
        ],
        beta: [{ at: 0, behaviour: { _tag: "Flaky", latency: "300 millis", failEvery: 5 } }],
        gamma: [{ at: 0, behaviour: { _tag: "Healthy", latency: "400 millis" } }]
      }
      const first = yield* runOnTestClock(timeline, 12)
      yield* TestClock.setTime(0)
      const second = yield* runOnTestClock(timeline, 12)
      expect(first.report.primaryFirstFailureAt).toBe(1_000)
      expect(first.report.failoverMillis!).toBeLessThan(5_000)
      expect(second.report.failoverMillis).toBe(first.report.failoverMillis)
      expect(second.report.providers).toEqual(first.report.providers)
      expect(second.report.outcomes.map((o) => [o.provider, o.latency])).toEqual(
        first.report.outcomes.map((o) => [o.provider, o.latency])
      )
    }))

  it.effect("a primary answering 429 with a long Retry-After is not waited for: failover in < 5 s", () =>
    Effect.gen(function*() {
      const timeline: Server.Timeline = {
        alpha: [{ at: 0, behaviour: { _tag: "RateLimited", retryAfterSeconds: 30 } }],
        beta: [{ at: 0, behaviour: { _tag: "Healthy", latency: "100 millis" } }],
        gamma: [{ at: 0, behaviour: { _tag: "Healthy", latency: "100 millis" } }]
      }
      const { report } = yield* runOnTestClock(timeline, 8)
      expect(report.successRate).toBe(1)
      expect(report.outcomes.every((outcome) => outcome.provider === "beta")).toBe(true)
      // Retry-After 30 s is over the policy's maxRetryAfter (1 s): no retry, straight to beta.
      expect(report.failoverMillis).toBe(100)
      const alpha = byName(report, "alpha")
      expect(alpha.calls).toBe(3)
      expect(alpha.breaker).toBe("Open")
    }))

  it.effect("when every provider is down, requests fail and the success rate says so", () =>
    Effect.gen(function*() {
      const down = [{ at: 0, behaviour: { _tag: "Down" } }] as const
      const timeline: Server.Timeline = { alpha: down, beta: down, gamma: [{ at: 0, behaviour: { _tag: "Failing" } }] }
      const { report } = yield* runOnTestClock(timeline, 6)
      expect(report.successRate).toBe(0)
      expect(report.failoverMillis).toBeUndefined()
      for (const name of ["alpha", "beta", "gamma"]) {
        const p = byName(report, name)
        expect(p.answered).toBe(0)
        expect(p.received).toBe(p.calls)
        expect(p.breaker).toBe("Open")
      }
    }))
})
