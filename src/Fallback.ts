/**
 * Fallbacks: a value or an effect when a call fails, failover across providers that skips
 * the ones whose breaker is open, hedged attempts against slow calls, and breaker-aware
 * steps for Effect's `ExecutionPlan` when providers are Layers.
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import type * as Effect from "effect/Effect"
import type * as ExecutionPlan from "effect/ExecutionPlan"
import type * as Duration from "effect/Duration"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type { Predicate, Refinement } from "effect/Predicate"
import type * as Schedule from "effect/Schedule"
import type { CircuitBreaker, CircuitBreakerOpen } from "./CircuitBreaker.js"
import * as internal from "./internal/fallback.js"
import type { InvalidOptions } from "./InvalidOptions.js"

// -----------------------------------------------------------------------------
// to / orElse
// -----------------------------------------------------------------------------

/**
 * Succeeds with `value` when the effect fails, so the error channel becomes `never`. With
 * `when`, only the errors it accepts are replaced; the others pass through (a refinement
 * removes its type from the error channel). Defects and interruptions are not caught.
 * `value` is a plain value (an effect there would be read as the subject): to fall back on
 * an effect, use `orElse`. A fallback taken is a `resilience.fallback` event on the caller's
 * span, with the failure's type. Throws `InvalidOptions` when `when` is not a function.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Fallback } from "effect-resilience"
 *
 * declare const fetchPrice: Effect.Effect<number, Error>
 *
 * // Effect<number | null, never>
 * const price = fetchPrice.pipe(Fallback.to(null))
 * ```
 *
 * @since 0.1.0
 * @category fallbacks
 */
