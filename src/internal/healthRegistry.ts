/**
 * The part of the health registry that other modules' constructors call: the service tag,
 * the sources of health, and `registerIfPresent`, which registers a dependency when a
 * registry and a scope are in the context and costs one context lookup otherwise. It
 * imports no module of this library at run time, so any constructor can call it.
 *
 * @internal
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as HealthModule from "../Health.js"
import type { DependencyState } from "./healthRules.js"

/** @internal */
export const SourceTypeId: unique symbol = Symbol.for("effect-resilience/Health/Source")

/** @internal */
export const InternalsId: unique symbol = Symbol.for("effect-resilience/Health/Internals")

/** @internal */
export type SourceKind = "Breaker" | "Cache" | "Database" | "Outbox" | "Failover" | "Check"

/**
 * What one evaluation of a source found. `failureRate` undefined: the registry uses the
 * share of failed checks.
 *
 * @internal
 */
export interface Evaluation {
  readonly state: DependencyState
  /** Whether a fallback answers for it: true when `Degraded`, and for a database in read-only mode. */
  readonly fallbackActive: boolean
  readonly failureRate: number | undefined
  readonly lastFailure: CircuitBreaker.RecordedFailure | undefined
}

/** @internal */
export interface CheckResult {
  readonly passed: boolean
  /** The state a passing check reported, for a user's own check. */
  readonly state: DependencyState | undefined
}

/**
 * A source of health: how to read a dependency's state, the breakers it holds (moved to
 * HalfOpen by recovery, found by `Health.breaker`), and its check, if any.
 *
 * @internal
 */
export interface Source {
  readonly [SourceTypeId]: typeof SourceTypeId
  readonly kind: SourceKind
  readonly breakers: ReadonlyArray<CircuitBreaker.CircuitBreaker>
  readonly check: Effect.Effect<unknown, unknown> | undefined
  readonly evaluate: (lastCheck: CheckResult | undefined) => Effect.Effect<Evaluation>
  /** A failover group's last failover time: from a provider going down to the next one answering. */
  readonly failoverTime: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}

/** @internal */
export const isSource = (u: unknown): u is Source =>
  typeof u === "object" && u !== null && SourceTypeId in u

/**
 * What the registry offers the constructors of other modules.
 *
 * @internal
 */
export interface Internals {
  /** Registers a dependency made in `scope`, removed when it closes; never fails. */
  readonly autoRegister: (name: string, source: Source, scope: Scope.Scope) => Effect.Effect<void>
  /** Whether the system is read-only now (Emergency). */
  readonly readOnly: Effect.Effect<boolean>
}

/** @internal */
export interface HealthWithInternals extends HealthModule.HealthService {
  readonly [InternalsId]: Internals
}

/** @internal */
export class Health extends Context.Tag("effect-resilience/Health")<Health, HealthModule.HealthService>() {}

const internalsOf = (service: HealthModule.HealthService): Internals | undefined =>
  (service as Partial<HealthWithInternals>)[InternalsId]

/**
 * Registers a dependency with the registry in the context, removed when the scope in the
 * context closes. Without a registry, or without a scope (a breaker made outside any scope
 * would stay registered forever), it does nothing.
 *
 * @internal
 */
export const registerIfPresent = (name: string, source: Source): Effect.Effect<void> =>
  Effect.contextWithEffect((context: Context.Context<never>) => {
    const health = Context.getOption(context, Health)
    if (health._tag === "None") return Effect.void
    const scope = Context.getOption(context, Scope.Scope)
    const internals = internalsOf(health.value)
    if (scope._tag === "None" || internals === undefined) return Effect.void
    return internals.autoRegister(name, source, scope.value)
  })

const never: Effect.Effect<boolean> = Effect.succeed(false)

/**
 * Whether the registry in the context (captured now) has made the system read-only; always
 * `false` without a registry.
 *
 * @internal
 */
export const readOnlyIfPresent: Effect.Effect<Effect.Effect<boolean>> = Effect.contextWith(
  (context: Context.Context<never>) => {
    const health = Context.getOption(context, Health)
    if (health._tag === "None") return never
    return internalsOf(health.value)?.readOnly ?? never
  }
)

// -----------------------------------------------------------------------------
// sources
// -----------------------------------------------------------------------------

const make = (
  kind: SourceKind,
  breakers: ReadonlyArray<CircuitBreaker.CircuitBreaker>,
  check: Effect.Effect<unknown, unknown> | undefined,
  evaluate: Source["evaluate"],
  failoverTime?: Source["failoverTime"]
): Source => ({ [SourceTypeId]: SourceTypeId, kind, breakers, check, evaluate, failoverTime })

