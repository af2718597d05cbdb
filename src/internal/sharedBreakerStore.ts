import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { RedisOptions } from "ioredis"
import type { StoreOptions } from "../CircuitBreaker/Redis.js"
import { InvalidOptions } from "../InvalidOptions.js"
import * as connection_ from "./redisConnection.js"
import { decodeReply, type Reply, script } from "./sharedBreakerScript.js"

const moduleName = "CircuitBreaker/Redis"

/** @internal */
export const storeDefaults = {
  ...connection_.storeDefaults,
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
    const validated = yield* connection_.validateStore(moduleName, options, storeDefaults)
    const { connection } = validated
    const { server } = connection
    const connect = (role: string, fixed: RedisOptions) =>
      connection_.acquireClient(connection, {
        label: `shared breaker store ${role}`,
        annotations: { store: "shared-breaker", server },
        fixed,
        reconnect: "doubling",
        logRepeatedErrors: false,
        quitOnRelease: false
      })
    const { firstConnection, redis: commands } = yield* connect("command", connection_.failFast(connection, 0))
    const { redis: subscriber } = yield* connect("subscriber", {
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      autoResubscribe: true
    })
    // The first connection attempt only, within the connect timeout: commands sent right after
    // the layer is built do not fail for a connection still in progress. When Redis does not
    // answer, the layer is built all the same and the client reconnects in the background.
    yield* firstConnection(connection.connectTimeout)

    commands.defineCommand(commandName, { numberOfKeys: 1, lua: script })
    const runScript = (commands as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>)[
      commandName
    ]!.bind(commands)
    const run = (key: string, args: ReadonlyArray<string | number>): Effect.Effect<Reply, SharedStoreUnavailable> => {
      const unavailable = (cause: unknown) => new SharedStoreUnavailable({ server, operation: String(args[0]), cause })
      return connection_.command(
        connection,
        () => runScript(key, ...args),
        unavailable,
        () => unavailable(new Error("command timed out"))
      ).pipe(
        Effect.flatMap((raw) => {
          const reply = decodeReply(raw)
          return reply === undefined ? Effect.fail(unavailable(new Error("malformed reply"))) : Effect.succeed(reply)
        })
      )
    }

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
            : Effect.promise(() => subscribed).pipe(Effect.timeout(connection.connectTimeout), Effect.ignore)
        )
      )

    const check = connection_.command(
      connection,
      () => commands.ping(),
      (cause) => new SharedStoreUnavailable({ server, operation: "check", cause }),
      () => new SharedStoreUnavailable({ server, operation: "check", cause: new Error("timed out") })
    ).pipe(Effect.asVoid)

    return {
      server,
      keyPrefix: validated.keyPrefix,
      commandTimeout: connection.commandTimeout,
      run,
      subscribe,
      check
    }
  })

/** @internal */
export const layer = (options?: StoreOptions): Layer.Layer<Store, InvalidOptions> =>
  Layer.scoped(Store, makeStore(options))

/** @internal */
export const config: Config.Config<StoreOptions> = connection_.storeConfig("REDIS_BREAKER_KEY_PREFIX")

/** @internal */
export const layerConfig = (
  defaults?: StoreOptions
): Layer.Layer<Store, InvalidOptions | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(config, (read) => layer({ ...defaults, ...read }))
  )