export const to: {
  <E, EB extends E, B>(
    value: B,
    options: { readonly when: Refinement<NoInfer<E>, EB> }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, Exclude<E, EB>, R>
  <E, B>(
    value: B,
    options: { readonly when: Predicate<NoInfer<E>> }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, E, R>
  <B>(value: B): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, never, R>
  <A, E, R, EB extends E, B>(
    self: Effect.Effect<A, E, R>,
    value: B,
    options: { readonly when: Refinement<E, EB> }
  ): Effect.Effect<A | B, Exclude<E, EB>, R>
  <A, E, R, B>(
    self: Effect.Effect<A, E, R>,
    value: B,
    options: { readonly when: Predicate<E> }
  ): Effect.Effect<A | B, E, R>
  <A, E, R, B>(self: Effect.Effect<A, E, R>, value: B): Effect.Effect<A | B, never, R>
} = internal.to

/**
 * Runs `fallback(reason)` when the effect fails, where `reason` is the failure: the error,
 * or the `CircuitBreakerOpen` that stopped a protected call before it ran. With `when`, only
 * the errors it accepts fall back. Defects and interruptions are not caught. A fallback taken
 * is a `resilience.fallback` event on the caller's span, with the failure's type. Throws
 * `InvalidOptions` when `fallback` or `when` is not a function.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Fallback } from "effect-resilience"
 *
 * declare const fromDatabase: Effect.Effect<string, Error>
 * declare const fromCache: Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "db" })
 *   return yield* breaker.protect(fromDatabase).pipe(
 *     Fallback.orElse((reason) =>
 *       reason instanceof CircuitBreaker.CircuitBreakerOpen ? fromCache : Effect.fail(reason)
 *     )
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 * @category fallbacks
 */
export const orElse: {
  <E, EB extends E, A2, E2, R2>(
    fallback: (reason: EB) => Effect.Effect<A2, E2, R2>,
    options: { readonly when: Refinement<NoInfer<E>, EB> }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, Exclude<E, EB> | E2, R | R2>
  <E, A2, E2, R2>(
    fallback: (reason: NoInfer<E>) => Effect.Effect<A2, E2, R2>,
    options: { readonly when: Predicate<NoInfer<E>> }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E | E2, R | R2>
  <E, A2, E2, R2>(
    fallback: (reason: E) => Effect.Effect<A2, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | A2, E2, R | R2>
  <A, E, R, EB extends E, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    fallback: (reason: EB) => Effect.Effect<A2, E2, R2>,
    options: { readonly when: Refinement<E, EB> }
  ): Effect.Effect<A | A2, Exclude<E, EB> | E2, R | R2>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    fallback: (reason: E) => Effect.Effect<A2, E2, R2>,
    options: { readonly when: Predicate<E> }
  ): Effect.Effect<A | A2, E | E2, R | R2>
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    fallback: (reason: E) => Effect.Effect<A2, E2, R2>
  ): Effect.Effect<A | A2, E2, R | R2>
} = internal.orElse

// -----------------------------------------------------------------------------
// firstSuccess
// -----------------------------------------------------------------------------

/**
 * One provider of `firstSuccess`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Provider<A, E, R> {
  /** Names the provider in the answer and in `AllProvidersFailed`. */
  readonly name: string
  /**
   * The call. Compose the provider's own policies inside it, in this order: retry outside
   * `breaker.protect` outside the timeout outside the call.
   */
  readonly run: Effect.Effect<A, E, R>
  /**
   * The provider's breaker. While it is `Open` or `ForcedOpen` the provider is skipped at
   * once, without starting `run`. Otherwise `run` starts, and a `CircuitBreakerOpen` of this
   * breaker that `run` fails with (half-open, no permit left, or turned away by
   * `recoveryFactor`) is a skip too, not a failure: the breaker decides each half-open call,
   * so gradual recovery proceeds behind the failover as for direct callers. It is only read
   * here: protect the call with it inside `run`.
   */
  readonly breaker?: CircuitBreaker | undefined
}

/**
 * Why a provider did not answer: it ran and `Failed` with `error`, or it was `Skipped`
 * because its breaker turned the call away, before `run` started or at its `protect`
 * (`rejection` says why and for how long).
 *
 * @since 0.1.0
 * @category models
 */
export type ProviderFailure<E> =
  | { readonly _tag: "Failed"; readonly provider: string; readonly error: E }
  | { readonly _tag: "Skipped"; readonly provider: string; readonly rejection: CircuitBreakerOpen }

/**
 * The answer of `firstSuccess`: the `value`, the `provider` that gave it, and why each
 * provider tried before it did not answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Answer<A, E> {
  readonly value: A
  readonly provider: string
  readonly failures: ReadonlyArray<ProviderFailure<E>>
}

export {
  /**
   * The failure of `firstSuccess` when no provider answered: `failures` holds one entry per
   * provider, in order, each `Failed` (with its error) or `Skipped` (with the breaker's
   * rejection).
   *
   * @since 0.1.0
   * @category errors
   */
  AllProvidersFailed
} from "./internal/fallback.js"

/**
 * @since 0.1.0
 */
export declare namespace Provider {
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Success<P> = P extends Provider<infer A, infer _E, infer _R> ? A : never
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Error<P> = P extends Provider<infer _A, infer E, infer _R> ? E : never
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Context<P> = P extends Provider<infer _A, infer _E, infer R> ? R : never
}

/**
 * Tries the providers in order and answers with the first success. A provider whose
 * breaker is open is skipped at once (no waiting, `run` not started), and one whose breaker
 * turns the call away inside `run` is skipped as well; a provider that fails hands over to
 * the next. When none answers, fails with
 * `AllProvidersFailed` listing every provider's failure or skip. Defects and interruptions
 * are not caught. Each skip or failure, and the provider that answered after one, is an
 * event on the caller's span (`resilience.failover.*`). Throws `InvalidOptions` when the
 * list is empty or a provider is malformed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Fallback } from "effect-resilience"
 *
 * declare const askPrimary: Effect.Effect<string, Error>
 * declare const askSecondary: Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const primary = yield* CircuitBreaker.make({ name: "primary" })
 *   const answer = yield* Fallback.firstSuccess([
 *     { name: "primary", breaker: primary, run: primary.protect(askPrimary) },
 *     { name: "secondary", run: askSecondary }
 *   ])
 *   return `${answer.provider}: ${answer.value}`
 * })
 * ```
 *
 * @since 0.1.0
 * @category failover
 */
