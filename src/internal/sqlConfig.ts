/**
 * `Sql.layerConfig` and `Sql.configOptions`: the resilient database's breaker read from the
 * environment under its name (default `database`: `DATABASE_FAILURE_THRESHOLD`,
 * `DATABASE_CIRCUIT_BREAKER_THRESHOLD`, `DATABASE_RESET_TIMEOUT`,
 * `DATABASE_CIRCUIT_BREAKER_TIMEOUT`, ...) and its check's interval
 * (`DATABASE_HEALTH_CHECK_INTERVAL`, seconds when a bare number).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as Sql from "../Sql.js"
import * as HealthConfig from "./health.js"
import * as Resilient from "./resilientConfig.js"
import * as internal from "./sql.js"

/** @internal */
export const defaultName = "database"

/**
 * The options in code with the environment's over them, and a function that names the
 * variable behind a refused option.
 *
 * @internal
 */
export const resolve = (defaults: Sql.Options | undefined) =>
  Effect.gen(function*() {
    const resolved = yield* Resilient.resolve(defaults, defaultName)
    const options = resolved.options
    const name = options.name
    if (typeof name !== "string" || options.healthCheck === false) return resolved
    const interval = yield* HealthConfig.intervalFromEnvironment(name).pipe(
      Effect.mapError((error) =>
        new InvalidOptions({
          module: "Sql",
          field: `healthCheck.interval (${error.field})`,
          expected: error.expected,
          received: error.received
        })
      )
    )
    if (Option.isNone(interval)) return resolved
    const variable = HealthConfig.intervalVariable(name)
    return {
      options: { ...options, healthCheck: { ...options.healthCheck, interval: interval.value } },
      nameVariable: (error: InvalidOptions) =>
        error.field === "healthCheck.interval"
          ? new InvalidOptions({ ...error, field: `healthCheck.interval (${variable})` })
          : resolved.nameVariable(error)
    }
  })

/** @internal */
export const configOptions = (
  defaults?: Sql.Options
): Effect.Effect<Sql.Options, InvalidOptions | ConfigError.ConfigError> =>
  Effect.map(resolve(defaults), (resolved) => resolved.options)

/** @internal */
export const layerConfig = (
  defaults?: Sql.Options
): Layer.Layer<internal.ResilientSql, InvalidOptions | ConfigError.ConfigError, SqlClient.SqlClient> =>
  Layer.unwrapEffect(
    Effect.map(resolve(defaults), ({ nameVariable, options }) => Layer.mapError(internal.layer(options), nameVariable))
  )
