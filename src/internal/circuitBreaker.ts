import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import type * as MutableRef from "effect/MutableRef"
import * as Option from "effect/Option"
import { hasProperty } from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CB from "../CircuitBreaker.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { CircuitBreakerOpen, unsafeMakeWithoutStack } from "./circuitBreakerOpen.js"
import * as Machine from "./circuitBreakerState.js"
import * as Options from "./options.js"
import * as tracing from "./tracing.js"
import * as Window from "./window.js"
import * as HealthRegistry from "./healthRegistry.js"
import { counter } from "./metric.js"

/** @internal */
export const TypeId: CB.TypeId = Symbol.for("effect-resilience/CircuitBreaker") as CB.TypeId

/** @internal */
export const isCircuitBreaker = (u: unknown): u is CB.CircuitBreaker => hasProperty(u, TypeId)

// -----------------------------------------------------------------------------
// Metrics
// -----------------------------------------------------------------------------

/** @internal */
export const stateGauge = Metric.gauge("effect_resilience_circuit_breaker_state", {
  description: "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed"
})
/** @internal */
export const callsCounter = counter(
  "effect_resilience_circuit_breaker_calls_total",
  "Calls through a circuit breaker, by outcome: success, failure, rejected, ignored, interrupted, slow"
)
/** @internal */
export const stateChangesCounter = counter(
  "effect_resilience_circuit_breaker_state_changes_total",
  "Circuit breaker state changes, by target state"
)
/** @internal */
export const durationHistogram = Metric.histogram(
  "effect_resilience_circuit_breaker_call_duration_seconds",
  // From a local cache's half millisecond to a slow provider's minute, in 1-2.5-5 steps.
  MetricBoundaries.fromIterable([
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
  ]),
  "Duration of calls run through a circuit breaker, in seconds"
)

/**
 * The value of a state on the state gauge: the usual 0 closed, 1 open, 2 half-open, then
 * the forced states, so that an alert on 1 means a breaker that opened by itself.
 *
 * @internal
 */
export const stateValue = (state: CB.State): number => {
  switch (state) {
    case "Closed":
      return 0
    case "Open":
      return 1
    case "HalfOpen":
      return 2
    case "ForcedOpen":
      return 3
    case "ForcedClosed":
      return 4
  }
}

type Outcome = Machine.Outcome | "rejected" | "slow"

/**
 * The label arrays of one breaker's metric updates for one set of ambient tags (the calling
 * fiber's `Effect.tagMetrics`): the breaker's own labels, the update's own label (`outcome`,
 * `to`), then the ambient ones, as `Metric.tagged` + ambient tags would give.
 */
interface LabelSet {
  readonly base: ReadonlyArray<MetricLabel.MetricLabel>
  readonly outcome: Readonly<Record<Outcome, ReadonlyArray<MetricLabel.MetricLabel>>>
  readonly to: Readonly<Record<CB.State, ReadonlyArray<MetricLabel.MetricLabel>>>
}

const outcomes: ReadonlyArray<Outcome> = ["success", "failure", "ignored", "interrupted", "rejected", "slow"]
const states: ReadonlyArray<CB.State> = ["Closed", "Open", "HalfOpen", "ForcedOpen", "ForcedClosed"]

const makeLabelSet = (
  own: ReadonlyArray<MetricLabel.MetricLabel>,
  ambient: ReadonlyArray<MetricLabel.MetricLabel>
): LabelSet => {
  const join = (extra: ReadonlyArray<MetricLabel.MetricLabel>) => Arr.union([...own, ...extra], ambient)
  return {
    base: join([]),
    outcome: Object.fromEntries(
      outcomes.map((outcome) => [outcome, join([MetricLabel.make("outcome", outcome)])])
    ) as unknown as Record<Outcome, ReadonlyArray<MetricLabel.MetricLabel>>,
    to: Object.fromEntries(
      states.map((state) => [state, join([MetricLabel.make("to", state)])])
    ) as unknown as Record<CB.State, ReadonlyArray<MetricLabel.MetricLabel>>
  }
}

/**
 * Label sets of breakers that are not tagged with their name, shared by all of them: Effect
 * keeps a registry entry per distinct label set for the life of the process, so breakers
 * that come and go by the thousand add nothing to it. Keyed by the ambient array (Effect's
 * own hook cache is keyed by array identity too), weakly, so they go when the tags go.
 */
const untagged = makeLabelSet([], [])
const untaggedByAmbient = new WeakMap<ReadonlyArray<MetricLabel.MetricLabel>, LabelSet>()

/** Where a breaker finds the label set of a metric update made by a fiber. */
class Labels {
  private lastAmbient: ReadonlyArray<MetricLabel.MetricLabel> | undefined = undefined
  private lastSet: LabelSet | undefined = undefined
  constructor(readonly own: ReadonlyArray<MetricLabel.MetricLabel>) {}

  of(ambient: ReadonlyArray<MetricLabel.MetricLabel>): LabelSet {
    if (this.own.length === 0) {
      if (ambient.length === 0) return untagged
      let found = untaggedByAmbient.get(ambient)
      if (found === undefined) {
        found = makeLabelSet([], ambient)
        untaggedByAmbient.set(ambient, found)
      }
      return found
    }
    if (ambient !== this.lastAmbient || this.lastSet === undefined) {
      this.lastAmbient = ambient
      this.lastSet = makeLabelSet(this.own, ambient)
    }
    return this.lastSet
  }

  ofFiber(fiber: Fiber.RuntimeFiber<unknown, unknown>): LabelSet {
    return this.of(fiber.getFiberRef(FiberRef.currentMetricLabels))
  }
}

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

const MODULE = "CircuitBreaker"

