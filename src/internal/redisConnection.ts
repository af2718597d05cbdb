/**
 * The ioredis client of every Redis layer (the cache, the shared breakers' store, the fleet
 * rate limit's store): options checked once, secrets kept out of errors and logs, no offline
 * queue, a command timeout, background reconnection, an error listener for the client's whole
 * life, acquired and released with a scope. What differs between the layers (their defaults,
 * whether the user's ioredis options may loosen the fail-fast settings, the reconnect backoff,
 * QUIT on release) is a parameter here.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { InvalidOptions } from "../InvalidOptions.js"
import { parseDuration as parseSeconds } from "./circuitBreaker.js"
import * as options_ from "./options.js"
import { withoutSecrets } from "./redisErrors.js"
import * as redisUrl from "./redisUrl.js"

/**
 * The connection options that every Redis layer of the library accepts; each layer's options
 * extend them. Every field is optional.
 */
export interface ConnectionOptions {
  /**
   * `redis://[user:password@]host[:port][/db]` or `rediss://...` (default: `redis.host` and
   * `redis.port`, else localhost:6379). Checked before any connection: scheme, host, port in
   * 1..65535, path a database number. A `Redacted` keeps the credentials it holds out of
   * logs; errors and logs never show a URL's userinfo or query either way.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /**
   * ioredis options (host, port, password, tls, db, ...) applied over the layer's defaults;
   * what `url` says wins over them. The cache lets them change its fail-fast settings and
   * refuses `keyPrefix` (use `prefix`); the shared breakers' and the rate limit's stores keep
   * theirs (no offline queue, no resend, `commandTimeout`) whatever these say.
   */
  readonly redis?: RedisOptions | undefined
  /**
   * A command without a reply after this long counts as Redis being unavailable (default
   * 500 ms for the cache, 100 ms for the shared breakers' and the rate limit's stores): the
   * cache fails it with reason `"Timeout"`, a shared breaker falls back to its local breaker,
   * a shared rate limit lets `onStoreUnavailable` decide.
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** How long a connection attempt may take (default 1 second). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * The longest wait between reconnect attempts (default 1 second for the cache, whose
   * attempts back off from 50 ms with jitter; 500 ms for the stores).
   */
  readonly maxReconnectDelay?: Duration.DurationInput | undefined
  /**
   * The name of the connection in `CLIENT LIST` (default `"effect-resilience-cache"`,
   * `"effect-resilience-breaker"` or `"effect-resilience-rate-limit"`).
   */
  readonly connectionName?: string | undefined
}

/**
 * The defaults of one layer's connection options.
 *
 * @internal
 */
export interface ConnectionDefaults {
  readonly commandTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly maxReconnectDelay: Duration.Duration
  readonly connectionName: string
}

/**
 * Connection options that passed every check, with the server they name.
 *
 * @internal
 */
export interface Connection extends ConnectionDefaults {
  readonly url: redisUrl.RedisUrl | undefined
  readonly redis: RedisOptions
  /** The server, without credentials, for logs and errors. */
  readonly server: string
}

/**
 * The layer could not connect at startup and `requireConnection` was set.
 *
 * @internal
 */
export class RedisConnectionError extends Data.TaggedError("RedisConnectionError")<{
  /** The server, without credentials. */
  readonly server: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `could not connect to Redis at ${this.server}: ${detail}`
  }
}

/**
 * The options object itself: anything but an object is refused, and the value is not shown
 * (a URL passed where the options belong holds a password).
 *
 * @internal
 */
export const optionsObject = <A extends object>(
  module: string,
  options: A | undefined
): Either.Either<A, InvalidOptions> =>
  Either.mapLeft(
    options_.object(module, options, false),
    (error) => new InvalidOptions({ ...error, received: options === null ? null : typeof options })
  )

/**
 * Checks `url`: a string or a Redacted string that `redisUrl.parse` accepts.
 *
 * @internal
 */