export const firstSuccess: <P extends NonEmptyReadonlyArray<Provider<any, any, any>>>(
  providers: P
) => Effect.Effect<
  Answer<Provider.Success<P[number]>, Provider.Error<P[number]>>,
  internal.AllProvidersFailed<Provider.Error<P[number]>>,
  Provider.Context<P[number]>
> = internal.firstSuccess

/**
 * One provider of `makeFailover`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FailoverProvider<I, A, E, R> {
  readonly name: string
  /**
   * The provider's breaker, or the options of the one to make for it (named after the
   * provider; default: `CircuitBreaker.make`'s defaults).
   */
  readonly breaker?: CircuitBreaker | Omit<CircuitBreaker.Options, "name"> | undefined
  /**
   * One call with `input`. Protect it with `breaker` where it belongs in your pipeline
   * (retry outside the breaker outside the timeout).
   */
  readonly run: (input: I, breaker: CircuitBreaker) => Effect.Effect<A, E, R>
}

/**
 * A failover made by `makeFailover`: `run(input)` is `firstSuccess` over its providers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failover<I, A, E, R> {
  /** Names the group in the `failoverTimeMetric` (default: its providers' names, joined by commas). */
  readonly name: string
  readonly providers: ReadonlyArray<{ readonly name: string; readonly breaker: CircuitBreaker }>
  readonly run: (input: I) => Effect.Effect<Answer<A, E>, internal.AllProvidersFailed<E>, R>
  /**
   * The last failover time: from the first failure of a provider (since the group last
   * answered) to the group answering from a later provider than the one that answered
   * before; `None` before the first failover. Read by `Health.fromFailover`.
   */
  readonly failoverTime: Effect.Effect<Option.Option<Duration.Duration>>
}

/**
 * @since 0.1.0
 */
export declare namespace FailoverProvider {
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Input<P> = P extends FailoverProvider<infer I, infer _A, infer _E, infer _R> ? I : never
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Success<P> = P extends FailoverProvider<infer _I, infer A, infer _E, infer _R> ? A : never
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Error<P> = P extends FailoverProvider<infer _I, infer _A, infer E, infer _R> ? E : never
  /**
   * @since 0.1.0
   * @category type-level
   */
  export type Context<P> = P extends FailoverProvider<infer _I, infer _A, infer _E, infer R> ? R : never
}

/**
 * Makes, once, a breaker for each provider that has none (from the options given, or the
 * defaults), and returns a `Failover` whose `run(input)` tries the providers in order as
 * `firstSuccess` does, and measures its failover time (see `Failover.failoverTime` and
 * `failoverTimeMetric`; `options.name` names the group). Fails with `InvalidOptions` when the
 * list is empty, a provider is malformed or its breaker options are out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Fallback } from "effect-resilience"
 *
 * declare const complete: (provider: string, prompt: string) => Effect.Effect<string, Error>
 *
 * const program = Effect.gen(function*() {
 *   const failover = yield* Fallback.makeFailover([
 *     { name: "primary", breaker: { failureThreshold: 3 }, run: (prompt: string, breaker) =>
 *       breaker.protect(complete("primary", prompt)) },
 *     { name: "secondary", run: (prompt: string, breaker) => breaker.protect(complete("secondary", prompt)) }
 *   ])
 *   const answer = yield* failover.run("Hello")
 *   return answer.value
 * })
 * ```
 *
 * @since 0.1.0
 * @category failover
 */
export const makeFailover: <P extends NonEmptyReadonlyArray<FailoverProvider<any, any, any, any>>>(
  providers: P,
  options?: { readonly name?: string | undefined }
) => Effect.Effect<
  Failover<
    FailoverProvider.Input<P[number]>,
    FailoverProvider.Success<P[number]>,
    FailoverProvider.Error<P[number]>,
    FailoverProvider.Context<P[number]>
  >,
  InvalidOptions
