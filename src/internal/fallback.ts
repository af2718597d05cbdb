import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as ExecutionPlan from "effect/ExecutionPlan"
import type * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import type { CircuitBreaker, State as BreakerState } from "../CircuitBreaker.js"
import { CircuitBreakerOpen, isCircuitBreaker, make as makeBreaker } from "../CircuitBreaker.js"
import type * as Fallback from "../Fallback.js"
import { InvalidOptions } from "../InvalidOptions.js"
import * as options from "./options.js"
import * as tracing from "./tracing.js"

// -----------------------------------------------------------------------------
// to / orElse
// -----------------------------------------------------------------------------

const isFallbackWhen = (value: unknown): value is { readonly when?: ((error: any) => boolean) | undefined } =>
  value === undefined || (typeof value === "object" && value !== null)

const whenOf = (module: string, input: unknown): ((error: unknown) => boolean) | undefined => {
  if (!isFallbackWhen(input)) {
    throw new InvalidOptions({ module, field: "options", expected: "an object such as { when }", received: input })
  }
  const when = input?.when
  if (when === undefined) return undefined
  if (typeof when !== "function") {
    throw new InvalidOptions({ module, field: "when", expected: "a predicate on the error", received: when })
  }
  return when
}

/** Records a fallback taken on the caller's span, with the type of the failure it replaces, and runs it. */
const taken = <A, E, R>(error: unknown, fallback: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  tracing.eventThen("resilience.fallback", () => ({
    "resilience.policy": "fallback",
    "resilience.outcome": "taken",
    "error.type": tracing.errorType(error)
  }), fallback)

/** @internal */
export const to = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R, B>(
    self: Effect.Effect<A, E, R>,
    value: B,
    input?: { readonly when?: ((error: E) => boolean) | undefined }
  ): Effect.Effect<A | B, E, R> => {
    const when = whenOf("Fallback.to", input)
    const fallback = Effect.succeed(value)
    const recover = (error: E) => taken(error, () => fallback)
    return when === undefined ? Effect.catchAll(self, recover) : Effect.catchIf(self, when, recover)
  }
) as any

/** @internal */
export const orElse = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R, A2, E2, R2>(
    self: Effect.Effect<A, E, R>,
    f: (reason: E) => Effect.Effect<A2, E2, R2>,
    input?: { readonly when?: ((error: E) => boolean) | undefined }
  ): Effect.Effect<A | A2, E | E2, R | R2> => {
    if (typeof f !== "function") {
      throw new InvalidOptions({
        module: "Fallback.orElse",
        field: "fallback",
        expected: "a function from the failure reason to an effect",
        received: f
      })
    }
    const when = whenOf("Fallback.orElse", input)
    const recover = (error: E) => taken(error, () => f(error))
    return when === undefined ? Effect.catchAll(self, recover) : Effect.catchIf(self, when, recover)
  }
) as any

// -----------------------------------------------------------------------------
// firstSuccess
// -----------------------------------------------------------------------------

/**
 * No provider answered: one entry per provider, in the order they were tried.
 *
 * @internal
 */
export class AllProvidersFailed<E> extends Data.TaggedError("AllProvidersFailed")<{
  readonly failures: ReadonlyArray<Fallback.ProviderFailure<E>>
}> {
  override get message(): string {
    const parts = this.failures.map((failure) =>
      failure._tag === "Skipped"
        ? `${failure.provider}: skipped (${failure.rejection.message})`
        : `${failure.provider}: ${describeError(failure.error)}`
    )
    return `all ${this.failures.length} providers failed: ${parts.join("; ")}`
  }
}

const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message !== "") return message
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return String(error)
}

/**
 * Whether a breaker in `state` turns every call away. Only then is a provider (or a plan
 * step) skipped on a read, without starting it: a half-open breaker decides call by call
 * (probe permits, `recoveryFactor`), and its count only moves when calls reach it, so those
 * calls go through the provider's `protect`, which admits them or turns them away.
 */
const rejectsEverything = (state: BreakerState): boolean => state === "Open" || state === "ForcedOpen"

/**
 * The rejection a protected call would get now from a breaker that is `Open` or
 * `ForcedOpen`, built from the breaker's public reads (taking no permit, recording nothing).
 */
