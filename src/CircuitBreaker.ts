/**
 * A circuit breaker whose state lives in an Effect `Ref`.
 *
 * Every transition is one atomic `Ref.modify` over a pure state machine; transitions are
 * computed lazily from the `Clock` (no timers), so nothing keeps the process alive and
 * `TestClock` drives every behaviour.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import { dual } from "effect/Function"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/circuitBreaker.js"
import * as keyedInternal from "./internal/keyedCircuitBreaker.js"
import type { CircuitBreakerOpen } from "./internal/circuitBreakerOpen.js"
import type { InvalidOptions } from "./InvalidOptions.js"

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

/**
 * The state a breaker reports.
 *
 * - `Closed`: calls run and are recorded.
 * - `Open`: calls fail at once with `CircuitBreakerOpen` until the open duration passes.
 * - `HalfOpen`: up to `halfOpenMaxCalls` probes run; their outcome closes or reopens it.
 * - `ForcedOpen`: every call is rejected until `forceClosed` or `reset` (also while
 *   any scope holds `isolate`).
 * - `ForcedClosed`: every call runs and is recorded; no transition happens.
 *
 * @since 0.1.0
 * @category models
 */
export type State = "Closed" | "Open" | "HalfOpen" | "ForcedOpen" | "ForcedClosed"

/**
 * Why a transition happened.
 *
 * @since 0.1.0
 * @category models
 */
export type TransitionReason =
  | "FailureThreshold"
  | "FailureRate"
  | "SlowCallRate"
  | "OpenDurationElapsed"
  | "ProbeFailed"
  | "ProbesSucceeded"
  | "HealthCheckPassed"
  | "ForceOpen"
  | "ForceClosed"
  | "Reset"
  | "Isolated"
  | "IsolationReleased"

/**
 * One transition of a breaker, as emitted by `breaker.changes`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StateChange {
  /** The breaker's name. */
  readonly breaker: string
  readonly from: State
  readonly to: State
  /** When the transition happened, in epoch milliseconds of the `Clock`. */
  readonly at: number
  readonly reason: TransitionReason
}

/**
 * A failure remembered in `metrics.recentFailures`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedFailure {
  /** When the call ended, in epoch milliseconds of the `Clock`. */
  readonly at: number
  /** The error's `message` when it has one, else its string form. */
  readonly message: string
}

/**
 * A snapshot of a breaker, read with `breaker.metrics`.
 *
 * The call counters are lifetime counters that only `reset` clears; they add up:
 * `totalCalls = successfulCalls + failedCalls + ignoredCalls + interruptedCalls + rejectedCalls`
 * (a call is counted once it has ended or been rejected). `slowCalls` counts calls, successful
 * or not, that took at least `slowCallDuration`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metrics {
  readonly state: State
  /** Failures / calls over the window (0 when the window is empty). */
  readonly failureRate: number
  /** Slow calls / calls over the window (0 when the window is empty). */
  readonly slowCallRate: number
  /** Calls held by the window right now. */
  readonly windowCalls: number
  readonly totalCalls: number
  readonly successfulCalls: number
  readonly failedCalls: number
  readonly ignoredCalls: number
  readonly interruptedCalls: number
  readonly rejectedCalls: number
  readonly slowCalls: number
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  readonly stateChanges: number
  /** Probes running now (HalfOpen only). */
  readonly probesInFlight: number
  /** Time since the breaker last reported a transition (isolations included). */
  readonly timeInState: Duration.Duration
  /** The duration of the current (or, when closed, the next) open period. */
  readonly openDuration: Duration.Duration
  /** The last 50 failures at most, oldest first. */
  readonly recentFailures: ReadonlyArray<RecordedFailure>
}

/**
 * How the failure rate is computed.
 *
 * - `Count`: the last `size` calls.
 * - `Time`: the calls of the last `duration`, kept in `buckets` buckets (default 10);
 *   calls older than `duration` are forgotten, even after a long idle gap.
 *
 * @since 0.1.0
 * @category models
 */
