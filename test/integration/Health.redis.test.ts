/**
 * The PING check of a resilient cache over a real Redis: the Redis cache answers `ping`, and
 * a resilient cache over it, with or without a health registry, half-opens its open breaker
 * once Redis answers PING again, long before its reset timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Cache from "../../src/Cache.js"
import * as RedisCache from "../../src/Cache/Redis.js"
import * as Health from "../../src/Health.js"
import * as ResilientCache from "../../src/ResilientCache.js"
import { redisServer, type RedisServer } from "./redisServer.js"

const env = (entries: ReadonlyArray<readonly [string, string]>) =>
  ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })

// Far longer than the tests: only the PING check can move the breaker out of Open.
const environment: ReadonlyArray<readonly [string, string]> = [
  ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "1"],
  ["REDIS_CIRCUIT_BREAKER_TIMEOUT", "600"],
  ["REDIS_SUCCESS_THRESHOLD", "1"],
  ["REDIS_HEALTH_CHECK_INTERVAL", "0.2"]
]

const redisLayer = (server: RedisServer) =>
  RedisCache.layer({
    url: server.url,
    prefix: "health:",
    commandTimeout: "200 millis",
    connectTimeout: "500 millis",
    maxReconnectDelay: "100 millis"
  })

/** The number of PING commands the server has answered since it (re)started. */
const pingsAnswered = (server: RedisServer) =>
  Effect.promise(async () => {
    const info = String(await server.admin("INFO", "commandstats"))
    const match = /cmdstat_ping:calls=(\d+)/.exec(info)
    return match === null ? 0 : Number(match[1])
  })

const getsAnswered = (server: RedisServer) =>
  Effect.promise(async () => {
    const info = String(await server.admin("INFO", "commandstats"))
    const match = /cmdstat_get:calls=(\d+)/.exec(info)
    return match === null ? 0 : Number(match[1])
  })

/** Polls `condition` every 20 millis for at most `millis`; fails the test if it never holds. */
const eventually = (condition: Effect.Effect<boolean>, millis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (Date.now() < deadline) {
      if (yield* condition) return
      yield* Effect.sleep("20 millis")
    }
    expect(yield* condition).toBe(true)
  })

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

describe("Redis PING as a resilient cache's health check", () => {
  it.live("the Redis cache answers ping while the server is up and fails with a CacheError while it is down", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const cache = Context.get(yield* Layer.build(redisLayer(server)), Cache.Cache)
      expect(cache.ping).toBeDefined()
      yield* cache.ping!
      expect(yield* pingsAnswered(server)).toBeGreaterThanOrEqual(1)
      yield* Effect.promise(() => server.kill())
      const error = yield* Effect.flip(cache.ping!)
      expect(error._tag).toBe("CacheError")
      expect(error.reason).toBe("Unavailable")
    }).pipe(Effect.scoped, quiet), 30_000)

  it.live("without a registry, a PING every REDIS_HEALTH_CHECK_INTERVAL half-opens the breaker once Redis is up", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const context = yield* Layer.build(
        ResilientCache.layerConfig().pipe(Layer.provide(redisLayer(server)))
      ).pipe(Effect.withConfigProvider(env(environment)))
      const cache = Context.get(context, ResilientCache.ResilientCache)
      yield* cache.set("k", "v")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))

      yield* Effect.promise(() => server.kill())
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.breaker.state).toBe("Open")
      // Redis is down: the pings fail and the breaker stays open.
      yield* Effect.sleep("600 millis")
      expect(yield* cache.breaker.state).toBe("Open")

      yield* Effect.promise(() => server.restart())
      const restartedAt = Date.now()
      yield* eventually(Effect.map(cache.breaker.state, (state) => state === "HalfOpen"), 5_000)
      // A PING did it (the server answered at least one), within a few intervals of the restart.
      expect(Date.now() - restartedAt).toBeLessThan(3_000)
      expect(yield* pingsAnswered(server)).toBeGreaterThanOrEqual(1)
      // The next call is the probe; it closes the breaker (REDIS_SUCCESS_THRESHOLD=1). A probe
      // slower than probePatience (1 ms: a loaded machine) answers its caller from the fallback
      // and closes the breaker from the background.
      yield* cache.set("k", "again")
      yield* eventually(Effect.map(cache.breaker.state, (state) => state === "Closed"), 5_000)
      expect(yield* cache.get("k")).toEqual(Option.some("again"))
    }).pipe(Effect.scoped, quiet), 30_000)

  it.live("with a registry, the registry runs the PING check: the cache is Degraded, then recovers by itself", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const context = yield* Layer.build(
        ResilientCache.layerConfig().pipe(
          Layer.provide(redisLayer(server)),
          Layer.provideMerge(Health.layer())
        )
      ).pipe(Effect.withConfigProvider(env(environment)))
      const cache = Context.get(context, ResilientCache.ResilientCache)
      const health = Context.get(context, Health.Health)
      const redis = Effect.map(health.status, (status) => status.dependencies.find((d) => d.name === "redis")!)

      expect(yield* redis).toMatchObject({ kind: "Cache", state: "Operational" })
      yield* Effect.promise(() => server.kill())
      expect(yield* cache.get("k")).toEqual(Option.none())
      const down = yield* redis
      expect(down).toMatchObject({ state: "Degraded", fallbackActive: true })
      expect(down.breakers).toEqual([
        { name: "redis", state: "Open", failureRate: 1, totalCalls: 1, rejectedCalls: 0 }
      ])

      yield* Effect.promise(() => server.restart())
      yield* eventually(Effect.map(cache.breaker.state, (state) => state === "HalfOpen"), 5_000)
      expect(yield* pingsAnswered(server)).toBeGreaterThanOrEqual(1)
      // The check is PING, not a read of a key.
      expect(yield* getsAnswered(server)).toBe(0)
      // The probe (a read) closes the breaker, from the background if it outlasts probePatience.
      yield* cache.get("k")
      yield* eventually(Effect.map(cache.breaker.state, (state) => state === "Closed"), 5_000)
      const up = yield* redis
      expect(up).toMatchObject({ state: "Operational", fallbackActive: false })
      expect(up.breakers[0]!.state).toBe("Closed")
      expect(Duration.toMillis(up.timeInState)).toBeLessThan(1_000)
    }).pipe(Effect.scoped, quiet), 30_000)
})