const rejectionOf = (breaker: CircuitBreaker, state: BreakerState): Effect.Effect<CircuitBreakerOpen> =>
  Effect.map(breaker.retryAfter, (retryAfter) =>
    new CircuitBreakerOpen({
      breaker: breaker.name,
      retryAfter,
      reason: state === "ForcedOpen" ? "ForcedOpen" : "Open"
    }))

const MAX_DEPTH = 5

const isRejection = (u: object): u is CircuitBreakerOpen =>
  (u as { readonly _tag?: unknown })._tag === "CircuitBreakerOpen"

/** The rejection by `breaker` that `error` is, or is caused by. */
const rejectionBy = (breaker: CircuitBreaker, error: unknown): CircuitBreakerOpen | undefined => {
  let current = error
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (typeof current !== "object" || current === null) return undefined
    if (isRejection(current) && current.breaker === breaker.name) return current
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}

const validateProviders = (
  module: string,
  providers: unknown,
  breakerOptionsAllowed: boolean
): ReadonlyArray<{ readonly name: string; readonly breaker?: unknown }> => {
  if (!Array.isArray(providers) || providers.length === 0) {
    throw new InvalidOptions({ module, field: "providers", expected: "a non-empty array", received: providers })
  }
  providers.forEach((provider: unknown, index) => {
    if (typeof provider !== "object" || provider === null) {
      throw new InvalidOptions({
        module,
        field: `providers[${index}]`,
        expected: "an object { name, run, breaker? }",
        received: provider
      })
    }
    const { breaker, name } = provider as Record<string, unknown>
    const field = `providers[${index}].name`
    const checked = options.field(module, field, name, options.nonEmptyString, undefined)
    if (Either.isLeft(checked)) throw checked.left
    if (checked.right === undefined) {
      throw new InvalidOptions({ module, field, expected: options.nonEmptyString.expected, received: name })
    }
    const breakerOk = breaker === undefined || isCircuitBreaker(breaker) ||
      (breakerOptionsAllowed && typeof breaker === "object" && breaker !== null)
    if (!breakerOk) {
      throw new InvalidOptions({
        module,
        field: `providers[${index}].breaker`,
        expected: breakerOptionsAllowed ? "a CircuitBreaker or CircuitBreaker options" : "a CircuitBreaker",
        received: breaker
      })
    }
  })
  return providers
}

/** Records on the caller's span a provider skipped (its breaker open) or failed. */
const providerEvent = <E>(failure: Fallback.ProviderFailure<E>): Effect.Effect<void> =>
  tracing.event("resilience.failover.provider", () =>
    failure._tag === "Skipped"
      ? {
        "resilience.policy": "failover",
        "resilience.name": failure.provider,
        "resilience.outcome": "skipped",
        "error.type": failure.rejection._tag,
        "resilience.reason": failure.rejection.reason
      }
      : {
        "resilience.policy": "failover",
        "resilience.name": failure.provider,
        "resilience.outcome": "failed",
        "error.type": tracing.errorType(failure.error)
      })

