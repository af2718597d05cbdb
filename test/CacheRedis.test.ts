import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { deflateRawSync } from "node:zlib"
import { Cache } from "../src/Cache.js"
import * as RedisCache from "../src/Cache/Redis.js"
import * as codec from "../src/internal/redisCodec.js"
import { reconnectDelay } from "../src/internal/redis.js"
import { classify, toCacheError, withoutSecrets } from "../src/internal/redisErrors.js"
import * as redisUrl from "../src/internal/redisUrl.js"
import { freePort } from "./integration/serverLifecycle.js"

const secret = "s3cret-Pa55word"

/** Everything an error can show: its message, its fields as JSON, and the pretty cause. */
const everythingShown = (error: unknown): string =>
  [String(error), error instanceof Error ? error.message : "", JSON.stringify(error), Cause.pretty(Cause.fail(error))]
    .join("\n")

const env = (entries: ReadonlyArray<readonly [string, string]>) => ConfigProvider.fromMap(new Map(entries))

/** Builds the layer from the given environment and returns its failure. */
const configFailure = (entries: ReadonlyArray<readonly [string, string]>, defaults?: RedisCache.Options) =>
  Effect.flip(Effect.provide(Cache, RedisCache.layerConfig(defaults))).pipe(
    Effect.withConfigProvider(env(entries))
  )

describe("Cache/Redis: a URL that can never work is refused before any connection", () => {
  const refused: ReadonlyArray<readonly [string, string]> = [
    ["redis://127.0.0.1:99999", "the port is out of range"],
    ["redis://127.0.0.1:65536", "the port is out of range"],
    ["redis://127.0.0.1:0", "the port is out of range"],
    ["redis://[::not-a-host", "the URL does not parse"],
    ["redis://local host:6379", "the URL does not parse"],
    ["http://localhost:6379", "the scheme is not redis or rediss"],
    ["localhost:6379", "no scheme"],
    ["redis://", "no host"],
    ["redis://localhost:6379/zero", "database number"],
    ["redis://user:%E0%A4%A@localhost:6379", "percent-encoding"]
  ]

  it.effect("each bad URL fails make with InvalidOptions naming url and the reason, never a defect", () =>
    Effect.gen(function*() {
      for (const [url, reason] of refused) {
        const exit = yield* Effect.exit(Effect.scoped(RedisCache.make({ url })))
        expect(Exit.isFailure(exit) && Cause.isFailType((exit as Exit.Failure<unknown, unknown>).cause)).toBe(true)
        const error = yield* Effect.flip(Effect.scoped(RedisCache.make({ url })))
        expect(error._tag, url).toBe("InvalidOptions")
        if (error._tag !== "InvalidOptions") continue
        expect(error.field).toBe("url")
        expect(error.expected, url).toContain(reason)
        expect(error.message).toContain("\"url\"")
      }
    }))

  it.effect("a Redacted URL is checked the same way", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(RedisCache.make({ url: Redacted.make("redis://h:99999") })))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.field).toBe("url")
    }))

  it("accepts the URLs ioredis reads: ports 1 and 65535, IPv6, a database, rediss, a default port", () => {
    for (
      const url of [
        "redis://localhost",
        "redis://127.0.0.1:1",
        "redis://127.0.0.1:65535",
        "redis://[::1]:6379",
        "redis://:pw@localhost:6379/3",
        "rediss://user:pw@cache.example.com:6380/0",
        "REDIS://localhost:6379/"
      ]
    ) {
      expect(Either.isRight(redisUrl.parse(url)), url).toBe(true)
    }
    expect(redisUrl.parse("redis://user:pw@[::1]:6380/2")).toEqual(
      Either.right({ url: "redis://user:pw@[::1]:6380/2", display: "redis://[::1]:6380/2" })
    )
  })

  it("redact drops userinfo up to the last @ and the query, parsable or not", () => {
    expect(redisUrl.redact("redis://u:p@h:1/0?password=x#frag")).toBe("redis://***@h:1/0?***")
    expect(redisUrl.redact("redis://u:p@ss/w?rd@h:6379")).toBe("redis://***@h:6379")
    expect(redisUrl.redact("redis://h:6379#x")).toBe("redis://h:6379")
    expect(redisUrl.redact("u:p@h")).toBe("***@h")
    expect(redisUrl.redact("redis://[::not-a-host")).toBe("redis://[::not-a-host")
    expect(redisUrl.redact("not a url")).toBe("not a url")
  })

  it("the same bad URL in REDIS_URL is InvalidOptions naming the option and the variable", () =>
    Effect.runPromise(Effect.gen(function*() {
      for (const url of ["redis://127.0.0.1:99999", "redis://[::not-a-host"]) {
        const error = yield* configFailure([["REDIS_URL", url]])
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toBe("url (REDIS_URL)")
      }
    })))
})