interface Resolved<E> {
  readonly name: string
  readonly config: Machine.Config
  readonly openSchedule: Schedule.Schedule<unknown, number> | undefined
  readonly resetTimeout: Duration.Duration
  readonly isFailure: ((error: E) => boolean) | undefined
  /** ms; undefined when callers wait for their probe. */
  readonly probePatience: number | undefined
  readonly tagMetricsWithName: boolean
}

/** @internal */
export const resolveOptions = <E>(input: CB.CircuitBreaker.Options<E>): Either.Either<Resolved<E>, InvalidOptions> =>
  Either.gen(function*() {
    const options = yield* Options.object(MODULE, input, true, "an object of options with a name")
    if (!hasProperty(options, "name")) {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "name", expected: "a non-empty string", received: undefined })
      )
    }
    const name = yield* Options.field(MODULE, "name", options.name, Options.nonEmptyString, "")
    const failureThreshold = yield* Options.field(
      MODULE,
      "failureThreshold",
      options.failureThreshold,
      Options.integerAtLeastOrInfinity(1),
      5
    )
    const successThreshold = yield* Options.field(
      MODULE,
      "successThreshold",
      options.successThreshold,
      Options.integerAtLeast(1),
      3
    )
    const halfOpenMaxCalls = yield* Options.field(
      MODULE,
      "halfOpenMaxCalls",
      options.halfOpenMaxCalls,
      Options.integerAtLeast(1),
      1
    )
    const minimumCalls = yield* Options.field(
      MODULE,
      "minimumCalls",
      options.minimumCalls,
      Options.integerAtLeast(1),
      10
    )
    const recoveryFactor = yield* Options.field(
      MODULE,
      "recoveryFactor",
      options.recoveryFactor,
      Options.fraction({ exclusiveMin: true }),
      1
    )
    const failureRateThreshold = yield* Options.field(
      MODULE,
      "failureRateThreshold",
      options.failureRateThreshold,
      Options.fraction({ exclusiveMin: true }),
      undefined
    )
    const slowCallRateThreshold = yield* Options.field(
      MODULE,
      "slowCallRateThreshold",
      options.slowCallRateThreshold,
      Options.fraction({ exclusiveMin: true }),
      undefined
    )
    const slowCallDuration = options.slowCallDuration === undefined
      ? undefined
      : yield* Options.duration(MODULE, "slowCallDuration", options.slowCallDuration, Duration.zero)
    if (slowCallRateThreshold !== undefined && slowCallDuration === undefined) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "slowCallRateThreshold",
          expected: "slowCallDuration to be set as well",
          received: slowCallRateThreshold
        })
      )
    }
    if (options.resetTimeout !== undefined && options.openSchedule !== undefined) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "resetTimeout, openSchedule",
          expected: "at most one of them",
          received: "both"
        })
      )
    }
    const resetTimeout = yield* Options.duration(MODULE, "resetTimeout", options.resetTimeout, Duration.seconds(60))
    if (options.openSchedule !== undefined && !Schedule.isSchedule(options.openSchedule)) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "openSchedule",
          expected: "a Schedule",
          received: options.openSchedule
        })
      )
    }
    if (options.isFailure !== undefined && typeof options.isFailure !== "function") {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "isFailure", expected: "a function", received: options.isFailure })
      )
    }
    const window = yield* resolveWindow(options.window)
    const probePatience = options.probePatience === undefined
      ? undefined
      : Duration.toMillis(
        yield* Options.duration(MODULE, "probePatience", options.probePatience, Duration.zero, {
          positive: false,
          finite: true
        })
      )
    if (options.tagMetricsWithName !== undefined && typeof options.tagMetricsWithName !== "boolean") {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "tagMetricsWithName",
          expected: "a boolean",
          received: options.tagMetricsWithName
        })
      )
    }
    return {
      name,
      resetTimeout,
      probePatience,
      tagMetricsWithName: options.tagMetricsWithName === true,
      openSchedule: options.openSchedule,
      isFailure: options.isFailure,
      config: {
        failureThreshold,
        successThreshold,
        halfOpenMaxCalls,
        minimumCalls,
        recoveryFactor,
        failureRateThreshold,
        slowCallRateThreshold,
        slowCallMillis: slowCallDuration === undefined ? undefined : Duration.toMillis(slowCallDuration),
        window
      }
    }
  })

const resolveWindow = (window: CB.Window | undefined): Either.Either<Machine.Config["window"], InvalidOptions> =>
  Either.gen(function*() {
    if (window === undefined) return { _tag: "Time" as const, durationMillis: 300_000, buckets: 10 }
    switch (hasProperty(window, "_tag") ? window._tag : undefined) {
      case "Count": {
        const size = yield* Options.field(
          MODULE,
          "window.size",
          (window as { size?: unknown }).size,
          Options.integerAtLeast(1),
          100
        )
        return { _tag: "Count" as const, size }
      }
      case "Time": {
        const time = window as { duration?: unknown; buckets?: unknown }
        const duration = yield* Options.duration(MODULE, "window.duration", time.duration, Duration.minutes(5))
        const buckets = yield* Options.field(MODULE, "window.buckets", time.buckets, Options.integerAtLeast(1), 10)
        return { _tag: "Time" as const, durationMillis: Duration.toMillis(duration), buckets }
      }
      default:
        return yield* Either.left(
          new InvalidOptions({
            module: MODULE,
            field: "window",
            expected: `{ _tag: "Count", size } or { _tag: "Time", duration, buckets }`,
            received: window
          })
        )
    }
  })

// -----------------------------------------------------------------------------
// The breaker
// -----------------------------------------------------------------------------

const messageOf = (error: unknown): string => {
  if (hasProperty(error, "message") && typeof error.message === "string") {
    return hasProperty(error, "_tag") && typeof error._tag === "string"
      ? `${error._tag}: ${error.message}`
      : error.message
  }
  try {
    return String(error)
  } catch {
    return "unknown error"
  }
}