/** @internal */
export const firstSuccess = <A, E, R>(
  providers: ReadonlyArray<Fallback.Provider<A, E, R>>
): Effect.Effect<Fallback.Answer<A, E>, AllProvidersFailed<E>, R> => {
  validateProviders("Fallback.firstSuccess", providers, false)
  providers.forEach((provider, index) => {
    if (!Effect.isEffect(provider.run)) {
      throw new InvalidOptions({
        module: "Fallback.firstSuccess",
        field: `providers[${index}].run`,
        expected: "an Effect",
        received: provider.run
      })
    }
  })
  return Effect.suspend(() => {
    const failures: Array<Fallback.ProviderFailure<E>> = []
    const next = (index: number): Effect.Effect<Fallback.Answer<A, E>, AllProvidersFailed<E>, R> => {
      if (index === providers.length) {
        return Effect.zipRight(
          tracing.event("resilience.failover", () => ({
            "resilience.policy": "failover",
            "resilience.outcome": "all_failed",
            "resilience.attempt": providers.length
          })),
          Effect.fail(new AllProvidersFailed({ failures }))
        )
      }
      const provider = providers[index]
      const breaker = provider.breaker
      const attempt = Effect.matchEffect(provider.run, {
        onFailure: (error) => {
          // Turned away by its own breaker inside `run`: a skip, not a failure of the provider.
          const rejection = breaker === undefined ? undefined : rejectionBy(breaker, error)
          const failure: Fallback.ProviderFailure<E> = rejection === undefined
            ? { _tag: "Failed", provider: provider.name, error }
            : { _tag: "Skipped", provider: provider.name, rejection }
          failures.push(failure)
          return Effect.zipRight(providerEvent(failure), next(index + 1))
        },
        onSuccess: (value) =>
          failures.length === 0
            ? Effect.succeed({ value, provider: provider.name, failures })
            : Effect.as(
              tracing.event("resilience.failover", () => ({
                "resilience.policy": "failover",
                "resilience.name": provider.name,
                "resilience.outcome": "answered",
                "resilience.attempt": index + 1
              })),
              { value, provider: provider.name, failures }
            )
      })
      if (breaker === undefined) return attempt
      return Effect.flatMap(breaker.state, (state) =>
        rejectsEverything(state)
          ? Effect.flatMap(rejectionOf(breaker, state), (rejection) => {
            const failure: Fallback.ProviderFailure<E> = { _tag: "Skipped", provider: provider.name, rejection }
            failures.push(failure)
            return Effect.zipRight(providerEvent(failure), next(index + 1))
          })
          : attempt)
    }
    return next(0)
  })
}

/** @internal */
export const failoverTimeHistogram = Metric.histogram(
  "effect_resilience_failover_seconds",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 14 }),
  "Time from a provider of a failover group going down to the group answering from the next provider, tagged group"
)

/**
 * Measures a group's failovers: from the first failure of a provider since the group last
 * answered, to the group answering from a provider after the one that answered before (a
 * provider skipped with its breaker already open went down no later than that answer).
 */
const failoverClock = (group: string) => {
  const histogram = Metric.tagged(failoverTimeHistogram, "group", group)
  let answeredBy = 0
  let downSince: number | undefined = undefined
  let last: Option.Option<Duration.Duration> = Option.none()
  const failed = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.sync(() => {
      if (downSince === undefined) downSince = now
    }))
  const answered = (index: number) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const from = downSince
      const moved = index > answeredBy
      answeredBy = index
      downSince = undefined
      if (!moved) return Effect.void
      const millis = Math.max(0, now - (from ?? now))
      last = Option.some(Duration.millis(millis))
      return Metric.update(histogram, millis / 1000)
    })
  return { failed, answered, last: Effect.sync(() => last) }
}

/** @internal */
export const makeFailover = <I, A, E, R>(
  input: ReadonlyArray<Fallback.FailoverProvider<I, A, E, R>>,
  failoverOptions?: { readonly name?: string | undefined }
): Effect.Effect<Fallback.Failover<I, A, E, R>, InvalidOptions> =>
  Effect.suspend(() => {
    const module = "Fallback.makeFailover"
    try {
      validateProviders(module, input, true)
    } catch (error) {
      if (error instanceof InvalidOptions) return Effect.fail(error)
      throw error
    }
    for (let index = 0; index < input.length; index++) {
      if (typeof input[index].run !== "function") {
        return Effect.fail(
          new InvalidOptions({
            module,
            field: `providers[${index}].run`,
            expected: "a function (input, breaker) => Effect",
            received: input[index].run
          })
        )
      }
    }
    const name = failoverOptions?.name ?? input.map((provider) => provider.name).join(",")
    if (typeof name !== "string" || name.trim() === "") {
      return Effect.fail(new InvalidOptions({ module, field: "name", expected: "a non-empty string", received: name }))
    }
    const clock = failoverClock(name)
    return Effect.map(
      Effect.forEach(input, (provider) => {
        const given = provider.breaker
        const breaker = isCircuitBreaker(given)
          ? Effect.succeed(given)
          : makeBreaker({ ...given, name: provider.name })
        return Effect.map(breaker, (breaker) => ({ name: provider.name, breaker, run: provider.run }))
      }),
      (made): Fallback.Failover<I, A, E, R> => ({
        name,
        providers: made.map(({ breaker, name }) => ({ name, breaker })),
        failoverTime: clock.last,
        run: (value: I) =>
          firstSuccess(
            made.map(({ breaker, name, run }) => ({
              name,
              breaker,
              run: Effect.tapError(run(value, breaker), () => clock.failed)
            }))
          ).pipe(
            Effect.tap((answer) =>
              clock.answered(Math.max(0, made.findIndex((provider) => provider.name === answer.provider)))
            )
          )
      })
    )
  })