describe("Cache/Redis: secrets never reach an error or a log", () => {
  const withPassword: ReadonlyArray<readonly [string, string]> = [
    ["unparsable", `redis://user:${secret}@[::not-a-host`],
    ["wrong scheme", `http://user:${secret}@host:6379`],
    ["port out of range", `redis://user:${secret}@127.0.0.1:99999`],
    ["password only", `redis://:${secret}@127.0.0.1:99999`],
    ["password in the query", `redis://127.0.0.1:99999?password=${secret}`],
    ["a password holding @ and /", `redis://user:${secret}@x/y@127.0.0.1:99999`]
  ]

  it.effect("a refused url option shows neither its userinfo nor its query", () =>
    Effect.gen(function*() {
      for (const [label, url] of withPassword) {
        const error = yield* Effect.flip(Effect.scoped(RedisCache.make({ url })))
        expect(error._tag, label).toBe("InvalidOptions")
        expect(everythingShown(error), label).not.toContain(secret)
        expect(everythingShown(error), label).not.toContain(secret.slice(0, 6))
      }
    }))

  it.effect("REDIS_URL with a password is read redacted: the InvalidOptions names REDIS_URL and hides it", () =>
    Effect.gen(function*() {
      for (const [label, url] of withPassword) {
        const error = yield* configFailure([["REDIS_URL", url]])
        expect(error._tag, label).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toBe("url (REDIS_URL)")
        expect(everythingShown(error), label).not.toContain(secret)
      }
      const error = yield* configFailure([["REDIS_URL", `http://user:${secret}@host:6379`]])
      expect(error.message).toContain("http://***@host:6379")
    }))

  it.effect("REDIS_PASSWORD is read redacted and never printed, also next to a bad variable", () =>
    Effect.gen(function*() {
      const options = yield* RedisCache.configOptions().pipe(
        Effect.withConfigProvider(env([["REDIS_URL", "redis://localhost:6379"], ["REDIS_PASSWORD", secret]]))
      )
      expect(Redacted.isRedacted(options.password)).toBe(true)
      expect(Redacted.isRedacted(options.url)).toBe(true)
      expect(JSON.stringify(options)).not.toContain(secret)
      const error = yield* configFailure([
        ["REDIS_URL", `redis://:${secret}@localhost:6379`],
        ["REDIS_PASSWORD", secret],
        ["REDIS_COMMAND_TIMEOUT", "soon"]
      ])
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.field).toBe("commandTimeout (REDIS_COMMAND_TIMEOUT)")
      expect(everythingShown(error)).not.toContain(secret)
    }))

  it.effect("a password option of the wrong type is refused as <redacted>", () =>
    Effect.gen(function*() {
      const password = { toString: () => secret, value: secret } as unknown as string
      const error = yield* Effect.flip(Effect.scoped(RedisCache.make({ password })))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.field).toBe("password")
      expect(everythingShown(error)).not.toContain(secret)
      const redis = { password: secret, keyPrefix: "x:" }
      const prefixed = yield* Effect.flip(Effect.scoped(RedisCache.make({ redis })))
      expect(everythingShown(prefixed)).not.toContain(secret)
    }))

  it.live("a refused server: no password in the logs, in their annotations or in RedisConnectionError", () => {
    const logged: Array<string> = []
    const logger = Logger.make(({ annotations, message }) => {
      logged.push(JSON.stringify({ message, annotations: Object.fromEntries(annotations) }))
    })
    return Effect.gen(function*() {
      const port = yield* Effect.promise(() => freePort())
      const urls = [
        `redis://user:${secret}@127.0.0.1:${port}`,
        `redis://127.0.0.1:${port}?password=${secret}`
      ]
      for (const url of urls) {
        const started = yield* Effect.scoped(Effect.gen(function*() {
          const cache = yield* RedisCache.make({ url, connectTimeout: "200 millis" })
          return yield* Effect.either(cache.get("k"))
        }))
        expect(Either.isLeft(started)).toBe(true)
        for (const options of [{ url }, { url: "redis://127.0.0.1:" + port, password: secret }]) {
          const error = yield* Effect.flip(
            Effect.scoped(RedisCache.make({ ...options, requireConnection: true, connectTimeout: "200 millis" }))
          )
          expect(error._tag).toBe("RedisConnectionError")
          expect(everythingShown(error)).not.toContain(secret)
          expect(error.message).toContain(`redis://127.0.0.1:${port}`)
        }
      }
      // The layer did log: the startup warning names the server, without its credentials.
      expect(logged.some((line) => line.includes(`redis://127.0.0.1:${port}`))).toBe(true)
      expect(logged.join("\n")).not.toContain(secret)
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })
})