> = internal.makeFailover

// -----------------------------------------------------------------------------
// hedge
// -----------------------------------------------------------------------------

/**
 * The options of `hedge`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HedgeOptions<E = unknown> {
  /** How long the latest attempt may run before another one starts (a finite duration >= 0; required). */
  readonly delay: Duration.DurationInput
  /** Attempts started at most, the first included (an integer >= 1, default 2). */
  readonly maxAttempts?: number | undefined
  /**
   * Which failures start the next attempt at once. A failure it refuses ends the hedge
   * with that failure, interrupting the other attempts (default: every failure hedges).
   */
  readonly when?: ((error: E) => boolean) | undefined
}

/**
 * Hedged attempts: runs the effect, and when the latest attempt has not finished after
 * `delay` (or has failed) starts another one alongside it, up to `maxAttempts` attempts.
 * The first success wins and every other attempt is interrupted (their finalizers have run
 * when the hedge returns). When every attempt fails, fails with the last failure. Only for
 * effects that are safe to run more than once at the same time. In a trace, each attempt is a
 * child span (`resilience.hedge.attempt`) of the caller's, and each hedge started an event.
 * Throws `InvalidOptions` naming the field when an option is out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Fallback } from "effect-resilience"
 *
 * declare const search: Effect.Effect<ReadonlyArray<string>, Error>
 *
 * // A second request when the first has not answered within 200 millis, a third after 400.
 * const program = search.pipe(Fallback.hedge({ delay: "200 millis", maxAttempts: 3 }))
 * ```
 *
 * @since 0.1.0
 * @category hedging
 */
export const hedge: {
  <E>(options: HedgeOptions<NoInfer<E>>): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: HedgeOptions<E>): Effect.Effect<A, E, R>
} = internal.hedge

// -----------------------------------------------------------------------------
// ExecutionPlan
// -----------------------------------------------------------------------------

/**
 * The breaker of the `ExecutionPlan` step that provides the current context, set by `step`
 * and read by `withPlan`.
 *
 * @since 0.1.0
 * @category execution plans
 */
export const PlanBreaker: typeof internal.PlanBreaker = internal.PlanBreaker

/**
 * @since 0.1.0
 * @category execution plans
 */
export type PlanBreaker = internal.PlanBreaker

/**
 * The options of `step`: those of an `ExecutionPlan` step, plus the step's `breaker`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StepOptions<ROut, E, RIn, In = unknown, WE = never, WR = never, SR = never> {
  /** The Layer this step runs the effect with. Built for each attempt, never while the breaker is open. */
  readonly provide: Layer.Layer<ROut, E, RIn>
  /**
   * The step's breaker: the step is skipped at once (its Layer not built, the effect not
   * run) while it is `Open` or `ForcedOpen`, and each attempt runs through `breaker.protect`
   * under `withPlan`, which decides each half-open call.
   */
  readonly breaker?: CircuitBreaker | undefined
  /** Attempts of this step (an integer >= 1; default 1, or as many as `schedule` allows). */
  readonly attempts?: number | undefined
  /** Delays between this step's attempts, fed each failure (the previous step's included). */
  readonly schedule?: Schedule.Schedule<any, In | CircuitBreakerOpen, SR> | undefined
  /** Whether to try (again) after this failure; a rejection by the step's own breaker never is. */
  readonly while?: ((error: In | CircuitBreakerOpen) => boolean | Effect.Effect<boolean, WE, WR>) | undefined
}

