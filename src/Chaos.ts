/**
 * Fault injection for tests and demos: failures, latency and outages around any effect,
 * and chaos layers around the `Cache` service and around `@effect/sql`'s `SqlClient`.
 *
 * Every fault is deterministic: randomness comes from a generator seeded with `seed` (or
 * the `Random` service when no seed is given) and time from the `Clock`, so the same seed
 * gives the same sequence of faults, and a test replays a ten-minute outage in
 * milliseconds on `TestClock`.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { LazyArg } from "effect/Function"
import type * as Layer from "effect/Layer"
import type { Cache, CacheService } from "./Cache.js"
import * as internal from "./internal/chaos.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * What a fault has done since it was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Calls that went through the fault, whether or not a fault was injected. */
  readonly calls: number
  /** Calls failed at random (`Chaos.fail`, `failureRate`). */
  readonly failures: number
  /** Calls failed as timeouts after waiting (`timeoutRate`). */
  readonly timeouts: number
  /** Calls that were delayed before running, and the sum of the delays. */
  readonly delayed: number
  readonly totalDelay: Duration.Duration
  /** Calls failed because they fell in an outage window. */
  readonly outageFailures: number
  /** Calls held until the end of an outage window in `"hang"` mode. */
  readonly outageHangs: number
}

/**
 * A fault: a function to put around any effect (`effect.pipe(fault)`), which may fail
 * with `E`, delay or hold the effect, and the statistics of what it injected.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fault<E> {
  <A, E1, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E | E1, R>
  /** What this fault has injected so far. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * Options of `fail`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailOptions<E> {
  /** The chance, in [0, 1], that a call fails without running. */
  readonly probability: number
  /** Builds the error of an injected failure. */
  readonly error: LazyArg<E>
  /** Seeds the fault's own generator; without it, the `Random` service in the context is used. */
  readonly seed?: number | string | undefined
}

/**
 * Options of `delay`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DelayOptions {
  /** A fixed delay, or a `[min, max]` range from which each delay is drawn uniformly. */
  readonly latency: Duration.DurationInput | readonly [Duration.DurationInput, Duration.DurationInput]
  /** The chance, in [0, 1], that a call is delayed (default 1: every call). */
  readonly probability?: number | undefined
  /** Seeds the fault's own generator; without it, the `Random` service in the context is used. */
  readonly seed?: number | string | undefined
}

/**
 * A window of time on the `Clock`, measured from the moment the fault (or layer) is made.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutageWindow {
  /** When the outage begins, after the fault is made (e.g. `"1 minute"`; `0` for at once). */
  readonly start: Duration.DurationInput
  /** How long it lasts (`Duration.infinity` for an outage that never ends). */
  readonly duration: Duration.DurationInput
  /** When given, the outage repeats with this period (longer than `duration`). */
  readonly every?: Duration.DurationInput | undefined
  /**
   * `"fail"` (default): every call in the window fails at once, like a refused connection.
   * `"hang"`: every call in the window waits for the window to end and then runs, like
   * a frozen server (`kill -STOP` then `-CONT`); only the caller's timeout bounds it.
   */
  readonly mode?: "fail" | "hang" | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace OutageOptions {
  /**
   * An outage whose calls fail with `error`.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Fail<E> extends OutageWindow {
    readonly mode?: "fail" | undefined
    /** Builds the error of a call that falls in the window. */
    readonly error: LazyArg<E>
  }
  /**
   * An outage whose calls hang until the window ends.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Hang extends OutageWindow {
    readonly mode: "hang"
  }
}

/**
 * Options of `layerCache`. Faults are checked in this order: outage windows, then one
 * draw deciding failure or timeout, then latency.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheOptions {
  /** Fraction of calls that fail at once with reason `"Unavailable"` (default 0). */
  readonly failureRate?: number | undefined
  /**
   * Fraction of calls that wait `timeout` and then fail with reason `"Timeout"` (default
   * 0). A timed-out write has outcome `"Unknown"`, and half of them are really applied,
   * as happens when only the reply is lost.
   */
  readonly timeoutRate?: number | undefined
  /** How long a timed-out call waits before failing (default 1 second). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Latency added to every call that is not failed: fixed, or drawn from `[min, max]`. */
  readonly latency?: Duration.DurationInput | readonly [Duration.DurationInput, Duration.DurationInput] | undefined
  /** Outage windows, measured from when the layer is built; `"fail"` ones fail with `"Unavailable"`. */
  readonly outages?: ReadonlyArray<OutageWindow> | undefined
  /** Seeds the layer's generator; without it, the `Random` service in the context is used. */
  readonly seed?: number | string | undefined
}