export const validateUrl = (
  module: string,
  value: string | Redacted.Redacted<string> | undefined
): Either.Either<redisUrl.RedisUrl | undefined, InvalidOptions> => {
  if (value === undefined) return Either.right(undefined)
  const text: unknown = Redacted.isRedacted(value) ? Redacted.value(value) : value
  if (typeof text !== "string") {
    return Either.left(
      new InvalidOptions({
        module,
        field: "url",
        expected: "a redis:// or rediss:// URL, as a string or a Redacted string",
        received: text === null ? null : typeof text
      })
    )
  }
  return Either.mapLeft(redisUrl.parse(text), (refused) =>
    new InvalidOptions({
      module,
      field: "url",
      expected: refused.expected,
      // The URL without its userinfo and query: either may hold a password.
      received: redisUrl.redact(text)
    }))
}

/** The server a client talks to, without credentials, for logs and errors. */
const describeServer = (url: redisUrl.RedisUrl | undefined, redis: RedisOptions): string => {
  if (url !== undefined) return url.display
  if (redis.path !== undefined) return `unix:${redis.path}`
  return `redis://${redis.host ?? "localhost"}:${redis.port ?? 6379}`
}

/**
 * Checks the connection options of `options` (an object already), with `defaults` for what
 * they do not set. InvalidOptions names `module` and the field.
 *
 * @internal
 */
export const validateConnection = (
  module: string,
  options: ConnectionOptions,
  defaults: ConnectionDefaults
): Either.Either<Connection, InvalidOptions> =>
  Either.gen(function*() {
    const { commandTimeout: commandInput, connectTimeout: connectInput, maxReconnectDelay: reconnectInput } = options
    const commandTimeout = yield* options_.duration(module, "commandTimeout", commandInput, defaults.commandTimeout)
    const connectTimeout = yield* options_.duration(module, "connectTimeout", connectInput, defaults.connectTimeout)
    const maxReconnectDelay = yield* options_.duration(
      module,
      "maxReconnectDelay",
      reconnectInput,
      defaults.maxReconnectDelay
    )
    const connectionName = yield* options_.field(
      module,
      "connectionName",
      options.connectionName,
      options_.nonEmptyString,
      defaults.connectionName
    )
    const url = yield* validateUrl(module, options.url)
    const redis: unknown = options.redis ?? {}
    if (typeof redis !== "object" || redis === null || Array.isArray(redis)) {
      // The value itself is never printed: ioredis options hold passwords.
      return yield* Either.left(
        new InvalidOptions({ module, field: "redis", expected: "an object of ioredis options", received: typeof redis })
      )
    }
    const checked = redis as RedisOptions
    return {
      url,
      redis: checked,
      commandTimeout,
      connectTimeout,
      maxReconnectDelay,
      connectionName,
      server: describeServer(url, checked)
    }
  })

/**
 * The connection defaults of a store that a call may consult on its way (the shared breakers',
 * the fleet rate limit's): a short command timeout, a short reconnect backoff.
 *
 * @internal
 */
export const storeDefaults = {
  commandTimeout: Duration.millis(100),
  connectTimeout: Duration.seconds(1),
  maxReconnectDelay: Duration.millis(500)
} as const

/**
 * A store's options: the connection's and the prefix of its keys.
 *
 * @internal
 */
export interface StoreOptions extends ConnectionOptions {
  readonly keyPrefix?: string | undefined
}

/**
 * A store's options that passed every check.
 *
 * @internal
 */
export interface Store {
  readonly connection: Connection
  readonly keyPrefix: string
}

const anyString = options_.check(Schema.String, "a string")

/**
 * Checks a store's options, with `defaults` for what they do not set.
 *
 * @internal
 */
export const validateStore = (
  module: string,
  options: StoreOptions | undefined,
  defaults: ConnectionDefaults & { readonly keyPrefix: string }
): Either.Either<Store, InvalidOptions> =>
  Either.gen(function*() {
    const o = yield* optionsObject(module, options)
    const keyPrefix = yield* options_.field(module, "keyPrefix", o.keyPrefix, anyString, defaults.keyPrefix)
    const connection = yield* validateConnection(module, o, defaults)
    return { connection, keyPrefix }
  })

