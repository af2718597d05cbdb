import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll } from "vitest"
import { Cache, CacheError } from "../../src/Cache.js"
import * as RedisCache from "../../src/Cache/Redis.js"
import { findRedisServer, redisServer, type RedisServer, useRedisServer } from "./redisServer.js"

const server = useRedisServer({ beforeAll, afterAll })

const cacheOn = (target: RedisServer, options: RedisCache.Options = {}) =>
  RedisCache.make({ url: target.url, ...options })

const failure = <A>(effect: Effect.Effect<A, CacheError>) =>
  Effect.flip(effect).pipe(Effect.filterOrDieMessage((e) => e instanceof CacheError, "expected a CacheError"))

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([duration, value]) => [Duration.toMillis(duration), value] as const)

const clientNames = (target: RedisServer) =>
  Effect.promise(async () => {
    const list = String(await target.admin("CLIENT", "LIST"))
    return list.split("\n").flatMap((line) => {
      const match = /\bname=(\S*)/.exec(line)
      return match?.[1] ? [match[1]] : []
    })
  })

describe("redis-server harness", () => {
  it("fails with the install command when redis-server is missing", () => {
    expect(() => findRedisServer([])).toThrow("redis-server not found: apt-get install -y redis-server")
    expect(() => findRedisServer(["/nonexistent/redis-server"])).toThrow("apt-get install -y redis-server")
  })

  it.live("starts on a loopback port, answers PING, and is stopped when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const target = yield* Scope.extend(redisServer(), scope)
      expect(target.url).toBe(`redis://127.0.0.1:${target.port}`)
      expect(yield* Effect.promise(() => target.admin("PING"))).toBe("PONG")
      const pid = target.pid()
      expect(pid).toBeTypeOf("number")
      yield* Scope.close(scope, Exit.void)
      expect(target.isRunning()).toBe(false)
      expect(() => process.kill(pid!, 0)).toThrow()
    }))
})