describe("Cache/Redis: options", () => {
  it.effect("anything but an options object is InvalidOptions naming options, without showing it", () =>
    Effect.gen(function*() {
      for (const options of [null, `redis://user:${secret}@localhost:6379`, 6379, ["redis://localhost"]]) {
        const error = yield* Effect.flip(Effect.scoped(RedisCache.make(options as unknown as RedisCache.Options)))
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toBe("options")
        expect(everythingShown(error)).not.toContain(secret)
      }
    }))
})

describe("Cache/Redis: layerConfig", () => {
  it.effect("every variable that can never work is named at once, with its option", () =>
    Effect.gen(function*() {
      const error = yield* configFailure([
        ["REDIS_URL", "redis://localhost:6379"],
        ["REDIS_COMMAND_TIMEOUT", "soon"],
        ["REDIS_MAX_VALUE_SIZE", "big"]
      ])
      expect(error._tag).toBe("InvalidOptions")
      expect(error.message).toContain("commandTimeout (REDIS_COMMAND_TIMEOUT)")
      expect(error.message).toContain("maxValueSize (REDIS_MAX_VALUE_SIZE)")
    }))

  it.effect("an empty variable is no value: \"\" is not read as 0", () =>
    Effect.gen(function*() {
      for (const name of ["REDIS_COMPRESSION_THRESHOLD", "REDIS_MAX_RETRIES_PER_REQUEST", "REDIS_TTL"]) {
        const error = yield* configFailure([["REDIS_URL", "redis://localhost:6379"], [name, ""]])
        expect(error._tag, name).toBe("InvalidOptions")
        if (error._tag === "InvalidOptions") expect(error.field).toContain(`(${name})`)
      }
    }))

  it.effect("a value that parses but is out of range names the option and the variable", () =>
    Effect.gen(function*() {
      const error = yield* configFailure([
        ["REDIS_URL", "redis://localhost:6379"],
        ["REDIS_COMMAND_TIMEOUT", "0 millis"]
      ])
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.field).toBe("commandTimeout (REDIS_COMMAND_TIMEOUT)")
    }))

  it.effect("configOptions gives the options in force: the environment over the defaults", () =>
    Effect.gen(function*() {
      const options = yield* RedisCache.configOptions({ commandTimeout: "80 millis", prefix: "p:" }).pipe(
        Effect.withConfigProvider(env([
          ["REDIS_URL", "redis://localhost:6379"],
          ["REDIS_COMMAND_TIMEOUT", "250 millis"],
          ["REDIS_MAX_VALUE_SIZE", "Infinity"]
        ]))
      )
      expect(String(options.commandTimeout)).toContain("250")
      expect(options.prefix).toBe("p:")
      expect(options.maxValueSize).toBe(Number.POSITIVE_INFINITY)
    }))
})

