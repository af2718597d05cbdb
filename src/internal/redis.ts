import * as Config from "effect/Config"
import { parseDuration as parseSeconds } from "./circuitBreaker.js"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CacheModule from "../Cache.js"
import type * as RedisModule from "../Cache/Redis.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { Cache, CacheError, ttlMillis } from "./cacheService.js"
import * as options_ from "./options.js"
import * as codec from "./redisCodec.js"
import * as connection_ from "./redisConnection.js"
import { RedisConnectionError } from "./redisConnection.js"
import { toCacheError } from "./redisErrors.js"
import { counter } from "./metric.js"

const moduleName = "Cache/Redis"

export {
  /** @internal */
  reconnectDelay,
  /** @internal */
  RedisConnectionError
} from "./redisConnection.js"

/** @internal */
export const defaults = {
  name: "redis",
  prefix: "",
  ttl: Duration.minutes(5),
  compressionThreshold: 512,
  maxValueSize: 1024 * 1024,
  commandTimeout: Duration.millis(500),
  connectTimeout: Duration.seconds(1),
  maxRetriesPerRequest: 1,
  maxReconnectDelay: Duration.seconds(1),
  scanCount: 500,
  connectionName: "effect-resilience-cache"
} as const

interface Validated {
  readonly name: string
  readonly prefix: string
  readonly ttl: Duration.Duration
  readonly compressionThreshold: number
  readonly maxValueSize: number
  readonly maxRetriesPerRequest: number
  readonly scanCount: number
  readonly requireConnection: boolean
  readonly password: Redacted.Redacted<string> | undefined
  readonly connection: connection_.Connection
}

const anyString = options_.check(Schema.String, "a string")
const aBoolean = options_.check(Schema.Boolean, "a boolean")

/** @internal */
export const validate = (
  options: RedisModule.Options | undefined
): Either.Either<Validated, InvalidOptions> =>
  Either.gen(function*() {
    const o = yield* connection_.optionsObject(moduleName, options)
    const name = yield* options_.field(moduleName, "name", o.name, options_.nonEmptyString, defaults.name)
    const prefix = yield* options_.field(moduleName, "prefix", o.prefix, anyString, defaults.prefix)
    const ttl = yield* options_.duration(moduleName, "ttl", o.ttl, defaults.ttl, { positive: true, finite: false })
    const compressionThreshold = yield* options_.field(
      moduleName,
      "compressionThreshold",
      o.compressionThreshold,
      options_.integerAtLeastOrInfinity(0),
      defaults.compressionThreshold
    )
    const maxValueSize = yield* options_.field(
      moduleName,
      "maxValueSize",
      o.maxValueSize,
      options_.integerAtLeastOrInfinity(1),
      defaults.maxValueSize
    )
    const maxRetriesPerRequest = yield* options_.field(
      moduleName,
      "maxRetriesPerRequest",
      o.maxRetriesPerRequest,
      options_.integerAtLeast(0),
      defaults.maxRetriesPerRequest
    )
    const scanCount = yield* options_.field(
      moduleName,
      "scanCount",
      o.scanCount,
      options_.integerAtLeast(1),
      defaults.scanCount
    )
    const requireConnection = yield* options_.field(
      moduleName,
      "requireConnection",
      o.requireConnection,
      aBoolean,
      false
    )
    const connection = yield* connection_.validateConnection(moduleName, o, defaults)
    const password = yield* validatePassword(o.password)
    if (connection.redis.keyPrefix !== undefined) {
      return yield* Either.left(
        new InvalidOptions({
          module: moduleName,
          field: "redis.keyPrefix",
          expected: "no value (use the `prefix` option: ioredis does not apply keyPrefix to SCAN patterns)",
          received: connection.redis.keyPrefix
        })
      )
    }
    return {
      name,
      prefix,
      ttl,
      compressionThreshold,
      maxValueSize,
      maxRetriesPerRequest,
      scanCount,
      requireConnection,
      password,
      connection
    }
  })

/** Secrets are printed as this, whatever they hold. */
const hidden = "<redacted>"

const validatePassword = (
  value: string | Redacted.Redacted<string> | undefined
): Either.Either<Redacted.Redacted<string> | undefined, InvalidOptions> => {
  if (value === undefined) return Either.right(undefined)
  const text = Redacted.isRedacted(value) ? Redacted.value(value) : value
  return typeof text === "string"
    ? Either.right(Redacted.isRedacted(value) ? value as Redacted.Redacted<string> : Redacted.make(text))
    : Either.left(
      new InvalidOptions({
        module: moduleName,
        field: "password",
        expected: "a string or a Redacted string",
        received: hidden
      })
    )
}