// -----------------------------------------------------------------------------
// hedge
// -----------------------------------------------------------------------------

interface HedgeConfig {
  readonly delay: Duration.Duration
  readonly maxAttempts: number
  readonly when: ((error: any) => boolean) | undefined
}

const validateHedge = (input: Fallback.HedgeOptions<any>): HedgeConfig => {
  const module = "Fallback.hedge"
  if (typeof input !== "object" || input === null) {
    throw new InvalidOptions({
      module,
      field: "options",
      expected: "an object { delay, maxAttempts }",
      received: input
    })
  }
  // Duration.decode reads a negative number as zero: refuse it rather than hedge at once.
  if (input.delay === undefined || (typeof input.delay === "number" && !(input.delay >= 0))) {
    throw new InvalidOptions({
      module,
      field: "delay",
      expected: "a finite non-negative duration",
      received: input.delay
    })
  }
  const delay = options.duration(module, "delay", input.delay, Duration.zero, { positive: false, finite: true })
  if (Either.isLeft(delay)) throw delay.left
  const maxAttempts = options.field(module, "maxAttempts", input.maxAttempts, options.integerAtLeast(1), 2)
  if (Either.isLeft(maxAttempts)) throw maxAttempts.left
  if (input.when !== undefined && typeof input.when !== "function") {
    throw new InvalidOptions({ module, field: "when", expected: "a predicate on the error", received: input.when })
  }
  return { delay: delay.right, maxAttempts: maxAttempts.right, when: input.when }
}

/**
 * Attempts run in their own fibers of a `FiberSet` held by the hedge's scope: when the
 * first success (or the final failure) completes `result`, closing the scope interrupts
 * every attempt still running and waits for their finalizers.
 */
const runHedge = <A, E, R>(self: Effect.Effect<A, E, R>, config: HedgeConfig): Effect.Effect<A, E, R> =>
  Effect.scoped(Effect.gen(function*() {
    const result = yield* Deferred.make<A, E>()
    const fibers = yield* FiberSet.make<void, never>()
    let started = 0
    let failed = 0
    let finished = false

    const finish = (exit: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        finished = true
        return Deferred.complete(result, exit)
      })

    const onExit = (exit: Exit.Exit<A, E>): Effect.Effect<void, never, R> => {
      if (finished) return Effect.void
      if (exit._tag === "Success") return finish(Effect.succeed(exit.value))
      const failure = Cause.failureOrCause(exit.cause)
      // Defects and interruptions are not failures to hedge against.
      if (Either.isRight(failure)) return finish(Effect.failCause(exit.cause))
      failed++
      if (config.when !== undefined && !config.when(failure.left)) return finish(Effect.failCause(exit.cause))
      if (started < config.maxAttempts) return start
      return failed === started ? finish(Effect.failCause(exit.cause)) : Effect.void
    }

    const delayMillis = Duration.toMillis(config.delay)
    const hedged = (attempt: number) =>
      tracing.event("resilience.hedge.started", () => ({
        "resilience.policy": "hedge",
        "resilience.outcome": "started",
        "resilience.attempt": attempt,
        "resilience.delay_ms": delayMillis
      }))

    const start: Effect.Effect<void, never, R> = Effect.suspend(() => {
      if (finished || started >= config.maxAttempts) return Effect.void
      const attempt = ++started
      const traced = tracing.childSpan(self, "resilience.hedge.attempt", () => ({
        "resilience.policy": "hedge",
        "resilience.attempt": attempt
      }))
      const running = FiberSet.run(fibers, Effect.flatMap(Effect.exit(traced), onExit))
      if (attempt === config.maxAttempts) return running
      // Hedge when this attempt is still the latest one after `delay`.
      const timer = Effect.zipRight(
        Effect.sleep(config.delay),
        Effect.suspend(() =>
          started === attempt && !finished ? Effect.zipRight(hedged(attempt + 1), start) : Effect.void
        )
      )
      return Effect.zipRight(running, FiberSet.run(fibers, timer))
    })

    yield* start
    return yield* Deferred.await(result)
  }))

