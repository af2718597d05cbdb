/**
 * PostgreSQL through `@effect/sql-pg` (`pg`, a peer dependency of this subpath only), as a
 * `ResilientSql` layer.
 *
 * The layer starts even when the server is down: it connects at once when it can, else
 * the service is read-only (reads from the cache, writes to the outbox) while it connects
 * in the background. Once connected, the `pg` pool reconnects by itself after an outage;
 * the breaker and its `SELECT 1` health check decide when calls go through again.
 *
 * Settings that can never work fail the layer at once with `InvalidOptions` naming the
 * option: a `url` that does not parse, whose scheme is not `postgres:` or `postgresql:`,
 * with no host or a port out of 1..65535, or a `port` out of range. A password never
 * appears in an error, a log line, a metric tag or a span attribute: the URL is a
 * `Redacted` (read it with `Config.redacted`), and a URL is only ever shown without its
 * userinfo and query.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Layer from "effect/Layer"
import type { ResilientSql } from "../internal/sql.js"
import * as internal from "../internal/sqlPg.js"
import type { DatabaseError } from "../internal/sqlErrors.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as Sql from "../Sql.js"

/**
 * The `PgClient` alone (`PgClient` and `SqlClient`), with a connect timeout of 5 seconds
 * unless one is given. Fails with `InvalidOptions` for settings that can never work, and
 * with `DatabaseError` when the server does not answer.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as Pg from "effect-resilience/Sql/Pg"
 *
 * const Client = Pg.layerClient({ url: Redacted.make("postgres://app@localhost:5432/app") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: (
  config: PgClient.PgClientConfig
) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, InvalidOptions | DatabaseError> = internal.layerClient

/**
 * PostgreSQL as a `ResilientSql` (named `"postgres"` unless `options.name` says
 * otherwise): connected at once when the server answers, else read-only until it does.
 * Fails only with `InvalidOptions`, for settings that can never work (see the module).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import * as Sql from "effect-resilience/Sql"
 * import * as Pg from "effect-resilience/Sql/Pg"
 *
 * const Database = Pg.layer(
 *   { url: Redacted.make("postgres://app@localhost:5432/app"), maxConnections: 10 },
 *   { timeout: "5 seconds", healthCheck: { interval: "2 seconds" } }
 * )
 *
 * const program = Sql.query((sql) => sql`SELECT 1 AS one`).pipe(Effect.provide(Database))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (
  config: PgClient.PgClientConfig,
  options?: Sql.Options
) => Layer.Layer<ResilientSql, InvalidOptions> = internal.layer

/**
 * `layer` with the client's settings read through Effect `Config`; by default the URL
 * from `DATABASE_URL`, read with `Config.redacted`. The resilient database's options are
 * read as `Sql.layerConfig` reads them, under its name (default `database`): its breaker
 * (`DATABASE_FAILURE_THRESHOLD` or the seeds' `DATABASE_CIRCUIT_BREAKER_THRESHOLD`,
 * `DATABASE_RESET_TIMEOUT` or `DATABASE_CIRCUIT_BREAKER_TIMEOUT` in seconds, ...) and its
 * check's interval (`DATABASE_HEALTH_CHECK_INTERVAL`), over the options given here.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import * as Pg from "effect-resilience/Sql/Pg"
 *
 * const Database = Pg.layerConfig() // DATABASE_URL
 * const Replica = Pg.layerConfig({ url: Config.redacted("REPLICA_URL") }, { name: "replica" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  config?: Config.Config.Wrap<PgClient.PgClientConfig>,
  options?: Sql.Options
) => Layer.Layer<ResilientSql, InvalidOptions | ConfigError.ConfigError> = internal.layerConfig