/**
 * The wait before reconnect attempt `times` (from 1): exponential from 50 ms, capped at
 * `maxDelay`, with jitter in [delay / 2, delay] (`random` in [0, 1)) so that many processes
 * do not reconnect in lockstep after a restart; at least 1 ms.
 *
 * @internal
 */
export const reconnectDelay = (times: number, maxDelay: number, random: number): number => {
  const delay = Math.min(50 * 2 ** Math.min(Math.max(times, 1) - 1, 20), maxDelay)
  return Math.max(1, Math.round(delay / 2 + (delay / 2) * random))
}

/**
 * The wait before reconnect attempt `times`: doubling from 50 ms, capped at `maxDelay`.
 *
 * @internal
 */
export const doublingDelay = (times: number, maxDelay: number): number =>
  Math.min(maxDelay, 25 * 2 ** Math.min(times, 10))

/**
 * The fail-fast settings: a command gets no reply within `commandTimeout` fails, nothing waits
 * in an offline queue, nothing is resent after a reconnect.
 *
 * @internal
 */
export const failFast = (connection: Connection, maxRetriesPerRequest: number): RedisOptions => ({
  commandTimeout: Duration.toMillis(connection.commandTimeout),
  maxRetriesPerRequest,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false
})

/**
 * How one client is made, beyond its connection options.
 *
 * @internal
 */
export interface ClientOptions {
  /** Starts the log lines of the connection: `<label> connection error: ...`. */
  readonly label: string
  /** The annotations of those log lines. */
  readonly annotations: Record<string, string>
  /** ioredis options under the user's `redis` options (which may change them). */
  readonly defaults?: RedisOptions | undefined
  /** ioredis options over the user's `redis` options (which cannot change them). */
  readonly fixed?: RedisOptions | undefined
  /** The password, over the URL's (which is then not passed). */
  readonly password?: Redacted.Redacted<string> | undefined
  /** `"jittered"`: `reconnectDelay`; `"doubling"`: `doublingDelay`. */
  readonly reconnect: "jittered" | "doubling"
  /** Whether an error repeated within one outage is logged again, at debug level. */
  readonly logRepeatedErrors: boolean
  /** Whether release sends QUIT first, so that the replies in flight arrive. */
  readonly quitOnRelease: boolean
}

/**
 * A client, connecting from its acquisition on.
 *
 * @internal
 */
export interface Client {
  readonly redis: Redis
  /**
   * The first connection attempt, within `timeout`: `None` once connected, else `Some` of its
   * cause without secrets (the socket error, which says more than ioredis's
   * "Connection is closed."). The client reconnects in the background either way.
   */
  readonly firstConnection: (timeout: Duration.Duration) => Effect.Effect<Option.Option<unknown>>
}

const withoutPassword = (text: string): string => {
  const url = new URL(text)
  url.password = ""
  return url.toString()
}

/**
 * Makes a client of `connection` for the scope's life: our settings, then the user's `redis`
 * options, then `fixed`; an error listener from creation to release (without one, ioredis
 * reports connection errors as unhandled 'error' events, which crash a Node process), each
 * outage logged once with its cause and its end.
 *
 * @internal
 */