/** @internal */
export const hedge = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(self: Effect.Effect<A, E, R>, input: Fallback.HedgeOptions<E>): Effect.Effect<A, E, R> => {
    const config = validateHedge(input)
    return runHedge(self, config)
  }
) as any

// -----------------------------------------------------------------------------
// ExecutionPlan
// -----------------------------------------------------------------------------

/**
 * The breaker of the plan step that provides the current context.
 *
 * @internal
 */
export class PlanBreaker extends Context.Tag("effect-resilience/Fallback/PlanBreaker")<PlanBreaker, CircuitBreaker>() {}

const isRejectionBy = (breaker: CircuitBreaker, error: unknown): boolean =>
  typeof error === "object" && error !== null && isRejection(error) && error.breaker === breaker.name

/** @internal */
export const step = <ROut, E, RIn, In, WE, WR, SR>(
  input: Fallback.StepOptions<ROut, E, RIn, In, WE, WR, SR>
): Fallback.Step<ROut, E, RIn, In, WE, WR, SR> => {
  const module = "Fallback.step"
  if (typeof input !== "object" || input === null || !Layer.isLayer(input.provide)) {
    throw new InvalidOptions({
      module,
      field: "provide",
      expected: "a Layer",
      received: typeof input === "object" && input !== null ? input.provide : input
    })
  }
  if (input.breaker !== undefined && !isCircuitBreaker(input.breaker)) {
    throw new InvalidOptions({ module, field: "breaker", expected: "a CircuitBreaker", received: input.breaker })
  }
  const attempts = options.field(module, "attempts", input.attempts, options.integerAtLeast(1), undefined)
  if (Either.isLeft(attempts)) throw attempts.left
  if (input.while !== undefined && typeof input.while !== "function") {
    throw new InvalidOptions({ module, field: "while", expected: "a predicate on the error", received: input.while })
  }
  const breaker = input.breaker
  const userWhile = input.while
  const check = (error: In | CircuitBreakerOpen): Effect.Effect<boolean, WE, WR> => {
    // A step whose own breaker turned it away is not retried: the plan moves on at once.
    if (breaker !== undefined && isRejectionBy(breaker, error)) return Effect.succeed(false)
    if (userWhile === undefined) return Effect.succeed(true)
    const decided = userWhile(error as In)
    return typeof decided === "boolean" ? Effect.succeed(decided) : decided
  }
  const provide: Layer.Layer<ROut | PlanBreaker, E | CircuitBreakerOpen, RIn> = breaker === undefined
    ? input.provide
    : Layer.unwrapEffect(
      Effect.flatMap(
        breaker.state,
        (state): Effect.Effect<Layer.Layer<ROut | PlanBreaker, E | CircuitBreakerOpen, RIn>> =>
          rejectsEverything(state)
            ? Effect.map(rejectionOf(breaker, state), (rejection) => Layer.fail(rejection))
            // Not built while the breaker is open; half-open, `protect` admits or turns the call away.
            : Effect.succeed(Layer.merge(input.provide, Layer.succeed(PlanBreaker, breaker)))
      )
    )
  return {
    provide,
    ...(attempts.right === undefined ? {} : { attempts: attempts.right }),
    ...(input.schedule === undefined ? {} : { schedule: input.schedule }),
    while: check
  } as Fallback.Step<ROut, E, RIn, In, WE, WR, SR>
}

/**
 * Runs `self` through the breaker of the step that provides its context, if any.
 *
 * @internal
 */
export const protectByStep = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitBreakerOpen, R> =>
  Effect.flatMap(Effect.serviceOption(PlanBreaker), (breaker) =>
    Option.isSome(breaker) ? breaker.value.protect(self) : self)

/** @internal */
export const withPlan = dual(
  2,
  <A, E, R, Provides, Input, PlanE, PlanR>(
    self: Effect.Effect<A, E, R>,
    plan: ExecutionPlan.ExecutionPlan<{ provides: Provides; input: Input; error: PlanE; requirements: PlanR }>
  ) => Effect.withExecutionPlan(protectByStep(self) as Effect.Effect<A, any, R>, plan)
) as any
