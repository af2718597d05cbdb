/**
 * Resilient database access over any `@effect/sql` `SqlClient`: a circuit breaker, a
 * timeout and retries by error class around each query, a health check that lets the
 * breaker recover as soon as the database answers, and a read-only (degraded) mode in
 * which reads are served from the cache, marked stale, while writes go to the `Outbox`.
 *
 * The client comes from a Layer, so the same code runs on an embedded SQLite file
 * (`effect-resilience/Sql/Sqlite`) or on PostgreSQL (`effect-resilience/Sql/Pg`).
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Cache } from "./Cache.js"
import type * as CacheAside from "./CacheAside.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import * as internal from "./internal/sql.js"
import * as internalConfig from "./internal/sqlConfig.js"
import * as internalErrors from "./internal/sqlErrors.js"
import type { DatabaseError } from "./internal/sqlErrors.js"
import type { InvalidOptions } from "./InvalidOptions.js"
import type * as Retry from "./Retry.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

export {
  /**
   * The failure of a call through `ResilientSql`: `database` (its name), `reason`, its
   * retry class `errorClass`, `outcome` (`"NotApplied"` when a write surely did not
   * happen, `"Unknown"` when it may have: a timeout, a connection lost mid-statement),
   * `code` (the SQLSTATE or SQLite code when there is one), `retryAfter` (for
   * `CircuitOpen`) and the original error as `cause`.
   *
   * @since 0.1.0
   * @category errors
   */
  DatabaseError
} from "./internal/sqlErrors.js"

/**
 * Why a database call failed:
 *
 * - `Unavailable`: the database cannot be reached (refused, terminated, shutting down,
 *   starting up, file that cannot be opened, not connected yet). Transient.
 * - `Busy`: a serialization failure (40001), deadlock (40P01), lock not available, or a
 *   locked SQLite file (`SQLITE_BUSY`). Transient: retried.
 * - `Timeout`: no answer within the timeout. Transient.
 * - `CircuitOpen`: the breaker is open: not tried. Transient, but never retried in place.
 * - `Constraint`: an integrity constraint (23xxx, `SQLITE_CONSTRAINT`) or a value the
 *   column refuses (22xxx). Fatal.
 * - `Syntax`: a syntax error (42601), an undefined table or column (42xxx), bad
 *   credentials, no such database. Fatal.
 * - `Resources`: too many connections, disk full (53xxx, `SQLITE_FULL`). Degraded.
 * - `ReadOnly`: a standby or a read-only file. Persistent.
 * - `Unknown`: anything else, classified by `Retry.classify`.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason = internalErrors.Reason

/**
 * Whether a failed write surely did not happen (`NotApplied`) or may have (`Unknown`).
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = internalErrors.Outcome

/**
 * `ReadWrite` while the database is reachable; `ReadOnly` while its breaker is open (or
 * forced open) or its client has not connected yet: reads come from the cache and writes
 * go to the outbox.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "ReadWrite" | "ReadOnly"

/**
 * The resilient face of a database.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResilientSqlService {
  readonly [TypeId]: TypeId
  /** Names the database in errors, logs, metrics and its breaker. */
  readonly name: string
  /** The breaker every call goes through. */
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** The client, or a `DatabaseError` (`Unavailable`) while it has not connected. */
  readonly client: Effect.Effect<SqlClient.SqlClient, DatabaseError>
  /** Whether the client has connected. */
  readonly connected: Effect.Effect<boolean>
  /** Read-write, or read-only while the breaker is open or the client not connected. */
  readonly mode: Effect.Effect<Mode>
  /**
   * Runs `self` (which may use `SqlClient` from the context) through the breaker, the
   * timeout and the retries: the effect to put in a pipe. A call of this database made
   * inside `self` (on its fiber or one it forks) is part of it: one breaker call in all.
   * An error of `self`'s own (not of the database or its driver) reaches the caller
   * unchanged, unretried, and counts as a success for the breaker: the database answered.
   */
  readonly resilient: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
  /** `resilient` with one attempt: the breaker and the timeout, no retry. */
  readonly protect: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
  /** `resilient` over a function of the client. */
  readonly query: <A, E, R>(
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
  /** `resilient` around one transaction: a retry runs the whole transaction again. */
  readonly transaction: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
  /**
   * The health check (`SELECT 1` by default) with its own timeout, outside the breaker:
   * what `CircuitBreaker.withHealthCheck` runs while the breaker is open.
   */
  readonly healthCheck: Effect.Effect<void, DatabaseError>
}

