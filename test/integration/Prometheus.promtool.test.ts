import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Metric, TestClock } from "effect"
import * as path from "node:path"
import * as Cache from "../../src/Cache.js"
import * as Chaos from "../../src/Chaos.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as Prometheus from "../../src/Prometheus.js"
import * as ResilientCache from "../../src/ResilientCache.js"
import { parseExposition, promtool, valueOf } from "../support/prometheusServer.js"

const rules = path.resolve(import.meta.dirname, "../../docs/prometheus")

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

/** A program with a breaker of each kind of state, a degraded cache, tagged and untagged metrics. */
const program = Effect.gen(function*() {
  const forced = yield* CircuitBreaker.make({ name: "payments" })
  yield* Health.register({ name: "payments-api", critical: true, source: Health.fromBreaker(forced) })
  yield* forced.forceOpen
  const opened = yield* CircuitBreaker.make({ name: "search", failureThreshold: 2, resetTimeout: "30 seconds" })
  yield* Effect.repeatN(opened.protect(Effect.fail("boom")).pipe(Effect.ignore), 2)
  const probing = yield* CircuitBreaker.make({ name: "ranking", failureThreshold: 1, resetTimeout: "5 seconds" })
  yield* probing.protect(Effect.fail("boom")).pipe(Effect.ignore)
  const tagged = yield* CircuitBreaker.make({ name: "llm \"primary\"\nus-east", tagMetricsWithName: true })
  const slow = yield* Effect.fork(tagged.protect(Effect.sleep("1200 millis")))
  yield* TestClock.adjust("6 seconds")
  yield* slow.await
  yield* tagged.forceClosed
  const [down] = yield* Chaos.makeCache(Cache.degraded, { failureRate: 1 })
  const cache = yield* ResilientCache.fromCache(down, { name: "sessions", breaker: { failureThreshold: 1 } })
  yield* cache.get("user:1")
  yield* cache.set("user:1", "{}")
  yield* Metric.increment(Metric.counter("orders_placed_total", { description: "Orders placed", incremental: true }))
  return yield* Prometheus.render
}).pipe(
  Effect.scoped,
  Effect.provide(Prometheus.layer().pipe(Layer.provideMerge(Health.layer({ critical: ["payments-api"] })))),
  quiet
)

describe("Prometheus with promtool", () => {
  it.effect("a program's exposition with breakers, a cache and health passes promtool check metrics, no lint", () =>
    Effect.gen(function*() {
      const text = yield* program
      const samples = parseExposition(text)
      // The figures are the program's, not an empty page.
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: "payments" })).toBe(3)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: "search" })).toBe(1)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: "ranking" })).toBe(2)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: "llm \"primary\"\nus-east" }))
        .toBe(4)
      expect(valueOf(samples, "effect_resilience_cache_degraded", { dependency: "sessions" })).toBe(1)
      expect(valueOf(samples, "effect_resilience_health_system")).toBe(2)
      expect(valueOf(samples, "orders_placed_total")).toBe(1)
      expect(
        valueOf(samples, "effect_resilience_circuit_breaker_call_duration_seconds_bucket", {
          breaker: "llm \"primary\"\nus-east",
          le: "2.5"
        })
      ).toBe(1)
      const result = yield* Effect.promise(() => promtool(["check", "metrics"], text))
      expect({ code: result.code, output: result.stdout + result.stderr }).toEqual({ code: 0, output: "" })
    }))

  it.live("promtool check metrics refuses what breaks the conventions, so its silence above means something", () =>
    Effect.gen(function*() {
      const text = [
        "# HELP call_duration_ms Durations in milliseconds",
        "# TYPE call_duration_ms histogram",
        "call_duration_ms_bucket{le=\"+Inf\"} 1",
        "call_duration_ms_sum 3",
        "call_duration_ms_count 1",
        "# HELP calls Calls",
        "# TYPE calls counter",
        "calls 2",
        ""
      ].join("\n")
      const result = yield* Effect.promise(() => promtool(["check", "metrics"], text))
      const output = result.stdout + result.stderr
      expect(result.code).not.toBe(0)
      expect(output).toContain("calls")
      expect(output).toContain("_total")
      expect(output).toContain("call_duration_ms")
    }))

  it.live("docs/prometheus/alerts.yml passes promtool check rules", () =>
    Effect.gen(function*() {
      const result = yield* Effect.promise(() => promtool(["check", "rules", path.join(rules, "alerts.yml")]))
      expect(result.code, result.stdout + result.stderr).toBe(0)
      expect(result.stdout).toContain("SUCCESS: 6 rules found")
    }))

  it.live("docs/prometheus/alerts.test.yml passes promtool test rules", () =>
    Effect.gen(function*() {
      const result = yield* Effect.promise(() => promtool(["test", "rules", path.join(rules, "alerts.test.yml")]))
      expect(result.code, result.stdout + result.stderr).toBe(0)
      expect(result.stdout).toContain("SUCCESS")
      expect(result.stdout + result.stderr).not.toContain("FAILED")
    }))
})
