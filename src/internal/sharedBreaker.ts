import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as os from "node:os"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type * as Shared from "../CircuitBreaker/Redis.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { unsafeMakeWithoutStack } from "./circuitBreakerOpen.js"
import * as HealthRegistry from "./healthRegistry.js"
import * as options_ from "./options.js"
import * as decision from "./sharedBreakerScript.js"
import { type SharedStoreUnavailable, Store } from "./sharedBreakerStore.js"

const moduleName = "CircuitBreaker/Redis"

/** @internal */
export type SharedOptions = Shared.SharedOptions

/** @internal */
export type Options<E> = Shared.Options<E>

/** @internal */
export type SharedState = Shared.SharedState

/** @internal */
export type SharedCircuitBreaker = Shared.SharedCircuitBreaker

/** @internal */
export const sharedDefaults = {
  window: Duration.seconds(10),
  buckets: 10,
  failureRateThreshold: 0.5,
  minimumCalls: 10,
  quorum: 1,
  reportInterval: Duration.millis(100),
  syncInterval: Duration.seconds(1)
} as const

interface Validated {
  readonly windowMillis: number
  readonly buckets: number
  readonly failureRateThreshold: number
  readonly minimumCalls: number
  readonly quorum: number
  /** Undefined when the open durations are drawn from the breaker's `openSchedule`. */
  readonly openMillis: number | undefined
  /** Undefined when it follows the first open duration. */
  readonly leaseMillis: number | undefined
  readonly reportInterval: Duration.Duration
  readonly syncInterval: Duration.Duration
  readonly processId: string
  readonly halfOpenMaxCalls: number
  readonly successThreshold: number
}

const processIdCheck = options_.check(
  Schema.NonEmptyTrimmedString.pipe(Schema.pattern(/^\S+$/)),
  "a non-empty string without spaces"
)

let instances = 0

/**
 * The probe lease the current fiber runs under, if it runs a shared breaker's probe.
 *
 * @internal
 */
export interface Probe {
  readonly breaker: string
  readonly epoch: number
  readonly slot: number
}

/** @internal */
export const currentProbeRef: FiberRef.FiberRef<Option.Option<Probe>> = FiberRef.unsafeMake<Option.Option<Probe>>(
  Option.none()
)

/** @internal */
export const currentProbe: Effect.Effect<Option.Option<Probe>> = FiberRef.get(currentProbeRef)

/** @internal */
export const validate = <E>(options: Options<E>): Either.Either<Validated, InvalidOptions> =>
  Either.gen(function*() {
    const o = yield* options_.object<SharedOptions>(moduleName, options.shared, false)
    const field = (name: string) => `shared.${name}`
    const window = yield* options_.duration(moduleName, field("window"), o.window, sharedDefaults.window)
    const buckets = yield* options_.field(
      moduleName,
      field("buckets"),
      o.buckets,
      options_.integerAtLeast(1),
      sharedDefaults.buckets
    )
    const failureRateThreshold = yield* options_.field(
      moduleName,
      field("failureRateThreshold"),
      o.failureRateThreshold,
      options_.fraction({ exclusiveMin: true }),
      options.failureRateThreshold ?? sharedDefaults.failureRateThreshold
    )
    const minimumCalls = yield* options_.field(
      moduleName,
      field("minimumCalls"),
      o.minimumCalls,
      options_.integerAtLeast(1),
      options.minimumCalls ?? sharedDefaults.minimumCalls
    )
    const quorum = yield* options_.field(
      moduleName,
      field("quorum"),
      o.quorum,
      options_.integerAtLeast(1),
      sharedDefaults.quorum
    )
    const resetTimeout = yield* options_.duration(
      moduleName,
      "resetTimeout",
      options.resetTimeout,
      Duration.seconds(60)
    )
    const openDuration = yield* options_.duration(moduleName, field("openDuration"), o.openDuration, resetTimeout)
    const fromSchedule = options.openSchedule !== undefined && o.openDuration === undefined
    const probeLease = yield* options_.duration(moduleName, field("probeLease"), o.probeLease, openDuration)
    const toMillis = (duration: Duration.Duration) => Math.max(1, Math.round(Duration.toMillis(duration)))
    const reportInterval = yield* options_.duration(
      moduleName,
      field("reportInterval"),
      o.reportInterval,
      sharedDefaults.reportInterval
    )
    const syncInterval = yield* options_.duration(
      moduleName,
      field("syncInterval"),
      o.syncInterval,
      sharedDefaults.syncInterval
    )
    const processId = yield* options_.field(
      moduleName,
      field("processId"),
      o.processId,
      processIdCheck,
      `${os.hostname()}:${process.pid}:${++instances}`
    )
    return {
      windowMillis: Math.max(1, Math.round(Duration.toMillis(window))),
      buckets,
      failureRateThreshold,
      minimumCalls,
      quorum,
      openMillis: fromSchedule ? undefined : toMillis(openDuration),
      leaseMillis: o.probeLease === undefined && fromSchedule ? undefined : toMillis(probeLease),
      reportInterval,
      syncInterval,
      processId,
      halfOpenMaxCalls: options.halfOpenMaxCalls ?? 1,
      successThreshold: options.successThreshold ?? 3
    }
  })