const getWithTtlCommand = "effectResilienceGetWithTtl"
const getWithTtlScript = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"

/** Escapes the glob characters of SCAN's MATCH so that a prefix matches literally. */
const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, "\\$&")

/** @internal */
export const corruptPayloads = counter(
  "effect_resilience_cache_corrupt_payloads_total",
  "Values read from Redis that could not be decoded and were served as misses"
)

/** @internal */
export const make = (
  options?: RedisModule.Options
): Effect.Effect<CacheModule.CacheService, InvalidOptions | RedisConnectionError, Scope.Scope> =>
  Effect.gen(function*() {
    const validated = yield* validate(options)
    const { connection } = validated
    const { server } = connection
    const annotations = { cache: validated.name, server }
    const { firstConnection, redis: client } = yield* connection_.acquireClient(connection, {
      label: "Redis",
      annotations,
      // The user's ioredis options may change the fail-fast settings here.
      defaults: connection_.failFast(connection, validated.maxRetriesPerRequest),
      password: validated.password,
      reconnect: "jittered",
      logRepeatedErrors: true,
      quitOnRelease: true
    })

    // Wait for the first connection attempt only, so that commands sent right after the
    // layer is built do not fail for a connection still in progress. When it fails, the
    // client keeps reconnecting in the background and commands fail fast meanwhile.
    const failed = yield* firstConnection(Duration.sum(connection.connectTimeout, Duration.millis(100)))
    if (Option.isSome(failed)) {
      const cause = failed.value
      if (validated.requireConnection) {
        return yield* Effect.fail(new RedisConnectionError({ server, cause }))
      }
      yield* Effect.logWarning(
        `Redis is not reachable at startup, the cache fails fast until it is: ${
          cause instanceof Error ? cause.message : String(cause)
        }`
      ).pipe(Effect.annotateLogs(annotations))
    }

    const { compressionThreshold, maxValueSize, prefix, scanCount } = validated
    const fullKey = (key: string) => prefix + key
    const corruptCounter = corruptPayloads.pipe(Metric.tagged("cache", validated.name))

    const command = <A>(
      operation: CacheError["operation"],
      key: string,
      run: () => Promise<A>,
      applied = false
    ): Effect.Effect<A, CacheError> =>
      Effect.tryPromise({ try: run, catch: (error) => toCacheError(operation, key, error, applied) })

    const get = (key: string): Effect.Effect<Option.Option<string>, CacheError> =>
      Effect.flatMap(
        command("get", key, () => client.getBuffer(fullKey(key))),
        (payload) => decodePayload(key, payload)
      )

    // GET and PTTL in one script: one command (as cheap as a GET), atomic, so the TTL is
    // the one of the value read. ioredis runs it with EVALSHA, falling back to EVAL.
    client.defineCommand(getWithTtlCommand, { numberOfKeys: 1, lua: getWithTtlScript })
    const runGetWithTtl = (client as unknown as Record<string, (key: string) => Promise<[Buffer | null, number]>>)[
      `${getWithTtlCommand}Buffer`
    ]!.bind(client)
    const getWithTtl = (key: string): Effect.Effect<Option.Option<CacheModule.Entry>, CacheError> =>
      Effect.flatMap(
        command("get", key, () => runGetWithTtl(fullKey(key))),
        ([payload, ttl]) =>
          Effect.map(decodePayload(key, payload), (value) =>
            Option.isNone(value) || ttl === -2
              ? Option.none()
              : Option.some({ value: value.value, ttl: ttl < 0 ? Duration.infinity : Duration.millis(ttl) }))
      )

    const decodePayload = (key: string, payload: Buffer | null): Effect.Effect<Option.Option<string>> => {
      if (payload === null) return Effect.succeedNone
      const decoded = codec.decode(payload, maxValueSize)
      if (Either.isRight(decoded)) return Effect.succeedSome(decoded.right)
      // A value we cannot read is a miss: the caller recomputes and overwrites it. It
      // must not fail the request, nor count against the server's health.
      return Metric.increment(corruptCounter).pipe(
        Effect.zipRight(
          Effect.logWarning(`Redis cache: unreadable value under "${key}" served as a miss: ${decoded.left.detail}`)
            .pipe(Effect.annotateLogs(annotations))
        ),
        Effect.as(Option.none())
      )
    }

    const set = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void, CacheError> =>
      Effect.suspend(() => {
        const millis = ttlMillis(key, setOptions?.ttl, validated.ttl)
        if (Either.isLeft(millis)) return Effect.fail(millis.left)
        if (Number.isFinite(maxValueSize)) {
          const size = codec.byteLength(value)
          if (size > maxValueSize) {
            return Effect.fail(
              new CacheError({
                operation: "set",
                key,
                reason: "TooLarge",
                outcome: "NotApplied",
                cause: new Error(`the value is ${size} bytes, above maxValueSize (${maxValueSize} bytes)`)
              })
            )
          }
        }
        return Effect.flatMap(codec.encode(value, compressionThreshold), (payload) =>
          command("set", key, () =>
            Number.isFinite(millis.right)
              ? client.set(fullKey(key), payload, "PX", Math.max(1, Math.ceil(millis.right)))
              : client.set(fullKey(key), payload)))
      }).pipe(Effect.asVoid)

    const delete_ = (key: string): Effect.Effect<boolean, CacheError> =>
      Effect.map(command("delete", key, () => client.unlink(fullKey(key))), (removed) => removed > 0)

    // SCAN + UNLINK in batches: KEYS would block the server for the whole keyspace, and
    // UNLINK frees memory off the main thread. Each command is bounded by commandTimeout.
    const invalidate = (keyPrefix: string): Effect.Effect<number, CacheError> =>
      Effect.gen(function*() {
        const pattern = escapeGlob(fullKey(keyPrefix)) + "*"
        let cursor = "0"
        let removed = 0
        let applied = false
        do {
          const [next, keys] = yield* command(
            "invalidate",
            keyPrefix,
            () => client.scan(cursor, "MATCH", pattern, "COUNT", scanCount),
            applied
          )
          if (keys.length > 0) {
            const batch = keys
            removed += yield* command("invalidate", keyPrefix, () => client.unlink(...batch), applied)
            applied = true
          }
          cursor = next
        } while (cursor !== "0")
        return removed
      })

    // PING touches no key; bounded by commandTimeout, and failing fast while disconnected.
    const ping: Effect.Effect<void, CacheError> = Effect.asVoid(command("get", "", () => client.ping()))

    const declaredTimeout = client.options.commandTimeout
    return {
      ping,
      get,
      getWithTtl,
      set,
      delete: delete_,
      invalidate,
      defaultTtl: validated.ttl,
      commandTimeout: typeof declaredTimeout === "number" ? Duration.millis(declaredTimeout) : undefined
    }
  })