const toDuration = (millis: number): Duration.Duration =>
  millis === Number.POSITIVE_INFINITY ? Duration.infinity : Duration.millis(Math.max(0, millis))

const rejection = (breaker: string, reason: CircuitBreakerOpen["reason"], retryAfter: number): CircuitBreakerOpen =>
  unsafeMakeWithoutStack(breaker, toDuration(retryAfter), reason)

/**
 * The synchronous cell behind the breaker's `Ref`: the fused steps of `protect` and of the
 * reads apply the pure transitions to the Ref's state inside one fiber step, which is as
 * atomic as `Ref.modify` (nothing else runs between reading and writing it).
 */
interface Cell<A> {
  readonly get: () => A
  readonly set: (value: A) => void
}

const MutableRefTypeId = Symbol.for("effect/MutableRef")

const cellOf = <A>(ref: Ref.Ref<A>): Cell<A> => {
  // Effect 3's Ref keeps its value in a MutableRef; any other Ref is driven through its API.
  const inner = (ref as unknown as { readonly ref?: unknown }).ref
  if (hasProperty(inner, MutableRefTypeId) && hasProperty(inner, "current")) {
    const mutable = inner as unknown as MutableRef.MutableRef<A>
    return {
      get: () => mutable.current,
      set: (value) => {
        mutable.current = value
      }
    }
  }
  return { get: () => Effect.runSync(Ref.get(ref)), set: (value) => Effect.runSync(Ref.set(ref, value)) }
}

/** The clock of a fiber, read from its default services as `Effect.clockWith` does, without a step. */
const clockOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Clock.Clock =>
  Context.get(fiber.currentDefaultServices, Clock.Clock)

/** The clock of the default services, whose `sleep` is a plain timer. */
const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/**
 * The exit of `fiber` if it ends within `millis`, else `undefined` (the fiber keeps running).
 * On the live clock it is one timer and an observer of the fiber: `Effect.timeoutTo` would
 * race two more fibers and interrupt the loser, which costs a probe's caller about a
 * millisecond more than its patience. Any other clock (`TestClock`) gets `timeoutTo`. No
 * patience at all waits for nothing: the fiber's exit if it has one already.
 */
const awaitAtMost = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  millis: number,
  clock: Clock.Clock
): Effect.Effect<Exit.Exit<A, E> | undefined> =>
  millis <= 0
    ? Effect.sync(() => fiber.unsafePoll() ?? undefined)
    : clock !== liveClock
    ? Effect.timeoutTo(Fiber.await(fiber), { duration: millis, onSuccess: (exit) => exit, onTimeout: () => undefined })
    : Effect.async<Exit.Exit<A, E> | undefined>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined = undefined
      let settled = false
      const observer = (exit: Exit.Exit<A, E>) => {
        if (settled) return
        settled = true
        if (timer !== undefined) clearTimeout(timer)
        resume(Effect.succeed(exit))
      }
      fiber.addObserver(observer)
      if (!settled) {
        timer = setTimeout(() => {
          if (settled) return
          settled = true
          fiber.removeObserver(observer)
          resume(Effect.succeed(undefined))
        }, millis)
      }
      return Effect.sync(() => {
        settled = true
        if (timer !== undefined) clearTimeout(timer)
        fiber.removeObserver(observer)
      })
    })

class CircuitBreakerImpl<E> implements CB.CircuitBreaker {
  readonly [TypeId]: CB.TypeId = TypeId
  readonly name: string
  readonly config: Machine.Config
  readonly cell: Cell<Machine.State>
  /** Made by the first subscriber: a breaker nobody listens to publishes nothing. */
  pubsub: PubSub.PubSub<Machine.Transition> | undefined = undefined

  constructor(
    readonly resolved: Resolved<E>,
    readonly ref: Ref.Ref<Machine.State>,
    readonly labels: Labels
  ) {
    this.name = resolved.name
    this.config = resolved.config
    this.cell = cellOf(ref)
  }

  /**
   * One fiber step decides: the clock is read from the fiber's services and the decision
   * applied to the state in the same step. A call admitted while Closed takes no permit: it
   * runs restored to the caller's interruptibility inside an uninterruptible region, and its
   * outcome is recorded synchronously in the continuation, so the bookkeeping survives an
   * interruption anywhere between the start of the call and its record. A rejection while open
   * is decided and counted in that one step. Anything else (half-open probes, which hold a
   * permit, and lazy transitions, whose events must be published) is decided inside a mask.
   */
  protect = <A, E2, R>(effect: Effect.Effect<A, E2, R>): Effect.Effect<A, E2 | CircuitBreakerOpen, R> =>
    Effect.withFiberRuntime<A, E2 | CircuitBreakerOpen, R>((fiber, status) => {
      const clock = clockOf(fiber)
      const startedAt = clock.unsafeCurrentTimeMillis()
      const state = this.cell.get()
      if (state.isolations === 0 && (state.status === "Closed" || state.status === "ForcedClosed")) {
        const call = RuntimeFlags.interruption(status.runtimeFlags) ? Effect.interruptible(effect) : effect
        return Effect.uninterruptible(this.run(fiber, clock, call, state.epoch, -1, startedAt))
      }
      const retryAfter = Machine.rejectInPlace(state, startedAt)
      if (retryAfter >= 0) {
        callsCounter.unsafeUpdate(1, this.labels.ofFiber(fiber).outcome.rejected)
        const reason = retryAfter === Number.POSITIVE_INFINITY ? "ForcedOpen" : "Open"
        const error = rejection(this.name, reason, retryAfter)
        tracing.unsafeBreakerRejected(fiber, error)
        return Effect.fail(error)
      }
      return Effect.uninterruptibleMask((restore) =>
        Effect.withFiberRuntime<A, E2 | CircuitBreakerOpen, R>((masked) => this.admit(masked, restore, effect))
      )
    })