describe("RedisCache.layer", () => {
  it.live("stores, reads, misses and deletes under the key prefix", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "basic:" })
      expect(yield* cache.get("user:1")).toEqual(Option.none())
      yield* cache.set("user:1", "{\"name\":\"Ada\"}")
      expect(yield* cache.get("user:1")).toEqual(Option.some("{\"name\":\"Ada\"}"))
      // The prefix is applied on the server, and a plain value is stored as its own text.
      expect(yield* Effect.promise(() => server().admin("GET", "basic:user:1"))).toBe("{\"name\":\"Ada\"}")
      expect(yield* Effect.promise(() => server().admin("EXISTS", "user:1"))).toBe(0)
      expect(yield* cache.delete("user:1")).toBe(true)
      expect(yield* cache.delete("user:1")).toBe(false)
      expect(yield* cache.get("user:1")).toEqual(Option.none())
    }).pipe(Effect.scoped))

  it.live("applies the TTL of a set, the default TTL, and no TTL for Duration.infinity", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "ttl:", ttl: "10 minutes" })
      const pttl = (key: string) => Effect.promise(() => server().admin("PTTL", `ttl:${key}`)) as Effect.Effect<number>
      yield* cache.set("short", "v", { ttl: "150 millis" })
      yield* cache.set("default", "v")
      yield* cache.set("forever", "v", { ttl: Duration.infinity })
      const short = yield* pttl("short")
      expect(short).toBeGreaterThan(0)
      expect(short).toBeLessThanOrEqual(150)
      const long = yield* pttl("default")
      expect(long).toBeGreaterThan(9 * 60_000)
      expect(long).toBeLessThanOrEqual(10 * 60_000)
      expect(yield* pttl("forever")).toBe(-1)
      yield* Effect.sleep("250 millis")
      expect(yield* cache.get("short")).toEqual(Option.none())
      expect(yield* cache.get("default")).toEqual(Option.some("v"))
    }).pipe(Effect.scoped))

  it.live("refuses a ttl that is not positive with reason Protocol, storing nothing", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "badttl:" })
      const error = yield* failure(cache.set("k", "v", { ttl: 0 }))
      expect(error.reason).toBe("Protocol")
      expect(error.outcome).toBe("NotApplied")
      expect(yield* cache.get("k")).toEqual(Option.none())
    }).pipe(Effect.scoped))

  it.live("invalidate removes exactly the keys under the prefix, in SCAN batches, with glob characters literal", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "inv:", scanCount: 50 })
      yield* Effect.forEach(Array.from({ length: 600 }, (_, i) => i), (i) => cache.set(`users:${i}`, `u${i}`), {
        concurrency: 50,
        discard: true
      })
      yield* cache.set("orders:1", "o1")
      yield* cache.set("users", "not under users:")
      yield* cache.set("a*b:1", "glob")
      yield* cache.set("axb:1", "not matched by a*b:")
      // A key outside the layer's prefix that the unprefixed pattern would match.
      yield* Effect.promise(() => server().admin("SET", "users:outside", "x"))

      expect(yield* cache.invalidate("users:")).toBe(600)
      expect(yield* cache.get("users:0")).toEqual(Option.none())
      expect(yield* cache.get("users:599")).toEqual(Option.none())
      expect(yield* cache.get("orders:1")).toEqual(Option.some("o1"))
      expect(yield* cache.get("users")).toEqual(Option.some("not under users:"))
      expect(yield* Effect.promise(() => server().admin("GET", "users:outside"))).toBe("x")

      expect(yield* cache.invalidate("a*b:")).toBe(1)
      expect(yield* cache.get("axb:1")).toEqual(Option.some("not matched by a*b:"))
      expect(yield* cache.invalidate("users:")).toBe(0)
    }).pipe(Effect.scoped))

  it.live("compresses values from the threshold up, stores them marked, and reads them back", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "zip:" })
      const large = JSON.stringify(
        Array.from({ length: 400 }, (_, i) => ({ id: i, name: `user ${i}`, tags: ["a", "b", "ünïcödé", "🚀"] }))
      )
      const small = "x".repeat(100)
      yield* cache.set("large", large)
      yield* cache.set("small", small)

      const stored = (yield* Effect.promise(() => server().adminBuffer("GET", "zip:large"))) as Buffer
      const original = Buffer.byteLength(large, "utf8")
      expect(original).toBeGreaterThan(20_000)
      expect(stored[0]).toBe(0xff)
      expect(stored[1]).toBe(0x01)
      expect(stored.length).toBeLessThan(original / 5)
      expect(yield* cache.get("large")).toEqual(Option.some(large))

      const plain = (yield* Effect.promise(() => server().adminBuffer("GET", "zip:small"))) as Buffer
      expect(plain.toString("utf8")).toBe(small)
      expect(yield* cache.get("small")).toEqual(Option.some(small))

      // 512 bytes exactly is compressed (the threshold is inclusive); 511 is not.
      yield* cache.set("at", "y".repeat(512))
      yield* cache.set("below", "y".repeat(511))
      const at = (yield* Effect.promise(() => server().adminBuffer("GET", "zip:at"))) as Buffer
      const below = (yield* Effect.promise(() => server().adminBuffer("GET", "zip:below"))) as Buffer
      expect(at[0]).toBe(0xff)
      expect(below.toString("utf8")).toBe("y".repeat(511))
      expect(yield* cache.get("at")).toEqual(Option.some("y".repeat(512)))
    }).pipe(Effect.scoped))

  it.live("stores a value that deflate cannot shrink as plain text, and honours compressionThreshold: Infinity", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "nozip:" })
      const off = yield* cacheOn(server(), { prefix: "nozip:", compressionThreshold: Number.POSITIVE_INFINITY })
      // Pseudo-random printable text does not shrink enough to pay for the marker.
      let seed = 7
      const noise = Array.from({ length: 2000 }, () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        return String.fromCharCode(33 + (seed % 94))
      }).join("")
      yield* cache.set("noise", noise)
      yield* off.set("repetitive", "z".repeat(5000))
      const raw = (yield* Effect.promise(() => server().admin("GET", "nozip:noise"))) as string
      expect(raw.length).toBeGreaterThan(1000)
      const repetitive = (yield* Effect.promise(() => server().admin("GET", "nozip:repetitive"))) as string
      expect(repetitive).toBe("z".repeat(5000))
      expect(yield* cache.get("noise")).toEqual(Option.some(noise))
      expect(yield* cache.get("repetitive")).toEqual(Option.some("z".repeat(5000)))
    }).pipe(Effect.scoped))

  it.live("serves a corrupt payload as a miss and counts it, never as a failure", () =>
    Effect.gen(function*() {
      const name = "corrupt-test"
      const cache = yield* cacheOn(server(), { prefix: "bad:", name })
      const counter = RedisCache.corruptPayloads.pipe(Metric.tagged("cache", name))
      const before = (yield* Metric.value(counter)).count
      const admin = server()
      yield* Effect.promise(() => admin.admin("SET", "bad:deflate", Buffer.from([0xff, 0x01, 0x13, 0x37, 0x00, 0x42])))
      yield* Effect.promise(() => admin.admin("SET", "bad:format", Buffer.from([0xff, 0x09, 0x01, 0x02])))
      yield* Effect.promise(() => admin.admin("SET", "bad:truncated", Buffer.from([0xff])))
      yield* Effect.promise(() => admin.admin("SET", "bad:utf8", Buffer.from([0x61, 0xc3, 0x28])))
      for (const key of ["deflate", "format", "truncated", "utf8"]) {
        const result = yield* Effect.either(cache.get(key))
        expect(result).toEqual(Either.right(Option.none()))
        // The read with its TTL decodes the same way: a miss, counted.
        expect(yield* Effect.either(cache.getWithTtl!(key))).toEqual(Either.right(Option.none()))
      }
      expect((yield* Metric.value(counter)).count - before).toBe(8)
      // The caller recomputes and overwrites: the key is readable again.
      yield* cache.set("deflate", "fresh")
      expect(yield* cache.get("deflate")).toEqual(Option.some("fresh"))
    }).pipe(Effect.scoped))

  it.live("refuses a value above maxValueSize with TooLarge and stores nothing", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "big:", maxValueSize: 1000 })
      yield* cache.set("fits", "a".repeat(1000))
      const error = yield* failure(cache.set("big", "é".repeat(501)))
      expect(error.reason).toBe("TooLarge")
      expect(error.outcome).toBe("NotApplied")
      expect(error.message).toContain("1002 bytes")
      expect(yield* cache.get("big")).toEqual(Option.none())
      expect(yield* cache.get("fits")).toEqual(Option.some("a".repeat(1000)))
    }).pipe(Effect.scoped))

  it.live("maps a key of another type to reason Protocol", () =>
    Effect.gen(function*() {
      const cache = yield* cacheOn(server(), { prefix: "type:" })
      yield* Effect.promise(() => server().admin("LPUSH", "type:list", "a"))
      const error = yield* failure(cache.get("list"))
      expect(error.reason).toBe("Protocol")
      expect(error.operation).toBe("get")
      expect(error.key).toBe("list")
    }).pipe(Effect.scoped))

  it.live("closes its connection when the layer's scope closes", () =>
    Effect.gen(function*() {
      const connectionName = `scope-test-${process.pid}`
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        RedisCache.layer({ url: server().url, connectionName }),
        scope
      )
      const cache = Context.get(context, Cache)
      yield* cache.set("scope:k", "v")
      expect(yield* clientNames(server())).toContain(connectionName)
      yield* Scope.close(scope, Exit.void)
      // The server drops the client when it reads the QUIT; poll briefly for it.
      let names = yield* clientNames(server())
      for (let i = 0; i < 20 && names.includes(connectionName); i++) {
        yield* Effect.sleep("25 millis")
        names = yield* clientNames(server())
      }
      expect(names).not.toContain(connectionName)
      const error = yield* failure(cache.get("scope:k"))
      expect(error.reason).toBe("Unavailable")
    }))

  it.live("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const cases: Array<[RedisCache.Options, string]> = [
        [{ commandTimeout: 0 }, "commandTimeout"],
        [{ compressionThreshold: -1 }, "compressionThreshold"],
        [{ maxValueSize: 0 }, "maxValueSize"],
        [{ url: "http://localhost" }, "url"],
        [{ redis: { keyPrefix: "x:" } }, "redis.keyPrefix"],
        [{ scanCount: 0 }, "scanCount"],
        [{ ttl: -5 }, "ttl"]
      ]
      for (const [options, field] of cases) {
        const error = yield* Effect.flip(Effect.scoped(RedisCache.make(options)))
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") {
          expect(error.field).toBe(field)
          expect(error.message).toContain(field)
        }
      }
    }))

  it.live("builds without a server and fails fast with Unavailable, or fails to build with requireConnection", () =>
    Effect.gen(function*() {
      const down = yield* redisServer()
      const url = down.url
      yield* Effect.promise(() => down.kill())
      const cache = yield* RedisCache.make({ url })
      const [millis, error] = yield* elapsed(failure(cache.get("k")))
      expect(error.reason).toBe("Unavailable")
      expect(error.outcome).toBe("NotApplied")
      expect(millis).toBeLessThan(100)
      const refused = yield* Effect.flip(Effect.scoped(RedisCache.make({ url, requireConnection: true })))
      expect(refused._tag).toBe("RedisConnectionError")
      expect(refused.message).toContain(`127.0.0.1:${down.port}`)
      expect(refused.message).toContain("ECONNREFUSED")
    }).pipe(Effect.scoped))

  it.live("layerConfig reads REDIS_URL and options, and fails naming REDIS_URL when it is missing", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([["REDIS_URL", server().url], ["REDIS_KEY_PREFIX", "cfg:"], ["REDIS_COMMAND_TIMEOUT", "300 millis"]])
      )
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.set("k", "from config")
      }).pipe(Effect.provide(RedisCache.layerConfig()), Effect.withConfigProvider(provider))
      expect(yield* Effect.promise(() => server().admin("GET", "cfg:k"))).toBe("from config")

      const missing = yield* Effect.flip(
        Effect.provide(Cache, RedisCache.layerConfig()).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
        )
      )
      expect(missing._tag).toBe("ConfigError")
      expect(String(missing)).toContain("REDIS_URL")
    }))
})

