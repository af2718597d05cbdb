/**
 * `ResilientCache.layerConfig`: the resilient cache's breaker read from the environment
 * under its name (default `redis`: `REDIS_FAILURE_THRESHOLD`, `REDIS_CIRCUIT_BREAKER_THRESHOLD`,
 * `REDIS_RESET_TIMEOUT`, `REDIS_CIRCUIT_BREAKER_TIMEOUT`, ...). Its check's interval
 * (`REDIS_HEALTH_CHECK_INTERVAL`) is read where the check runs.
 *
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Cache } from "../Cache.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as RC from "../ResilientCache.js"
import * as internal from "./resilientCache.js"
import * as Resilient from "./resilientConfig.js"

/** @internal */
export const defaultName = "redis"

/** @internal */
export const configOptions = (
  defaults?: RC.Options
): Effect.Effect<RC.Options, InvalidOptions | ConfigError.ConfigError> =>
  Effect.map(Resilient.resolve(defaults, defaultName), (resolved) => resolved.options)

/** @internal */
export const layerConfig = (
  defaults?: RC.Options
): Layer.Layer<internal.ResilientCache | Cache, InvalidOptions | ConfigError.ConfigError, Cache> =>
  Layer.unwrapEffect(
    Effect.map(
      Resilient.resolve(defaults, defaultName),
      ({ nameVariable, options }) => Layer.mapError(internal.layer(options), nameVariable)
    )
  )