/** @internal */
export const layer = (
  options?: RedisModule.Options
): Layer.Layer<Cache, InvalidOptions | RedisConnectionError> => Layer.scoped(Cache, make(options))

const optional = <A>(config: Config.Config<A>) => Config.option(config).pipe(Config.map(Option.getOrUndefined))

/** How an environment variable is read: a secret stays `Redacted` from the provider on. */
type Kind = "secret" | "string" | "duration" | "number" | "integer"

/** The options `layerConfig` reads, and the variable of each. */
const variables: ReadonlyArray<readonly [keyof RedisModule.Options, string, Kind]> = [
  ["url", "REDIS_URL", "secret"],
  ["password", "REDIS_PASSWORD", "secret"],
  ["prefix", "REDIS_KEY_PREFIX", "string"],
  ["ttl", "REDIS_TTL", "duration"],
  ["compressionThreshold", "REDIS_COMPRESSION_THRESHOLD", "number"],
  ["maxValueSize", "REDIS_MAX_VALUE_SIZE", "number"],
  ["commandTimeout", "REDIS_COMMAND_TIMEOUT", "duration"],
  ["connectTimeout", "REDIS_CONNECT_TIMEOUT", "duration"],
  ["maxRetriesPerRequest", "REDIS_MAX_RETRIES_PER_REQUEST", "integer"],
  ["maxReconnectDelay", "REDIS_MAX_RECONNECT_DELAY", "duration"]
]

/** The seeds' names of options, read when the library's own variable is not set (which wins). */
const seedVariables: ReadonlyArray<readonly [keyof RedisModule.Options, string, Kind]> = [
  ["commandTimeout", "REDIS_SOCKET_TIMEOUT", "duration"]
]

/** Infinity is written `Infinity` (or `inf`) in the environment; "" is no number. */
const parseNumber = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (/^(\+?inf(inity)?)$/i.test(trimmed)) return Number.POSITIVE_INFINITY
  if (trimmed === "") return undefined
  const value = Number(trimmed)
  return Number.isNaN(value) ? undefined : value
}

/**
 * The value of one variable as its option's type, or what was expected of it. A value
 * that does not even parse is reported here; one that parses is checked by `validate`.
 */