  admit<A, E2, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
    effect: Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E2 | CircuitBreakerOpen, R> {
    const clock = clockOf(fiber)
    const startedAt = clock.unsafeCurrentTimeMillis()
    const state = this.cell.get()
    const [decision, next, effects] = Machine.acquire(state, startedAt, this.config)
    if (next !== state) this.cell.set(next)
    if (decision._tag === "Rejected") {
      const labels = this.labels.ofFiber(fiber)
      callsCounter.unsafeUpdate(1, labels.outcome.rejected)
      const error = rejection(this.name, decision.reason, decision.retryAfter)
      tracing.unsafeBreakerRejected(fiber, error)
      return effects === noEffects
        ? Effect.fail(error)
        : Effect.zipRight(this.apply(effects, labels), Effect.fail(error))
    }
    const patience = this.resolved.probePatience
    const admitted = decision.probe >= 0 && patience !== undefined
      ? this.runPatiently(fiber, clock, restore, effect, decision.epoch, decision.probe, startedAt, patience)
      : this.run(fiber, clock, restore(effect), decision.epoch, decision.probe, startedAt)
    return effects === noEffects ? admitted : Effect.zipRight(this.apply(effects, this.labels.ofFiber(fiber)), admitted)
  }

  /** Runs an admitted call (already restored) and records its outcome in the continuation. */
  run<A, E2, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    clock: Clock.Clock,
    call: Effect.Effect<A, E2, R>,
    epoch: number,
    probe: number,
    startedAt: number
  ): Effect.Effect<A, E2, R> {
    return Effect.matchCauseEffect(call, {
      onFailure: (cause) => {
        const effects = this.record(fiber, clock, epoch, probe, startedAt, cause)
        return effects === noEffects
          ? Effect.failCause(cause)
          : Effect.zipRight(this.apply(effects, this.labels.ofFiber(fiber)), Effect.failCause(cause))
      },
      onSuccess: (value) => {
        const effects = this.record(fiber, clock, epoch, probe, startedAt, undefined)
        return effects === noEffects
          ? Effect.succeed(value)
          : Effect.as(this.apply(effects, this.labels.ofFiber(fiber)), value)
      }
    })
  }

  /**
   * A half-open probe under `probePatience`: it runs in a daemon fiber, where its outcome is
   * recorded as any call's; its caller waits for it at most `patience`, then fails with
   * `ProbePending` and leaves it running. Interrupting the caller while it waits interrupts
   * the probe, which gives its permit back.
   */
  runPatiently<A, E2, R>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    clock: Clock.Clock,
    restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>,
    effect: Effect.Effect<A, E2, R>,
    epoch: number,
    probe: number,
    startedAt: number,
    patience: number
  ): Effect.Effect<A, E2 | CircuitBreakerOpen, R> {
    const probeRun = this.run(fiber, clock, restore(effect), epoch, probe, startedAt)
    const onTimeout = () =>
      Effect.withFiberRuntime<A, CircuitBreakerOpen>((waiting) => {
        const now = clockOf(waiting).unsafeCurrentTimeMillis()
        const current = Machine.observeAt(this.cell.get(), now)[0]
        const error = rejection(this.name, "ProbePending", Machine.retryAfter(current, now, this.config))
        tracing.unsafeBreakerRejected(waiting, error)
        return Effect.fail(error)
      })
    return Effect.flatMap(Effect.forkDaemon(probeRun), (child) =>
      Effect.onInterrupt(
        restore(Effect.map(
          awaitAtMost(child, patience, clock),
          (exit): Effect.Effect<A, E2 | CircuitBreakerOpen> => exit === undefined ? onTimeout() : exit
        )),
        () => Fiber.interrupt(child)
      ).pipe(Effect.flatten))
  }

  /** Records the outcome of a call that ended (`cause` undefined: it succeeded); returns what to apply. */
  record(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    clock: Clock.Clock,
    epoch: number,
    probe: number,
    startedAt: number,
    cause: Cause.Cause<unknown> | undefined
  ): Machine.Effects {
    const endedAt = clock.unsafeCurrentTimeMillis()
    const duration = endedAt - startedAt
    let outcome: Machine.Outcome
    let message = ""
    if (cause === undefined) {
      outcome = "success"
    } else {
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        if (this.resolved.isFailure === undefined || this.resolved.isFailure(failure.value as E)) {
          outcome = "failure"
          message = messageOf(failure.value)
        } else {
          outcome = "ignored"
        }
      } else if (Cause.isInterruptedOnly(cause)) {
        outcome = "interrupted"
      } else {
        outcome = "failure"
        const defect = Cause.dieOption(cause)
        message = Option.isSome(defect) ? `defect: ${messageOf(defect.value)}` : "defect"
      }
    }
    const labels = this.labels.ofFiber(fiber)
    callsCounter.unsafeUpdate(1, labels.outcome[outcome])
    if (outcome === "success" || outcome === "failure") {
      durationHistogram.unsafeUpdate(duration / 1000, labels.base)
      const slowCallMillis = this.config.slowCallMillis
      if (slowCallMillis !== undefined && duration >= slowCallMillis) callsCounter.unsafeUpdate(1, labels.outcome.slow)
    }
    const state = this.cell.get()
    if (Machine.recordClosedInPlace(state, epoch, outcome, endedAt, duration, message, this.config)) return noEffects
    const [, next, effects] = Machine.record(state, epoch, probe, outcome, endedAt, duration, message, this.config)
    this.cell.set(next)
    return effects
  }

  /** Publishes transitions, updates state metrics, logs, and steps the open schedule. */
  apply(effects: Machine.Effects, labels: LabelSet): Effect.Effect<void> {
    const events = effects.events
    const publish = events.length === 0 ? Effect.void : Effect.suspend(() => {
      for (const event of events) {
        stateGauge.unsafeUpdate(stateValue(event.to), labels.base)
        stateChangesCounter.unsafeUpdate(1, labels.to[event.to])
      }
      const logs = Effect.forEach(events, (event) =>
        Effect.logInfo(`circuit breaker "${this.name}": ${event.from} -> ${event.to} (${event.reason})`).pipe(
          Effect.annotateLogs({ breaker: this.name, from: event.from, to: event.to, reason: event.reason })
        ), { discard: true })
      // Read when publishing: a subscriber that arrived since the transition is told of it too
      // (and drops it if it came before its subscription).
      const traced = Effect.zipRight(tracing.breakerTransitions(this.name, events), logs)
      return this.pubsub === undefined ? traced : Effect.zipRight(PubSub.publishAll(this.pubsub, events), traced)
    })
    return effects.draw === undefined ? publish : Effect.zipRight(this.draw(effects.draw), publish)
  }

  /** Draws the next open duration from the schedule, for the opening the state now awaits. */
  draw(mode: "next" | "restart"): Effect.Effect<void> {
    const schedule = this.resolved.openSchedule
    if (schedule === undefined) return Effect.void
    return Effect.flatMap(Effect.zip(Ref.get(this.ref), Clock.currentTimeMillis), ([state, now]) => {
      const token = state.drawToken
      const from = mode === "restart" ? schedule.initial : state.scheduleState
      return Effect.flatMap(stepSchedule(schedule, now, state.opens + 1, from), (drawn) =>
        Option.isNone(drawn)
          // The schedule is done: the last duration stays.
          ? Effect.void
          : Ref.update(this.ref, (s) => Machine.setNextOpenDelay(s, token, drawn.value[0], drawn.value[1])))
    })
  }

  /**
   * A read may apply the lazy Open -> HalfOpen transition: like `protect`, it must not be
   * interrupted between the state update and the publication of the event, or subscribers
   * would wait for it forever.
   */
  read<A>(f: (state: Machine.State, now: number) => A): Effect.Effect<A> {
    return Effect.uninterruptible(Effect.withFiberRuntime((fiber) => {
      const now = clockOf(fiber).unsafeCurrentTimeMillis()
      const state = this.cell.get()
      const [observed, next, effects] = Machine.observeAt(state, now)
      if (next !== state) this.cell.set(next)
      const value = f(observed, now)
      return effects === noEffects
        ? Effect.succeed(value)
        : Effect.as(this.apply(effects, this.labels.ofFiber(fiber)), value)
    }))
  }

  command(command: Machine.Command): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.withFiberRuntime((fiber) => {
      const now = clockOf(fiber).unsafeCurrentTimeMillis()
      const [, next, effects] = Machine.command(this.cell.get(), command, now)
      this.cell.set(next)
      return effects === noEffects ? Effect.void : this.apply(effects, this.labels.ofFiber(fiber))
    }))
  }

  get state(): Effect.Effect<CB.State> {
    return this.read((state) => Machine.visible(state))
  }

  get isCallPermitted(): Effect.Effect<boolean> {
    return this.read((state, now) => Machine.isCallPermitted(state, now, this.config))
  }

  get retryAfter(): Effect.Effect<Duration.Duration> {
    return this.read((state, now) => toDuration(Machine.retryAfter(state, now, this.config)))
  }

  get metrics(): Effect.Effect<CB.Metrics> {
    return this.read((state, now) => metricsOf(state, now))
  }

  get changes(): Stream.Stream<CB.StateChange> {
    return Stream.unwrapScoped(this.subscribe)
  }

  get subscribe(): Effect.Effect<Stream.Stream<CB.StateChange>, never, Scope.Scope> {
    const name = this.name
    return Effect.gen(this, function*() {
      if (this.pubsub === undefined) {
        const made = yield* PubSub.unbounded<Machine.Transition>()
        // Another subscriber may have made one meanwhile: the first one made is kept.
        if (this.pubsub === undefined) this.pubsub = made
      }
      const subscription = yield* PubSub.subscribe(this.pubsub)
      // Events numbered below `start` were emitted before this subscriber existed.
      const start = this.cell.get().seq
      return inOrder(Stream.fromQueue(subscription), start).pipe(
        Stream.map((event): CB.StateChange => ({
          breaker: name,
          from: event.from,
          to: event.to,
          at: event.at,
          reason: event.reason
        }))
      )
    })
  }

  get forceOpen(): Effect.Effect<void> {
    return this.command("ForceOpen")
  }

  get forceClosed(): Effect.Effect<void> {
    return this.command("ForceClosed")
  }

  get reset(): Effect.Effect<void> {
    return this.command("Reset")
  }

  get halfOpen(): Effect.Effect<void> {
    return this.command("HealthCheckPassed")
  }

  get isolate(): Effect.Effect<void, never, Scope.Scope> {
    return Effect.acquireRelease(this.command("Isolate"), () => this.command("Release"))
  }
}