const lastOf = (failures: ReadonlyArray<CircuitBreaker.RecordedFailure>): CircuitBreaker.RecordedFailure | undefined =>
  failures.length === 0 ? undefined : failures[failures.length - 1]

/** @internal */
export const breakerState = (state: CircuitBreaker.State): DependencyState =>
  state === "Open" || state === "ForcedOpen" ? "Down" : state === "HalfOpen" ? "Degraded" : "Operational"

/** @internal */
export const breakerSource = (
  breaker: CircuitBreaker.CircuitBreaker,
  check?: Effect.Effect<unknown, unknown>
): Source =>
  make("Breaker", [breaker], check, () =>
    Effect.map(breaker.metrics, (metrics) => ({
      state: breakerState(metrics.state),
      fallbackActive: metrics.state === "HalfOpen",
      failureRate: metrics.failureRate,
      lastFailure: lastOf(metrics.recentFailures)
    })))

/** @internal */
export interface CacheLike {
  readonly breaker: CircuitBreaker.CircuitBreaker
}

/**
 * A resilient cache never fails its callers: while its breaker is not closed its fallback answers.
 *
 * @internal
 */
export const cacheSource = (cache: CacheLike, check?: Effect.Effect<unknown, unknown>): Source =>
  make("Cache", [cache.breaker], check, () =>
    Effect.map(cache.breaker.metrics, (metrics) => ({
      state: metrics.state === "Closed" || metrics.state === "ForcedClosed" ? "Operational" : "Degraded",
      fallbackActive: metrics.state !== "Closed" && metrics.state !== "ForcedClosed",
      failureRate: metrics.failureRate,
      lastFailure: lastOf(metrics.recentFailures)
    })))

/** @internal */
export interface DatabaseLike {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly connected: Effect.Effect<boolean>
  readonly healthCheck: Effect.Effect<void, unknown>
}

/** @internal */
export const databaseSource = (database: DatabaseLike, check?: Effect.Effect<unknown, unknown>): Source =>
  make("Database", [database.breaker], check ?? database.healthCheck, () =>
    Effect.zipWith(database.breaker.metrics, database.connected, (metrics, connected) => ({
      state: connected ? breakerState(metrics.state) : "Down",
      // Read-only mode (an open breaker, no client) and a half-open breaker: the cache
      // answers reads that the database does not, the outbox takes writes.
      fallbackActive: !connected || metrics.state === "Open" || metrics.state === "ForcedOpen" ||
        metrics.state === "HalfOpen",
      failureRate: metrics.failureRate,
      lastFailure: lastOf(metrics.recentFailures)
    })))

/** @internal */
export interface OutboxLike {
  readonly capacity: number
  readonly depth: Effect.Effect<number>
}

/** @internal */
export const outboxSource = (outbox: OutboxLike): Source =>
  make("Outbox", [], undefined, () =>
    Effect.map(outbox.depth, (depth) => ({
      state: depth >= outbox.capacity ? "Down" : depth > 0 ? "Degraded" : "Operational",
      fallbackActive: depth > 0 && depth < outbox.capacity,
      failureRate: 0,
      lastFailure: undefined
    })))

/** @internal */
export interface FailoverLike {
  readonly providers: ReadonlyArray<{ readonly name: string; readonly breaker: CircuitBreaker.CircuitBreaker }>
  readonly failoverTime?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
}

/** @internal */
export const failoverSource = (group: FailoverLike, check?: Effect.Effect<unknown, unknown>): Source =>
  make(
    "Failover",
    group.providers.map((provider) => provider.breaker),
    check,
    () =>
      Effect.map(
        Effect.forEach(group.providers, (provider) => provider.breaker.metrics),
        (all) => {
          const states = all.map((metrics) => breakerState(metrics.state))
          let lastFailure: CircuitBreaker.RecordedFailure | undefined
          for (const metrics of all) {
            const last = lastOf(metrics.recentFailures)
            if (last !== undefined && (lastFailure === undefined || last.at >= lastFailure.at)) lastFailure = last
          }
          // Down when no provider answers; Degraded while another provider answers for the primary.
          const state: DependencyState = states.every((state) => state === "Down")
            ? "Down"
            : states[0] === "Operational"
            ? "Operational"
            : "Degraded"
          const failureRate = all[0]?.failureRate ?? 0
          return { state, fallbackActive: state === "Degraded", failureRate, lastFailure }
        }
      ),
    group.failoverTime
  )

/** @internal */
export const checkSource = (check: Effect.Effect<unknown, unknown>): Source =>
  make("Check", [], check, (last) => {
    const state: DependencyState = last === undefined
      ? "Operational"
      : last.passed
      ? last.state ?? "Operational"
      : "Down"
    const fallbackActive = state === "Degraded"
    return Effect.succeed({ state, fallbackActive, failureRate: undefined, lastFailure: undefined })
  })
