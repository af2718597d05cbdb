import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Cache from "../src/Cache.js"
import * as RedisCache from "../src/Cache/Redis.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { CacheError } from "../src/internal/cacheService.js"
import * as ResilientCache from "../src/ResilientCache.js"
import * as Sql from "../src/Sql.js"
import * as Sqlite from "../src/Sql/Sqlite.js"
import * as Pg from "../src/Sql/Pg.js"
import { freePort } from "./integration/serverLifecycle.js"

const env = (entries: ReadonlyArray<readonly [string, string]>) =>
  ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })

const url: readonly [string, string] = ["REDIS_URL", "redis://localhost:6379"]

const millis = (value: unknown) => Duration.toMillis(Duration.decode(value as Duration.DurationInput))

describe("Redis variables: units and the seeds' names", () => {
  it.effect("a bare number of a duration variable is seconds, a value with a unit is read as given", () =>
    Effect.gen(function*() {
      const options = yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([
          url,
          ["REDIS_TTL", "3600"],
          ["REDIS_COMMAND_TIMEOUT", "0.25"],
          ["REDIS_CONNECT_TIMEOUT", "5"],
          ["REDIS_MAX_RECONNECT_DELAY", "2 minutes"]
        ]))
      )
      expect(millis(options.ttl)).toBe(3_600_000)
      expect(millis(options.commandTimeout)).toBe(250)
      expect(millis(options.connectTimeout)).toBe(5_000)
      expect(millis(options.maxReconnectDelay)).toBe(120_000)
    }))

  it.effect("REDIS_SOCKET_TIMEOUT (seconds) is the command timeout; REDIS_COMMAND_TIMEOUT wins when both are set", () =>
    Effect.gen(function*() {
      const seed = yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([url, ["REDIS_SOCKET_TIMEOUT", "2"]]))
      )
      expect(millis(seed.commandTimeout)).toBe(2_000)
      const both = yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([url, ["REDIS_SOCKET_TIMEOUT", "2"], ["REDIS_COMMAND_TIMEOUT", "300 millis"]]))
      )
      expect(millis(both.commandTimeout)).toBe(300)
    }))

  it.effect("an invalid duration is an InvalidOptions naming the option and the variable, seed or not", () =>
    Effect.gen(function*() {
      for (const [variable, text] of [["REDIS_SOCKET_TIMEOUT", "soon"], ["REDIS_COMMAND_TIMEOUT", "-1"]] as const) {
        const error = yield* RedisCache.configOptions().pipe(
          Effect.withConfigProvider(env([url, [variable, text]])),
          Effect.flip
        )
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toBe(`commandTimeout (${variable})`)
      }
    }))

  it.effect("RedisCache.config reads a bare number of a duration as seconds and the seeds' socket timeout", () =>
    Effect.gen(function*() {
      const options = yield* RedisCache.config.pipe(
        Effect.withConfigProvider(env([
          ["REDIS_TTL", "3600"],
          ["REDIS_CONNECT_TIMEOUT", "1500 millis"],
          ["REDIS_SOCKET_TIMEOUT", "2"]
        ]))
      )
      expect(millis(options.ttl)).toBe(3_600_000)
      expect(millis(options.connectTimeout)).toBe(1_500)
      expect(millis(options.commandTimeout)).toBe(2_000)
      expect(options.maxReconnectDelay).toBeUndefined()
      const both = yield* RedisCache.config.pipe(
        Effect.withConfigProvider(env([["REDIS_SOCKET_TIMEOUT", "2"], ["REDIS_COMMAND_TIMEOUT", "0.3"]]))
      )
      expect(millis(both.commandTimeout)).toBe(300)
      const error = yield* RedisCache.config.pipe(
        Effect.withConfigProvider(env([["REDIS_TTL", "soon"]])),
        Effect.flip
      )
      expect(String(error)).toContain("REDIS_TTL")
    }))

  it.effect("a seed's variable shadowed by a different library value is reported by a warning naming both", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => {
        logs.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const options = yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([url, ["REDIS_SOCKET_TIMEOUT", "2"], ["REDIS_COMMAND_TIMEOUT", "1"]])),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(millis(options.commandTimeout)).toBe(1_000)
      expect(logs).toEqual([
        "REDIS_COMMAND_TIMEOUT and REDIS_SOCKET_TIMEOUT are both set and differ: REDIS_COMMAND_TIMEOUT is used"
      ])
      logs.length = 0
      yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([url, ["REDIS_SOCKET_TIMEOUT", "1"], ["REDIS_COMMAND_TIMEOUT", "1"]])),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(logs).toEqual([])
    }))
})

/** Collects the messages logged while `self` runs. */
const logged = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logger = Logger.make(({ message }) => {
      logs.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const value = yield* self.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return { value, logs }
  })