const noEffects = Machine.noEffects

/**
 * Restores the emission order of transitions: each fiber publishes after its `Ref.modify`,
 * and two fibers may publish in the other order; the sequence numbers given inside the
 * modify are the truth.
 */
const inOrder = (
  self: Stream.Stream<Machine.Transition>,
  start: number
): Stream.Stream<Machine.Transition> => {
  interface Acc {
    readonly expected: number
    readonly pending: ReadonlyMap<number, Machine.Transition>
  }
  const initial: Acc = { expected: start, pending: new Map() }
  return self.pipe(
    Stream.mapAccum(initial, (acc, event): readonly [Acc, ReadonlyArray<Machine.Transition>] => {
      if (event.seq < acc.expected) return [acc, []]
      const pending = new Map(acc.pending)
      pending.set(event.seq, event)
      const ready: Array<Machine.Transition> = []
      let expected = acc.expected
      for (let next = pending.get(expected); next !== undefined; next = pending.get(expected)) {
        ready.push(next)
        pending.delete(expected)
        expected++
      }
      return [{ expected, pending }, ready]
    }),
    Stream.flattenIterables
  )
}

const metricsOf = (state: Machine.State, now: number): CB.Metrics => {
  // The time window is read as of `now`: calls older than its duration are forgotten.
  const totals = Window.totals(state.window, now)
  const stats = state.stats
  return {
    state: Machine.visible(state),
    failureRate: totals.calls === 0 ? 0 : totals.failures / totals.calls,
    slowCallRate: totals.calls === 0 ? 0 : totals.slow / totals.calls,
    windowCalls: totals.calls,
    totalCalls: stats.total,
    successfulCalls: stats.successful,
    failedCalls: stats.failed,
    ignoredCalls: stats.ignored,
    interruptedCalls: stats.interrupted,
    rejectedCalls: stats.rejected,
    slowCalls: stats.slow,
    consecutiveFailures: stats.consecutiveFailures,
    consecutiveSuccesses: stats.consecutiveSuccesses,
    stateChanges: stats.stateChanges,
    probesInFlight: Machine.probesInFlight(state, now),
    timeInState: Duration.millis(Math.max(0, now - state.enteredAt)),
    openDuration: Duration.millis(state.status === "Open" || state.status === "HalfOpen"
      ? state.openDuration
      : state.nextOpenDelay),
    recentFailures: stats.recentFailures
  }
}


