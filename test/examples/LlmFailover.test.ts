import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, type Duration, Effect, Fiber, Option, Random, TestClock } from "effect"
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
const runOnTestClock = (
  timeline: Server.Timeline,
  requests: number,
  options?: { readonly interval?: Duration.DurationInput; readonly prompt?: (index: number) => string }
) =>
  Effect.gen(function*() {
    const wire = new Wire()
    const fiber = yield* Scenario.run({
      timeline,
      providers,
      requests,
      interval: options?.interval ?? "250 millis",
      deadline: "6 seconds",
      wire,
      prompt: options?.prompt
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
      expect(alpha.received).toBe(alpha.calls + alpha.checks)
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

  it.effect("when every provider is down, no request gets a full answer, and every one gets a degraded one", () =>
    Effect.gen(function*() {
      const down = [{ at: 0, behaviour: { _tag: "Down" } }] as const
      const timeline: Server.Timeline = { alpha: down, beta: down, gamma: [{ at: 0, behaviour: { _tag: "Failing" } }] }
      const { report } = yield* runOnTestClock(timeline, 6)
      expect(report.successRate).toBe(0)
      // Nothing was ever answered, so nothing is cached: every answer is the degraded one.
      expect(report.cached).toBe(0)
      expect(report.degraded).toBe(6)
      expect(report.answeredRate).toBe(1)
      expect(report.outcomes.every((o) => o.text === `[degraded] ${Scenario.degradedAnswer}`)).toBe(true)
      expect(report.failoverMillis).toBeUndefined()
      for (const name of ["alpha", "beta", "gamma"]) {
        const p = byName(report, name)
        expect(p.answered).toBe(0)
        expect(p.received).toBe(p.calls + p.checks)
        expect(p.breaker).toBe("Open")
      }
    }))

  it.effect("with every provider down, the level is CacheOnly: known prompts from the cache, others degraded", () =>
    Effect.gen(function*() {
      const down: Server.Timeline[string] = [
        { at: 0, behaviour: { _tag: "Healthy", latency: "50 millis" } },
        { at: "2 seconds", behaviour: { _tag: "Down" } }
      ]
      const timeline: Server.Timeline = { alpha: down, beta: down, gamma: down }
      // Prompts 0..3 are asked over and over; every fifth request asks a new one.
      const prompt = (index: number) => index % 5 === 4 ? `new ${index}` : `known ${index % 4}`
      const { report } = yield* runOnTestClock(timeline, 40, { prompt })

      const before = report.outcomes.filter((o) => o.sentAt < 2_000)
      expect(before.every((o) => o.kind === "Full" && o.provider === "alpha" && !o.markedDegraded)).toBe(true)
      // After the providers went down: once every breaker is open, the level is CacheOnly.
      expect(report.levels.map((l) => l.level)).toContain("CacheOnly")
      const cacheOnlyAt = report.levels.find((l) => l.level === "CacheOnly")!.at
      expect(cacheOnlyAt).toBeGreaterThanOrEqual(2_000)
      const during = report.outcomes.filter((o) => o.sentAt >= cacheOnlyAt)
      expect(during.length).toBeGreaterThan(20)
      // The level goes back to Degraded for a moment each time a breaker's open duration
      // ends (a probe is due), and back to CacheOnly when the probe fails.
      expect(during.filter((o) => o.levelAtSend === "CacheOnly").length).toBeGreaterThan(during.length / 2)
      expect(during.every((o) => o.levelAtSend !== "Full")).toBe(true)
      for (const outcome of during) {
        expect(outcome.markedDegraded).toBe(true)
        if (outcome.prompt.startsWith("known")) {
          expect(outcome.kind).toBe("Cached")
          expect(outcome.text.startsWith("[degraded: cached answer] ")).toBe(true)
          // The answer alpha gave to the same prompt before.
          const earlier = before.find((o) => o.prompt === outcome.prompt)!
          expect(outcome.text).toBe(`[degraded: cached answer] ${earlier.text}`)
        } else {
          expect(outcome.kind).toBe("Degraded")
          expect(outcome.text).toBe(`[degraded] ${Scenario.degradedAnswer}`)
        }
      }
      // At CacheOnly no provider is asked: their calls all happened before it.
      const calls = report.providers.reduce((sum, p) => sum + p.calls, 0)
      const sentBefore = report.outcomes.filter((o) => o.sentAt < cacheOnlyAt).length
      expect(calls).toBeLessThan(sentBefore * 3 * 3)
      for (const p of report.providers) expect(p.received).toBe(p.calls + p.checks)
    }))

  it.effect("the example's timeline: answered >= 95%, full answers >= 80%, degraded answers only below Full", () =>
    Effect.gen(function*() {
      const { report } = yield* runOnTestClock(Scenario.timeline, 200, { interval: "100 millis" })
      expect(report.requests).toBe(200)
      const full = report.outcomes.filter((o) => o.kind === "Full")
      const cached = report.outcomes.filter((o) => o.kind === "Cached")
      const degraded = report.outcomes.filter((o) => o.kind === "Degraded")
      // The figures are counts of what happened.
      expect(report.succeeded).toBe(full.length)
      // Requests asking the same prompt at the same time share one provider answer.
      expect(report.succeeded).toBeGreaterThanOrEqual(report.providers.reduce((sum, p) => sum + p.answered, 0))
      expect(report.cached).toBe(cached.length)
      expect(report.degraded).toBe(degraded.length)
      expect(report.answeredRate).toBe((full.length + cached.length + degraded.length) / 200)
      expect(report.successRate).toBe(full.length / 200)
      expect(report.answeredRate).toBeGreaterThanOrEqual(0.95)
      expect(report.successRate).toBeGreaterThanOrEqual(0.8)
      // No provider answered for a while: both kinds of degraded answers were given.
      expect(cached.length).toBeGreaterThan(0)
      expect(degraded.length).toBeGreaterThan(0)

      for (const outcome of full) {
        expect(outcome.markedDegraded).toBe(false)
        expect(outcome.provider).toBeDefined()
      }
      for (const outcome of [...cached, ...degraded]) {
        expect(outcome.markedDegraded).toBe(true)
        expect(outcome.provider).toBeUndefined()
        // Given only while the providers are down: the level is below Full.
        expect(outcome.levelAtAnswer).not.toBe("Full")
        // Only in the stretch when the providers fail: from alpha going down (5 s) to its return (13 s).
        expect(outcome.sentAt).toBeGreaterThanOrEqual(5_000)
        expect(outcome.sentAt).toBeLessThan(13_000)
      }
      // A cached answer is a provider's earlier answer to the same prompt.
      for (const outcome of cached) {
        expect(
          full.some((f) =>
            f.prompt === outcome.prompt && f.sentAt + f.latency <= outcome.sentAt + outcome.latency &&
            outcome.text === `[degraded: cached answer] ${f.text}`
          )
        ).toBe(true)
      }
      // Some degraded answers came while every breaker was open (the CacheOnly level).
      expect([...cached, ...degraded].some((o) => o.allOpenAtAnswer && o.levelAtAnswer === "CacheOnly")).toBe(true)
      expect(report.levels.map((l) => l.level)).toEqual(expect.arrayContaining(["Full", "Degraded", "CacheOnly"]))
      expect(report.levels[report.levels.length - 1]!.level).toBe("Full")

      // Failover time and MTTR per provider, measured: every provider failed, was failed
      // over from within 5 s, and recovered.
      for (const p of report.providers) {
        expect(p.failoverMillis).toBeDefined()
        expect(p.failoverMillis!).toBeLessThan(5_000)
        expect(p.recoveries).toBeGreaterThanOrEqual(1)
        expect(p.mttrMillis).toBeDefined()
        expect(p.received).toBe(p.calls + p.checks)
      }
    }))
})
