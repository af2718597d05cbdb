/**
 * The examples of docs/chaos.md. In an application, import the modules from the package:
 * `import { Cache, Chaos, ResilientCache } from "effect-resilience"`.
 */
import { Data, Duration, Effect, Layer, TestClock } from "effect"
import { Cache, Chaos, ResilientCache } from "effect-resilience"

class PaymentsDown extends Data.TaggedError("PaymentsDown") {}

const charge = (cents: number) => Effect.succeed({ charged: cents })

// --- Combinators around any effect ----------------------------------------------------------

export const rehearsal = Effect.gen(function*() {
  // 5% of calls fail, every call takes 20 to 80 ms, and from minute 1 to minute 3 all fail
  const flaky = yield* Chaos.fail({ probability: 0.05, error: () => new PaymentsDown(), seed: 42 })
  const slow = yield* Chaos.delay({ latency: ["20 millis", "80 millis"], seed: 42 })
  const outage = yield* Chaos.outage({ start: "1 minute", duration: "2 minutes", error: () => new PaymentsDown() })

  const chargeWithFaults = (cents: number) => charge(cents).pipe(flaky, slow, outage)
  const results = yield* Effect.forEach([100, 200, 300], (cents) => Effect.either(chargeWithFaults(cents)))

  const stats = yield* flaky.stats
  yield* Effect.log(`${stats.failures} of ${stats.calls} calls failed`)
  return results
})

// A frozen dependency: calls hang until the window ends; only the caller's timeout bounds them.
export const frozen = Effect.gen(function*() {
  const freeze = yield* Chaos.outage({ start: 0, duration: "30 seconds", mode: "hang" })
  return yield* charge(100).pipe(freeze, Effect.timeout("2 seconds"), Effect.either)
})

// --- A chaos layer around the Cache ------------------------------------------------------------

// The memory cache, down from minute 2 to minute 12 (10 minutes), 1% of calls failing
// otherwise, 1 to 5 ms of latency: a Layer from Cache to Cache, so it wraps any backend.
export const ChaoticCache = Chaos.layerCache({
  failureRate: 0.01,
  latency: ["1 millis", "5 millis"],
  outages: [{ start: "2 minutes", duration: "10 minutes" }],
  seed: 7
}).pipe(Layer.provide(Cache.layerMemory()))

// The resilient cache over it: the outage never reaches callers. `provideMerge` keeps the
// chaos handle (Chaos.CacheChaos) in the context for the report.
export const ResilientOverChaos = ResilientCache.layer({ name: "demo" }).pipe(Layer.provideMerge(ChaoticCache))

export const report = Effect.gen(function*() {
  const chaos = yield* Chaos.CacheChaos
  const stats = yield* chaos.stats
  return {
    calls: stats.calls,
    injected: stats.failures + stats.timeouts + stats.outageFailures + stats.outageHangs,
    delayedMillis: Duration.toMillis(stats.totalDelay),
    outageNow: yield* chaos.outageActive
  }
}).pipe(Effect.provide(ResilientOverChaos))

// --- Replaying an outage in a test ------------------------------------------------------------

// No latency here: a latency sleeps on the Clock, and under TestClock only `adjust` moves it.
const OutageOnly = Chaos.layerCache({ outages: [{ start: "2 minutes", duration: "10 minutes" }] }).pipe(
  Layer.provide(Cache.layerMemory())
)

// 15 minutes of reads through the resilient cache while the cache beneath is down for 10
export const replayOutage = Effect.gen(function*() {
  const cache = yield* ResilientCache.ResilientCache
  let answered = 0
  for (let step = 0; step < 45; step++) {
    yield* cache.get("k") // error channel never: nothing to catch
    answered++
    yield* TestClock.adjust("20 seconds")
  }
  const stats = yield* (yield* Chaos.CacheChaos).stats
  return { answered, injected: stats.outageFailures }
}).pipe(Effect.provide(ResilientCache.layer({ name: "replay" }).pipe(Layer.provideMerge(OutageOnly))))