describe("RedisCache.layer with a password", () => {
  it.live("authenticates with the password option, REDIS_PASSWORD or the URL; a wrong one is never printed", () => {
    const secret = "Tr0ub4dor-secret"
    const logged: Array<string> = []
    const logger = Logger.make(({ annotations, message }) => {
      logged.push(JSON.stringify({ message, annotations: Object.fromEntries(annotations) }))
    })
    return Effect.gen(function*() {
      const target = yield* redisServer()
      yield* Effect.promise(() => target.configSet("requirepass", secret))
      const withAuth = `redis://:${secret}@127.0.0.1:${target.port}`
      const roundTrip = (cache: Cache["Type"], key: string) =>
        Effect.gen(function*() {
          yield* cache.set(key, "v")
          return yield* cache.get(key)
        })

      expect(yield* roundTrip(yield* RedisCache.make({ url: target.url, password: secret }), "a"))
        .toEqual(Option.some("v"))
      expect(yield* roundTrip(yield* RedisCache.make({ url: Redacted.make(withAuth) }), "b")).toEqual(Option.some("v"))
      // The password option wins over the URL's.
      const wrongInUrl = `redis://:not-it@127.0.0.1:${target.port}`
      expect(yield* roundTrip(yield* RedisCache.make({ url: wrongInUrl, password: Redacted.make(secret) }), "c"))
        .toEqual(Option.some("v"))
      const fromEnv = yield* Effect.gen(function*() {
        const cache = yield* Cache
        return yield* roundTrip(cache, "d")
      }).pipe(
        Effect.provide(RedisCache.layerConfig()),
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["REDIS_URL", target.url], ["REDIS_PASSWORD", secret]]))
        )
      )
      expect(fromEnv).toEqual(Option.some("v"))

      // A wrong password: the layer starts degraded (or fails with requireConnection), and
      // neither the error nor any log line shows the password it was given.
      const wrong = `${secret}-wrong`
      const degraded = yield* RedisCache.make({ url: target.url, password: wrong, connectTimeout: "300 millis" })
      expect((yield* failure(degraded.get("a"))).reason).toBe("Unavailable")
      const refused = yield* Effect.flip(
        RedisCache.make({ url: `redis://user:${wrong}@127.0.0.1:${target.port}`, requireConnection: true })
      )
      expect(refused._tag).toBe("RedisConnectionError")
      expect(`${refused.message} ${JSON.stringify(refused)}`).not.toContain(wrong)
      expect(logged.length).toBeGreaterThan(0)
      expect(logged.join("\n")).not.toContain(secret)
    }).pipe(Effect.scoped, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })
})

