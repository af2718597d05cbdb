/**
 * Circuit breakers whose decisions are shared, on Redis, by every process that uses the same
 * breaker name (ioredis 5, a peer dependency of this subpath only).
 *
 * A shared breaker is a `CircuitBreaker` (same interface, so it composes with everything)
 * over a local breaker made from the same options:
 *
 * - **Closed**: calls run through the local breaker, which keeps its own rules; their
 *   outcomes are counted in memory and reported every `shared.reportInterval` by a background
 *   fiber. No call waits on Redis.
 * - **Opening**: one Lua script on one key per breaker (`<keyPrefix>{<name>}`, so it runs on
 *   Redis Cluster) aggregates the fleet's outcomes over `shared.window` and opens the shared
 *   state when the failure rate reaches `shared.failureRateThreshold` over at least
 *   `shared.minimumCalls` calls, and failures came from at least `shared.quorum` processes
 *   (otherwise only the local breakers that tripped are open).
 * - **Propagation**: an opening is published on the breaker's channel, and every process
 *   also reads the state every `shared.syncInterval`: a process connected to Redis stops
 *   calling within `syncInterval + commandTimeout` of an opening at worst, usually within
 *   milliseconds.
 * - **Half-open**: a call asks the script for a probe lease; `halfOpenMaxCalls` leases exist
 *   fleet-wide, each expiring after `shared.probeLease` (default: the open duration), so the
 *   probe of a process that died is replaced. A failed probe reopens for everyone;
 *   `successThreshold` successful probes close it for everyone.
 * - **Redis slow, frozen, down or lost**: a command that does not answer within the store's
 *   `commandTimeout` makes that process fall back to its local breaker until a read succeeds
 *   again. No caller ever sees an error of the store. A known open period is honoured to its end.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import * as internal from "../internal/sharedBreaker.js"
import type { ConnectionOptions } from "../internal/redisConnection.js"
import * as store from "../internal/sharedBreakerStore.js"
import type { InvalidOptions } from "../InvalidOptions.js"

export {
  /**
   * The service holding the Redis connections that the shared breakers of a process use
   * (`"effect-resilience/CircuitBreaker/Redis/Store"`), provided by `layer` or `layerConfig`.
   *
   * @since 0.1.0
   * @category tags
   */
  Store,
  /**
   * The shared store did not answer: `server` (without credentials), `operation`, `cause`.
   * Only the store's `check` fails with it; a breaker's caller never sees it.
   *
   * @since 0.1.0
   * @category errors
   */
  SharedStoreUnavailable
} from "../internal/sharedBreakerStore.js"

/**
 * The shared store's connections, as `Store` provides them.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedStore extends store.SharedStore {}

/**
 * The options of `layer`: the connection options of every Redis layer (`url`, `redis`,
 * `commandTimeout` 100 ms: a command without a reply after this long makes the process fall
 * back to its local breakers, `connectTimeout` 1 second, `maxReconnectDelay` 500 ms,
 * `connectionName` `"effect-resilience-breaker"`), and the prefix of the keys. Every field is
 * optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions extends ConnectionOptions {
  /** Prepended to every breaker's key and channel (default `"effect-resilience:breaker:"`). */
  readonly keyPrefix?: string | undefined
}

/**
 * The shared part of a breaker's options. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedOptions {
  /** The window over which the fleet's outcomes are aggregated (default 10 seconds). */
  readonly window?: Duration.DurationInput | undefined
  /** Buckets of the window (default 10). */
  readonly buckets?: number | undefined
  /**
   * Opens the shared state when failures / calls over the window >= this (default: the breaker's
   * `failureRateThreshold`, else 0.5).
   */
  readonly failureRateThreshold?: number | undefined
  /** Calls the fleet's window must hold before it can open (default: `minimumCalls`, else 10). */
  readonly minimumCalls?: number | undefined
  /**
   * Distinct processes that must have failed within the window for the shared state to open
   * (default 1). Below it, a sick process opens only its own local breaker.
   */
  readonly quorum?: number | undefined
  /** The shared open duration (default: the breaker's `openSchedule`, else `resetTimeout`, else 60 seconds). */
  readonly openDuration?: Duration.DurationInput | undefined
  /** How long a probe lease lasts before another process may take it (default: the open duration). */
  readonly probeLease?: Duration.DurationInput | undefined
  /** How often the outcomes counted in memory are reported (default 100 ms). */
  readonly reportInterval?: Duration.DurationInput | undefined
  /** How often the shared state is read, the backstop of pub/sub (default 1 second). */
  readonly syncInterval?: Duration.DurationInput | undefined
  /** This process's id in the quorum (default `<hostname>:<pid>:<n>`). */
  readonly processId?: string | undefined
}

