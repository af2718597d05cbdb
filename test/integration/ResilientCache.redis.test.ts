/**
 * ResilientCache over a real Redis under real faults. For each fault: callers never see
 * an error; the breaker opens after its threshold; before it opens a call takes at most
 * about the command timeout, after it opens the fallback answers at once; once the server
 * is back the breaker closes by itself within the reset timeout plus its probes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Cache from "../../src/Cache.js"
import * as RedisCache from "../../src/Cache/Redis.js"
import * as ResilientCache from "../../src/ResilientCache.js"
import { afterAll } from "vitest"
import { redisServer, type RedisServer } from "./redisServer.js"

const commandTimeout = 200
const resetTimeout = 300
const failureThreshold = 3
const successThreshold = 2
// Generous bounds: the machine running the tests may be busy.
const beforeOpenBound = commandTimeout + 250
const afterOpenBound = 50
const recoveryBound = resetTimeout + commandTimeout + resetTimeout + 1000

const redisOptions = (server: RedisServer): RedisCache.Options => ({
  url: server.url,
  prefix: "rc:",
  commandTimeout,
  maxReconnectDelay: "100 millis",
  connectTimeout: "500 millis"
})

const resilientOptions = (name: string): ResilientCache.Options => ({
  name,
  timeout: "2 seconds",
  breaker: { failureThreshold, successThreshold, resetTimeout }
})

/** Counts the calls that reach the Redis cache, to show that an open breaker keeps them away. */
const counted = (cache: Cache.CacheService) => {
  let calls = 0
  const count = <A, E>(effect: Effect.Effect<A, E>) => Effect.suspend(() => (calls++, effect))
  const service: Cache.CacheService = {
    get: (key) => count(cache.get(key)),
    set: (key, value, options) => count(cache.set(key, value, options)),
    delete: (key) => count(cache.delete(key)),
    invalidate: (prefix) => count(cache.invalidate(prefix))
  }
  return { service, calls: () => calls }
}

const setup = (name: string) =>
  Effect.gen(function*() {
    const server = yield* redisServer()
    const redis = yield* RedisCache.make(redisOptions(server))
    const reaching = counted(redis)
    const cache = yield* ResilientCache.fromCache(reaching.service, resilientOptions(name))
    return { server, cache, reached: reaching.calls }
  })

/** Runs `call`, failing the test if it fails (it cannot, by its type) and returning its duration. */
const timedCall = <A>(call: Effect.Effect<A>) =>
  Effect.gen(function*() {
    const [duration, exit] = yield* Effect.timed(Effect.exit(call))
    expect(Exit.isSuccess(exit)).toBe(true)
    return { millis: Duration.toMillis(duration), exit }
  })

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

interface Measured {
  readonly fault: string
  readonly callsToOpen: number
  readonly beforeOpenMaxMillis: number
  readonly afterOpenP50Millis: number
  readonly afterOpenP99Millis: number
  readonly afterOpenMaxMillis: number
  readonly recoveryMillis: number
}

const measured: Array<Measured> = []
const measuredPatience: Array<Record<string, number>> = []
/** ResilientCache's default probePatience, in milliseconds. */
const probePatience = 1

/**
 * The shared scenario: warm up, inject the fault, call until the breaker opens (each call
 * bounded), call while open (each call fast, none reaching Redis but probes), heal, call
 * until the breaker closes (bounded), then check the cache works again.
 */