describe("RedisCache.layer under real faults", () => {
  it.live("a killed server: commands fail at once with Unavailable; after a restart on the same port they work", () =>
    Effect.gen(function*() {
      const target = yield* redisServer()
      const cache = yield* cacheOn(target, { maxReconnectDelay: "100 millis" })
      yield* cache.set("k", "before")
      yield* Effect.promise(() => target.kill())
      yield* Effect.sleep("50 millis")
      const [millis, error] = yield* elapsed(failure(cache.set("k", "during")))
      expect(error.reason).toBe("Unavailable")
      expect(millis).toBeLessThan(100)
      yield* Effect.promise(() => target.restart())
      let recovered = yield* Effect.either(cache.set("k", "after"))
      for (let i = 0; i < 40 && Either.isLeft(recovered); i++) {
        yield* Effect.sleep("25 millis")
        recovered = yield* Effect.either(cache.set("k", "after"))
      }
      expect(recovered).toEqual(Either.right(undefined))
      expect(yield* cache.get("k")).toEqual(Option.some("after"))
    }).pipe(Effect.scoped))

  it.live("a frozen server never hangs a caller: commandTimeout bounds it, and a timed-out write is Unknown", () =>
    Effect.gen(function*() {
      const target = yield* redisServer()
      const cache = yield* cacheOn(target, { commandTimeout: "200 millis" })
      yield* cache.set("k", "before")
      target.stop()
      yield* Effect.addFinalizer(() => Effect.sync(() => target.cont()))
      const [readMillis, readError] = yield* elapsed(failure(cache.get("k")))
      expect(readError.reason).toBe("Timeout")
      expect(readError.outcome).toBe("NotApplied")
      expect(readMillis).toBeGreaterThanOrEqual(190)
      expect(readMillis).toBeLessThan(450)
      const [writeMillis, writeError] = yield* elapsed(failure(cache.set("k", "during")))
      expect(writeError.reason).toBe("Timeout")
      expect(writeError.outcome).toBe("Unknown")
      expect(writeError.message).toContain("may have been applied")
      expect(writeMillis).toBeLessThan(450)
      target.cont()
      // The write that timed out was in the socket: the server executes it once resumed.
      let value = yield* Effect.either(cache.get("k"))
      for (let i = 0; i < 40 && !Either.isRight(value); i++) {
        yield* Effect.sleep("25 millis")
        value = yield* Effect.either(cache.get("k"))
      }
      expect(value).toEqual(Either.right(Option.some("during")))
    }).pipe(Effect.scoped))

  it.live("a frozen server at startup or at shutdown delays neither beyond its timeouts", () =>
    Effect.gen(function*() {
      const target = yield* redisServer()
      target.stop()
      yield* Effect.addFinalizer(() => Effect.sync(() => target.cont()))
      // Startup: the TCP connection is accepted by the kernel, but the server never answers.
      const scope = yield* Scope.make()
      const [buildMillis, cache] = yield* elapsed(
        Scope.extend(cacheOn(target, { connectTimeout: "300 millis", commandTimeout: "200 millis" }), scope)
      )
      expect(buildMillis).toBeLessThan(300 + 100 + 250)
      const [getMillis, error] = yield* elapsed(failure(cache.get("k")))
      expect(["Timeout", "Unavailable"]).toContain(error.reason)
      expect(getMillis).toBeLessThan(450)
      // Shutdown: QUIT gets no reply, commandTimeout bounds it, then the socket is closed.
      const [closeMillis] = yield* elapsed(Scope.close(scope, Exit.void))
      expect(closeMillis).toBeLessThan(450)
    }).pipe(Effect.scoped))

  it.live("closing the layer while a connected server is frozen takes about commandTimeout", () =>
    Effect.gen(function*() {
      const target = yield* redisServer()
      const scope = yield* Scope.make()
      const cache = yield* Scope.extend(cacheOn(target, { commandTimeout: "200 millis" }), scope)
      yield* cache.set("k", "v")
      target.stop()
      yield* Effect.addFinalizer(() => Effect.sync(() => target.cont()))
      const [closeMillis] = yield* elapsed(Scope.close(scope, Exit.void))
      expect(closeMillis).toBeLessThan(450)
    }).pipe(Effect.scoped))

  it.live("maxmemory with noeviction: writes fail with OutOfMemory (not applied) while reads still work", () =>
    Effect.gen(function*() {
      const target = yield* redisServer()
      const cache = yield* cacheOn(target)
      yield* cache.set("small", "v")
      yield* Effect.promise(() => target.configSet("maxmemory-policy", "noeviction"))
      yield* Effect.promise(() => target.configSet("maxmemory", "1"))
      const error = yield* failure(cache.set("more", "x".repeat(100)))
      expect(error.reason).toBe("OutOfMemory")
      expect(error.outcome).toBe("NotApplied")
      expect(yield* cache.get("small")).toEqual(Option.some("v"))
      yield* Effect.promise(() => target.configSet("maxmemory", "0"))
      yield* cache.set("more", "x")
      expect(yield* cache.get("more")).toEqual(Option.some("x"))
    }).pipe(Effect.scoped))
})
