/**
 * Retries as Effect `Schedule`s: exponential backoff with jitter, retries by error class,
 * `Retry-After` honoured, and retry budgets that keep a fleet of callers from turning an
 * outage into a retry storm.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as internal from "./internal/retry.js"
import * as internalAfter from "./internal/retryAfter.js"
import * as internalBudget from "./internal/retryBudget.js"
import * as internalClassify from "./internal/retryClassify.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * What an error says about retrying:
 *
 * - `Transient`: a blip (connection reset, timeout, 5xx): retry at once, then briefly.
 * - `Degraded`: the dependency is overloaded (429, Redis OOM): retry with backoff and jitter.
 * - `Persistent`: it will take a while (DNS failure, Redis loading): retry with long delays.
 * - `Fatal`: retrying cannot help (4xx, parse or config errors): never retry.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorClass = "Transient" | "Degraded" | "Persistent" | "Fatal"

/**
 * Decides the class of an error.
 *
 * @since 0.1.0
 * @category models
 */
export type Classifier<E = unknown> = (error: E) => ErrorClass

/**
 * How delays are spread: `full` draws uniformly in `[0, exponential delay)`; `decorrelated`
 * draws in `[base, previous delay * factor]`; `none` uses the exponential delay as is.
 *
 * @since 0.1.0
 * @category models
 */
export type Jitter = "full" | "decorrelated" | "none"

/**
 * The options of `backoff`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackoffOptions {
  /** The first delay (default 100 millis). */
  readonly base?: Duration.DurationInput | undefined
  /** Each delay is the previous one times this (>= 1, default 2). */
  readonly factor?: number | undefined
  /** No delay is longer than this (>= base, default 30 seconds). */
  readonly max?: Duration.DurationInput | undefined
  /** How delays are randomised, drawn from Effect's `Random` (default `"full"`). */
  readonly jitter?: Jitter | undefined
  /** Retries at most (an integer >= 0 or `Infinity`, the default). */
  readonly maxRetries?: number | undefined
  /**
   * No retry is scheduled to start later than this after the first failure
   * (default: no limit).
   */
  readonly maxElapsed?: Duration.DurationInput | undefined
}

/**
 * An exponential backoff with jitter, as a `Schedule` whose output is the delay. Delays are
 * capped at `max` (and never overflow, whatever the attempt); jitter is drawn from Effect's
 * `Random`, so a seeded or fixed `Random` makes it deterministic. Throws `InvalidOptions`
 * naming the field when an option is out of range.
 *
 * Defaults: base 100 millis, factor 2, max 30 seconds, full jitter, no retry or time limit.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-resilience"
 *
 * const schedule = Retry.backoff({ base: "200 millis", max: "5 seconds", maxRetries: 5 })
 * const program = Effect.fail("boom").pipe(Effect.retry(schedule))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const backoff: (options?: BackoffOptions) => Schedule.Schedule<Duration.Duration> = internal.backoff

/**
 * The default classifier, which follows an error's `cause` chain (and the `error` of an
 * `UnknownException`) until an error says what it is:
 *
 * - `Transient`: Node connection errors (`ECONNREFUSED`, `ECONNRESET`, `EPIPE`, `ETIMEDOUT`,
 *   `EHOSTUNREACH`, ...), timeouts (`TimeoutError` of `Timeout`, Effect's `TimeoutException`),
 *   HTTP 5xx, 408 and 425, an `HttpClientError` transport failure, `CircuitBreakerOpen`
 *   (which `policy` does not retry unless `waitOutOpenBreaker`, and then never before its
 *   `retryAfter`), PostgreSQL connection and serialization errors.
 * - `Degraded`: HTTP 429, Redis `OOM` and `BUSY`, `RateLimitExceeded`, `BulkheadFull`,
 *   `EMFILE`; and any error it does not know.
 * - `Persistent`: `ENOTFOUND`, Redis `LOADING`, `MASTERDOWN`, `READONLY`.
 * - `Fatal`: other HTTP 4xx, `ParseError`, `SyntaxError`, `ConfigError`, `InvalidOptions`, a
 *   response body that does not decode, PostgreSQL data and constraint errors.
 *
 * The HTTP status is read from `status`, `statusCode` or `response.status` (as on an
 * `@effect/platform` `ResponseError`).
 *
 * @example
 * ```ts
 * import { Retry } from "effect-resilience"
 *
 * Retry.classify({ status: 503 }) // "Transient"
 * Retry.classify(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })) // "Transient"
 * Retry.classify({ status: 404 }) // "Fatal"
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classify: (error: unknown) => ErrorClass = internalClassify.classify

/**
 * A classifier that asks `rule` first and, when it returns `None`, `fallback` (default:
 * `classify`).
 *
 * @example
 * ```ts
 * import { Option } from "effect"
 * import { Retry } from "effect-resilience"
 *
 * class QuotaExhausted {
 *   readonly _tag = "QuotaExhausted"
 * }
 *
 * const classifier = Retry.classifyWith((error) =>
 *   error instanceof QuotaExhausted ? Option.some("Persistent" as const) : Option.none()
 * )
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyWith: <E = unknown>(
  rule: (error: E) => Option.Option<ErrorClass>,
  fallback?: Classifier<E>
) => Classifier<E> = internalClassify.classifyWith

/**
 * Parses a `Retry-After` header value, delay-seconds (`"120"`) or an HTTP-date
 * (`"Wed, 21 Oct 2015 07:28:00 GMT"`), into the wait from `now` (epoch millis). A date in the
 * past gives zero; anything else gives `None`.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-resilience"
 *
 * Retry.parseRetryAfter("120", Date.now()) // Option.some(Duration.seconds(120))
 * ```
 *
 * @since 0.1.0
 * @category retry-after
 */