export type Window =
  | { readonly _tag: "Count"; readonly size: number }
  | { readonly _tag: "Time"; readonly duration: Duration.DurationInput; readonly buckets?: number | undefined }

export {
  /**
   * The failure a protected call fails with when the breaker does not run it:
   * `breaker` (name), `retryAfter` (zero when a retry is allowed now; what remains of the
   * open period for `Open`; for `HalfOpenFull` and `ProbePending`, the time until the earliest
   * busy probe's permit expires (zero when turned away by `recoveryFactor`); infinite for
   * `ForcedOpen`) and `reason`: `Open`, `HalfOpenFull`, `ForcedOpen`, or `ProbePending` (the
   * caller's own probe outlasted `probePatience` and goes on in the background). Rejections
   * carry no stack trace of the call site: they are expected outcomes, made on the fail-fast path.
   *
   * @since 0.1.0
   * @category errors
   */
  CircuitBreakerOpen
} from "./internal/circuitBreakerOpen.js"

/**
 * A circuit breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  readonly [TypeId]: TypeId
  readonly name: string
  /**
   * Runs `effect` when the breaker permits it, records its outcome, and otherwise fails
   * at once with `CircuitBreakerOpen` without running it.
   */
  readonly protect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerOpen, R>
  /** The state now (reads `HalfOpen` once the open duration has passed). */
  readonly state: Effect.Effect<State>
  /** Whether a call made now would run. Takes no permit. */
  readonly isCallPermitted: Effect.Effect<boolean>
  /** How long until a call may be permitted: zero when one would run now. */
  readonly retryAfter: Effect.Effect<Duration.Duration>
  readonly metrics: Effect.Effect<Metrics>
  /** Every transition from the moment the stream starts running, in order. */
  readonly changes: Stream.Stream<StateChange>
  /**
   * Subscribes now, in the current scope, and returns the transitions from this moment on,
   * in order: unlike `changes`, no transition can slip by between subscribing and the
   * first pull.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<StateChange>, never, Scope.Scope>
  /** Rejects every call with reason `ForcedOpen` until `forceClosed` or `reset`. */
  readonly forceOpen: Effect.Effect<void>
  /** Runs and records every call; no transition happens until `reset` or `forceOpen`. */
  readonly forceClosed: Effect.Effect<void>
  /** Back to `Closed`: window and counters cleared, open schedule restarted. */
  readonly reset: Effect.Effect<void>
  /**
   * While any scope holds it, the breaker reports `ForcedOpen` and rejects every call.
   * Reference-counted: released when the last holding scope closes.
   */
  readonly isolate: Effect.Effect<void, never, Scope.Scope>
  /**
   * Moves an `Open` breaker to `HalfOpen` now, as a successful health check does.
   * Does nothing in any other state.
   */
  readonly halfOpen: Effect.Effect<void>
}

/**
 * @since 0.1.0
 */