describe("Cache/Redis codec", () => {
  const stored = (value: string, threshold = 512) => Effect.runSync(codec.encode(value, threshold))
  const isCompressed = (payload: string | Buffer) =>
    Buffer.isBuffer(payload) && payload[0] === 0xff && payload[1] === codec.FORMAT_DEFLATE_RAW
  const roundTrip = (value: string, threshold = 512) => {
    const payload = stored(value, threshold)
    return codec.decode(Buffer.isBuffer(payload) ? payload : Buffer.from(payload, "utf8"), Infinity)
  }

  it("the threshold counts UTF-8 bytes, inclusive: 512 bytes compressed, 511 plain", () => {
    expect(isCompressed(stored("y".repeat(512)))).toBe(true)
    expect(stored("y".repeat(511))).toBe("y".repeat(511))
    // 171 characters of 3 bytes: 513 bytes, though only 171 characters.
    expect(isCompressed(stored("€".repeat(171)))).toBe(true)
    // 170 × 3 + 2 = 512 bytes in 172 characters; one byte less stays plain.
    expect(isCompressed(stored("€".repeat(170) + "ab"))).toBe(true)
    expect(stored("€".repeat(170) + "a")).toBe("€".repeat(170) + "a")
    // 128 emoji: 512 bytes in 256 UTF-16 units.
    expect(isCompressed(stored("🚀".repeat(128)))).toBe(true)
    expect(stored("🚀".repeat(127) + "abc")).toBe("🚀".repeat(127) + "abc")
  })

  it("the shortcut for short strings holds at its edge: length × 3 equal to the threshold", () => {
    // 171 × 3 = 513 bytes = the threshold: compressed.
    expect(isCompressed(stored("€".repeat(171), 513))).toBe(true)
    expect(stored("€".repeat(170) + "ab", 513)).toBe("€".repeat(170) + "ab")
  })

  it("threshold 0 compresses everything that shrinks; Infinity nothing", () => {
    expect(isCompressed(stored("z".repeat(50), 0))).toBe(true)
    expect(stored("z".repeat(100_000), Number.POSITIVE_INFINITY)).toBe("z".repeat(100_000))
    expect(stored("", 0)).toBe("")
  })

  it("a value that deflate cannot make smaller, marker included, is stored plain", () => {
    // Short values grow under deflate (its block header); with threshold 0 they are still tried.
    for (const value of ["a", "ab", "abcdefgh", "€🚀x"]) {
      expect(stored(value, 0), value).toBe(value)
    }
    // Deflate shrinks "abcabcabc..." once it repeats enough: then it is stored compressed.
    expect(isCompressed(stored("abc".repeat(20), 0))).toBe(true)
  })

  it("compressed payloads are 0xFF 0x01 then raw deflate, and read back (large ones off the event loop)", async () => {
    const value = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ i, tag: "ünïcödé 🚀" })))
    const payload = stored(value)
    expect(Buffer.isBuffer(payload)).toBe(true)
    const bytes = payload as Buffer
    expect([bytes[0], bytes[1]]).toEqual([codec.COMPRESSED_MARKER, codec.FORMAT_DEFLATE_RAW])
    expect(bytes.subarray(2).equals(deflateRawSync(Buffer.from(value, "utf8")))).toBe(true)
    expect(roundTrip(value)).toEqual(Either.right(value))
    const huge = "abc€".repeat(40_000)
    const hugePayload = await Effect.runPromise(codec.encode(huge, 512))
    expect(isCompressed(hugePayload)).toBe(true)
    expect(codec.decode(hugePayload as Buffer, Infinity)).toEqual(Either.right(huge))
    expect(roundTrip("plain ünïcödé")).toEqual(Either.right("plain ünïcödé"))
    expect(codec.decode(Buffer.alloc(0), 10)).toEqual(Either.right(""))
  })

  it("corrupt payloads are a typed Corrupt, never a throw", () => {
    const corrupt: ReadonlyArray<readonly [string, Buffer, string]> = [
      ["marker alone", Buffer.from([0xff]), "truncated header"],
      ["unknown format", Buffer.from([0xff, 0x02, 0x01]), "unknown compression format 2"],
      ["not deflate", Buffer.from([0xff, 0x01, 0x13, 0x37, 0x00, 0x42]), "does not inflate"],
      ["invalid UTF-8", Buffer.from([0x61, 0xc3, 0x28]), "not valid UTF-8"],
      [
        "inflates to invalid UTF-8",
        Buffer.concat([Buffer.from([0xff, 0x01]), deflateRawSync(Buffer.from([0xc3, 0x28]))]),
        "inflated value is not valid UTF-8"
      ]
    ]
    for (const [label, payload, detail] of corrupt) {
      const decoded = codec.decode(payload, Infinity)
      expect(Either.isLeft(decoded), label).toBe(true)
      if (Either.isLeft(decoded)) {
        expect(decoded.left).toBeInstanceOf(codec.Corrupt)
        expect(decoded.left._tag).toBe("Corrupt")
        expect(decoded.left.detail, label).toContain(detail)
      }
    }
  })

  it("an inflated size above maxSize is Corrupt; exactly maxSize is read", () => {
    const value = "q".repeat(1000)
    const payload = Buffer.concat([Buffer.from([0xff, 0x01]), deflateRawSync(Buffer.from(value))])
    expect(codec.decode(payload, 1000)).toEqual(Either.right(value))
    expect(Either.isLeft(codec.decode(payload, 999))).toBe(true)
  })

  it("byteLength counts UTF-8 bytes", () => {
    expect(codec.byteLength("a€🚀")).toBe(1 + 3 + 4)
  })
})