/**
 * Steps a schedule once at `now`: the delay its decision asks for, in ms, and its new state;
 * `None` when the schedule is done.
 */
const stepSchedule = (
  schedule: Schedule.Schedule<unknown, number>,
  now: number,
  input: number,
  state: unknown
): Effect.Effect<Option.Option<readonly [number, unknown]>> =>
  Effect.map(
    schedule.step(now, input, state),
    ([next, _out, decision]) =>
      ScheduleDecision.isDone(decision)
        ? Option.none()
        : Option.some([Math.max(0, ScheduleIntervals.start(decision.intervals) - now), next] as const)
  ).pipe(
    // A schedule that dies keeps the last duration rather than breaking the breaker.
    Effect.catchAllCause(() => Effect.succeed(Option.none()))
  )

const build = <E>(
  resolved: Resolved<E>,
  now: number,
  firstOpenDelay: number,
  scheduleState: unknown
): CB.CircuitBreaker => {
  const ref = Ref.unsafeMake(Machine.initial(resolved.config, now, firstOpenDelay, scheduleState))
  const own = resolved.tagMetricsWithName ? [MetricLabel.make("breaker", resolved.name)] : []
  const breaker = new CircuitBreakerImpl(resolved, ref, new Labels(own))
  // A breaker tagged with its name reports Closed from the start; an untagged one shares
  // its gauge and reports only its transitions.
  if (own.length > 0) stateGauge.unsafeUpdate(0, breaker.labels.of([]).base)
  return breaker
}

/**
 * One fiber step when no open schedule must be stepped: options checked, clock read, state
 * made. Breakers made per key come and go by the thousand.
 *
 * @internal
 */
export const make = <E = unknown>(
  options: CB.CircuitBreaker.Options<E>
): Effect.Effect<CB.CircuitBreaker, InvalidOptions> =>
  Effect.withFiberRuntime((fiber) => {
    const resolved = resolveOptions(options)
    if (Either.isLeft(resolved)) return Effect.fail(resolved.left)
    const now = clockOf(fiber).unsafeCurrentTimeMillis()
    // With a health registry in the context, the breaker registers itself (in the scope there).
    const registered = Option.isSome(Context.getOption(fiber.currentContext, HealthRegistry.Health))
      ? (breaker: CB.CircuitBreaker) =>
        Effect.as(HealthRegistry.registerIfPresent(breaker.name, HealthRegistry.breakerSource(breaker)), breaker)
      : Effect.succeed
    const schedule = resolved.right.openSchedule
    if (schedule === undefined) {
      return registered(build(resolved.right, now, Duration.toMillis(resolved.right.resetTimeout), undefined))
    }
    return Effect.flatMap(stepSchedule(schedule, now, 1, schedule.initial), (drawn) =>
      Option.isNone(drawn)
        ? Effect.fail(
          new InvalidOptions({
            module: MODULE,
            field: "openSchedule",
            expected: "a schedule that yields at least one delay",
            received: "a schedule that is done at once"
          })
        )
        : registered(build(resolved.right, now, drawn.value[0], drawn.value[1])))
  })

// -----------------------------------------------------------------------------
// Health checks
// -----------------------------------------------------------------------------

/** @internal */
export interface HealthCheckOptions<E, R> {
  readonly check: Effect.Effect<unknown, E, R>
  readonly interval: Duration.DurationInput
  readonly timeout?: Duration.DurationInput | undefined
}

const HEALTH_CHECK = "CircuitBreaker.withHealthCheck"

/** @internal */
export const withHealthCheck = dual<
  <E, R>(
    options: HealthCheckOptions<E, R>
  ) => (breaker: CB.CircuitBreaker) => Effect.Effect<void, InvalidOptions, R | Scope.Scope>,
  <E, R>(
    breaker: CB.CircuitBreaker,
    options: HealthCheckOptions<E, R>
  ) => Effect.Effect<void, InvalidOptions, R | Scope.Scope>
