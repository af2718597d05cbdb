/**
 * The background check of a resilient cache over a backend that answers a `ping` (Redis
 * `PING`). With a health registry in the context, the registry runs it (the cache registers
 * itself with it as its check). Without one, the cache runs it itself: every
 * `<NAME>_HEALTH_CHECK_INTERVAL` (else `HEALTH_CHECK_INTERVAL`, else 30 seconds) while its
 * breaker is open, a ping that answers moves the breaker to `HalfOpen`, unless
 * `ENABLE_AUTO_RECOVERY` is false.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as HealthConfig from "./health.js"
import { Health } from "./healthRegistry.js"

/**
 * The interval and whether a passing check recovers, as a registry in the same environment
 * would read them for a dependency of this name; the defaults when a variable is invalid
 * (a cache never fails to start for its check's sake).
 *
 * @internal
 */
export const checkSettings = (
  name: string
): Effect.Effect<{ readonly interval: Duration.Duration; readonly autoRecovery: boolean }> =>
  Effect.gen(function*() {
    const warnDefault = <A>(fallback: A) => (error: { readonly message: string }) =>
      Effect.as(Effect.logWarning(`${error.message}; the default applies`), fallback)
    const environment = yield* HealthConfig.environmentSettings.pipe(
      Effect.catchAll(warnDefault({ checkInterval: HealthConfig.defaultCheckInterval, autoRecovery: true }))
    )
    const own = yield* HealthConfig.intervalFromEnvironment(name).pipe(
      Effect.catchAll(warnDefault(Option.none<Duration.Duration>()))
    )
    return {
      interval: Option.getOrElse(own, () => environment.checkInterval),
      autoRecovery: environment.autoRecovery
    }
  })

/**
 * Runs `ping` on the cache's schedule when no registry is in the context (a registry runs
 * the cache's check itself). Ends with the scope.
 *
 * @internal
 */
export const pingWithoutRegistry = (
  name: string,
  ping: Effect.Effect<void, unknown>,
  breaker: CircuitBreaker.CircuitBreaker
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.contextWithEffect((context: Context.Context<never>) => {
    if (Option.isSome(Context.getOption(context, Health))) return Effect.void
    return Effect.flatMap(checkSettings(name), ({ autoRecovery, interval }) =>
      !autoRecovery || !Duration.isFinite(interval) || Duration.toMillis(interval) <= 0
        ? Effect.void
        : CircuitBreaker.withHealthCheck(breaker, {
          check: ping,
          interval,
          timeout: Duration.min(interval, HealthConfig.defaultCheckTimeout)
        }).pipe(Effect.orDie))
  })
