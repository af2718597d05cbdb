import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
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
import { decodeReply, type Reply, script } from "./sharedBreakerScript.js"

const moduleName = "CircuitBreaker/Redis"

/**
 * The options of the shared store's layer.
 *
 * @internal
 */
export interface StoreOptions {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly redis?: RedisOptions | undefined
  readonly commandTimeout?: Duration.DurationInput | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly maxReconnectDelay?: Duration.DurationInput | undefined
  readonly keyPrefix?: string | undefined
  readonly connectionName?: string | undefined
}

/** @internal */
export const storeDefaults = {
  commandTimeout: Duration.millis(100),
  connectTimeout: Duration.seconds(1),
  maxReconnectDelay: Duration.millis(500),
  keyPrefix: "effect-resilience:breaker:",
  connectionName: "effect-resilience-breaker"
} as const

/**
 * The shared store did not answer (refused, closed, timed out) or answered something that
 * is not a reply of the script. Never reaches a caller of a breaker: only `check` fails
 * with it.
 *
 * @internal
 */
export class SharedStoreUnavailable extends Data.TaggedError("SharedStoreUnavailable")<{
  /** The server, without credentials. */
  readonly server: string
  /** The operation that failed: `report`, `read`, `acquire`, `result`, `reset`, `check` ... */
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `shared breaker store at ${this.server} did not answer ${this.operation}: ${detail}`
  }
}

/**
 * The connection the shared breakers of a process use.
 *
 * @internal
 */