/**
 * What a chaos layer exposes besides the service it wraps: its statistics and whether an
 * outage window is active now.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChaosHandle {
  readonly stats: Effect.Effect<Stats>
  readonly outageActive: Effect.Effect<boolean>
}

/**
 * What `layerCache` provides next to the `Cache`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheChaosService extends ChaosHandle {}

/**
 * What `layerSql` provides next to the `SqlClient`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlChaosService extends ChaosHandle {}

export {
  /**
   * The service provided by `layerCache` next to the `Cache`, to inspect what was injected.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Chaos } from "effect-resilience"
   *
   * const report = Effect.flatMap(Chaos.CacheChaos, (chaos) => chaos.stats)
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  CacheChaos,
  /**
   * The service provided by `layerSql` next to the `SqlClient`, to inspect what was injected.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Chaos } from "effect-resilience"
   *
   * const outageNow = Effect.flatMap(Chaos.SqlChaos, (chaos) => chaos.outageActive)
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  SqlChaos
} from "./internal/chaos.js"

/**
 * Makes a fault that fails a call with `error` with the given probability, without
 * running it. Fails with `InvalidOptions` naming the field.
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * class Flaky extends Data.TaggedError("Flaky") {}
 *
 * const program = Effect.gen(function*() {
 *   const flaky = yield* Chaos.fail({ probability: 0.2, error: () => new Flaky(), seed: 42 })
 *   return yield* Effect.succeed("ok").pipe(flaky, Effect.either)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fail: <E>(options: FailOptions<E>) => Effect.Effect<Fault<E>, InvalidOptions> = internal.fail

/**
 * Makes a fault that delays calls before running them: by a fixed latency, or by one
 * drawn from a `[min, max]` range; every call by default, or with `probability`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const slow = yield* Chaos.delay({ latency: ["10 millis", "200 millis"], seed: 1 })
 *   return yield* Effect.succeed("ok").pipe(slow)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const delay: (options: DelayOptions) => Effect.Effect<Fault<never>, InvalidOptions> = internal.delay

/**
 * Makes a fault that is an outage: during the window (measured on the `Clock` from now),
 * every call fails with `error`, or, with `mode: "hang"`, waits for the window to end.
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Chaos } from "effect-resilience"
 *
 * class Down extends Data.TaggedError("Down") {}
 *
 * const program = Effect.gen(function*() {
 *   const outage = yield* Chaos.outage({ start: "1 minute", duration: "10 minutes", error: () => new Down() })
 *   return yield* Effect.succeed("ok").pipe(outage) // fails from minute 1 to minute 11
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const outage: {
  (options: OutageOptions.Hang): Effect.Effect<Fault<never>, InvalidOptions>
  <E>(options: OutageOptions.Fail<E>): Effect.Effect<Fault<E>, InvalidOptions>
} = internal.outage

/**
 * Wraps a cache service with faults; returns the faulty cache and its chaos handle.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCache: (
  cache: CacheService,
  options: CacheOptions
) => Effect.Effect<readonly [CacheService, CacheChaosService], InvalidOptions> = internal.makeCache

/**
 * A layer from `Cache` to `Cache` that injects faults into every operation of the cache
 * beneath it (`CacheError` with reason `"Unavailable"` or `"Timeout"`), and provides a
 * `CacheChaos` to inspect them. Outage windows are measured from when the layer is built.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cache, Chaos } from "effect-resilience"
 *
 * // a memory cache that is down from minute 2 to minute 12, and fails 1% of calls otherwise
 * const FlakyCache = Chaos.layerCache({
 *   failureRate: 0.01,
 *   latency: ["1 millis", "5 millis"],
 *   outages: [{ start: "2 minutes", duration: "10 minutes" }],
 *   seed: 7
 * }).pipe(Layer.provide(Cache.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerCache: (
  options: CacheOptions
) => Layer.Layer<Cache | internal.CacheChaos, InvalidOptions, Cache> = internal.layerCache

/**
 * Options of `layerSql`, checked in this order for each statement: outage windows, then
 * one draw deciding failure or timeout, then latency.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlOptions {
  /**
   * Fraction of statements that fail at once, as a refused connection does: an error
   * tagged `"SqlError"` whose `cause` has code `ECONNREFUSED` (a `ResilientSql` reads it
   * as reason `"Unavailable"`, outcome `"NotApplied"`). Default 0.
   */
  readonly failureRate?: number | undefined
  /**
   * Fraction of statements that wait `timeout` and then fail as cancelled: `cause` with
   * code `57014` (reason `"Timeout"`, outcome `"Unknown"`). Half of them ran before the
   * failure, as when only the reply is lost. Default 0.
   */
  readonly timeoutRate?: number | undefined
  /** How long a timed-out statement waits before failing (default 1 second). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Latency added to every statement that is not failed: fixed, or drawn from `[min, max]`. */
  readonly latency?: Duration.DurationInput | readonly [Duration.DurationInput, Duration.DurationInput] | undefined
  /**
   * Outage windows, measured on the `Clock` from when the layer is built: `"fail"` ones
   * refuse every statement (`ECONNREFUSED`), `"hang"` ones hold it until the window ends.
   */
  readonly outages?: ReadonlyArray<OutageWindow> | undefined
  /** Seeds the layer's generator; without it, the `Random` service in the context is used. */
  readonly seed?: number | string | undefined
}

/**
 * Wraps an `SqlClient` with faults; returns the faulty client and its chaos handle. Every
 * statement the client runs (its template, `unsafe`, and their `raw`, `values`, `stream`
 * variants) and every connection it reserves goes through the faults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSql: (
  client: SqlClient.SqlClient,
  options: SqlOptions
) => Effect.Effect<readonly [SqlClient.SqlClient, SqlChaosService], InvalidOptions> = internal.makeSql

/**
 * A layer from `SqlClient` to `SqlClient` (of `@effect/sql`) that injects faults into every
 * statement of the client beneath it, deterministic from `seed` and the `Clock` like
 * `layerCache`, and provides a `SqlChaos` to inspect them. Put it between the driver's
 * client and `Sql.layer` to rehearse a database outage on an embedded SQLite file.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Chaos } from "effect-resilience"
 * import * as Sql from "effect-resilience/Sql"
 * import * as Sqlite from "effect-resilience/Sql/Sqlite"
 *
 * // the database refuses every statement from second 2 to second 5, and 1% of them otherwise
 * const FlakyDatabase = Sql.layer({ name: "orders" }).pipe(
 *   Layer.provide(Chaos.layerSql({ failureRate: 0.01, outages: [{ start: "2 seconds", duration: "3 seconds" }] })),
 *   Layer.provide(Sqlite.layerClient({ filename: "orders.sqlite" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: (
  options: SqlOptions
) => Layer.Layer<SqlClient.SqlClient | internal.SqlChaos, InvalidOptions, SqlClient.SqlClient> = internal.layerSql
