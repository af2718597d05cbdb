import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as RedisCache from "../src/Cache/Redis.js"

const env = (entries: ReadonlyArray<readonly [string, string]>) => ConfigProvider.fromMap(new Map(entries))

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