>(2, <E, R>(breaker: CB.CircuitBreaker, input: HealthCheckOptions<E, R>) =>
  Effect.gen(function*() {
    const options = yield* Options.object(HEALTH_CHECK, input, true, "an object with check and interval")
    if (!Effect.isEffect(options.check)) {
      return yield* new InvalidOptions({
        module: HEALTH_CHECK,
        field: "check",
        expected: "an Effect",
        received: options.check
      })
    }
    const interval = yield* Options.duration(HEALTH_CHECK, "interval", options.interval, Duration.zero)
    const timeout = yield* Options.duration(HEALTH_CHECK, "timeout", options.timeout, interval)
    if (Duration.greaterThan(timeout, interval)) {
      return yield* new InvalidOptions({
        module: HEALTH_CHECK,
        field: "timeout",
        expected: `a positive duration of at most the interval (${Duration.format(interval)})`,
        received: options.timeout
      })
    }
    // A check that does not answer within `timeout` has failed: a hanging check must not stop
    // the ones after it.
    const check = Effect.timeout(options.check, timeout)
    const tick = Effect.flatMap(breaker.state, (state) =>
      state === "Open"
        ? check.pipe(Effect.matchCauseEffect({ onFailure: () => Effect.void, onSuccess: () => breaker.halfOpen }))
        : Effect.void)
    yield* Effect.forkScoped(onTheClock(tick, Duration.toMillis(interval)))
  }))

/**
 * Runs `tick` at every multiple of `interval` after now, whatever each run takes: a run that
 * overruns its slot is followed by the next one at once, and missed slots are not made up.
 */
const onTheClock = <R>(tick: Effect.Effect<void, never, R>, interval: number): Effect.Effect<never, never, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (start) => {
    let next = start + interval
    return Effect.forever(Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (next < now) next = now
      const wait = next - now
      next += interval
      return wait === 0 ? tick : Effect.zipRight(Effect.sleep(wait), tick)
    }))
  })

// -----------------------------------------------------------------------------
// Config
// -----------------------------------------------------------------------------

/** "llm-openai" -> "LLM_OPENAI", "redisCache" -> "REDIS_CACHE". @internal */
export const constantCase = (name: string): string =>
  name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toUpperCase()

/** The variables `fromConfig` reads, after the name prefix, and how each is parsed. @internal */
export const configNames = {
  failureThreshold: "FAILURE_THRESHOLD",
  successThreshold: "SUCCESS_THRESHOLD",
  resetTimeout: "RESET_TIMEOUT",
  halfOpenMaxCalls: "HALF_OPEN_MAX_CALLS",
  failureRateThreshold: "FAILURE_RATE_THRESHOLD",
  minimumCalls: "MINIMUM_CALLS",
  windowSize: "WINDOW_SIZE",
  windowDuration: "WINDOW_DURATION",
  windowBuckets: "WINDOW_BUCKETS",
  slowCallDuration: "SLOW_CALL_DURATION",
  slowCallRateThreshold: "SLOW_CALL_RATE_THRESHOLD",
  recoveryFactor: "RECOVERY_FACTOR",
  probePatience: "PROBE_PATIENCE"
} as const

type ConfigKey = keyof typeof configNames

const durationKeys: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  "resetTimeout",
  "windowDuration",
  "slowCallDuration",
  "probePatience"
])

type EnvironmentOptions = Omit<CB.CircuitBreaker.Options, "name" | "isFailure">

/**
 * Every variable read as text, so that a value that does not parse is reported with the
 * text received and the variable it came from (a `Config.number` would read "" as 0 and
 * stop at the first of several bad values). Only the provider's own failures are ConfigErrors.
 */
const rawLibrary = (name: string): Config.Config<Record<ConfigKey, string | undefined>> =>
  Config.nested(
    Config.all(
      Object.fromEntries(
        (Object.keys(configNames) as Array<ConfigKey>).map((key) =>
          [key, Config.map(Config.option(Config.string(configNames[key])), Option.getOrUndefined)] as const
        )
      ) as Record<ConfigKey, Config.Config<string | undefined>>
    ),
    constantCase(name)
  )

/**
 * The seeds' names for two options, after the name prefix: `<NAME>_CIRCUIT_BREAKER_THRESHOLD`
 * and `<NAME>_CIRCUIT_BREAKER_TIMEOUT` (seconds when a bare number). The library's own name wins
 * when both are set. @internal
 */
export const seedConfigNames: Partial<Record<ConfigKey, string>> = {
  failureThreshold: "CIRCUIT_BREAKER_THRESHOLD",
  resetTimeout: "CIRCUIT_BREAKER_TIMEOUT"
}

/** The text of each option and the variable it was read from (the library's name first, then the seed's). */
interface RawEnvironment {
  readonly text: Record<ConfigKey, string | undefined>
  readonly variable: Record<ConfigKey, string>
  /** Options set under both names with different texts: the library's name was used. */
  readonly shadowed: ReadonlyArray<{ readonly used: string; readonly ignored: string }>
}

const rawConfig = (name: string): Config.Config<RawEnvironment> =>
  Config.map(
    Config.all([
      rawLibrary(name),
      Config.nested(
        Config.all(
          Object.fromEntries(
            Object.entries(seedConfigNames).map(([key, variable]) =>
              [key, Config.map(Config.option(Config.string(variable!)), Option.getOrUndefined)] as const
            )
          ) as Record<string, Config.Config<string | undefined>>
        ),
        constantCase(name)
      )
    ]),
    ([library, seed]) => {
      const prefix = constantCase(name)
      const text = { ...library }
      const variable = Object.fromEntries(
        (Object.keys(configNames) as Array<ConfigKey>).map((key) => [key, `${prefix}_${configNames[key]}`])
      ) as Record<ConfigKey, string>
      const shadowed: Array<{ readonly used: string; readonly ignored: string }> = []
      for (const [key, seedText] of Object.entries(seed) as Array<[ConfigKey, string | undefined]>) {
        if (seedText === undefined) continue
        const seedVariable = `${prefix}_${seedConfigNames[key]}`
        if (text[key] === undefined) {
          text[key] = seedText
          variable[key] = seedVariable
        } else if (text[key]!.trim() !== seedText.trim()) {
          shadowed.push({ used: variable[key], ignored: seedVariable })
        }
      }
      return { text, variable, shadowed }
    }
  )