type Outcome = "s" | "f" | "i"

/**
 * How many open durations of an `openSchedule` are drawn: the script uses the n-th for the
 * n-th consecutive opening, and the last one after that.
 *
 * @internal
 */
export const drawnOpenDurations = 32

/**
 * The first open durations of a schedule (its input is the number of the opening, 1-based),
 * drawn once, at time `now`, until the schedule ends.
 *
 * @internal
 */
export const drawOpenDurations = (
  schedule: Schedule.Schedule<unknown, number>,
  now: number
): Effect.Effect<ReadonlyArray<number>> =>
  Effect.gen(function*() {
    const drawn: Array<number> = []
    let state: unknown = schedule.initial
    for (let opening = 1; opening <= drawnOpenDurations; opening++) {
      const [next, _out, step] = yield* schedule.step(now, opening, state)
      if (ScheduleDecision.isDone(step)) break
      drawn.push(Math.max(1, Math.round(ScheduleIntervals.start(step.intervals) - now)))
      state = next
    }
    return drawn
  }).pipe(
    // A schedule that dies keeps what it drew.
    Effect.catchAllCause(() => Effect.succeed([]))
  )

const isOwnRejection = (error: unknown, name: string): boolean =>
  error instanceof CircuitBreaker.CircuitBreakerOpen && error.breaker === name

/**
 * A breaker whose decisions are shared on Redis by every process that uses its name, over a
 * local breaker made from the same options.
 *
 * - Closed: calls run through the local breaker; their outcomes are counted in memory and
 *   reported every `reportInterval` by a background fiber: no call waits on Redis.
 * - The script opens the shared state when the fleet's failure rate over the window trips
 *   and at least `quorum` processes failed; the opening is published (pub/sub), and every
 *   process also reads the state every `syncInterval`.
 * - Open: every process rejects at once until the open period ends (honoured even when Redis
 *   stops answering meanwhile).
 * - Half-open: a call asks Redis for a probe lease; only `halfOpenMaxCalls` leases exist per
 *   breaker, each expiring after `probeLease`. The probe's outcome goes back to the script,
 *   which reopens (failure) or closes (`successThreshold` successes).
 * - When Redis fails (refused, frozen, timed out), the process goes on with its local
 *   breaker until a read succeeds again.
 *
 * @internal
 */
