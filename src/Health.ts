/**
 * A registry of the dependencies a service relies on (breakers, resilient caches and
 * databases, outboxes, failover groups, checks of your own), the health of the system
 * computed from them, service levels that turn features off as health worsens, and
 * background checks that recover open breakers. Core entry point: `effect` only.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import * as internal from "./internal/health.js"
import * as registry from "./internal/healthRegistry.js"
import * as Rules from "./internal/healthRules.js"
import type { DependencyNotFound, DuplicateDependency, FeatureUnavailable } from "./internal/health.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * The state of one dependency:
 * - `Operational`: it answers.
 * - `Degraded`: it answers, but through its fallback or while it recovers (a half-open
 *   breaker, a resilient cache serving fallbacks, an outbox with a backlog).
 * - `Down`: it does not answer (an open breaker, a database in read-only mode).
 *
 * @since 0.1.0
 * @category models
 */
export type DependencyState = Rules.DependencyState

/**
 * The health of the system, from its dependencies (the worst rule that applies wins):
 * - `Emergency`: two or more critical dependencies down.
 * - `Critical`: one critical dependency down, or less than 50% of dependencies operational.
 * - `Degraded`: 50% up to (not including) 80% operational, or any fallback active.
 * - `Healthy`: 80% to 100% operational, no fallback active.
 *
 * A dependency is operational unless it is `Down`. A fallback is active when a dependency is
 * `Degraded`, or `Down` with its own fallback answering (a database in read-only mode).
 *
 * @since 0.1.0
 * @category models
 */
export type SystemHealth = Rules.SystemHealth

/**
 * What the service offers, best first: `Full`, `Degraded`, `Limited`, `CacheOnly`.
 *
 * @since 0.1.0
 * @category models
 */
export type ServiceLevel = Rules.ServiceLevel

/**
 * The kind of a source of health.
 *
 * @since 0.1.0
 * @category models
 */
export type SourceKind = registry.SourceKind

/**
 * A source of health, made by `fromBreaker`, `fromCache`, `fromDatabase`, `fromOutbox`,
 * `fromFailover` or `fromCheck`: how the registry reads a dependency's state, the breakers
 * it holds and its check.
 *
 * @since 0.1.0
 * @category models
 */
export interface Source extends registry.Source {}

/**
 * One breaker in a `DependencyStatus`: its name, its `CircuitBreaker.State`, its failure
 * rate over its window, and its lifetime `totalCalls` and `rejectedCalls` (cumulative: the
 * calls per second are the difference between two snapshots over the time between them).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Health } from "effect-resilience"
 *
 * const json = Schema.encodeSync(Health.BreakerStatus)({
 *   name: "payments",
 *   state: "Open",
 *   failureRate: 0.6,
 *   totalCalls: 120,
 *   rejectedCalls: 40
 * })
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const BreakerStatus: Schema.Schema<BreakerStatus> = internal.BreakerStatus

/**
 * @since 0.1.0
 * @category schemas
 */
export type BreakerStatus = typeof internal.BreakerStatus.Type

/**
 * One dependency in a `Status`: its state, the failure rate of its breaker (or of its
 * checks), the time since its state last changed, its last failure, its mean time to
 * recovery (`mttr`: from going `Down` to being `Operational` again; `null` before its first
 * recovery) over `recoveries` recoveries, each of its breakers (`BreakerStatus`), and, for a
 * failover group, its last failover time (`failoverTime`: from a provider going down to the
 * group answering from the next provider; `null` for other sources and before the first
 * failover).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DependencyStatus: Schema.Schema<DependencyStatus, DependencyStatus.Encoded> = internal.DependencyStatus

/**
 * @since 0.1.0
 * @category schemas
 */
export type DependencyStatus = typeof internal.DependencyStatus.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export declare namespace DependencyStatus {
  /**
   * The JSON form: durations in milliseconds.
   *
   * @since 0.1.0
   */
  export type Encoded = typeof internal.DependencyStatus.Encoded
}

/**
 * A snapshot of the system: its health, its service level, whether it is read-only
 * (Emergency), the share of dependencies operational (0 to 1), when it was taken (epoch
 * milliseconds of the `Clock`) and every dependency. `Schema.encode(Health.Status)` gives
 * its JSON form.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Status: Schema.Schema<Status, Status.Encoded> = internal.Status

/**
 * @since 0.1.0
 * @category schemas
 */
export type Status = typeof internal.Status.Type

/**
 * @since 0.1.0
 * @category schemas
 */