const convert = (kind: Kind, raw: string | Redacted.Redacted<string>): Either.Either<unknown, string> => {
  if (kind === "secret") return Either.right(raw)
  const text = Redacted.isRedacted(raw) ? Redacted.value(raw) : raw
  switch (kind) {
    case "string":
      return Either.right(text)
    case "duration":
      // A bare number is seconds, as every duration variable is documented.
      return Either.fromNullable(
        parseSeconds(text),
        () => "seconds, or a duration such as \"500 millis\" or \"2 seconds\""
      )
    case "number":
    case "integer": {
      const value = parseNumber(text)
      return value === undefined ? Either.left(kind === "number" ? "a number" : "an integer") : Either.right(value)
    }
  }
}

/**
 * One variable as its option's type, parsed as `configOptions` parses it (a bare number of a
 * duration is seconds); a value that does not parse is `ConfigError.InvalidData`.
 */
const typed = (name: string, kind: Kind): Config.Config<unknown> =>
  kind === "secret" ? Config.redacted(name) : Config.mapOrFail(Config.string(name), (text) =>
    Either.mapLeft(
      convert(kind, text),
      (expected) => ConfigError.InvalidData([name], `Expected ${expected}, received ${JSON.stringify(text)}`)
    ))

/** @internal */
export const config: Config.Config<RedisModule.Options> = Config.map(
  Config.all([
    Config.all(Object.fromEntries(variables.map(([option, name, kind]) => [option, optional(typed(name, kind))]))),
    Config.all(Object.fromEntries(seedVariables.map(([option, name, kind]) => [option, optional(typed(name, kind))])))
  ]),
  ([library, seed]) => {
    const options: Record<string, unknown> = { ...library }
    // The library's variable wins over the seed's.
    for (const [option, value] of Object.entries(seed)) {
      if (options[option] === undefined && value !== undefined) options[option] = value
    }
    return options as RedisModule.Options
  }
)

/** @internal */
export const configOptions = (
  defaultOptions?: RedisModule.Options
): Effect.Effect<RedisModule.Options, InvalidOptions | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const merged: Record<string, unknown> = { ...defaultOptions }
    const fromEnvironment = new Map<string, string>()
    const refused: Array<InvalidOptions> = []
    for (const [option, name, kind] of [...variables, ...seedVariables]) {
      const used = fromEnvironment.get(option)
      if (used !== undefined) {
        // A seed's variable shadowed by the library's: say so when they differ (never the values).
        const seedText = yield* optional(Config.string(name))
        const usedText = yield* optional(Config.string(used))
        if (seedText !== undefined && usedText !== undefined && seedText.trim() !== usedText.trim()) {
          yield* Effect.logWarning(`${used} and ${name} are both set and differ: ${used} is used`)
        }
        continue
      }
      // Read as text (secrets as Redacted text), converted here, so that a bad value is an
      // InvalidOptions naming the option and its variable rather than a ConfigError.
      const read: Config.Config<string | Redacted.Redacted<string>> = kind === "secret"
        ? Config.redacted(name)
        : Config.string(name)
      const raw = yield* optional(read)
      if (raw === undefined) continue
      const value = convert(kind, raw)
      if (Either.isLeft(value)) {
        refused.push(
          new InvalidOptions({
            module: moduleName,
            field: `${option} (${name})`,
            expected: value.left,
            received: raw
          })
        )
      } else {
        merged[option] = value.right
        fromEnvironment.set(option, name)
      }
    }
    if (refused.length > 0) {
      return yield* Effect.fail(
        refused.length === 1 ? refused[0]! : new InvalidOptions({
          module: moduleName,
          field: refused.map((error) => error.field).join(", "),
          expected: refused.map((error) => `${error.field}: ${error.expected}`).join("; "),
          received: Object.fromEntries(refused.map((error) => [error.field, error.received]))
        })
      )
    }
    if (merged["url"] === undefined && defaultOptions?.redis === undefined) {
      // Neither the environment nor the defaults say where Redis is: report REDIS_URL missing.
      yield* Config.string("REDIS_URL")
    }
    const options = merged as RedisModule.Options
    const validated = validate(options)
    if (Either.isLeft(validated)) {
      const variable = fromEnvironment.get(validated.left.field)
      return yield* Effect.fail(
        variable === undefined ? validated.left : new InvalidOptions({
          ...validated.left,
          field: `${validated.left.field} (${variable})`
        })
      )
    }
    return options
  })

/** @internal */
export const layerConfig = (
  defaultOptions?: RedisModule.Options
): Layer.Layer<Cache, InvalidOptions | RedisConnectionError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(configOptions(defaultOptions), layer))