export const make = <E = unknown>(
  options: Options<E>
): Effect.Effect<SharedCircuitBreaker, InvalidOptions, Store | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* Store
    const validated = yield* validate(options)
    // The local side reads the Clock of the fiber that made the breaker (a TestClock in tests):
    // open periods as this process holds them, lease back-offs, transition times, report and
    // sync intervals. The fleet's shared state keeps the Redis server's clock (`TIME` in the script).
    const clock = yield* Effect.clock
    const nowMillis = () => clock.unsafeCurrentTimeMillis()
    const { shared: _shared, ...localOptions } = options
    // The local breaker does not register itself with a Health registry: the shared breaker
    // does, below, so that Health reads the fleet's state and acts on it.
    const local = yield* CircuitBreaker.make<E>(localOptions).pipe(
      Effect.mapInputContext((context: Context.Context<never>) => Context.omit(HealthRegistry.Health)(context))
    )
    const name = local.name
    const key = `${store.keyPrefix}{${name}}`
    const channel = `${key}:events`
    const fibers = yield* FiberSet.make<unknown, never>()
    const fork = yield* FiberSet.runtime(fibers)<never>()
    const transitions = yield* PubSub.unbounded<CircuitBreaker.StateChange>()
    const isFailure = options.isFailure
    // The open durations the script picks from, decided by the process that opens: one, or the
    // first ones of the breaker's openSchedule (drawn once, here).
    const openDurations = validated.openMillis !== undefined
      ? [validated.openMillis]
      : yield* drawOpenDurations(options.openSchedule!, nowMillis())
    if (openDurations.length === 0) {
      return yield* new InvalidOptions({
        module: moduleName,
        field: "openSchedule",
        expected: "a schedule that yields at least one delay",
        received: "a schedule that is done at once"
      })
    }
    const openArgument = openDurations.join(",")
    const leaseMillis = validated.leaseMillis ?? openDurations[0]!
    // The script adds what remains of an open period to the key's time to live.
    const ttlMillis = validated.windowMillis + openDurations[0]! + leaseMillis + 60_000
    const baseArgs = (op: string): Array<string | number> => [
      op,
      validated.processId,
      validated.windowMillis,
      validated.buckets,
      validated.minimumCalls,
      validated.failureRateThreshold,
      validated.quorum,
      openArgument,
      validated.halfOpenMaxCalls,
      leaseMillis,
      validated.successThreshold,
      ttlMillis,
      channel
    ]

    // Plain mutable fields, read and written only on this process's single thread: the Closed
    // path reads the snapshot and bumps a counter, nothing more.
    let snapshot: decision.Snapshot = decision.initialSnapshot
    let healthy = false
    let pendingSuccesses = 0
    let pendingFailures = 0
    let sharedRejections = 0
    let probesGranted = 0
    let localProbes = 0
    let forced = false
    let isolations = 0
    // The state the stream last told of, and the local breaker's state as its own stream told it.
    let localState: CircuitBreaker.State = "Closed"
    let emitted: CircuitBreaker.State = "Closed"
    let localResets = 0

    const viewOf = (s: decision.Snapshot, now: number): CircuitBreaker.State | undefined =>
      s.status === "Closed"
        ? undefined
        : s.status === "Open" && now < s.openUntil
        ? "Open"
        : "HalfOpen"

    // The breaker's own state: forced or isolated, the local breaker decides; else a known
    // shared open period, a shared half-open period while Redis answers, or the local breaker.
    const combined = (now: number, localNow: CircuitBreaker.State): CircuitBreaker.State => {
      if (forced || isolations > 0 || localNow === "ForcedOpen" || localNow === "ForcedClosed") return localNow
      const view = viewOf(snapshot, now)
      if (view === "Open") return view
      if (view === "HalfOpen" && healthy) return view
      return localNow
    }

    const reasonFor = (from: CircuitBreaker.State, to: CircuitBreaker.State): CircuitBreaker.TransitionReason =>
      to === "Open"
        ? from === "HalfOpen" ? "ProbeFailed" : "FailureRate"
        : to === "HalfOpen"
        ? "OpenDurationElapsed"
        : from === "HalfOpen"
        ? "ProbesSucceeded"
        : "Reset"

    // One stream of the breaker's own state: a transition is told once, when the state it
    // reads changes, whichever side (local or shared) moved it.
    const observe = (now: number, reason?: CircuitBreaker.TransitionReason) => {
      const to = combined(now, localState)
      if (to === emitted) return
      const from = emitted
      emitted = to
      transitions.unsafeOffer({ breaker: name, from, to, at: now, reason: reason ?? reasonFor(from, to) })
    }

    // The end of a shared open period is a transition of its own (to half-open): a timer on
    // this process's Clock, set again when a fresher reading moves the end.
    let watchedUntil = -1
    const watchOpenEnd = (next: decision.Snapshot, now: number) => {
      if (viewOf(next, now) !== "Open" || next.openUntil === watchedUntil) return
      watchedUntil = next.openUntil
      fork(Effect.zipRight(
        Effect.sleep(Duration.millis(next.openUntil - now)),
        Effect.sync(() => {
          if (snapshot.generation === next.generation && snapshot.epoch === next.epoch) {
            observe(nowMillis(), "OpenDurationElapsed")
          }
        })
      ))
    }

    const update = (next: decision.Snapshot, now: number, reason?: CircuitBreaker.TransitionReason) => {
      const previous = snapshot
      snapshot = next
      watchOpenEnd(next, now)
      if (previous.status === next.status && previous.epoch === next.epoch) {
        // The same period, read again (or ended now by `halfOpen`).
        observe(now)
        return
      }
      // The fleet closed the breaker after its probes succeeded: the local breaker follows.
      if (previous.status !== "Closed" && next.status === "Closed" && !forced && isolations === 0) {
        // Until that reset is done, what the local breaker told before it is out of date.
        localState = "Closed"
        localResets++
        fork(Effect.ensuring(local.reset, Effect.sync(() => localResets--)))
      }
      const previousView = viewOf(previous, now) ?? "Closed"
      const nextView = viewOf(next, now) ?? "Closed"
      observe(now, reason ?? (nextView === "Closed" && previousView === "Open" ? "Reset" : undefined))
    }

    const onReply = (reply: decision.Reply) => {
      const wasHealthy = healthy
      healthy = true
      if (reply.extra === "probe") probesGranted++
      const now = nowMillis()
      update(decision.applyReply(snapshot, reply, now), now)
      if (!wasHealthy) observe(now)
    }
    const onFailure = () => {
      if (!healthy) return
      healthy = false
      // A half-open period held by the fleet gives way to the local breaker's state.
      observe(nowMillis(), "Reset")
    }
    const run = (op: string, extra: ReadonlyArray<string | number> = []) =>
      store.run(key, [...baseArgs(op), ...extra]).pipe(
        Effect.tap((reply) => Effect.sync(() => onReply(reply))),
        Effect.tapError(() => Effect.sync(onFailure))
      )

    const record = (exit: Exit.Exit<unknown, unknown>) => {
      if (Exit.isSuccess(exit)) {
        pendingSuccesses++
        return
      }
      // The same reading as a probe's outcome: interruptions and ignored errors are not
      // reported, defects are failures; the local breaker's own rejections are not outcomes.
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && isOwnRejection(failure.value, name)) return
      if (outcomeOf(exit) === "f") pendingFailures++
    }

    // An exit is an effect: recording and returning it costs two steps, less than `onExit`.
    const viaLocal = <A, E1, R>(effect: Effect.Effect<A, E1, R>) =>
      Effect.flatMap(Effect.exit(local.protect(effect)), (exit) => {
        record(exit)
        return exit
      })

    const reject = (reason: "Open" | "HalfOpenFull", retryAfterMillis: number) => {
      sharedRejections++
      return Effect.fail(unsafeMakeWithoutStack(name, Duration.millis(Math.max(0, retryAfterMillis)), reason))
    }

    const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
      if (Exit.isSuccess(exit)) return "s"
      const failure = Cause.failureOption(exit.cause)
      if (Option.isNone(failure)) return Cause.isInterruptedOnly(exit.cause) ? "i" : "f"
      return isFailure === undefined || isFailure(failure.value as E) ? "f" : "i"
    }

    const probe = <A, E1, R>(
      effect: Effect.Effect<A, E1, R>
    ): Effect.Effect<A, E1 | CircuitBreaker.CircuitBreakerOpen, R> =>
      Effect.suspend(() => {
        if (localProbes >= validated.halfOpenMaxCalls) return reject("HalfOpenFull", 0)
        localProbes++
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(Effect.either(run("acquire")), (acquired) => {
            if (Either.isLeft(acquired)) {
              localProbes--
              // Redis did not answer within the command timeout: the local breaker decides.
              return restore(viaLocal(effect))
            }
            const reply = acquired.right
            if (reply.extra !== "probe") {
              localProbes--
              if (reply.status === "Closed") return restore(viaLocal(effect))
              const route = decision.route(snapshot, healthy, nowMillis())
              return route._tag === "Reject"
                ? reject(route.reason, route.retryAfterMillis)
                : reject("HalfOpenFull", 0)
            }
            const lease: Probe = { breaker: name, epoch: reply.epoch, slot: reply.value }
            const asProbe = Effect.locally(effect, currentProbeRef, Option.some(lease))
            return Effect.flatMap(Effect.exit(restore(asProbe)), (exit) => {
              localProbes--
              const outcome = outcomeOf(exit)
              fork(Effect.ignore(run("result", [reply.epoch, reply.value, outcome, reply.generation])))
              return exit
            })
          })
        )
      })

    const protect = <A, E1, R>(
      effect: Effect.Effect<A, E1, R>
    ): Effect.Effect<A, E1 | CircuitBreaker.CircuitBreakerOpen, R> =>
      Effect.suspend(() => {
        if (forced || isolations > 0) return local.protect(effect)
        const route = decision.route(snapshot, healthy, nowMillis())
        switch (route._tag) {
          case "Local":
            return viaLocal(effect)
          case "Reject":
            return reject(route.reason, route.retryAfterMillis)
          case "Acquire":
            return probe(effect)
        }
      })

    const flush = Effect.suspend(() => {
      if (pendingSuccesses + pendingFailures === 0) return Effect.void
      const successes = pendingSuccesses
      const failures = pendingFailures
      pendingSuccesses = 0
      pendingFailures = 0
      // Outcomes that could not be reported are dropped: the window is about the present.
      return Effect.ignore(run("report", [successes, failures]))
    })
    const read = Effect.ignore(run("read"))

    // The local breaker's transitions move the breaker's own state when no shared period holds it.
    const fromLocal = yield* local.subscribe
    // A change is read as a signal: the local state is read afresh, so a change told late (a
    // lazy transition published while the fleet closed the breaker) cannot bring back a state
    // the local breaker has left.
    yield* Effect.forkScoped(Stream.runForEach(fromLocal, (change) =>
      Effect.flatMap(local.state, (current) =>
        Effect.sync(() => {
          if (localResets > 0) return
          localState = current
          observe(nowMillis(), current === change.to ? change.reason : undefined)
        }))))
    yield* store.subscribe(channel, (text) => {
      const message = decision.decodeMessage(text)
      if (message === undefined) return
      const now = nowMillis()
      update(decision.applyMessage(snapshot, message, now), now)
    })
    // The first read decides the starting state; it is bounded by the command timeout.
    yield* read
    fork(Effect.repeat(flush, Schedule.spaced(validated.reportInterval)))
    // The first backstop read comes one syncInterval after the one above.
    yield* Effect.forkScoped(
      Effect.delay(Effect.repeat(read, Schedule.spaced(validated.syncInterval)), validated.syncInterval)
    )
    yield* Effect.addFinalizer(() => flush)

    const stateNow = Effect.flatMap(local.state, (localState) =>
      Effect.sync(() => {
        if (forced || isolations > 0 || localState === "ForcedOpen" || localState === "ForcedClosed") {
          return localState
        }
        const now = nowMillis()
        const view = viewOf(snapshot, now)
        if (view === "Open") return view
        if (view === "HalfOpen" && healthy) return view
        return localState
      }))

    const breaker: SharedCircuitBreaker = {
      [CircuitBreaker.TypeId]: CircuitBreaker.TypeId,
      name,
      protect,
      state: stateNow,
      isCallPermitted: Effect.flatMap(stateNow, (state) =>
        state === "Open"
          ? Effect.succeed(false)
          : state === "HalfOpen" && snapshot.status !== "Closed"
          ? Effect.sync(() => nowMillis() >= snapshot.fullUntil && localProbes < validated.halfOpenMaxCalls)
          : local.isCallPermitted),
      retryAfter: Effect.flatMap(stateNow, (state) =>
        state === "Open" && snapshot.status === "Open"
          ? Effect.sync(() => Duration.millis(Math.max(0, snapshot.openUntil - nowMillis())))
          : state === "HalfOpen" && snapshot.status !== "Closed"
          ? Effect.sync(() => Duration.millis(Math.max(0, snapshot.fullUntil - nowMillis())))
          : local.retryAfter),
      metrics: Effect.flatMap(local.metrics, (metrics) =>
        Effect.map(stateNow, (state) => ({
          ...metrics,
          state,
          rejectedCalls: metrics.rejectedCalls + sharedRejections,
          totalCalls: metrics.totalCalls + sharedRejections
        }))),
      changes: Stream.fromPubSub(transitions),
      subscribe: Effect.map(PubSub.subscribe(transitions), (queue) => Stream.fromQueue(queue)),
      forceOpen: Effect.zipRight(Effect.sync(() => {
        forced = true
      }), local.forceOpen),
      forceClosed: Effect.zipRight(Effect.sync(() => {
        forced = true
      }), local.forceClosed),
      reset: Effect.zipRight(
        Effect.sync(() => {
          forced = false
          update(decision.initialSnapshot, nowMillis(), "Reset")
        }),
        Effect.zipRight(local.reset, Effect.ignore(run("reset")))
      ),
      isolate: Effect.zipRight(
        Effect.acquireRelease(Effect.sync(() => {
          isolations++
        }), () =>
          Effect.sync(() => {
            isolations--
          })),
        local.isolate
      ),
      halfOpen: Effect.zipRight(local.halfOpen, Effect.ignore(run("halfopen"))),
      shared: Effect.sync(() => ({
        status: viewOf(snapshot, nowMillis()) === "Open"
          ? "Open"
          : snapshot.status === "Closed"
          ? "Closed"
          : "HalfOpen",
        epoch: snapshot.epoch,
        healthy,
        probesGranted,
        processId: validated.processId
      }))
    }
    yield* HealthRegistry.registerIfPresent(name, HealthRegistry.breakerSource(breaker))
    return breaker
  })

/** @internal */
export const check: Effect.Effect<void, SharedStoreUnavailable, Store> = Effect.flatMap(Store, (store) => store.check)