const parseNumber = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  const value = Number(trimmed)
  return Number.isNaN(value) ? undefined : value
}

/**
 * A duration variable: a bare number is seconds ("30" is 30 seconds, "0.5" half a second);
 * a value with a unit ("500 millis", "2 minutes") is read as given. @internal
 */
export const parseDuration = (text: string): Duration.Duration | undefined => {
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  if (/^\+?(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) return Duration.millis(Number(trimmed) * 1000)
  return Option.getOrUndefined(Duration.decodeUnknown(trimmed))
}

/** Parses the variables that are set; every one that does not parse is named in one `InvalidOptions`. */
const parseEnvironment = (
  raw: RawEnvironment
): Either.Either<EnvironmentOptions, InvalidOptions> => {
  const values: Partial<Record<ConfigKey, number | Duration.Duration>> = {}
  const invalid: Array<{ readonly key: ConfigKey; readonly variable: string; readonly text: string }> = []
  for (const key of Object.keys(configNames) as Array<ConfigKey>) {
    const text = raw.text[key]
    if (text === undefined) continue
    const value = durationKeys.has(key) ? parseDuration(text) : parseNumber(text)
    if (value === undefined) invalid.push({ key, variable: raw.variable[key], text })
    else values[key] = value
  }
  if (invalid.length > 0) {
    const expected = (key: ConfigKey) =>
      durationKeys.has(key) ? `seconds, or a duration such as "500 millis"` : "a number"
    const kinds = new Set(invalid.map(({ key }) => expected(key)))
    return Either.left(
      new InvalidOptions({
        module: MODULE,
        field: invalid.map(({ key, variable }) => `${key} (${variable})`).join(", "),
        expected: kinds.size === 1
          ? [...kinds][0]!
          : invalid.map(({ key }) => `${expected(key)} for ${key}`).join(", "),
        received: Object.fromEntries(invalid.map(({ text, variable }) => [variable, text]))
      })
    )
  }
  const { windowBuckets, windowDuration, windowSize, ...rest } = values
  const window: CB.Window | undefined = windowSize !== undefined
    ? { _tag: "Count", size: windowSize as number }
    : windowDuration !== undefined || windowBuckets !== undefined
    ? {
      _tag: "Time",
      duration: (windowDuration as Duration.Duration | undefined) ?? Duration.minutes(5),
      buckets: windowBuckets as number | undefined
    }
    : undefined
  return Either.right((window === undefined ? rest : { ...rest, window }) as EnvironmentOptions)
}

/** @internal */
export const config = (name: string): Config.Config<EnvironmentOptions> =>
  Config.mapOrFail(rawConfig(name), (raw) =>
    Either.mapLeft(parseEnvironment(raw), (error) => ConfigError.InvalidData([constantCase(name)], error.message)))

const envName = (name: string, raw: RawEnvironment, field: string): string => {
  const key = field.split(".")[0] as ConfigKey
  if (key in raw.variable && raw.text[key] !== undefined) return raw.variable[key]
  const prefix = constantCase(name)
  const suffix = field.startsWith("window.") ?
    `WINDOW_${constantCase(field.slice("window.".length))}` :
    constantCase(field)
  return `${prefix}_${suffix}`
}

/**
 * The breaker options of the environment under `name`, over `defaults`; an option set under
 * both the library's and the seed's name takes the library's, with a warning naming both
 * variables (never their values). @internal
 */
export const environmentOptions = (
  name: string
): Effect.Effect<
  { readonly options: EnvironmentOptions; readonly raw: RawEnvironment },
  InvalidOptions | ConfigError.ConfigError
> =>
  Effect.flatMap(rawConfig(name), (raw) =>
    Effect.flatMap(parseEnvironment(raw), (options) =>
      raw.shadowed.length === 0 ? Effect.succeed({ options, raw }) : Effect.as(
        Effect.forEach(raw.shadowed, ({ ignored, used }) =>
          Effect.logWarning(`${used} and ${ignored} are both set and differ: ${used} is used`), { discard: true }),
        { options, raw }
      )))

/** Names the variable a refused value came from, when it came from the environment. @internal */
export const nameVariable = (
  name: string,
  environment: { readonly options: EnvironmentOptions; readonly raw: RawEnvironment },
  error: InvalidOptions
): InvalidOptions =>
  (environment.options as Record<string, unknown>)[error.field.split(".")[0]!] !== undefined
    ? new InvalidOptions({
      module: error.module,
      field: `${error.field} (${envName(name, environment.raw, error.field)})`,
      expected: error.expected,
      received: error.received
    })
    : error

/** @internal */
export const fromConfig = <E = unknown>(
  name: string,
  defaults?: Omit<CB.CircuitBreaker.Options<E>, "name">
): Effect.Effect<CB.CircuitBreaker, InvalidOptions | ConfigError.ConfigError> =>
  Effect.flatMap(environmentOptions(name), (environment) => {
    const options: CB.CircuitBreaker.Options<E> = { ...defaults, ...environment.options, name }
    return make(options).pipe(Effect.mapError((error) => nameVariable(name, environment, error)))
  })

/** @internal */
export { CircuitBreakerOpen }