describe("Cache/Redis error mapping", () => {
  const reply = (message: string) => Object.assign(new Error(message), { name: "ReplyError" })
  const withCode = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:6379`), { code })

  it("maps every server reply code exactly, never by prefix", () => {
    const rows: ReadonlyArray<readonly [string, string]> = [
      ["OOM command not allowed when used memory > 'maxmemory'.", "OutOfMemory"],
      ["LOADING Redis is loading the dataset in memory", "Unavailable"],
      ["BUSY Redis is busy running a script.", "Unavailable"],
      ["MASTERDOWN Link with MASTER is down", "Unavailable"],
      ["READONLY You can't write against a read only replica.", "Unavailable"],
      ["MISCONF Redis is configured to save RDB snapshots", "Unavailable"],
      ["TRYAGAIN Multiple keys request during rehashing of slot", "Unavailable"],
      ["CLUSTERDOWN The cluster is down", "Unavailable"],
      ["WRONGTYPE Operation against a key holding the wrong kind of value", "Protocol"],
      ["ERR Protocol error: invalid bulk length", "TooLarge"],
      ["ERR string exceeds maximum allowed size (proto-max-bulk-len)", "TooLarge"],
      ["ERR Protocol error: unbalanced quotes in request", "Protocol"],
      // Codes that merely start like one of the above are not it.
      ["BUSYKEY Target key name already exists.", "Unknown"],
      ["BUSYGROUP Consumer Group name already exists", "Unknown"],
      ["OOMX something", "Unknown"],
      ["LOADINGX something", "Unknown"],
      ["READONLYISH something", "Unknown"],
      ["MISCONFIGURED something", "Unknown"],
      ["TRYAGAINLATER something", "Unknown"],
      ["CLUSTERDOWNX something", "Unknown"],
      ["MASTERDOWNX something", "Unknown"],
      ["WRONGTYPES something", "Unknown"],
      ["NOSCRIPT No matching script.", "Unknown"],
      ["ERR unknown command", "Unknown"]
    ]
    for (const [message, reason] of rows) {
      expect(classify(reply(message)), message).toEqual({ reason, sent: false })
    }
  })

  it("maps client-side failures: timeout, refused sends, closed connections and socket codes", () => {
    expect(classify(new Error("Command timed out"))).toEqual({ reason: "Timeout", sent: "maybe" })
    expect(classify(new Error("Command timed out later"))).toEqual({ reason: "Unknown", sent: "maybe" })
    expect(classify(new Error("Stream isn't writeable and enableOfflineQueue options is false")))
      .toEqual({ reason: "Unavailable", sent: false })
    expect(classify(Object.assign(new Error("Reached the max retries per request limit"), {
      name: "MaxRetriesPerRequestError"
    }))).toEqual({ reason: "Unavailable", sent: "maybe" })
    expect(classify(new Error("Connection is closed."))).toEqual({ reason: "Unavailable", sent: "maybe" })
    for (
      const code of ["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
        "ENOTFOUND", "EAI_AGAIN"]
    ) {
      expect(classify(withCode(code)), code).toEqual({ reason: "Unavailable", sent: "maybe" })
    }
    for (const code of ["ECONNREFUSEDX", "ECONN", "EACCES"]) {
      expect(classify(withCode(code)), code).toEqual({ reason: "Unknown", sent: "maybe" })
    }
    expect(classify("a string")).toEqual({ reason: "Unknown", sent: "maybe" })
  })

  it("a write's outcome is Unknown when it may have been sent or a batch was applied; a read's never", () => {
    const timeout = new Error("Command timed out")
    const refusedSend = new Error("Stream isn't writeable and enableOfflineQueue options is false")
    const oom = reply("OOM command not allowed")
    for (const operation of ["set", "delete", "invalidate"] as const) {
      expect(toCacheError(operation, "k", timeout).outcome, operation).toBe("Unknown")
      expect(toCacheError(operation, "k", refusedSend).outcome, operation).toBe("NotApplied")
      expect(toCacheError(operation, "k", oom).outcome, operation).toBe("NotApplied")
      expect(toCacheError(operation, "k", oom, true).outcome, operation).toBe("Unknown")
    }
    expect(toCacheError("get", "k", timeout, true).outcome).toBe("NotApplied")
    const error = toCacheError("set", "user:1", oom)
    expect([error.operation, error.key, error.reason, error.cause]).toEqual(["set", "user:1", "OutOfMemory", oom])
  })
})

describe("Cache/Redis errors carry no credentials", () => {
  it("a reply to AUTH or HELLO loses its arguments; a reply to GET keeps its command", () => {
    for (const name of ["auth", "AUTH", "hello", "acl", "config", "migrate"]) {
      const error = Object.assign(new Error("WRONGPASS invalid username-password pair"), {
        name: "ReplyError",
        command: { name, args: ["user", secret] }
      })
      const scrubbed = withoutSecrets(error)
      expect(JSON.stringify(scrubbed), name).not.toContain(secret)
      expect((scrubbed as Error).message).toBe("WRONGPASS invalid username-password pair")
      expect(classify(scrubbed)).toEqual(classify(error))
      expect(everythingShown(toCacheError("get", "k", error)), name).not.toContain(secret)
    }
    const get = Object.assign(new Error("WRONGTYPE Operation"), {
      name: "ReplyError",
      command: { name: "get", args: ["k"] }
    })
    expect(withoutSecrets(get)).toBe(get)
    const plain = new Error("Command timed out")
    expect(withoutSecrets(plain)).toBe(plain)
  })
})

describe("Cache/Redis reconnect backoff", () => {
  it("doubles from 50 ms with jitter in [delay / 2, delay], capped at maxReconnectDelay, never 0", () => {
    const bounds = (times: number, max: number) => [reconnectDelay(times, max, 0), reconnectDelay(times, max, 0.999999)]
    expect(bounds(1, 1000)).toEqual([25, 50])
    expect(bounds(2, 1000)).toEqual([50, 100])
    expect(bounds(5, 1000)).toEqual([400, 800])
    // 50 × 2^5 = 1600 is above the cap: the cap is the delay.
    expect(bounds(6, 1000)).toEqual([500, 1000])
    expect(bounds(5, 800)).toEqual([400, 800])
    expect(bounds(5, 799)).toEqual([400, 799])
    // Attempt counts far beyond the cap do not overflow.
    expect(bounds(1_000_000, 1000)).toEqual([500, 1000])
    expect(bounds(1, 1)).toEqual([1, 1])
    expect(bounds(0, 1000)).toEqual([25, 50])
  })
})
