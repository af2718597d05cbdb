/**
 * The environment of a resilient backend (`ResilientCache`, `ResilientSql`): its breaker's
 * variables read under its name, with the rules of `CircuitBreaker.fromConfig` (a bare number
 * of a duration is seconds; the seeds' `<NAME>_CIRCUIT_BREAKER_THRESHOLD` and
 * `<NAME>_CIRCUIT_BREAKER_TIMEOUT`; the library's name wins, with a warning naming both).
 *
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import { isCircuitBreaker } from "../CircuitBreaker.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import * as BreakerConfig from "./circuitBreaker.js"

/** @internal */
export interface Resolved<O> {
  /** The options given in code, the name filled in, the environment's breaker options over the given ones. */
  readonly options: O
  /** Names the variable behind a refused option, when it came from the environment. */
  readonly nameVariable: (error: InvalidOptions) => InvalidOptions
}

/** @internal */
export const resolve = <O extends { readonly name?: string | undefined; readonly breaker?: unknown }>(
  defaults: O | undefined,
  defaultName: string
): Effect.Effect<Resolved<O>, InvalidOptions | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const name = defaults?.name ?? defaultName
    // A name that is no name is refused by the constructor, naming the option.
    if (typeof name !== "string" || name.trim() === "") {
      return { options: { ...defaults, name } as O, nameVariable: (error) => error }
    }
    const environment = yield* BreakerConfig.environmentOptions(name)
    const given = defaults?.breaker
    const prefix = BreakerConfig.constantCase(name)
    if (isCircuitBreaker(given)) {
      if (Object.keys(environment.options).length > 0) {
        yield* Effect.logWarning(
          `${prefix}_* breaker variables are set, but a breaker made elsewhere was given: they are ignored`
        )
      }
      return { options: { ...defaults, name } as O, nameVariable: (error) => error }
    }
    const breaker = typeof given === "object" && given !== null && !Array.isArray(given)
      ? { ...given, ...environment.options }
      : given === undefined
      ? environment.options
      : given
    return {
      options: { ...defaults, name, breaker } as O,
      nameVariable: (error) => BreakerConfig.nameVariable(name, environment, error)
    }
  })
