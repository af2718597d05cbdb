/**
 * The embedded default database: a SQLite file through `@effect/sql-sqlite-node`
 * (`better-sqlite3`, a peer dependency of this subpath only), as a `ResilientSql` layer.
 *
 * The file is opened in WAL mode with `synchronous = FULL` and a short `busy_timeout`
 * (the driver is synchronous: a locked file blocks the event loop for that long, so the
 * breaker, not the driver, does the waiting). The health check takes the write lock
 * (`BEGIN IMMEDIATE`, then `ROLLBACK`), since a read would pass while another connection
 * holds the file locked. A file whose directory does not exist can never be opened: the
 * layer fails with `InvalidOptions` naming `filename`. When the file exists but cannot be
 * opened now (locked, unreadable), the service starts read-only and opens it in the
 * background.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as internal from "../internal/sqlSqlite.js"
import type { ResilientSql } from "../internal/sql.js"
import type { DatabaseError } from "../internal/sqlErrors.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as Sql from "../Sql.js"

/**
 * Options of the SQLite client. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** The database file (default `"database.sqlite"`, in the working directory). */
  readonly filename?: string | undefined
  /** How long a statement waits for a locked file before `SQLITE_BUSY` (default 100 millis). */
  readonly busyTimeout?: Duration.DurationInput | undefined
  /** `PRAGMA synchronous` (default `"FULL"`: a commit is on disk when it returns). */
  readonly synchronous?: "OFF" | "NORMAL" | "FULL" | "EXTRA" | undefined
  /** Other options of `SqliteClient` (name transforms, prepare cache, ...). */
  readonly client?: Omit<SqliteClient.SqliteClientConfig, "filename"> | undefined
}

/**
 * Options of `layer`: the client's and the resilient database's (`name` defaults to
 * `"sqlite"`; the health check to the write-lock check).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends ClientOptions, Sql.Options {}

/**
 * The default database file: `"database.sqlite"`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultFilename: string = internal.defaultFilename

/**
 * The SQLite client alone (`SqliteClient` and `SqlClient`), with this module's pragmas.
 * Fails with `InvalidOptions` naming `filename` when its directory does not exist, and
 * with `DatabaseError` (reason `Unavailable`) when the file cannot be opened.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 * import * as Sqlite from "effect-resilience/Sql/Sqlite"
 *
 * const program = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`).pipe(
 *   Effect.provide(Sqlite.layerClient({ filename: "app.sqlite" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: (
  options?: ClientOptions
) => Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, InvalidOptions | DatabaseError> =
  internal.layerClient

/**
 * The embedded database as a `ResilientSql`: opened at once when it can be, else
 * read-only until it can. Fails with `InvalidOptions` naming the field, `filename`
 * included when its directory does not exist.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 * import * as Sqlite from "effect-resilience/Sql/Sqlite"
 *
 * const program = Sql.query((sql) => sql`SELECT 1 AS one`).pipe(
 *   Effect.provide(Sqlite.layer({ filename: "orders.sqlite", name: "orders" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<ResilientSql, InvalidOptions> = internal.layer

/**
 * The SQLite health check: takes the write lock (`BEGIN IMMEDIATE`) and gives it back.
 *
 * @since 0.1.0
 * @category health
 */
export const writeLockCheck: (client: SqlClient.SqlClient) => Effect.Effect<void, unknown> = internal.writeLockCheck