/**
 * A breaker-aware `ExecutionPlan` step, made by `step`, to pass to `ExecutionPlan.make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Step<ROut, E, RIn, In = unknown, WE = never, WR = never, SR = never> {
  readonly provide: Layer.Layer<ROut | PlanBreaker, E | CircuitBreakerOpen, RIn>
  readonly attempts?: number | undefined
  readonly schedule?: Schedule.Schedule<any, In | CircuitBreakerOpen, SR> | undefined
  readonly while: (error: In | CircuitBreakerOpen) => Effect.Effect<boolean, WE, WR>
}

/**
 * Makes an `ExecutionPlan` step guarded by a breaker: while the breaker is open the step
 * fails at once with `CircuitBreakerOpen` (its Layer is not built, nothing waits) and the
 * plan moves to the next step; otherwise the Layer is built and, under `withPlan`, each
 * attempt runs through `breaker.protect`, so the breaker learns from it (and a half-open
 * breaker that turns an attempt away moves the plan on as well).
 * Throws `InvalidOptions` naming the field when an option is invalid.
 *
 * @example
 * ```ts
 * import { Context, Effect, ExecutionPlan, Layer } from "effect"
 * import { CircuitBreaker, Fallback } from "effect-resilience"
 *
 * class Llm extends Context.Tag("Llm")<Llm, {
 *   readonly complete: (prompt: string) => Effect.Effect<string, Error>
 * }>() {}
 * declare const primary: Layer.Layer<Llm>
 * declare const secondary: Layer.Layer<Llm>
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "primary", failureThreshold: 3 })
 *   const plan = ExecutionPlan.make(
 *     Fallback.step({ provide: primary, breaker, attempts: 2 }),
 *     Fallback.step({ provide: secondary })
 *   )
 *   return yield* Effect.flatMap(Llm, (llm) => llm.complete("Hello")).pipe(Fallback.withPlan(plan))
 * })
 * ```
 *
 * @since 0.1.0
 * @category execution plans
 */
export const step: <ROut, E, RIn, In = unknown, WE = never, WR = never, SR = never>(
  options: StepOptions<ROut, E, RIn, In, WE, WR, SR>
) => Step<ROut, E, RIn, In, WE, WR, SR> = internal.step

/**
 * Runs an effect with an `ExecutionPlan` (`Effect.withExecutionPlan`), each attempt through
 * the breaker of the step that provides it (see `step`); steps without a breaker run as
 * they would with `Effect.withExecutionPlan`. Fails with the last step's failure when the
 * plan is exhausted.
 *
 * @example
 * ```ts
 * import { Context, Effect, ExecutionPlan, Layer } from "effect"
 * import { CircuitBreaker, Fallback } from "effect-resilience"
 *
 * class Store extends Context.Tag("Store")<Store, {
 *   readonly get: (key: string) => Effect.Effect<string, Error>
 * }>() {}
 * declare const redis: Layer.Layer<Store>
 * declare const memory: Layer.Layer<Store>
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ name: "redis" })
 *   const plan = ExecutionPlan.make(Fallback.step({ provide: redis, breaker }), Fallback.step({ provide: memory }))
 *   return yield* Effect.flatMap(Store, (store) => store.get("user:1")).pipe(Fallback.withPlan(plan))
 * })
 * ```
 *
 * @since 0.1.0
 * @category execution plans
 */
export const withPlan: {
  <Provides, Input, PlanE, PlanR>(
    plan: ExecutionPlan.ExecutionPlan<{ provides: Provides; input: Input; error: PlanE; requirements: PlanR }>
  ): <A, E extends Input, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PlanE | CircuitBreakerOpen, Exclude<R, Provides> | PlanR>
  <A, E extends Input, R, Provides, Input, PlanE, PlanR>(
    self: Effect.Effect<A, E, R>,
    plan: ExecutionPlan.ExecutionPlan<{ provides: Provides; input: Input; error: PlanE; requirements: PlanR }>
  ): Effect.Effect<A, E | PlanE | CircuitBreakerOpen, Exclude<R, Provides> | PlanR>
} = internal.withPlan

/**
 * The histogram of failover times in seconds (from a provider going down to its group
 * answering from the next provider), tagged `group` (the failover's `name`).
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Fallback } from "effect-resilience"
 *
 * const seen = Metric.value(Fallback.failoverTimeMetric.pipe(Metric.tagged("group", "llm")))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const failoverTimeMetric: Metric.Metric.Histogram<number> = internal.failoverTimeHistogram