export declare namespace Status {
  /**
   * The JSON form: durations in milliseconds.
   *
   * @since 0.1.0
   */
  export type Encoded = typeof internal.Status.Encoded
}

/**
 * A change seen by the registry: of the system's health (with the service level it
 * brings), or of one dependency's state. `at` is in epoch milliseconds of the `Clock`.
 *
 * @since 0.1.0
 * @category models
 */
export type HealthChange =
  | {
    readonly _tag: "SystemHealthChanged"
    readonly from: SystemHealth
    readonly to: SystemHealth
    readonly at: number
    readonly serviceLevel: ServiceLevel
  }
  | {
    readonly _tag: "DependencyStateChanged"
    readonly name: string
    readonly from: DependencyState
    readonly to: DependencyState
    readonly at: number
  }

/**
 * What `forceRecovery` did: the dependencies whose check passed or failed, and the
 * breakers it moved from `Open` to `HalfOpen`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecoveryReport {
  readonly passed: ReadonlyArray<string>
  readonly failed: ReadonlyArray<string>
  readonly halfOpened: ReadonlyArray<string>
}

/**
 * The options of `register`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisterOptions {
  /** The dependency's name, unique in the registry. */
  readonly name: string
  /** Whether the system is in trouble when it is down (default `false`). */
  readonly critical?: boolean | undefined
  /** Where its health comes from: `fromBreaker(breaker)`, `fromCheck(effect)`, ... */
  readonly source: Source
  /** How often its check runs (default: the registry's `checkInterval`). */
  readonly checkInterval?: Duration.DurationInput | undefined
}

/**
 * The options of `layer`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How often each dependency's check runs (default: `HEALTH_CHECK_INTERVAL`, in seconds,
   * else 30 seconds).
   */
  readonly checkInterval?: Duration.DurationInput | undefined
  /** How long one check may take (default 5 seconds; never more than the interval). */
  readonly checkTimeout?: Duration.DurationInput | undefined
  /**
   * Whether a passing check moves its dependency's open breakers to `HalfOpen` (default:
   * `ENABLE_AUTO_RECOVERY`, else `true`).
   */
  readonly autoRecovery?: boolean | undefined
  /** The names of dependencies that register themselves and are critical (default none). */
  readonly critical?: ReadonlyArray<string> | undefined
  /**
   * The service level of a system health (default `defaultServiceLevel`: Healthy → Full,
   * Degraded → Degraded, Critical → Limited, Emergency → CacheOnly). Must be pure and total.
   */
  readonly serviceLevel?:
    | ((
      health: SystemHealth,
      dependencies: ReadonlyArray<{
        readonly name: string
        readonly kind: SourceKind
        readonly critical: boolean
        readonly state: DependencyState
      }>
    ) => ServiceLevel)
    | undefined
}

/**
 * The registry.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthService {
  /**
   * Registers a dependency until the scope closes. Fails with `DuplicateDependency` when
   * the name is taken, `InvalidOptions` naming the field when an option is wrong.
   */
  readonly register: (
    options: RegisterOptions
  ) => Effect.Effect<void, InvalidOptions | DuplicateDependency, Scope.Scope>
  /** Reads every dependency now and returns the snapshot. */
  readonly status: Effect.Effect<Status>
  /** The system health now. */
  readonly health: Effect.Effect<SystemHealth>
  /** The service level now. */
  readonly serviceLevel: Effect.Effect<ServiceLevel>
  /** Every change from the moment the stream starts running, in order. */
  readonly changes: Stream.Stream<HealthChange>
  /** Subscribes now, in the current scope: no change slips by before the first pull. */
  readonly subscribe: Effect.Effect<Stream.Stream<HealthChange>, never, Scope.Scope>
  /**
   * The breaker of the dependency of that name (its own breaker for a database or a
   * cache), or the registered breaker of that name (a failover group's provider).
   */
  readonly breaker: (name: string) => Effect.Effect<CircuitBreaker.CircuitBreaker, DependencyNotFound>
  /** Runs every check now and moves every open breaker whose check passes to `HalfOpen`. */
  readonly forceRecovery: Effect.Effect<RecoveryReport>
}

