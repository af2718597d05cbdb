/**
 * The examples of docs/redis.md, runnable: `npx tsx docs/examples/redis.ts` plays the
 * application code on the memory cache and on a rehearsed Redis outage, and, with
 * `REDIS_URL` set, on that Redis behind the resilient layer. In an application, import the
 * modules from the package: `import { Cache, Chaos, ResilientCache } from "effect-resilience"`
 * and `import * as RedisCache from "effect-resilience/Cache/Redis"`.
 */
import { Console, Effect, Layer, Option, TestClock, TestContext } from "effect"
import * as RedisCache from "effect-resilience/Cache/Redis"
import { Cache, Chaos, ResilientCache } from "effect-resilience"
import { pathToFileURL } from "node:url"
// --- Application code: written against the Cache tag ----------------------------------------

const loadProfile = (id: string) => Effect.succeed(JSON.stringify({ id, name: `user ${id}` }))

export const getProfile = (id: string) =>
  Effect.gen(function*() {
    const cache = yield* Cache.Cache
    const cached = yield* cache.get(`profile:${id}`)
    if (Option.isSome(cached)) return cached.value
    const fresh = yield* loadProfile(id)
    yield* cache.set(`profile:${id}`, fresh, { ttl: "10 minutes" })
    return fresh
  })

// --- Production: Redis behind a breaker, memory as the read fallback ---------------------------

export const RedisLive = RedisCache.layer({
  url: "redis://localhost:6379",
  prefix: "app:",
  commandTimeout: "500 millis",
  compressionThreshold: 512
})

// Provides ResilientCache, and Cache again as the resilient one: getProfile's error
// channel still says CacheError, but nothing can fail it any more.
export const CacheLive = ResilientCache.layer({
  name: "redis",
  memoryFallback: { capacity: 1000, ttl: "5 minutes" },
  breaker: { failureThreshold: 5, resetTimeout: "30 seconds", successThreshold: 3 }
}).pipe(Layer.provide(RedisLive))

export const main = getProfile("42").pipe(Effect.provide(CacheLive))

// The same, configured from the environment (REDIS_URL, REDIS_COMMAND_TIMEOUT, ...).
export const CacheFromEnv = ResilientCache.layer({ name: "redis" }).pipe(
  Layer.provide(RedisCache.layerConfig({ prefix: "app:" }))
)

// --- Health: the degraded flag and the breaker ---------------------------------------------------

export const cacheHealth = Effect.gen(function*() {
  const cache = yield* ResilientCache.ResilientCache
  const metrics = yield* cache.breaker.metrics
  return {
    degraded: yield* cache.degraded,
    state: metrics.state,
    failureRate: metrics.failureRate,
    stats: yield* cache.stats
  }
}).pipe(Effect.provide(CacheLive))

// --- Tests: the same application code on other layers -----------------------------------------

// No Redis at all: the embedded memory cache.
export const CacheTest = Cache.layerMemory()

// A rehearsal of a Redis outage in milliseconds on TestClock: the memory cache, down from
// minute 1 to minute 11, behind the same resilient layer as in production.
export const CacheOutage = ResilientCache.layer({ name: "redis" }).pipe(
  Layer.provide(Chaos.layerCache({ outages: [{ start: "1 minute", duration: "10 minutes" }], seed: 1 })),
  Layer.provide(Cache.layerMemory())
)

export const profileInTests = getProfile("42").pipe(Effect.provide(CacheOutage))

// --- Without the resilient layer: what a timed-out write means ---------------------------------

// A write that timed out may have been applied: the server may have run the SET whose
// reply never came. When a stale value would be harmful, remove the key once Redis answers
// again (or let its TTL bound the damage).
export const saveProfile = (id: string, profile: string) =>
  Effect.gen(function*() {
    const cache = yield* Cache.Cache
    yield* cache.set(`profile:${id}`, profile).pipe(
      Effect.catchTag("CacheError", (error) =>
        error.outcome === "Unknown"
          ? Effect.logWarning(`profile ${id} may or may not be cached: ${error.message}`)
          : Effect.logDebug(`profile ${id} not cached: ${error.reason}`))
    )
  }).pipe(Effect.provide(RedisLive))

// --- Running this file --------------------------------------------------------------------------

const run = Effect.gen(function*() {
  // The memory cache: the first read computes the profile, the second finds it cached.
  const onMemory = yield* Effect.gen(function*() {
    const cache = yield* Cache.Cache
    const before = yield* cache.get("profile:42")
    const profile = yield* getProfile("42")
    const after = yield* cache.get("profile:42")
    return { before: Option.isSome(before), profile, after: Option.isSome(after) }
  }).pipe(Effect.provide(CacheTest))
  yield* Console.log(`memory cache: cached before ${onMemory.before}, after ${onMemory.after}: ${onMemory.profile}`)

  // The outage rehearsal on TestClock: two minutes in, the cache is down, the profile is
  // still answered (computed again, since the fallback of a get is a miss).
  const rehearsal = yield* Effect.gen(function*() {
    yield* TestClock.adjust("2 minutes")
    const profile = yield* getProfile("42")
    const cache = yield* ResilientCache.ResilientCache
    return { profile, stats: yield* cache.stats }
  }).pipe(Effect.provide(CacheOutage), Effect.provide(TestContext.TestContext))
  yield* Console.log(
    `outage rehearsal: answered ${rehearsal.profile} with ${rehearsal.stats.fallbacks} cache fallbacks`
  )

  if (process.env["REDIS_URL"] === undefined) {
    yield* Console.log("set REDIS_URL (redis://localhost:6379) to run the same code on Redis")
    return
  }
  const onRedis = yield* Effect.gen(function*() {
    const profile = yield* getProfile("42")
    const cache = yield* ResilientCache.ResilientCache
    const metrics = yield* cache.breaker.metrics
    return { profile, degraded: yield* cache.degraded, state: metrics.state, stats: yield* cache.stats }
  }).pipe(Effect.provide(CacheFromEnv))
  yield* Console.log(
    `Redis (REDIS_URL): ${onRedis.profile}; breaker ${onRedis.state}, degraded ${onRedis.degraded},` +
      ` ${onRedis.stats.hits} hits, ${onRedis.stats.misses} misses, ${onRedis.stats.fallbacks} fallbacks`
  )
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(run).catch((error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error))
    process.exitCode = 1
  })
}
