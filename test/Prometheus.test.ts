import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, LogLevel, Metric, Scope, TestClock } from "effect"
import * as Cache from "../src/Cache.js"
import * as Chaos from "../src/Chaos.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Health from "../src/Health.js"
import * as Prometheus from "../src/Prometheus.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { parseExposition, samplesOf, valueOf } from "./support/prometheusServer.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

const render = Effect.map(Prometheus.render, (text) => ({ text, samples: parseExposition(text) }))

const withRegistry = (options?: Health.Options) =>
  Effect.provide(Prometheus.layer().pipe(Layer.provideMerge(Health.layer(options))))

/** Runs `self` with no `Scope` in its context: a breaker made there does not register itself. */
const withoutScope = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.mapInputContext(self, (context: Context.Context<R>) =>
    Context.omit(Scope.Scope)(context as Context.Context<R | Scope.Scope>) as Context.Context<R>)

const fail = (breaker: CircuitBreaker.CircuitBreaker) => breaker.protect(Effect.fail("boom")).pipe(Effect.ignore)

describe("Prometheus", () => {
  it.effect("each registered breaker's state reads 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed", () =>
    Effect.gen(function*() {
      const name = uniqueName("state")
      const breaker = yield* CircuitBreaker.make({ name, failureThreshold: 1, resetTimeout: "10 seconds" })
      const state = Effect.map(render, ({ samples }) =>
        valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: name, dependency: name }))
      expect(yield* state).toBe(0)
      yield* fail(breaker)
      expect(yield* state).toBe(1)
      yield* TestClock.adjust("10 seconds")
      expect(yield* state).toBe(2)
      yield* breaker.forceOpen
      expect(yield* state).toBe(3)
      yield* breaker.forceClosed
      expect(yield* state).toBe(4)
      yield* breaker.reset
      expect(yield* state).toBe(0)
    }).pipe(Effect.scoped, withRegistry(), quiet))

  it.effect("a forced-open breaker, a failing one, a degraded cache and the system's health, per dependency", () =>
    Effect.gen(function*() {
      const payments = uniqueName("payments")
      const search = uniqueName("search")
      const sessions = uniqueName("sessions")
      const forced = yield* CircuitBreaker.make({ name: payments })
      yield* Health.register({ name: payments, critical: true, source: Health.fromBreaker(forced) })
      const failing = yield* CircuitBreaker.make({
        name: search,
        failureThreshold: 100,
        failureRateThreshold: 0.9,
        minimumCalls: 10,
        window: { _tag: "Count", size: 10 }
      })
      // 4 successes then 2 failures: a failure ratio of 1/3, still closed.
      yield* Effect.repeatN(failing.protect(Effect.void), 3)
      yield* fail(failing)
      yield* fail(failing)
      const [down] = yield* Chaos.makeCache(Cache.degraded, { failureRate: 1 })
      const cache = yield* ResilientCache.fromCache(down, {
        name: sessions,
        breaker: { failureThreshold: 2, resetTimeout: "30 seconds" }
      })
      yield* Effect.repeatN(cache.get("k"), 1)
      expect(yield* cache.degraded).toBe(true)
      yield* forced.forceOpen

      const { samples, text } = yield* render
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: payments })).toBe(3)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: search })).toBe(0)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_failure_ratio", { breaker: search })).toBeCloseTo(
        2 / 6,
        10
      )
      expect(valueOf(samples, "effect_resilience_circuit_breaker_transitions_total", { breaker: payments })).toBe(1)
      expect(valueOf(samples, "effect_resilience_circuit_breaker_transitions_total", { breaker: search })).toBe(0)
      expect(valueOf(samples, "effect_resilience_dependency_state", { dependency: payments })).toBe(2)
      expect(valueOf(samples, "effect_resilience_dependency_state", { dependency: search })).toBe(0)
      expect(valueOf(samples, "effect_resilience_dependency_info", { dependency: payments })).toBe(1)
      expect(samplesOf(samples, "effect_resilience_dependency_info", { dependency: payments })[0]!.labels).toEqual({
        dependency: payments,
        kind: "Breaker",
        critical: "true"
      })
      // The cache's breaker is reported with the cache, once.
      const cacheBreaker = samplesOf(samples, "effect_resilience_circuit_breaker_state", { dependency: sessions })
      expect(cacheBreaker.map((sample) => sample.value)).toEqual([1])
      expect(valueOf(samples, "effect_resilience_cache_degraded", { dependency: sessions })).toBe(1)
      expect(samplesOf(samples, "effect_resilience_cache_degraded", { dependency: search })).toEqual([])
      expect(valueOf(samples, "effect_resilience_dependency_fallback_active", { dependency: sessions })).toBe(1)
      // A critical dependency down: Critical (2), service level Limited (2).
      const status = yield* Health.Health.pipe(Effect.flatMap((health) => health.status))
      expect(status.health).toBe("Critical")
      expect(valueOf(samples, "effect_resilience_health_system")).toBe(2)
      expect(valueOf(samples, "effect_resilience_health_service_level")).toBe(2)
      expect(valueOf(samples, "effect_resilience_health_read_only")).toBe(0)
      expect(valueOf(samples, "effect_resilience_health_operational_ratio")).toBeCloseTo(status.operational, 10)
      // The bridge's additions the text format has no use for are left out.
      expect(text).not.toMatch(/^# UNIT/m)
      expect(text).not.toContain("otel_scope_name")
      expect(text).not.toContain("target_info")
      // Counters end in _total once, with their TYPE.
      expect(text).toMatch(/^# TYPE effect_resilience_circuit_breaker_calls_total counter$/m)
      expect(text).toMatch(/^# TYPE effect_resilience_circuit_breaker_transitions_total counter$/m)
      expect(text).not.toContain("_total_total")
      // One HELP per family.
      const helps = text.split("\n").filter((line) => line.startsWith("# HELP ")).map((line) => line.split(" ")[2])
      expect(new Set(helps).size).toBe(helps.length)
    }).pipe(Effect.scoped, withRegistry(), quiet))

  it.effect("MTTR reads the mean time from down to operational, in seconds, once a dependency has recovered", () =>
    Effect.gen(function*() {
      const name = uniqueName("mttr")
      const breaker = yield* CircuitBreaker.make({ name })
      const mttr = Effect.map(render, ({ samples }) =>
        samplesOf(samples, "effect_resilience_dependency_mttr_seconds", { dependency: name }).map((s) => s.value))
      expect(yield* mttr).toEqual([])
      yield* breaker.forceOpen
      yield* Effect.flatMap(Health.Health, (health) => health.status)
      yield* TestClock.adjust("12 seconds")
      yield* breaker.reset
      yield* Effect.flatMap(Health.Health, (health) => health.status)
      expect(yield* mttr).toEqual([12])
      const { samples } = yield* render
      expect(valueOf(samples, "effect_resilience_dependency_recoveries_total", { dependency: name })).toBe(1)
      // Effect's own histogram of recoveries, in seconds, agrees.
      expect(valueOf(samples, "effect_resilience_health_recovery_seconds_sum", { dependency: name })).toBe(12)
      expect(valueOf(samples, "effect_resilience_health_recovery_seconds_bucket", { dependency: name, le: "8" }))
        .toBe(0)
      expect(valueOf(samples, "effect_resilience_health_recovery_seconds_bucket", { dependency: name, le: "16" }))
        .toBe(1)
    }).pipe(Effect.scoped, withRegistry(), quiet))

  it.effect("call durations are a histogram in seconds, with buckets from half a millisecond to a minute", () =>
    Effect.gen(function*() {
      const name = uniqueName("slow")
      const breaker = yield* CircuitBreaker.make({ name, tagMetricsWithName: true })
      const slow = yield* Effect.fork(breaker.protect(Effect.sleep("2 seconds")))
      yield* TestClock.adjust("2 seconds")
      yield* slow.await
      const fast = yield* Effect.fork(breaker.protect(Effect.sleep("30 millis")))
      yield* TestClock.adjust("30 millis")
      yield* fast.await
      const { samples, text } = yield* render
      const family = "effect_resilience_circuit_breaker_call_duration_seconds"
      expect(text).toMatch(new RegExp(`^# TYPE ${family} histogram$`, "m"))
      expect(valueOf(samples, `${family}_count`, { breaker: name })).toBe(2)
      expect(valueOf(samples, `${family}_sum`, { breaker: name })).toBeCloseTo(2.03, 10)
      const buckets = samplesOf(samples, `${family}_bucket`, { breaker: name })
      expect(buckets.map((sample) => sample.labels["le"])).toEqual([
        "0.0005",
        "0.001",
        "0.0025",
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "1",
        "2.5",
        "5",
        "10",
        "30",
        "60",
        "+Inf"
      ])
      const bucket = (le: string) => buckets.find((sample) => sample.labels["le"] === le)!.value
      expect([bucket("0.025"), bucket("0.05"), bucket("1"), bucket("2.5"), bucket("+Inf")]).toEqual([0, 1, 1, 2, 2])
      // Without a registry in the context, a tagged breaker's state comes from Effect's gauge.
      expect(valueOf(samples, "effect_resilience_circuit_breaker_state", { breaker: name })).toBe(0)
    }).pipe(Effect.provide(Prometheus.layer()), quiet))

  it.effect("with a registry, its breakers replace Effect's state gauge; a tagged breaker it does not know stays", () =>
    Effect.gen(function*() {
      const registered = uniqueName("registered")
      const tagged = uniqueName("tagged-unregistered")
      const breaker = yield* CircuitBreaker.make({ name: registered, tagMetricsWithName: true })
      yield* breaker.forceOpen
      // Made outside any scope: not registered.
      const outside = yield* withoutScope(
        CircuitBreaker.make({ name: tagged, tagMetricsWithName: true, failureThreshold: 1 })
      )
      yield* fail(outside)
      const { samples } = yield* render
      const states = samplesOf(samples, "effect_resilience_circuit_breaker_state")
      // No series without a breaker label (an untagged breaker's last transition says nothing of any one breaker).
      expect(states.every((sample) => typeof sample.labels["breaker"] === "string")).toBe(true)
      expect(samplesOf(samples, "effect_resilience_circuit_breaker_state", { breaker: registered })).toEqual([
        {
          name: "effect_resilience_circuit_breaker_state",
          labels: { breaker: registered, dependency: registered },
          value: 3
        }
      ])
      expect(samplesOf(samples, "effect_resilience_circuit_breaker_state", { breaker: tagged })).toEqual([
        { name: "effect_resilience_circuit_breaker_state", labels: { breaker: tagged }, value: 1 }
      ])
    }).pipe(Effect.scoped, withRegistry(), quiet))

  it.effect("two Effect metrics of one name and labels give one series; a counter that may go down is a gauge", () =>
    Effect.gen(function*() {
      const name = uniqueName("twice").replace("-", "_")
      yield* Metric.set(Metric.gauge(name, { description: "first" }), 1)
      yield* Metric.set(Metric.gauge(name, { description: "second" }), 2)
      const upDown = `${name}_queue_length`
      yield* Metric.incrementBy(Metric.counter(upDown, { description: "may go down" }), 5)
      yield* Metric.incrementBy(Metric.counter(upDown, { description: "may go down" }), -2)
      const { samples, text } = yield* render
      expect(samplesOf(samples, name)).toEqual([{ name, labels: {}, value: 1 }])
      expect(text).toMatch(new RegExp(`^# TYPE ${upDown} gauge$`, "m"))
      expect(valueOf(samples, upDown)).toBe(3)
    }).pipe(Effect.provide(Prometheus.layer())))

  it.effect("health: false leaves the registry out; targetInfo adds a target_info series", () =>
    Effect.gen(function*() {
      const name = uniqueName("ignored")
      yield* CircuitBreaker.make({ name })
      const exposition = yield* Prometheus.make({ health: false, targetInfo: { "service.name": "orders" } })
      const text = yield* exposition.render
      const samples = parseExposition(text)
      expect(exposition.contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
      expect(samplesOf(samples, "effect_resilience_dependency_state", { dependency: name })).toEqual([])
      expect(samplesOf(samples, "target_info")).toEqual([
        { name: "target_info", labels: { service_name: "orders" }, value: 1 }
      ])
    }).pipe(Effect.scoped, Effect.provide(Health.layer()), quiet))

  it.effect("invalid options fail with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const health = yield* Effect.exit(Prometheus.make({ health: "yes" as unknown as boolean }))
      const labels = yield* Effect.exit(Prometheus.make({ targetInfo: { "bad label": "x" } }))
      const options = yield* Effect.exit(Prometheus.make(42 as unknown as Prometheus.Options))
      const fieldOf = (exit: Exit.Exit<unknown, { readonly field: string }>) =>
        Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.field : "none"
      expect([fieldOf(health), fieldOf(labels), fieldOf(options)]).toEqual(["health", "targetInfo", "options"])
    }))
})