export const acquireClient = (
  connection: Connection,
  options: ClientOptions
): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const random = yield* Effect.random
    const runFork = Runtime.runFork(runtime)
    const log = (effect: Effect.Effect<void>) => {
      runFork(Effect.annotateLogs(effect, options.annotations))
    }
    const maxDelay = Duration.toMillis(connection.maxReconnectDelay)
    const retryStrategy = options.reconnect === "jittered"
      ? (times: number) => reconnectDelay(times, maxDelay, Runtime.runSync(runtime)(random.next))
      : (times: number) => doublingDelay(times, maxDelay)
    const { password } = options
    const settings: RedisOptions = {
      connectTimeout: Duration.toMillis(connection.connectTimeout),
      connectionName: connection.connectionName,
      retryStrategy,
      ...options.defaults,
      ...connection.redis,
      ...options.fixed,
      ...(password === undefined ? {} : { password: Redacted.value(password) }),
      // The layer connects itself.
      lazyConnect: true
    }
    let lastConnectionError: unknown = undefined
    return yield* Effect.acquireRelease(
      Effect.sync(() => {
        const { url } = connection
        // What the URL says wins over `settings` in ioredis; the `password` option wins over
        // the URL's, so the URL is passed without it then.
        const redis = url === undefined
          ? new Redis(settings)
          : new Redis(password === undefined ? url.url : withoutPassword(url.url), settings)
        let lastError: string | undefined
        redis.on("error", (error: unknown) => {
          lastConnectionError = error
          const cleaned = withoutSecrets(error)
          const message = cleaned instanceof Error ? cleaned.message : String(cleaned)
          if (message !== lastError) {
            lastError = message
            log(Effect.logWarning(`${options.label} connection error: ${message}`))
          } else if (options.logRepeatedErrors) {
            log(Effect.logDebug(`${options.label} connection error (repeated): ${message}`))
          }
        })
        redis.on("ready", () => {
          if (lastError !== undefined) {
            lastError = undefined
            log(Effect.logInfo(`${options.label} connection restored`))
          }
        })
        const connected: Promise<Option.Option<unknown>> = redis.connect().then(
          () => Option.none(),
          (error: unknown) => Option.some(error)
        )
        const firstConnection = (timeout: Duration.Duration) =>
          Effect.promise(() => connected).pipe(
            Effect.timeoutTo({
              duration: timeout,
              onTimeout: () => Option.some<unknown>(new Error("connect timed out")),
              onSuccess: (result) => result
            }),
            Effect.map(Option.map((failure) => withoutSecrets(lastConnectionError ?? failure)))
          )
        return { redis, firstConnection }
      }),
      ({ redis }) =>
        Effect.promise(async () => {
          if (options.quitOnRelease && redis.status === "ready") {
            // QUIT lets replies in flight arrive; commandTimeout bounds it on a frozen server.
            await redis.quit().catch(() => undefined)
          }
          redis.disconnect(false)
        })
    )
  })

/**
 * Runs one command within `commandTimeout` and a little more: ioredis bounds a command once
 * sent, this bound also covers a connection in a state where ioredis would not time it out.
 * `onFailure` gets the cause without secrets.
 *
 * @internal
 */
export const command = <A, E>(
  connection: Connection,
  run: () => Promise<A>,
  onFailure: (cause: unknown) => E,
  onTimeout: () => E
): Effect.Effect<A, E> =>
  Effect.tryPromise({ try: run, catch: (cause) => onFailure(withoutSecrets(cause)) }).pipe(
    Effect.timeoutFail({ duration: Duration.sum(connection.commandTimeout, Duration.millis(20)), onTimeout })
  )

/**
 * The options a store's `layerConfig` reads: `REDIS_URL` (redacted), `REDIS_COMMAND_TIMEOUT`
 * (a bare number is seconds) and the store's key prefix variable, each optional.
 *
 * @internal
 */
export const storeConfig = (keyPrefixVariable: string): Config.Config<{
  readonly url?: Redacted.Redacted<string>
  readonly commandTimeout?: Duration.Duration
  readonly keyPrefix?: string
}> =>
  Config.all({
    url: Config.option(Config.redacted("REDIS_URL")),
    commandTimeout: Config.option(
      Config.string("REDIS_COMMAND_TIMEOUT").pipe(
        Config.mapOrFail((text) => {
          const parsed = parseSeconds(text)
          return parsed === undefined
            ? Either.left(
              ConfigError.InvalidData(["REDIS_COMMAND_TIMEOUT"], `expected a duration, received "${text}"`)
            )
            : Either.right(parsed)
        })
      )
    ),
    keyPrefix: Config.option(Config.string(keyPrefixVariable))
  }).pipe(
    Config.map(({ commandTimeout, keyPrefix, url }) => {
      const options: {
        url?: Redacted.Redacted<string>
        commandTimeout?: Duration.Duration
        keyPrefix?: string
      } = {}
      if (Option.isSome(url)) options.url = url.value
      if (Option.isSome(commandTimeout)) options.commandTimeout = commandTimeout.value
      if (Option.isSome(keyPrefix)) options.keyPrefix = keyPrefix.value
      return options
    })
  )