export {
  /**
   * The registry's service tag (`"effect-resilience/Health"`).
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Health } from "effect-resilience"
   *
   * const program = Effect.gen(function*() {
   *   const health = yield* Health.Health
   *   return yield* health.status
   * }).pipe(Effect.provide(Health.layer()))
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  Health
} from "./internal/healthRegistry.js"

export {
  /**
   * A dependency of that name is already registered.
   *
   * @since 0.1.0
   * @category errors
   */
  DuplicateDependency,
  /**
   * No dependency or breaker of that name is registered.
   *
   * @since 0.1.0
   * @category errors
   */
  DependencyNotFound,
  /**
   * A feature was refused because the service level is below the one it needs.
   *
   * @since 0.1.0
   * @category errors
   */
  FeatureUnavailable
} from "./internal/health.js"

/**
 * Provides the registry. While it is in the context, breakers, resilient caches, resilient
 * databases and outboxes made in a scope register themselves (removed when that scope
 * closes; a breaker made outside any scope is not registered). Fails with `InvalidOptions`
 * naming the option or the variable (`HEALTH_CHECK_INTERVAL`, `ENABLE_AUTO_RECOVERY`).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { CircuitBreaker, Health } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "payments" }) // registers itself
 *   return yield* Health.status
 * }).pipe(Effect.scoped, Effect.provide(Health.layer({ critical: ["payments"] })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<registry.Health, InvalidOptions> = internal.layer

/**
 * Makes a registry in the scope; see `layer`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<HealthService, InvalidOptions, Scope.Scope> = internal.make

/**
 * Registers a dependency with the registry in the context until the scope closes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Health } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "payments" })
 *   yield* Health.register({ name: "payments", critical: true, source: Health.fromBreaker(breaker) })
 * })
 * ```
 *
 * @since 0.1.0
 * @category registration
 */
export const register = (
  options: RegisterOptions
): Effect.Effect<void, InvalidOptions | DuplicateDependency, registry.Health | Scope.Scope> =>
  internal.withHealth((health) => health.register(options))

/**
 * A breaker as a source: `Closed` is operational, `HalfOpen` degraded, `Open` and
 * `ForcedOpen` down. `check`, when given, is run on schedule; when it passes, an open
 * breaker moves to `HalfOpen`.
 *
 * @since 0.1.0
 * @category sources
 */
export const fromBreaker: (
  breaker: CircuitBreaker.CircuitBreaker,
  options?: { readonly check?: Effect.Effect<unknown, unknown> | undefined }
) => Source = (breaker, options) => registry.breakerSource(breaker, options?.check)

/**
 * A resilient cache as a source: operational while its breaker is closed, degraded
 * otherwise (its fallback answers; it never fails its callers).
 *
 * @since 0.1.0
 * @category sources
 */
export const fromCache: (
  cache: { readonly breaker: CircuitBreaker.CircuitBreaker },
  options?: { readonly check?: Effect.Effect<unknown, unknown> | undefined }
) => Source = (cache, options) => registry.cacheSource(cache, options?.check)

/**
 * A resilient database (`ResilientSqlService`) as a source: down while it is read-only
 * because of its own state (breaker open, client not connected), degraded while its
 * breaker is half-open, operational otherwise. Its check is its `healthCheck`.
 *
 * @since 0.1.0
 * @category sources
 */
export const fromDatabase: (
  database: {
    readonly breaker: CircuitBreaker.CircuitBreaker
    readonly connected: Effect.Effect<boolean>
    readonly healthCheck: Effect.Effect<void, unknown>
  },
  options?: { readonly check?: Effect.Effect<unknown, unknown> | undefined }
) => Source = (database, options) => registry.databaseSource(database, options?.check)

/**
 * An outbox as a source: operational when empty, degraded with a backlog, down when full.
 *
 * @since 0.1.0
 * @category sources
 */
export const fromOutbox: (
  outbox: { readonly capacity: number; readonly depth: Effect.Effect<number> }
) => Source = registry.outboxSource

/**
 * A failover group (`Fallback.makeFailover`) as a source: operational while its first
 * provider's breaker is closed, degraded while another provider answers for it, down when
 * every provider's breaker is open.
 *
 * @since 0.1.0
 * @category sources
 */
export const fromFailover: (
  group: {
    readonly providers: ReadonlyArray<{ readonly name: string; readonly breaker: CircuitBreaker.CircuitBreaker }>
    /** The group's last failover time (a `Fallback.makeFailover` group measures it). */
    readonly failoverTime?: Effect.Effect<Option.Option<Duration.Duration>> | undefined
  },
  options?: { readonly check?: Effect.Effect<unknown, unknown> | undefined }
) => Source = (group, options) => registry.failoverSource(group, options?.check)

/**
 * A check of your own as a source, run on schedule: operational while it passes (or the
 * state it succeeds with, `"Degraded"` for example), down while it fails or times out;
 * operational until its first run ends.
 *
 * @since 0.1.0
 * @category sources
 */