const scenario = (options: {
  readonly name: string
  readonly operation: "get" | "set"
  readonly inject: (server: RedisServer) => Effect.Effect<void>
  readonly heal: (server: RedisServer) => Effect.Effect<void>
  /** Whether the data written before the fault is expected to survive it. */
  readonly dataSurvives: boolean
}) =>
  Effect.gen(function*() {
    const { cache, reached, server } = yield* setup(options.name)
    yield* cache.set("warm", "before")
    expect(yield* cache.get("warm")).toEqual(Option.some("before"))
    expect(yield* cache.breaker.state).toBe("Closed")
    const call = options.operation === "get"
      ? cache.get("warm")
      : cache.set("written", "x".repeat(200))

    yield* options.inject(server)

    // Until the breaker opens, each call is bounded by the command timeout.
    const beforeOpen: Array<number> = []
    while ((yield* cache.breaker.state) === "Closed" && beforeOpen.length < 20) {
      const { millis } = yield* timedCall(call)
      beforeOpen.push(millis)
    }
    expect(yield* cache.breaker.state).toBe("Open")
    expect(beforeOpen.length).toBe(failureThreshold)
    expect(yield* cache.degraded).toBe(true)
    for (const millis of beforeOpen) expect(millis).toBeLessThan(beforeOpenBound)

    // While open, the fallback answers at once and calls do not reach Redis.
    const reachedAtOpen = reached()
    const afterOpen: Array<number> = []
    for (let i = 0; i < 100; i++) {
      const { millis } = yield* timedCall(call)
      afterOpen.push(millis)
    }
    const openedAt = Date.now()
    expect(reached()).toBe(reachedAtOpen)
    // p99 under the bound; a single outlier (a GC pause on a busy machine) gets more room.
    expect(percentile(afterOpen, 99)).toBeLessThan(afterOpenBound)
    expect(Math.max(...afterOpen)).toBeLessThan(afterOpenBound * 5)
    if (options.operation === "get") {
      const { exit } = yield* timedCall(cache.get("warm"))
      expect(exit).toEqual(Exit.succeed(Option.none()))
    }

    // Let one reset timeout pass while the fault is still there: only the probe reaches Redis.
    yield* Effect.sleep(Duration.millis(Math.max(0, resetTimeout - (Date.now() - openedAt)) + 20))
    const reachedBeforeProbe = reached()
    for (let i = 0; i < 5; i++) yield* timedCall(call)
    expect(reached() - reachedBeforeProbe).toBe(1)

    yield* options.heal(server)
    const healedAt = Date.now()
    while ((yield* cache.breaker.state) !== "Closed" && Date.now() - healedAt < recoveryBound + 2000) {
      yield* timedCall(call)
      yield* Effect.sleep("20 millis")
    }
    const recoveryMillis = Date.now() - healedAt
    expect(yield* cache.breaker.state).toBe("Closed")
    expect(yield* cache.degraded).toBe(false)
    expect(recoveryMillis).toBeLessThan(recoveryBound)

    // The cache works again.
    expect(yield* cache.get("warm")).toEqual(options.dataSurvives ? Option.some("before") : Option.none())
    yield* cache.set("after", "recovered")
    expect(yield* cache.get("after")).toEqual(Option.some("recovered"))

    const result: Measured = {
      fault: options.name,
      callsToOpen: beforeOpen.length,
      beforeOpenMaxMillis: Math.max(...beforeOpen),
      afterOpenP50Millis: percentile(afterOpen, 50),
      afterOpenP99Millis: percentile(afterOpen, 99),
      afterOpenMaxMillis: Math.max(...afterOpen),
      recoveryMillis
    }
    measured.push(result)
    return result
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

describe("ResilientCache over a real Redis, under real faults", () => {
  afterAll(() => {
    // The numbers behind the bounds asserted in each test, for the record.
    if (measured.length > 0) console.table(measured)
    if (measuredPatience.length > 0) console.table(measuredPatience)
  })

  it.live("server killed (connection refused): no error, fast failures, recovery after restart", () =>
    Effect.gen(function*() {
      const result = yield* scenario({
        name: "killed",
        operation: "get",
        inject: (server) => Effect.promise(() => server.kill()),
        heal: (server) => Effect.promise(() => server.restart()),
        dataSurvives: false
      })
      // Refused connections fail at once: no call waits for the command timeout.
      expect(result.beforeOpenMaxMillis).toBeLessThan(50)
    }))

  it.live("server frozen (SIGSTOP, then SIGCONT): calls bounded by the command timeout, then by the fallback", () =>
    Effect.gen(function*() {
      const result = yield* scenario({
        name: "frozen",
        operation: "get",
        inject: (server) => Effect.sync(() => server.stop()),
        heal: (server) => Effect.sync(() => server.cont()),
        dataSurvives: true
      })
      // Every call before opening waited for the command timeout, not longer.
      expect(result.beforeOpenMaxMillis).toBeGreaterThanOrEqual(commandTimeout - 10)
    }))

  it.live("DEBUG SLEEP: a busy server times calls out until it answers again", () =>
    Effect.gen(function*() {
      let sleeping: Promise<void> = Promise.resolve()
      yield* scenario({
        name: "debug-sleep",
        operation: "get",
        inject: (server) =>
          Effect.sync(() => {
            sleeping = server.debugSleep(2)
          }).pipe(Effect.zipRight(Effect.sleep("50 millis"))),
        heal: () => Effect.promise(() => sleeping),
        dataSurvives: true
      })
    }))

  it.live("CLIENT PAUSE: paused clients time out until the pause ends", () =>
    Effect.gen(function*() {
      let pausedUntil = 0
      yield* scenario({
        name: "client-pause",
        operation: "set",
        inject: (server) =>
          Effect.promise(async () => {
            await server.clientPause(2000)
            pausedUntil = Date.now() + 2000
          }),
        heal: () => Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, pausedUntil - Date.now())))),
        dataSurvives: true
      })
    }))

  it.live("maxmemory reached with noeviction: writes refused with OOM are absorbed, then succeed again", () =>
    Effect.gen(function*() {
      const result = yield* scenario({
        name: "oom",
        operation: "set",
        inject: (server) =>
          Effect.promise(async () => {
            await server.configSet("maxmemory-policy", "noeviction")
            await server.configSet("maxmemory", "1")
          }),
        heal: (server) => Effect.promise(() => server.configSet("maxmemory", "0")),
        dataSurvives: true
      })
      // The server refuses at once: nothing waits for the command timeout.
      expect(result.beforeOpenMaxMillis).toBeLessThan(50)
    }))

  it.live("getWithTtl answers the value and its remaining TTL in one round trip", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const redis = yield* RedisCache.make(redisOptions(server))
      yield* redis.set("ttl", "v", { ttl: "10 seconds" })
      yield* redis.set("forever", "f", { ttl: Duration.infinity })
      const entry = yield* redis.getWithTtl!("ttl")
      expect(Option.map(entry, (e) => e.value)).toEqual(Option.some("v"))
      const millis = Duration.toMillis(Option.getOrThrow(entry).ttl)
      expect(millis).toBeGreaterThan(9_000)
      expect(millis).toBeLessThanOrEqual(10_000)
      expect(Option.map(yield* redis.getWithTtl!("forever"), (e) => e.ttl)).toEqual(Option.some(Duration.infinity))
      expect(yield* redis.getWithTtl!("absent")).toEqual(Option.none())
      // A key of another type is refused as a plain GET refuses it.
      yield* Effect.promise(() => server.admin("HSET", "rc:hash", "f", "v"))
      const viaGet = yield* Effect.flip(redis.get("hash"))
      const viaScript = yield* Effect.flip(redis.getWithTtl!("hash"))
      expect(viaScript.reason).toBe(viaGet.reason)
      expect(viaScript.reason).toBe("Protocol")
      expect(redis.defaultTtl).toEqual(Duration.minutes(5))
      expect(redis.commandTimeout).toEqual(Duration.millis(commandTimeout))
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)))

  it.live("frozen: the memory fallback serves a copy while its entry lives in Redis, never once it expired", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const redis = yield* RedisCache.make(redisOptions(server))
      const cache = yield* ResilientCache.fromCache(redis, { ...resilientOptions("frozen-copy"), memoryFallback: true })
      // Written beside the resilient cache, read through it once while Redis is up.
      yield* redis.set("short", "s", { ttl: "1500 millis" })
      yield* redis.set("long", "l", { ttl: "1 minute" })
      const start = Date.now()
      expect(yield* cache.get("short")).toEqual(Option.some("s"))
      expect(yield* cache.get("long")).toEqual(Option.some("l"))
      server.stop()
      try {
        expect(yield* cache.get("short")).toEqual(Option.some("s"))
        yield* Effect.sleep(Duration.millis(Math.max(0, 1700 - (Date.now() - start))))
        expect(yield* cache.get("short")).toEqual(Option.none())
        expect(yield* cache.get("long")).toEqual(Option.some("l"))
      } finally {
        server.cont()
      }
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)))

  it.live("frozen: once open, no read waits on a probe, and one read per open period reaches Redis", () =>
    Effect.gen(function*() {
      const { cache, reached, server } = yield* setup("probe-patience")
      yield* cache.set("warm", "before")
      const halfOpenings: Array<number> = []
      const changes = yield* cache.breaker.subscribe
      yield* changes.pipe(
        Stream.runForEach((change) => Effect.sync(() => change.to === "HalfOpen" && halfOpenings.push(Date.now()))),
        Effect.forkScoped
      )
      server.stop()
      try {
        let calls = 0
        while ((yield* cache.breaker.state) === "Closed" && calls++ < 20) yield* timedCall(cache.get("warm"))
        expect(yield* cache.breaker.state).toBe("Open")
        const reachedAtOpen = reached()
        const openedAt = Date.now()
        // Reads every 5 ms for 1.6 s: several open periods, each ending in a probe of a frozen server.
        const latencies: Array<number> = []
        while (Date.now() - openedAt < 1600) {
          const { exit, millis } = yield* timedCall(cache.get("warm"))
          expect(exit).toEqual(Exit.succeed(Option.none()))
          latencies.push(millis)
          yield* Effect.sleep("5 millis")
        }
        const probes = reached() - reachedAtOpen
        expect(halfOpenings.length).toBeGreaterThanOrEqual(2)
        expect(probes).toBeGreaterThanOrEqual(2)
        expect(probes).toBeLessThanOrEqual(halfOpenings.length)
        // No read sat out the 200 ms command timeout: the probes' callers waited 1 ms.
        expect(Math.max(...latencies)).toBeLessThan(probePatience + 50)
        measuredPatience.push({
          reads: latencies.length,
          probes,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: Math.max(...latencies)
        })
      } finally {
        server.cont()
      }
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)))

  it.live("restart on the same port with the layers composed: the client reconnects and the breaker closes", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const live = ResilientCache.layer(resilientOptions("restart")).pipe(
        Layer.provide(RedisCache.layer(redisOptions(server)))
      )
      yield* Effect.gen(function*() {
        const cache = yield* ResilientCache.ResilientCache
        yield* cache.set("k", "before")
        const port = server.port
        yield* Effect.promise(() => server.kill())
        // Traffic during the gap: absorbed, and it opens the breaker.
        for (let i = 0; i < failureThreshold; i++) {
          const { millis } = yield* timedCall(cache.get("k"))
          expect(millis).toBeLessThan(beforeOpenBound)
        }
        expect(yield* cache.breaker.state).toBe("Open")
        yield* Effect.promise(() => server.restart())
        expect(server.port).toBe(port)
        const restartedAt = Date.now()
        while ((yield* cache.breaker.state) !== "Closed" && Date.now() - restartedAt < recoveryBound + 2000) {
          yield* timedCall(cache.get("k"))
          yield* Effect.sleep("20 millis")
        }
        expect(yield* cache.breaker.state).toBe("Closed")
        expect(Date.now() - restartedAt).toBeLessThan(recoveryBound)
        // The server kept nothing (no persistence): a miss, not an error.
        expect(yield* cache.get("k")).toEqual(Option.none())
        yield* cache.set("k", "after")
        expect(yield* cache.get("k")).toEqual(Option.some("after"))
      }).pipe(Effect.provide(live))
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error)))
})
