import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as Sql from "../Sql.js"
import * as sql from "./sql.js"
import { type DatabaseError, toDatabaseError } from "./sqlErrors.js"

/** @internal */
export const defaultConnectTimeout: Duration.Duration = Duration.seconds(5)

// A connection attempt to a server that does not answer must end, or the pool waits forever.
const withDefaults = (config: PgClient.PgClientConfig): PgClient.PgClientConfig => ({
  ...config,
  connectTimeout: config.connectTimeout ?? defaultConnectTimeout,
  applicationName: config.applicationName ?? "effect-resilience"
})

/** @internal */
export const layerClient = (
  config: PgClient.PgClientConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseError> =>
  Layer.mapError(PgClient.layer(withDefaults(config)), (error) => toDatabaseError("postgres", error))

/** @internal */
export const layer = (
  config: PgClient.PgClientConfig,
  options?: Sql.Options
): Layer.Layer<sql.ResilientSql, InvalidOptions> =>
  sql.layerConnecting(layerClient(config), { ...options, name: options?.name ?? "postgres" })

/** @internal */
export const layerConfig = (
  config: Config.Config.Wrap<PgClient.PgClientConfig>,
  options?: Sql.Options
): Layer.Layer<sql.ResilientSql, InvalidOptions | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), (resolved) => layer(resolved, options)))