export declare namespace CircuitBreaker {
  /**
   * The options of `make`. Every field but `name` is optional.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Options<E = unknown> {
    /** Names the breaker in errors, events, metrics and logs. */
    readonly name: string
    /** Consecutive failures that open the breaker (default 5; `Infinity` disables the rule). */
    readonly failureThreshold?: number | undefined
    /** Consecutive half-open successes that close it (default 3). */
    readonly successThreshold?: number | undefined
    /** Open duration when no `openSchedule` is given (default 60 seconds). */
    readonly resetTimeout?: Duration.DurationInput | undefined
    /**
     * Open durations drawn from a schedule, one per consecutive opening (its input is the
     * number of that opening, 1-based); restarted when the breaker closes. When the schedule
     * ends, the last duration is kept. Excludes `resetTimeout`.
     */
    readonly openSchedule?: Schedule.Schedule<unknown, number> | undefined
    /** The window for the rate rules (default `{ _tag: "Time", duration: "5 minutes", buckets: 10 }`). */
    readonly window?: Window | undefined
    /** Opens when failures / calls over the window >= this (0 < rate <= 1; off by default). */
    readonly failureRateThreshold?: number | undefined
    /** Calls the window must hold before a rate rule applies (default 10). */
    readonly minimumCalls?: number | undefined
    /** A call that takes at least this long is slow (off by default). */
    readonly slowCallDuration?: Duration.DurationInput | undefined
    /**
     * Opens when slow calls / calls over the window >= this (needs `slowCallDuration`).
     * With it, a slow half-open probe counts as a failed probe.
     */
    readonly slowCallRateThreshold?: number | undefined
    /** Probes admitted at once while HalfOpen (default 1). */
    readonly halfOpenMaxCalls?: number | undefined
    /**
     * Fraction of calls admitted while HalfOpen (0 < f <= 1, default 1): with 0.5, every
     * other call is turned away with reason `HalfOpenFull`. Deterministic, by counting.
     */
    readonly recoveryFactor?: number | undefined
    /** Errors for which this returns `false` pass through uncounted (default: every error counts). */
    readonly isFailure?: ((error: E) => boolean) | undefined
    /**
     * How long a caller waits on the half-open probe it was admitted as (off by default: it
     * waits for its call to end). When set, a probe that has not ended after `probePatience`
     * goes on in the background, its outcome still deciding the breaker, while its caller
     * fails at once with `CircuitBreakerOpen` (reason `ProbePending`): no caller sits out the
     * timeout of a dependency that is down. Interrupting the caller before then interrupts
     * the probe. Calls admitted while `Closed` always run in the caller's fiber. `0`: the
     * caller does not wait at all; every probe runs in the background from its start.
     */
    readonly probePatience?: Duration.DurationInput | undefined
    /**
     * Tags this breaker's metrics with `breaker=<name>` (default `false`). Effect keeps an
     * entry per distinct set of tags for the life of the process: turn it on for a fixed set
     * of breakers, keep it off for breakers made per key (per tenant, per host), and tag
     * those with `Effect.tagMetrics` around the calls instead, with a bounded set of values.
     */
    readonly tagMetricsWithName?: boolean | undefined
  }
}

