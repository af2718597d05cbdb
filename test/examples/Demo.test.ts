import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "effect-resilience"
import * as QueryService from "../../examples/queryService.js"

/**
 * Runs the demo's scenario on `TestClock`: one adjustment wakes every sleep in time order, so
 * that each request, timeout and probe happens at its time on the timeline, without waiting.
 */
const runScenario = Effect.gen(function*() {
  const fiber = yield* Effect.fork(
    QueryService.run({ backend: Cache.layerMemory(), cacheLatency: QueryService.memoryCacheLatency }).pipe(
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
  )
  // The scenario takes 16 s and a few hundred ms to drain; give up well after that.
  yield* TestClock.adjust("20 seconds")
  const exit = yield* Fiber.poll(fiber)
  if (Option.isNone(exit)) return yield* Effect.die("the scenario did not end within 20 s on the TestClock")
  return yield* exit.value
})

describe("the demo's cache-first query service", () => {
  it.effect("no user sees the cache outage: fallbacks answer, the breaker opens and closes", () =>
    Effect.gen(function*() {
      const result = yield* runScenario
      const figures = QueryService.figures(result)

      expect(figures.requests).toBe(QueryService.rate * QueryService.duration / 1000)
      expect(result.requests.filter((r) => r.outcome === "error")).toEqual([])
      expect(figures.errors).toBe(0)

      // The outage is answered by fallbacks, and only then: before it, every cache call succeeds.
      const during = (name: string) => result.seconds.filter((s) => s.phase.name === name)
      expect(figures.outageFallbacks).toBeGreaterThan(0)
      expect(during("healthy").every((s) => s.fallbacks === 0)).toBe(true)
      // Hardly any request is a hit while the cache is frozen (only those answered just before it froze).
      expect(result.requests.filter((r) => r.phase.name === "outage" && r.outcome === "hit").length)
        .toBeLessThanOrEqual(2)

      // The breaker opens during the outage after its threshold, and closes after it, by itself.
      const { outage, resilience } = QueryService
      expect(figures.openedAt).toBeDefined()
      expect(figures.openedAt!).toBeGreaterThanOrEqual(outage.start + 100)
      expect(figures.openedAt!).toBeLessThan(outage.start + 1_000)
      expect(figures.closedAt).toBeDefined()
      expect(figures.closedAt!).toBeGreaterThanOrEqual(outage.start + outage.duration)
      expect(figures.closedAt!).toBeLessThanOrEqual(outage.start + outage.duration + 2_500)
      expect(result.changes.map((c) => `${c.from}->${c.to}`)).toEqual([
        "Closed->Open",
        ...Array.from({ length: figures.probes }, () => ["Open->HalfOpen", "HalfOpen->Open"]).flat(),
        "Open->HalfOpen",
        "HalfOpen->Closed"
      ])
      expect(figures.probes).toBeGreaterThanOrEqual(1)
      expect(result.breaker.state).toBe("Closed")

      // Only the calls before the breaker opened and the probes touched the frozen cache: one
      // call per probe, and at most a timeout's worth of traffic (get and set) before opening.
      const beforeOpening = resilience.breaker.failureThreshold + 2 * QueryService.rate / 10
      expect(result.chaos.outageHangs).toBeLessThanOrEqual(beforeOpening + figures.probes)
      expect(result.breaker.rejectedCalls).toBeGreaterThan(100)

      // Once open, no request waits for the cache timeout but the probes.
      const whileOpen = result.requests.filter((r) =>
        r.at >= figures.openedAt! && r.at < outage.start + outage.duration
      )
      const timeout = 100
      expect(whileOpen.filter((r) => r.latency >= timeout).length).toBeLessThanOrEqual(figures.probes)

      // The hit rate recovers once the breaker has closed.
      const afterClose = result.requests.filter((r) => r.at >= figures.closedAt! + 1_000)
      expect(afterClose.filter((r) => r.outcome === "hit").length / afterClose.length).toBeGreaterThan(0.6)

      // Every self-check of the demo holds.
      expect(QueryService.check(result).filter((c) => !c.pass)).toEqual([])
    }))

  it("keys a query by the sha256 of its text, whitespace normalised", () => {
    const key = QueryService.cacheKey("SELECT 1")
    expect(key).toBe("query:" + "e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5")
    expect(QueryService.cacheKey("  SELECT\n   1 ")).toBe(key)
    expect(QueryService.cacheKey("SELECT 2")).not.toBe(key)
  })
})