export const parseRetryAfter: (header: string, now: number) => Option.Option<Duration.Duration> =
  internalAfter.parseRetryAfter

/**
 * The wait an error asks for, as a policy reads it: a `retryAfter` field (a `Duration`, a
 * `DurationInput` with numbers as milliseconds, a `Retry-After` value or a `Date`), else a
 * `retry-after` header on the error or its `response`, else the same on its `cause` chain.
 * An infinite wait (a breaker forced open) means "never".
 *
 * @example
 * ```ts
 * import { Retry } from "effect-resilience"
 *
 * const error = { status: 429, response: { status: 429, headers: { "retry-after": "5" } } }
 * Retry.retryAfter(error, Date.now()) // Option.some(Duration.seconds(5))
 * ```
 *
 * @since 0.1.0
 * @category retry-after
 */
export const retryAfter: (error: unknown, now: number) => Option.Option<Duration.Duration> = internal.retryAfter

/**
 * The classes a policy may retry.
 *
 * @since 0.1.0
 * @category models
 */
export type RetriedClass = Exclude<ErrorClass, "Fatal">

/**
 * The schedules `policy` uses when none is given:
 *
 * - `Transient`: 2 immediate retries, then 3 backoffs from 100 millis (full jitter, at most 2 seconds).
 * - `Degraded`: 5 backoffs from 1 second, factor 2, full jitter, at most 30 seconds.
 * - `Persistent`: 3 backoffs from 10 seconds, factor 2, full jitter, at most 2 minutes.
 *
 * @since 0.1.0
 * @category policies
 */
export const defaultSchedules: { readonly [K in RetriedClass]: Schedule.Schedule<unknown> } =
  internal.defaultSchedules

/**
 * Options of `budget`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetOptions {
  /** Tags the refused-retries metric (`budget=<name>`; default `"default"`). */
  readonly name?: string | undefined
  /** Retries allowed per call over the window (>= 0, default 0.2: one retry per five calls). */
  readonly ratio?: number | undefined
  /** Retries allowed per second whatever the traffic, so a quiet caller can retry (default 10). */
  readonly minPerSecond?: number | undefined
  /** The sliding window calls and retries are counted over (default 10 seconds, in 10 buckets). */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * What a budget holds now.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetStats {
  /** Calls (first attempts) in the window. */
  readonly calls: number
  /** Retries allowed in the window. */
  readonly retries: number
  /** Retries that would be allowed now. */
  readonly available: number
  /** Retries refused since the budget was made. */
  readonly refused: number
}

/**
 * @since 0.1.0
 * @category type ids
 */
export const RetryBudgetTypeId: unique symbol = internalBudget.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type RetryBudgetTypeId = typeof RetryBudgetTypeId

/**
 * A retry budget, shared by the callers of one dependency. Each call deposits; each retry
 * withdraws, and is allowed only while the window's retries stay within
 * `ratio * calls + minPerSecond * window seconds`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryBudget {
  readonly [RetryBudgetTypeId]: RetryBudgetTypeId
  readonly name: string
  readonly ratio: number
  readonly minPerSecond: number
  readonly window: Duration.Duration
  /** Records a call. */
  readonly deposit: Effect.Effect<void>
  /** Takes one retry: `false` when refused (counted in `refused` and the metric). */
  readonly withdraw: Effect.Effect<boolean>
  readonly stats: Effect.Effect<BudgetStats>
}