export const fromCheck: (check: Effect.Effect<unknown, unknown>) => Source = registry.checkSource

/**
 * The snapshot of the registry in the context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const status: Effect.Effect<Status, never, registry.Health> = internal.withHealth((health) => health.status)

/**
 * The system health now.
 *
 * @since 0.1.0
 * @category accessors
 */
export const health: Effect.Effect<SystemHealth, never, registry.Health> = internal.withHealth((health) =>
  health.health
)

/**
 * The service level now.
 *
 * @since 0.1.0
 * @category accessors
 */
export const serviceLevel: Effect.Effect<ServiceLevel, never, registry.Health> = internal.withHealth((health) =>
  health.serviceLevel
)

/**
 * Every change of the registry in the context, logged as it happens (system health:
 * Healthy at info, Degraded and Critical at warning, Emergency at error).
 *
 * @since 0.1.0
 * @category accessors
 */
export const changes: Stream.Stream<HealthChange, never, registry.Health> = internal.changes

/**
 * The breaker of a registered dependency, by name (see `HealthService.breaker`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const breaker = (
  name: string
): Effect.Effect<CircuitBreaker.CircuitBreaker, DependencyNotFound, registry.Health> =>
  internal.withHealth((health) => health.breaker(name))

/**
 * Runs every check now and moves every open breaker whose check passes to `HalfOpen`,
 * whatever `autoRecovery` says.
 *
 * @since 0.1.0
 * @category recovery
 */
export const forceRecovery: Effect.Effect<RecoveryReport, never, registry.Health> = internal.withHealth((health) =>
  health.forceRecovery
)

/**
 * Runs `feature` when the service level is `level` or better, else `otherwise` (default:
 * fail with `FeatureUnavailable`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Health } from "effect-resilience"
 *
 * const recommendations = Health.atLeast("Degraded", Effect.succeed(["a", "b"]), {
 *   otherwise: Effect.succeed([])
 * })
 * ```
 *
 * @since 0.1.0
 * @category service levels
 */
export const atLeast: <A, E, R, B = never, E2 = never, R2 = never>(
  level: ServiceLevel,
  feature: Effect.Effect<A, E, R>,
  options?: { readonly otherwise?: Effect.Effect<B, E2, R2> | undefined }
) => Effect.Effect<A | B, E | E2 | FeatureUnavailable, R | R2 | registry.Health> = internal.atLeast

/**
 * Marks a feature non-essential: it runs at `Full` and `Degraded`, and from `Limited` down
 * `otherwise` runs instead (default: fail with `FeatureUnavailable`).
 *
 * @since 0.1.0
 * @category service levels
 */
export const nonEssential = <A, E, R, B = never, E2 = never, R2 = never>(
  feature: Effect.Effect<A, E, R>,
  options?: { readonly otherwise?: Effect.Effect<B, E2, R2> | undefined }
): Effect.Effect<A | B, E | E2 | FeatureUnavailable, R | R2 | registry.Health> =>
  internal.atLeast("Degraded", feature, options)

/**
 * The default rule from system health to service level: Healthy → Full, Degraded →
 * Degraded, Critical → Limited, Emergency → CacheOnly.
 *
 * @since 0.1.0
 * @category service levels
 */
export const defaultServiceLevel: (health: SystemHealth) => ServiceLevel = Rules.defaultServiceLevel

/**
 * The system health of a list of dependencies, by the rules of `SystemHealth`.
 *
 * @since 0.1.0
 * @category service levels
 */
export const systemHealthOf: (
  dependencies: ReadonlyArray<{
    readonly critical: boolean
    readonly state: DependencyState
    /** A `Down` dependency whose own fallback answers for it (a database in read-only mode). */
    readonly fallbackActive?: boolean | undefined
  }>
) => SystemHealth = Rules.systemHealth

/**
 * The gauge of system health: 0 Healthy, 1 Degraded, 2 Critical, 3 Emergency.
 *
 * @since 0.1.0
 * @category metrics
 */
export const healthMetric: Metric.Metric.Gauge<number> = internal.healthGauge

/**
 * The counter of system health changes, tagged `from` and `to`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const transitionsMetric: Metric.Metric.Counter<number> = internal.transitionsCounter

/**
 * The histogram of recovery times in seconds (from down to operational), tagged
 * `dependency`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const recoveryMetric: Metric.Metric.Histogram<number> = internal.recoveryHistogram