/**
 * Options of a resilient database. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the database and its breaker (default `"database"`). */
  readonly name?: string | undefined
  /**
   * The breaker, or the options of the one to make. Defaults, as for a critical
   * database: 3 consecutive failures open it, 2 half-open successes close it, 120 seconds
   * open (the health check ends that sooner); constraint and syntax errors do not count.
   */
  readonly breaker?: CircuitBreaker.CircuitBreaker | Omit<CircuitBreaker.CircuitBreaker.Options, "name"> | undefined
  /** The limit of each attempt (default 30 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The retry schedule of each error class, or `false` for none. Defaults: Transient
   * (unreachable, busy, timeout) 3 retries from 20 millis (full jitter, at most 1 second);
   * Degraded 2 retries from 200 millis; Persistent none. Fatal errors, a caller's own
   * errors and `CircuitOpen` are never retried.
   */
  readonly retry?: { readonly [K in Retry.RetriedClass]?: Schedule.Schedule<unknown, unknown> } | false | undefined
  /**
   * The health check run while the breaker is open, or `false` for none: every
   * `interval` (default 5 seconds), bounded by `timeout` (default 5 seconds), it runs
   * `query` (default `SELECT 1`) and moves the breaker to half-open when it succeeds.
   */
  readonly healthCheck?:
    | {
      readonly interval?: Duration.DurationInput | undefined
      readonly timeout?: Duration.DurationInput | undefined
      readonly query?: ((sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) | undefined
    }
    | false
    | undefined
  /**
   * For a client built in the background (`layerConnecting`): the delays between
   * connection attempts (default exponential from 100 millis to 5 seconds, forever).
   */
  readonly connectSchedule?: Schedule.Schedule<unknown, unknown> | undefined
}