/**
 * Makes a circuit breaker. Fails with `InvalidOptions` naming the field when an option is
 * out of range. Needs no `Scope`.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({
 *     name: "redis",
 *     failureThreshold: 5,
 *     openSchedule: Schedule.exponential("1 second")
 *   })
 *   return yield* breaker.protect(Effect.succeed("pong"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <E = unknown>(options: CircuitBreaker.Options<E>) => Effect.Effect<CircuitBreaker, InvalidOptions> =
  internal.make

/**
 * Runs an effect through a breaker: data-first or in a pipe.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "api" })
 *   return yield* Effect.succeed(42).pipe(CircuitBreaker.protect(breaker))
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const protect: {
  (breaker: CircuitBreaker): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerOpen, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: CircuitBreaker): Effect.Effect<A, E | CircuitBreakerOpen, R>
} = dual(
  2,
  <A, E, R>(effect: Effect.Effect<A, E, R>, breaker: CircuitBreaker) => breaker.protect(effect)
)

/**
 * The options of `withHealthCheck`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthCheckOptions<E, R> {
  /** Succeeds when the dependency is healthy. */
  readonly check: Effect.Effect<unknown, E, R>
  /** How often to check while the breaker is `Open` (a positive duration). */
  readonly interval: Duration.DurationInput
  /**
   * How long a check may take before it counts as failed (default and maximum: `interval`).
   * A check that never answers is abandoned after it, so later checks keep their schedule.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * While the returned effect's scope is open, runs `check` every `interval` as long as the
 * breaker is `Open`, and moves it to `HalfOpen` as soon as a check succeeds, without
 * waiting for the open duration to pass. Checks that fail, or take longer than `timeout`
 * (at most, and by default, `interval`), change nothing; the next check runs on schedule.
 * Fails with `InvalidOptions` when the options are not an object, `interval` is not a
 * positive duration or `timeout` exceeds it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "db" })
 *   yield* CircuitBreaker.withHealthCheck(breaker, {
 *     check: Effect.void,
 *     interval: "30 seconds",
 *     timeout: "5 seconds"
 *   })
 * }))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withHealthCheck: {
  <E, R>(
    options: HealthCheckOptions<E, R>
  ): (breaker: CircuitBreaker) => Effect.Effect<void, InvalidOptions, R | Scope.Scope>
  <E, R>(
    breaker: CircuitBreaker,
    options: HealthCheckOptions<E, R>
  ): Effect.Effect<void, InvalidOptions, R | Scope.Scope>
} = internal.withHealthCheck

/**
 * Reads a breaker's options through Effect `Config`, under the name in CONSTANT_CASE, and
 * makes it: with `ConfigProvider.fromEnv()`, `fromConfig("redis")` reads
 * `REDIS_FAILURE_THRESHOLD`, `REDIS_RESET_TIMEOUT`, ... (see `docs/configuration.md` for
 * the full list). Every variable is optional; `defaults` supplies what the environment does
 * not. A duration variable given as a bare number is in seconds (`REDIS_RESET_TIMEOUT=30` is
 * 30 seconds); one with a unit (`"500 millis"`) is read as given. The seeds' names are read
 * too: `<NAME>_CIRCUIT_BREAKER_THRESHOLD` (failureThreshold) and `<NAME>_CIRCUIT_BREAKER_TIMEOUT`
 * (resetTimeout); when an option is set under both names the library's name wins, and if the
 * two differ a warning names both variables (not their values). A value that does not parse (an empty one included) or is out of range fails with
 * `InvalidOptions` naming the field and the variable; several values that do not parse are
 * named together in one `InvalidOptions`. Only the provider's own failures are `ConfigError`s.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * // REDIS_FAILURE_THRESHOLD=5 REDIS_RESET_TIMEOUT=30 (seconds)
 * const program = CircuitBreaker.fromConfig("redis", { successThreshold: 2 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromConfig: <E = unknown>(
  name: string,
  defaults?: Omit<CircuitBreaker.Options<E>, "name">
) => Effect.Effect<CircuitBreaker, InvalidOptions | ConfigError.ConfigError> = internal.fromConfig

/**
 * The `Config` that `fromConfig` reads, for users who want the options without a breaker.
 *
 * @since 0.1.0
 * @category constructors
 */
export const config: (name: string) => Config.Config<Omit<CircuitBreaker.Options, "name" | "isFailure">> =
  internal.config

/**
 * Whether a value is a `CircuitBreaker`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isCircuitBreaker: (u: unknown) => u is CircuitBreaker = internal.isCircuitBreaker

/**
 * The gauge of breakers' state (0 closed, 1 open, 2 half-open, 3 forced open, 4 forced
 * closed), updated on each transition with the tags of the fiber that caused it
 * (`Effect.tagMetrics`), plus `breaker=<name>` for breakers made with `tagMetricsWithName`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateMetric: Metric.Metric.Gauge<number> = internal.stateGauge

/**
 * The counter of calls, tagged `outcome`: `success`, `failure`, `rejected`, `ignored`,
 * `interrupted`, and `slow` (counted in addition to success or failure), with the caller's
 * tags (`Effect.tagMetrics`), plus `breaker=<name>` with `tagMetricsWithName`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const callsMetric: Metric.Metric.Counter<number> = internal.callsCounter

/**
 * The counter of state changes, tagged `to` (the state entered), with the tags of the fiber
 * that caused the change, plus `breaker=<name>` with `tagMetricsWithName`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const stateChangesMetric: Metric.Metric.Counter<number> = internal.stateChangesCounter

/**
 * The histogram of call durations in seconds (successes and failures), with the caller's
 * tags, plus `breaker=<name>` with `tagMetricsWithName`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const callDurationMetric: Metric.Metric.Histogram<number> = internal.durationHistogram

// -----------------------------------------------------------------------------
// Keyed breakers
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category type ids
 */