/**
 * Makes a retry budget. Retries it refuses are counted in the counter
 * `effect_resilience_retry_budget_refused_total` tagged `budget=<name>`, plus the tags the
 * calling fiber carries (`Effect.tagMetrics`). Fails with `InvalidOptions` naming the field
 * when an option is out of range.
 *
 * Defaults: ratio 0.2, minPerSecond 10, window 10 seconds (as Finagle's `RetryBudget`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Retry.budget({ name: "payments", ratio: 0.1, minPerSecond: 1 })
 *   const retrying = Retry.policy({ budget })
 *   return yield* retrying(Effect.succeed("paid"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category budgets
 */
export const budget: (options?: BudgetOptions) => Effect.Effect<RetryBudget, InvalidOptions> = internalBudget.make

/**
 * Retries an effect with `schedule` while `budget` allows: the call deposits once, each
 * retry withdraws, and a refused retry fails with the last error. Each retry, and the end of
 * the retries, is an event on the caller's span (`resilience.retry.*`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* Retry.budget({ ratio: 0.2 })
 *   return yield* Effect.succeed(1).pipe(
 *     Retry.withBudget({ budget, schedule: Retry.backoff({ maxRetries: 3 }) })
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 * @category budgets
 */
export const withBudget: {
  <Out, E, R2>(
    options: { readonly budget: RetryBudget; readonly schedule: Schedule.Schedule<Out, NoInfer<E>, R2> }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | R2>
  <A, E, R, Out, R2>(
    self: Effect.Effect<A, E, R>,
    options: { readonly budget: RetryBudget; readonly schedule: Schedule.Schedule<Out, NoInfer<E>, R2> }
  ): Effect.Effect<A, E, R | R2>
} = internal.withBudget

/**
 * Options of `policy`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyOptions<E = unknown, R = never> {
  /** Decides each error's class (default `classify`). `Fatal` errors are never retried. */
  readonly classify?: Classifier<E> | undefined
  /**
   * The schedule of each class; classes not given keep `defaultSchedules`. Each class keeps
   * its own count. Pass `Schedule.stop` to never retry a class.
   */
  readonly schedules?: { readonly [K in RetriedClass]?: Schedule.Schedule<unknown, E, R> | undefined } | undefined
  /** Retries are paid for from this budget (each call deposits once). */
  readonly budget?: RetryBudget | undefined
  /**
   * An error asking to wait longer than this (`retryAfter`, `Retry-After`) fails at once
   * rather than wait (default: no limit; an infinite wait is never retried).
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /**
   * What a breaker's rejection (`CircuitBreakerOpen`, or an error caused by one) does. By
   * default (`false`) it ends the retries at once, with no wait: an open breaker means "do
   * not wait for this dependency", so the caller reaches its fallback now. `true` opts in to
   * waiting out the rejection's `retryAfter` (within `maxRetryAfter`; a breaker forced open
   * is never waited for) and retrying on its class's schedule, for a caller that would rather
   * wait for the dependency than answer without it.
   */
  readonly waitOutOpenBreaker?: boolean | undefined
}

/**
 * A retry policy by error class, as a function from effect to effect: each failure is
 * classified, `Fatal` ones fail at once, the others are retried on their class's schedule,
 * never sooner than the `retryAfter` they carry (the delay is the larger of the two). A
 * breaker's rejection (`CircuitBreakerOpen`) ends the retries at once, without waiting,
 * unless `waitOutOpenBreaker` is set. The success path costs one `catchAll`. Each retry
 * (attempt, delay, error type and class), and why the retries ended, is an event on the
 * caller's span (`resilience.retry.*`). Throws `InvalidOptions` naming the field when an
 * option is invalid.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Retry } from "effect-resilience"
 *
 * const retrying = Retry.policy({
 *   schedules: { Transient: Schedule.recurs(3) }
 * })
 *
 * const program = retrying(Effect.fail({ status: 503 }))
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const policy: <E = unknown, R = never>(
  options?: PolicyOptions<E, R>
) => <A, E2 extends E, R2>(self: Effect.Effect<A, E2, R2>) => Effect.Effect<A, E2, R | R2> = internal.policy