const unavailable = (key: string) =>
  Effect.fail(new CacheError({ operation: "get", key, reason: "Unavailable", outcome: "NotApplied" }))

/** A cache backend that is down until `up` is set; its ping answers while it is up. */
const switchable = (up: Ref.Ref<boolean>, pings: Ref.Ref<number>): Cache.CacheService => {
  const whenUp = <A>(value: A, key: string) =>
    Effect.flatMap(Ref.get(up), (isUp) => (isUp ? Effect.succeed(value) : unavailable(key)))
  return {
    get: (key) => Effect.flatMap(Ref.get(up), (isUp) => (isUp ? Cache.degraded.get(key) : unavailable(key))),
    set: (key) => whenUp(undefined, key),
    delete: (key) => whenUp(false, key),
    invalidate: (prefix) => whenUp(0, prefix),
    ping: Effect.zipRight(Ref.update(pings, (n) => n + 1), whenUp(undefined, ""))
  }
}

const resilientFromEnvironment = (
  entries: ReadonlyArray<readonly [string, string]>,
  backend: Cache.CacheService,
  defaults?: ResilientCache.Options
) =>
  Effect.map(
    Layer.build(ResilientCache.layerConfig(defaults).pipe(Layer.provide(Layer.succeed(Cache.Cache, backend)))),
    (context) => Context.get(context, ResilientCache.ResilientCache)
  ).pipe(Effect.withConfigProvider(env(entries)))

describe("ResilientCache.layerConfig", () => {
  it.scoped("reads the seeds' REDIS_CIRCUIT_BREAKER_THRESHOLD and REDIS_CIRCUIT_BREAKER_TIMEOUT in seconds", () =>
    Effect.gen(function*() {
      const up = yield* Ref.make(false)
      const pings = yield* Ref.make(0)
      const cache = yield* resilientFromEnvironment(
        [
          ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "2"],
          ["REDIS_CIRCUIT_BREAKER_TIMEOUT", "30"],
          ["ENABLE_AUTO_RECOVERY", "0"]
        ],
        switchable(up, pings)
      )
      expect(cache.name).toBe("redis")
      yield* cache.get("a")
      expect(yield* cache.breaker.state).toBe("Closed")
      yield* cache.get("b")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("29 seconds")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      // ENABLE_AUTO_RECOVERY=0: no ping ran.
      expect(yield* Ref.get(pings)).toBe(0)
    }))

  it.scoped("lets the library's name win over the seed's, with a warning naming both variables", () =>
    Effect.gen(function*() {
      const { logs, value: options } = yield* logged(
        ResilientCache.configOptions({ breaker: { successThreshold: 1 } }).pipe(
          Effect.withConfigProvider(env([["REDIS_FAILURE_THRESHOLD", "4"], ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "2"]]))
        )
      )
      expect(options.name).toBe("redis")
      expect(options.breaker).toEqual({ successThreshold: 1, failureThreshold: 4 })
      expect(logs).toEqual([
        "REDIS_FAILURE_THRESHOLD and REDIS_CIRCUIT_BREAKER_THRESHOLD are both set and differ: " +
        "REDIS_FAILURE_THRESHOLD is used"
      ])
      const named = yield* ResilientCache.configOptions({ name: "sessions" }).pipe(
        Effect.withConfigProvider(env([["SESSIONS_RESET_TIMEOUT", "0.5"], ["REDIS_RESET_TIMEOUT", "9"]]))
      )
      expect(named.breaker).toEqual({ resetTimeout: Duration.millis(500) })
    }))

  it.scoped("refuses a value that can never work, naming the option and the variable", () =>
    Effect.gen(function*() {
      const up = yield* Ref.make(true)
      const pings = yield* Ref.make(0)
      for (const [variable, text, field] of [
        ["REDIS_CIRCUIT_BREAKER_TIMEOUT", "soon", "resetTimeout (REDIS_CIRCUIT_BREAKER_TIMEOUT)"],
        ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "0", "failureThreshold (REDIS_CIRCUIT_BREAKER_THRESHOLD)"]
      ] as const) {
        // A cache that was built fails the test as a short string, not as the whole service.
        const error = yield* resilientFromEnvironment([[variable, text]], switchable(up, pings)).pipe(
          Effect.as("built"),
          Effect.flip
        )
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toBe(field)
      }
    }))

  it.scoped("pings a backend that can (REDIS_HEALTH_CHECK_INTERVAL) and half-opens the breaker when it answers", () =>
    Effect.gen(function*() {
      const up = yield* Ref.make(false)
      const pings = yield* Ref.make(0)
      const cache = yield* resilientFromEnvironment(
        [
          ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "1"],
          ["REDIS_RESET_TIMEOUT", "600"],
          ["REDIS_HEALTH_CHECK_INTERVAL", "10"]
        ],
        switchable(up, pings),
        { breaker: { successThreshold: 1 } }
      )
      yield* cache.get("a")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("10 seconds")
      expect(yield* Ref.get(pings)).toBe(1)
      expect(yield* cache.breaker.state).toBe("Open")
      yield* Ref.set(up, true)
      yield* TestClock.adjust("9 seconds")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(pings)).toBe(2)
      // Long before the 600 seconds of the reset timeout.
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      yield* cache.get("b")
      expect(yield* cache.breaker.state).toBe("Closed")
      // While the breaker is closed, no ping is sent.
      yield* TestClock.adjust("30 seconds")
      expect(yield* Ref.get(pings)).toBe(2)
    }))
})