export const KeyedTypeId: unique symbol = keyedInternal.KeyedTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type KeyedTypeId = typeof KeyedTypeId

/**
 * One breaker per key (host, tenant, model), made on first use from the same options and
 * named `<name>:<key>`, in a map bounded by `capacity` (least recently used evicted first) and
 * `idleTimeToLive`. An evicted key leaves nothing behind: the next `get` makes a fresh,
 * `Closed` breaker for it.
 *
 * Calls in flight are never cut: a key with calls in flight is not idle, and capacity evicts
 * the least recently used key without calls in flight (only when every key has calls in flight
 * is the least recently used one evicted anyway; its calls end and are recorded on the breaker
 * they started on, which is then dropped).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyedCircuitBreaker {
  readonly [KeyedTypeId]: KeyedTypeId
  readonly name: string
  /** The breaker of `key`, made on first use; concurrent first uses of a key get the same breaker. */
  readonly get: (key: string) => Effect.Effect<CircuitBreaker>
  /** Runs `effect` through the breaker of `key`. */
  readonly protect: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitBreakerOpen, R>
  /** The keys that have a breaker now, least recently used first. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /** How many keys have a breaker now. */
  readonly size: Effect.Effect<number>
  /** Drops the breaker of `key` (its subscriptions end); the next `get` makes a fresh one. */
  readonly invalidate: (key: string) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 */
export declare namespace KeyedCircuitBreaker {
  /**
   * The options of `keyed`: a breaker's options (every key's breaker is made from them),
   * plus the bounds of the map and how metrics are tagged.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Options<E = unknown> extends Omit<CircuitBreaker.Options<E>, "tagMetricsWithName"> {
    /** Names the group; each key's breaker is named `<name>:<key>`. */
    readonly name: string
    /** The most keys holding a breaker at once (an integer >= 1, default 10,000). */
    readonly capacity?: number | undefined
    /**
     * A key unused this long (no `get`, no call started or ended) is evicted: on the next
     * `get` or read, and by a sweep every half of it in the keyed breaker's scope (default: never).
     */
    readonly idleTimeToLive?: Duration.DurationInput | undefined
    /**
     * Tags each key's breaker metrics with `breaker=<name>:<key>` (default `false`). Effect
     * keeps a metric entry per distinct set of tags for the life of the process, so only the
     * first `maxTaggedKeys` distinct keys are tagged; later keys report untagged, under the
     * tags of the calling fiber (`Effect.tagMetrics`).
     */
    readonly tagMetricsWithKey?: boolean | undefined
    /** The bound on tagged keys with `tagMetricsWithKey` (an integer >= 0, default 100). */
    readonly maxTaggedKeys?: number | undefined
  }
}

/**
 * Makes a keyed breaker: one breaker per key, made on first use, bounded by `capacity` and
 * `idleTimeToLive`. The breakers live in the current scope; closing it drops them all and
 * ends their subscriptions (a breaker asked for afterwards answers but is not kept). With a `Health` registry in the context, the keys are registered
 * as one dependency under `name` (Operational while every key is closed, Down when every key
 * is open, Degraded in between); the keys' breakers are not registered one by one. Fails with
 * `InvalidOptions` naming the field when an option, of the group or of the breakers, is out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "effect-resilience"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const hosts = yield* CircuitBreaker.keyed({
 *     name: "upstream",
 *     failureThreshold: 3,
 *     capacity: 1000,
 *     idleTimeToLive: "10 minutes"
 *   })
 *   return yield* Effect.succeed("ok").pipe(hosts.protect("api.example.com"))
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyed: <E = unknown>(
  options: KeyedCircuitBreaker.Options<E>
) => Effect.Effect<KeyedCircuitBreaker, InvalidOptions, Scope.Scope> = keyedInternal.keyed