/**
 * The options of `make`: a breaker's options, plus `shared`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = unknown> extends CircuitBreaker.CircuitBreaker.Options<E> {
  readonly shared?: SharedOptions | undefined
}

/**
 * What a process knows of the shared state.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedState {
  /** The shared state as this process sees it. */
  readonly status: "Closed" | "Open" | "HalfOpen"
  /** The epoch of the shared state: one per open period and per closed period. */
  readonly epoch: number
  /** Whether the last command of this breaker to Redis was answered. */
  readonly healthy: boolean
  /** Probe leases this process was granted. */
  readonly probesGranted: number
  readonly processId: string
}

/**
 * A shared breaker: a `CircuitBreaker`, plus what it knows of the shared state.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedCircuitBreaker extends CircuitBreaker.CircuitBreaker {
  readonly shared: Effect.Effect<SharedState>
}

/**
 * Makes a breaker shared by every process using the same `name` on the same Redis. Needs
 * `Store` (see `layer`) and a `Scope` (its background reporting and reading stop when the
 * scope closes). Fails with `InvalidOptions` naming the field; never because Redis is down.
 *
 * `forceOpen`, `forceClosed` and `isolate` act on this process only; `reset` clears the
 * shared state too, and `halfOpen` ends the fleet's open period now. With a `Health` registry
 * in the context, the shared breaker registers itself under its name (its local breaker does not).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"
 *
 * declare const callPayments: Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* SharedCircuitBreaker.make({
 *     name: "payments",
 *     resetTimeout: "30 seconds",
 *     shared: { quorum: 2, window: "10 seconds" }
 *   })
 *   return yield* breaker.protect(callPayments)
 * }).pipe(Effect.scoped, Effect.provide(SharedCircuitBreaker.layer({ url: "redis://localhost:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <E = unknown>(
  options: Options<E>
) => Effect.Effect<SharedCircuitBreaker, InvalidOptions, store.Store | Scope.Scope> = internal.make

/**
 * Provides `Store`: two connections (commands, and the subscription to the breakers'
 * channels) that reconnect in the background forever. Built even when Redis does not
 * answer: breakers then run on their local state until it does. Fails with `InvalidOptions`
 * when the options can never work (a bad URL).
 *
 * @example
 * ```ts
 * import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"
 *
 * const StoreLive = SharedCircuitBreaker.layer({ url: "redis://localhost:6379", commandTimeout: "50 millis" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: StoreOptions) => Layer.Layer<store.Store, InvalidOptions> = store.layer

/**
 * `layer` with `REDIS_URL` (redacted), `REDIS_COMMAND_TIMEOUT` (a bare number is seconds) and
 * `REDIS_BREAKER_KEY_PREFIX` read through Effect `Config` over `defaults`.
 *
 * @example
 * ```ts
 * import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"
 *
 * // REDIS_URL=redis://redis:6379 REDIS_COMMAND_TIMEOUT="50 millis"
 * const StoreLive = SharedCircuitBreaker.layerConfig()
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: StoreOptions
) => Layer.Layer<store.Store, InvalidOptions | ConfigError.ConfigError> = store.layerConfig

/**
 * The store's health check, a PING within the command timeout: register it with
 * `Health.register({ name, source: Health.fromCheck(SharedCircuitBreaker.check) })` after
 * providing `Store`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Health } from "effect-resilience"
 * import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"
 *
 * const register = Effect.gen(function*() {
 *   const store = yield* SharedCircuitBreaker.Store
 *   yield* Health.register({ name: "breaker-store", source: Health.fromCheck(store.check) })
 * })
 * ```
 *
 * @since 0.1.0
 * @category health
 */
export const check: Effect.Effect<void, store.SharedStoreUnavailable, store.Store> = internal.check

/**
 * A shared breaker's probe lease, as `currentProbe` reads it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Probe extends internal.Probe {}

/**
 * The probe lease the current fiber runs under: `Some` inside an effect that a shared breaker
 * runs as its fleet's half-open probe (with the breaker's name, the epoch of the open period
 * and the lease's slot), `None` anywhere else.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"
 *
 * const call = Effect.gen(function*() {
 *   const probe = yield* SharedCircuitBreaker.currentProbe
 *   if (Option.isSome(probe)) yield* Effect.log(`probing in epoch ${probe.value.epoch}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category probes
 */
export const currentProbe: Effect.Effect<Option.Option<Probe>> = internal.currentProbe