describe("Sql.layerConfig", () => {
  it.effect("reads the breaker under the database's name, the seeds' names too, and its check interval", () =>
    Effect.gen(function*() {
      const options = yield* Sql.configOptions({ name: "orders", breaker: { successThreshold: 1 } }).pipe(
        Effect.withConfigProvider(env([
          ["ORDERS_CIRCUIT_BREAKER_THRESHOLD", "3"],
          ["ORDERS_CIRCUIT_BREAKER_TIMEOUT", "120"],
          ["ORDERS_HEALTH_CHECK_INTERVAL", "2"]
        ]))
      )
      expect(options.breaker).toEqual({ successThreshold: 1, failureThreshold: 3, resetTimeout: Duration.seconds(120) })
      expect(options.healthCheck).toEqual({ interval: Duration.seconds(2) })
      const none = yield* Sql.configOptions({ healthCheck: false }).pipe(
        Effect.withConfigProvider(env([["DATABASE_HEALTH_CHECK_INTERVAL", "2"]]))
      )
      expect(none).toEqual({ name: "database", healthCheck: false, breaker: {} })
    }))

  it.scoped("builds a resilient database whose breaker has the environment's options", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        Sql.layerConfig().pipe(Layer.provide(Sqlite.layerClient({ filename: ":memory:" })))
      ).pipe(
        Effect.withConfigProvider(env([["DATABASE_CIRCUIT_BREAKER_TIMEOUT", "45"]]))
      )
      const db = Context.get(context, Sql.ResilientSql)
      expect(db.name).toBe("database")
      const metrics = yield* db.breaker.metrics
      expect(Duration.toMillis(metrics.openDuration)).toBe(45_000)
      const error = yield* Layer.build(
        Sql.layerConfig().pipe(Layer.provide(Sqlite.layerClient({ filename: ":memory:" })))
      ).pipe(
        Effect.withConfigProvider(env([["DATABASE_HEALTH_CHECK_INTERVAL", "later"]])),
        Effect.as("built"),
        Effect.flip
      )
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") {
        expect(error.field).toBe("healthCheck.interval (DATABASE_HEALTH_CHECK_INTERVAL)")
      }
    }))
})

describe("Pg.layerConfig", () => {
  it.scoped("reads the database's breaker from the environment too, under the name database by default", () =>
    Effect.gen(function*() {
      // Nothing listens there: the database starts degraded, its options already in force.
      const port = yield* Effect.promise(() => freePort())
      const context = yield* Layer.build(Pg.layerConfig()).pipe(
        Effect.withConfigProvider(env([
          ["DATABASE_URL", `postgres://app@127.0.0.1:${port}/app`],
          ["DATABASE_CIRCUIT_BREAKER_THRESHOLD", "2"],
          ["DATABASE_CIRCUIT_BREAKER_TIMEOUT", "45"]
        ]))
      )
      const db = Context.get(context, Sql.ResilientSql)
      expect(db.name).toBe("database")
      expect(Duration.toMillis((yield* db.breaker.metrics).openDuration)).toBe(45_000)
      const error = yield* Layer.build(Pg.layerConfig(undefined, { name: "orders" })).pipe(
        Effect.withConfigProvider(env([
          ["DATABASE_URL", `postgres://app@127.0.0.1:${port}/app`],
          ["ORDERS_CIRCUIT_BREAKER_THRESHOLD", "many"]
        ])),
        Effect.as("built"),
        Effect.flip
      )
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.field).toContain("ORDERS_CIRCUIT_BREAKER_THRESHOLD")
    }))
})

describe("CircuitBreaker in the environment", () => {
  it.effect("a breaker from fromConfig reads the seeds' timeout in seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.fromConfig("payments").pipe(
        Effect.withConfigProvider(env([["PAYMENTS_CIRCUIT_BREAKER_TIMEOUT", "2"]]))
      )
      expect(Duration.toMillis((yield* breaker.metrics).openDuration)).toBe(2_000)
    }))
})