/**
 * Reads through the cache: fresh cached values are served, misses and stale values are
 * loaded through the resilient database, and while the database is down (or its breaker
 * open) a stale copy within `staleIfError` answers, marked `stale: true`. An error of the
 * loader's own (a `NotFound`) is an answer, not an outage: it reaches the caller as it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reader<A, RS = never> {
  readonly get: <E, R>(
    key: string,
    query: Effect.Effect<A, E, R>
  ) => Effect.Effect<
    CacheAside.Result<A>,
    Exclude<E, SqlError> | DatabaseError,
    Exclude<R, SqlClient.SqlClient> | RS | Cache
  >
}

export {
  /**
   * The resilient database service, provided by `layer`, `layerConnecting` or the layers of
   * `effect-resilience/Sql/Sqlite` and `effect-resilience/Sql/Pg`.
   *
   * @example
   * ```ts
   * import { SqlClient } from "@effect/sql"
   * import { Effect } from "effect"
   * import { ResilientSql } from "effect-resilience/Sql"
   *
   * const countOrders = Effect.gen(function*() {
   *   const db = yield* ResilientSql
   *   const sql = yield* db.client
   *   return yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders`.pipe(db.resilient)
   * })
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  ResilientSql
} from "./internal/sql.js"

/**
 * Makes a resilient database over the `SqlClient` in the context. Fails with
 * `InvalidOptions` naming the field (`options` when they are not an object, `null`
 * included). The scope holds its health check.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Sql.make({ name: "orders", timeout: "5 seconds" })
 *   return yield* db.query((sql) => sql`SELECT 1 AS one`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<ResilientSqlService, InvalidOptions, SqlClient.SqlClient | Scope.Scope> = internal.make

/**
 * `make` as a Layer over the `SqlClient` in the context.
 *
 * @example
 * ```ts
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import { Layer } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const Database = Sql.layer({ name: "orders" }).pipe(
 *   Layer.provide(SqliteClient.layer({ filename: "orders.sqlite" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (
  options?: Options
) => Layer.Layer<internal.ResilientSql, InvalidOptions, SqlClient.SqlClient> = internal.layer

/**
 * The options `layerConfig` runs with: `defaults` (name `"database"` unless given), with the
 * breaker's variables under the name in CONSTANT_CASE over `defaults.breaker`, read as
 * `CircuitBreaker.fromConfig` reads them (`DATABASE_FAILURE_THRESHOLD` or the seeds'
 * `DATABASE_CIRCUIT_BREAKER_THRESHOLD`, `DATABASE_RESET_TIMEOUT` or the seeds'
 * `DATABASE_CIRCUIT_BREAKER_TIMEOUT`, seconds when a bare number, ...), and the health
 * check's interval from `DATABASE_HEALTH_CHECK_INTERVAL` (seconds when a bare number). The
 * library's name wins over the seed's, with a warning naming both when they differ.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * // ORDERS_CIRCUIT_BREAKER_THRESHOLD=3 ORDERS_CIRCUIT_BREAKER_TIMEOUT=120
 * const shown = Effect.tap(Sql.configOptions({ name: "orders" }), (options) => Effect.log(options.breaker))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const configOptions: (
  defaults?: Options
) => Effect.Effect<Options, InvalidOptions | ConfigError.ConfigError> = internalConfig.configOptions

/**
 * `layer` with its breaker and health check interval read from the environment (see
 * `configOptions`). Fails with `InvalidOptions` naming the option and its variable
 * (`"resetTimeout (DATABASE_CIRCUIT_BREAKER_TIMEOUT)"`).
 *
 * @example
 * ```ts
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import { Layer } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * // DATABASE_CIRCUIT_BREAKER_THRESHOLD=3 DATABASE_CIRCUIT_BREAKER_TIMEOUT=120
 * const Database = Sql.layerConfig().pipe(Layer.provide(SqliteClient.layer({ filename: "orders.sqlite" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: Options
) => Layer.Layer<internal.ResilientSql, InvalidOptions | ConfigError.ConfigError, SqlClient.SqlClient> =
  internalConfig.layerConfig

/**
 * Makes a resilient database whose client is built from `client`, a Layer: at once when
 * the database answers, else in the background (with `connectSchedule`), while the service
 * starts read-only. Calls made before the client connects fail with reason `Unavailable`.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Redacted } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Sql.makeConnecting(PgClient.layer({ url: Redacted.make("postgres://localhost/app") }))
 *   return yield* db.mode
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeConnecting: <E, R>(
  client: Layer.Layer<SqlClient.SqlClient, E, R>,
  options?: Options
) => Effect.Effect<ResilientSqlService, InvalidOptions, R | Scope.Scope> = internal.makeConnecting

/**
 * `makeConnecting` as a Layer: the service is there even when the database is not.
 *
 * @example
 * ```ts
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const Database = Sql.layerConnecting(SqliteClient.layer({ filename: "orders.sqlite" }), { name: "orders" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConnecting: <E, R>(
  client: Layer.Layer<SqlClient.SqlClient, E, R>,
  options?: Options
) => Layer.Layer<internal.ResilientSql, InvalidOptions, R> = internal.layerConnecting

/**
 * Runs an effect through the `ResilientSql` in the context (breaker, timeout, retries),
 * providing it the client: `sql\`...\`.pipe(Sql.resilient)` or
 * `Effect.flatMap(SqlClient.SqlClient, f).pipe(Sql.resilient)`.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const insert = (id: string) =>
 *   Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO orders (id) VALUES (${id})`).pipe(Sql.resilient)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const resilient: <A, E, R>(
  self: Effect.Effect<A, E, R>
) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient> | internal.ResilientSql> =
  internal.resilient

/**
 * A query as a function of the client, through the `ResilientSql` in the context.
 *
 * @example
 * ```ts
 * import * as Sql from "effect-resilience/Sql"
 *
 * const rows = Sql.query((sql) => sql`SELECT id FROM orders ORDER BY id`)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const query: <A, E, R>(
  f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E, R>
) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient> | internal.ResilientSql> =
  internal.query

/**
 * Runs an effect through a given resilient database: data-first or in a pipe.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Sql.ResilientSql
 *   const sql = yield* db.client
 *   return yield* sql`SELECT 1`.pipe(Sql.withResilience(db))
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withResilience: {
  (
    db: ResilientSqlService
  ): <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    db: ResilientSqlService
  ): Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
} = internal.withResilience

/**
 * A read-through cache over the database (see `Reader`): `ttl` is how long a value is
 * served without a query, `staleIfError` how long past it a cached copy may still answer
 * while the database is down (default 1 hour). Needs a `Cache` when reading.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cache } from "effect-resilience"
 * import * as Sql from "effect-resilience/Sql"
 *
 * const Order = Schema.Struct({ id: Schema.String, cents: Schema.Number })
 *
 * const program = Effect.gen(function*() {
 *   const orders = yield* Sql.reader({ ttl: "10 seconds", staleIfError: "1 hour", schema: Order })
 *   const result = yield* orders.get(
 *     "order:1",
 *     Sql.query((sql) => sql<typeof Order.Type>`SELECT id, cents FROM orders WHERE id = '1'`).pipe(
 *       Effect.map((rows) => rows[0]!)
 *     )
 *   )
 *   return result.stale ? `${result.value.id} (stale)` : result.value.id
 * }).pipe(Effect.provide(Cache.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const reader: {
  <A, I, RS>(
    options: CacheAside.Options<A, I, RS> & { readonly schema: Schema.Schema<A, I, RS> }
  ): Effect.Effect<Reader<A, RS>, InvalidOptions, internal.ResilientSql>
  (
    options: CacheAside.Options<string, string, never>
  ): Effect.Effect<Reader<string>, InvalidOptions, internal.ResilientSql>
} = internal.reader

/**
 * The retry class of an error met on the way to a database (an `SqlError` of PostgreSQL
 * or SQLite, a timeout, an open breaker, a `DatabaseError`): connection refused or
 * terminated, serialization failures, deadlocks and a locked file are `Transient`;
 * constraint violations and syntax errors `Fatal`; anything else as `Retry.classify`.
 *
 * @example
 * ```ts
 * import * as Sql from "effect-resilience/Sql"
 *
 * Sql.classify({ _tag: "SqlError", cause: { code: "40001" } }) // "Transient"
 * Sql.classify({ _tag: "SqlError", cause: { code: "23505" } }) // "Fatal"
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classify: (error: unknown) => Retry.ErrorClass = internalErrors.classify

/**
 * Maps any error met on the way to a database into a `DatabaseError` of `database`.
 *
 * @since 0.1.0
 * @category classification
 */
export const toDatabaseError: (database: string, error: unknown) => DatabaseError = internalErrors.toDatabaseError

/**
 * Whether an error counts against the database's breaker: unreachable, busy, timed out,
 * out of resources, read-only, unknown. Constraint and syntax errors, and open-breaker
 * rejections (`CircuitOpen`), do not; nor, in a `ResilientSql`, does a caller's own error.
 *
 * @since 0.1.0
 * @category classification
 */
export const isHealthFailure: (error: unknown) => boolean = internalErrors.isHealthFailure

/**
 * The gauge that reads 1 while a database is read-only, tagged `database`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const readOnlyMetric: Metric.Metric.Gauge<number> = internal.readOnlyGauge

/**
 * The gauge that reads 1 once a database's client has connected, tagged `database`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectedMetric: Metric.Metric.Gauge<number> = internal.connectedGauge