export interface SharedStore {
  readonly server: string
  readonly keyPrefix: string
  readonly commandTimeout: Duration.Duration
  /** Runs the script on one breaker's key. */
  readonly run: (
    key: string,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<Reply, SharedStoreUnavailable>
  /** Calls `listener` with every message of `channel` until the scope closes. */
  readonly subscribe: (channel: string, listener: (message: string) => void) => Effect.Effect<void, never, Scope.Scope>
  /** A PING within the command timeout: the store's health check. */
  readonly check: Effect.Effect<void, SharedStoreUnavailable>
}

/** @internal */
export class Store extends Context.Tag("effect-resilience/CircuitBreaker/Redis/Store")<Store, SharedStore>() {}

interface ValidatedStore {
  readonly url: redisUrl.RedisUrl | undefined
  readonly redis: RedisOptions
  readonly commandTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly maxReconnectDelay: Duration.Duration
  readonly keyPrefix: string
  readonly connectionName: string
}

const anyString = options_.check(Schema.String, "a string")

/** @internal */
export const validateStore = (options: StoreOptions | undefined): Either.Either<ValidatedStore, InvalidOptions> =>
  Either.gen(function*() {
    const o = yield* Either.mapLeft(
      options_.object(moduleName, options, false),
      (error) => new InvalidOptions({ ...error, received: options === null ? null : typeof options })
    )
    const commandTimeout = yield* options_.duration(
      moduleName,
      "commandTimeout",
      o.commandTimeout,
      storeDefaults.commandTimeout
    )
    const connectTimeout = yield* options_.duration(
      moduleName,
      "connectTimeout",
      o.connectTimeout,
      storeDefaults.connectTimeout
    )
    const maxReconnectDelay = yield* options_.duration(
      moduleName,
      "maxReconnectDelay",
      o.maxReconnectDelay,
      storeDefaults.maxReconnectDelay
    )
    const keyPrefix = yield* options_.field(moduleName, "keyPrefix", o.keyPrefix, anyString, storeDefaults.keyPrefix)
    const connectionName = yield* options_.field(
      moduleName,
      "connectionName",
      o.connectionName,
      options_.nonEmptyString,
      storeDefaults.connectionName
    )
    let url: redisUrl.RedisUrl | undefined = undefined
    if (o.url !== undefined) {
      const text = Redacted.isRedacted(o.url) ? Redacted.value(o.url) : o.url
      if (typeof text !== "string") {
        return yield* Either.left(
          new InvalidOptions({
            module: moduleName,
            field: "url",
            expected: "a redis:// or rediss:// URL, as a string or a Redacted string",
            received: text === null ? null : typeof text
          })
        )
      }
      url = yield* Either.mapLeft(redisUrl.parse(text), (refused) =>
        new InvalidOptions({
          module: moduleName,
          field: "url",
          expected: refused.expected,
          received: redisUrl.redact(text)
        }))
    }
    const redis = o.redis ?? {}
    if (typeof redis !== "object" || redis === null || Array.isArray(redis)) {
      return yield* Either.left(
        new InvalidOptions({
          module: moduleName,
          field: "redis",
          expected: "an object of ioredis options",
          received: typeof redis
        })
      )
    }
    return { url, redis, commandTimeout, connectTimeout, maxReconnectDelay, keyPrefix, connectionName }
  })

const describeServer = (options: ValidatedStore): string => {
  if (options.url !== undefined) return options.url.display
  return `redis://${options.redis.host ?? "localhost"}:${options.redis.port ?? 6379}`
}

const commandName = "effectResilienceSharedBreaker"

/**
 * The two connections of the store: one for commands (fail fast: no offline queue, no
 * resend, `commandTimeout`), one for the channel subscriptions (resubscribed after every
 * reconnect). Both reconnect in the background forever, backing off up to `maxReconnectDelay`.
 *
 * @internal
 */
export const makeStore = (options?: StoreOptions): Effect.Effect<SharedStore, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const validated = yield* validateStore(options)
    const server = describeServer(validated)
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const log = (effect: Effect.Effect<void>) => {
      runFork(Effect.annotateLogs(effect, { store: "shared-breaker", server }))
    }
    const maxDelay = Duration.toMillis(validated.maxReconnectDelay)
    const base: RedisOptions = {
      connectTimeout: Duration.toMillis(validated.connectTimeout),
      connectionName: validated.connectionName,
      retryStrategy: (times: number) => Math.min(maxDelay, 25 * 2 ** Math.min(times, 10)),
      ...validated.redis,
      lazyConnect: true
    }
    const connect = (settings: RedisOptions, role: string) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const client = validated.url === undefined ? new Redis(settings) : new Redis(validated.url.url, settings)
          // Without a listener, ioredis reports connection errors as unhandled 'error' events.
          let lastError: string | undefined
          client.on("error", (error: unknown) => {
            const message = String(withoutSecrets(error) instanceof Error ? (error as Error).message : error)
            if (message !== lastError) {
              lastError = message
              log(Effect.logWarning(`shared breaker store ${role} connection error: ${message}`))
            }
          })
          client.on("ready", () => {
            if (lastError !== undefined) {
              lastError = undefined
              log(Effect.logInfo(`shared breaker store ${role} connection restored`))
            }
          })
          const connected = client.connect().catch(() => undefined)
          return { client, connected }
        }),
        ({ client }) =>
          Effect.sync(() => {
            client.disconnect(false)
          })
      )
    const { client: commands, connected } = yield* connect({
      ...base,
      commandTimeout: Duration.toMillis(validated.commandTimeout),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false
    }, "command")
    const { client: subscriber } = yield* connect({
      ...base,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      autoResubscribe: true
    }, "subscriber")
    // The first connection attempt only, within the connect timeout: commands sent right after
    // the layer is built do not fail for a connection still in progress. When Redis does not
    // answer, the layer is built all the same and the client reconnects in the background.
    yield* Effect.promise(() => connected).pipe(Effect.timeout(validated.connectTimeout), Effect.ignore)

    commands.defineCommand(commandName, { numberOfKeys: 1, lua: script })
    const runScript = (commands as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>)[
      commandName
    ]!.bind(commands)
    // ioredis bounds each command by `commandTimeout`; this bound also covers a connection in
    // a state where ioredis would not time the command out.
    const bound = Duration.sum(validated.commandTimeout, Duration.millis(20))

    const run = (key: string, args: ReadonlyArray<string | number>): Effect.Effect<Reply, SharedStoreUnavailable> =>
      Effect.tryPromise({
        try: () => runScript(key, ...args),
        catch: (cause) =>
          new SharedStoreUnavailable({ server, operation: String(args[0]), cause: withoutSecrets(cause) })
      }).pipe(
        Effect.timeoutFail({
          duration: bound,
          onTimeout: () =>
            new SharedStoreUnavailable({ server, operation: String(args[0]), cause: new Error("command timed out") })
        }),
        Effect.flatMap((raw) => {
          const reply = decodeReply(raw)
          return reply === undefined
            ? Effect.fail(
              new SharedStoreUnavailable({ server, operation: String(args[0]), cause: new Error("malformed reply") })
            )
            : Effect.succeed(reply)
        })
      )

    const listeners = new Map<string, Set<(message: string) => void>>()
    subscriber.on("message", (channel: string, message: string) => {
      const set = listeners.get(channel)
      if (set === undefined) return
      for (const listener of set) listener(message)
    })
    const subscribe = (channel: string, listener: (message: string) => void) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          let set = listeners.get(channel)
          let subscribed: Promise<unknown> | undefined
          if (set === undefined) {
            set = new Set()
            listeners.set(channel, set)
            // Queued until connected; resubscribed by ioredis after every reconnect.
            subscribed = subscriber.subscribe(channel).catch(() => undefined)
          }
          set.add(listener)
          return subscribed
        }),
        () =>
          Effect.sync(() => {
            const set = listeners.get(channel)
            if (set === undefined) return
            set.delete(listener)
            if (set.size === 0) {
              listeners.delete(channel)
              subscriber.unsubscribe(channel).catch(() => undefined)
            }
          })
      ).pipe(
        // Waits for the subscription, within the connect timeout (outside the acquisition, which
        // cannot be interrupted): a Redis that is down delays nothing longer, and the
        // subscription is made when it returns.
        Effect.flatMap((subscribed) =>
          subscribed === undefined
            ? Effect.void
            : Effect.promise(() => subscribed).pipe(Effect.timeout(validated.connectTimeout), Effect.ignore)
        )
      )

    const check = Effect.tryPromise({
      try: () => commands.ping(),
      catch: (cause) => new SharedStoreUnavailable({ server, operation: "check", cause: withoutSecrets(cause) })
    }).pipe(
      Effect.timeoutFail({
        duration: bound,
        onTimeout: () => new SharedStoreUnavailable({ server, operation: "check", cause: new Error("timed out") })
      }),
      Effect.asVoid
    )

    return {
      server,
      keyPrefix: validated.keyPrefix,
      commandTimeout: validated.commandTimeout,
      run,
      subscribe,
      check
    }
  })

/** @internal */
export const layer = (options?: StoreOptions): Layer.Layer<Store, InvalidOptions> =>
  Layer.scoped(Store, makeStore(options))

/** @internal */
export const config: Config.Config<StoreOptions> = Config.all({
  url: Config.option(Config.redacted("REDIS_URL")),
  // A bare number is seconds, as for every duration variable of the library.
  commandTimeout: Config.option(
    Config.string("REDIS_COMMAND_TIMEOUT").pipe(
      Config.mapOrFail((text) => {
        const parsed = parseSeconds(text)
        return parsed === undefined
          ? Either.left(ConfigError.InvalidData(["REDIS_COMMAND_TIMEOUT"], `expected a duration, received "${text}"`))
          : Either.right(parsed)
      })
    )
  ),
  keyPrefix: Config.option(Config.string("REDIS_BREAKER_KEY_PREFIX"))
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

/** @internal */
export const layerConfig = (
  defaults?: StoreOptions
): Layer.Layer<Store, InvalidOptions | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(config, (read) => layer({ ...defaults, ...read }))
  )
