import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Equal,
  Exit,
  Fiber,
  Logger,
  Metric,
  MetricLabel,
  Ref,
  Schedule,
  Scheduler,
  Scope,
  Stream,
  TestClock
} from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const fail = (breaker: CircuitBreaker.CircuitBreaker, error: unknown = "boom") =>
  breaker.protect(Effect.fail(error)).pipe(Effect.flip)
const succeed = (breaker: CircuitBreaker.CircuitBreaker) => breaker.protect(Effect.succeed("ok"))

/** Starts a call that stays in flight until `release` is completed with its exit. */
const inFlight = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<string, string>()
    const started = yield* Deferred.make<void>()
    const fiber = yield* breaker.protect(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)))
      .pipe(Effect.exit, Effect.fork)
    yield* Effect.yieldNow()
    const admitted = yield* Deferred.isDone(started)
    return { gate, fiber, admitted }
  })

/** Collects transitions from now on; read them with `take`. */
const recordChanges = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const changes = yield* breaker.subscribe
    const seen = yield* Ref.make<Array<CircuitBreaker.StateChange>>([])
    yield* changes.pipe(Stream.runForEach((change) => Ref.update(seen, (all) => [...all, change])), Effect.forkScoped)
    // Let the collecting fiber drain what was published.
    return Effect.zipRight(Effect.repeatN(Effect.yieldNow(), 20), Ref.get(seen))
  })

/** A provider read like the environment: `_` separates the name from the option. */
const env = (entries: ReadonlyArray<readonly [string, string]>) =>
  ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })

/** A scheduler that makes the fiber running on it yield once, at its operation number `at`. */
class YieldOnce implements Scheduler.Scheduler {
  ops = 0
  yielded = false
  constructor(readonly at: number) {}
  shouldYield(): number | false {
    if (++this.ops !== this.at) return false
    this.yielded = true
    return 0
  }
  scheduleTask(task: Scheduler.Task, priority: number) {
    Scheduler.defaultScheduler.scheduleTask(task, priority)
  }
}

const transitions = (changes: ReadonlyArray<CircuitBreaker.StateChange>) =>
  changes.map((c) => `${c.from}->${c.to}:${c.reason}`)

describe("CircuitBreaker", () => {
  describe("consecutive failures", () => {
    it.effect("opens at exactly failureThreshold consecutive failures (inclusive)", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("consecutive"), failureThreshold: 5 })
        for (let i = 0; i < 4; i++) yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("a success resets the streak", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("streak"), failureThreshold: 3 })
        yield* fail(breaker)
        yield* fail(breaker)
        yield* succeed(breaker)
        yield* fail(breaker)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.metrics).consecutiveFailures).toBe(2)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("errors for which isFailure is false pass through uncounted and keep the streak", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<{ readonly code: number }>({
          name: uniqueName("isFailure"),
          failureThreshold: 2,
          isFailure: (error) => error.code >= 500
        })
        yield* fail(breaker, { code: 503 })
        const passed = yield* fail(breaker, { code: 404 })
        expect(passed).toEqual({ code: 404 })
        const metrics = yield* breaker.metrics
        expect(metrics.ignoredCalls).toBe(1)
        expect(metrics.failedCalls).toBe(1)
        expect(metrics.consecutiveFailures).toBe(1)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker, { code: 500 })
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("interrupted calls count neither way and keep the streak", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("interrupt"), failureThreshold: 2 })
        yield* fail(breaker)
        const call = yield* inFlight(breaker)
        yield* Fiber.interrupt(call.fiber)
        const metrics = yield* breaker.metrics
        expect(metrics.interruptedCalls).toBe(1)
        expect(metrics.consecutiveFailures).toBe(1)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("defects count as failures", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("defect"), failureThreshold: 1 })
        yield* breaker.protect(Effect.die(new Error("kaput"))).pipe(Effect.exit)
        expect(yield* breaker.state).toBe("Open")
        const metrics = yield* breaker.metrics
        expect(metrics.recentFailures[0]?.message).toContain("kaput")
      }))
  })

  describe("open", () => {
    it.effect("rejects at once without running the effect, with retryAfter what remains", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("open"),
          failureThreshold: 1,
          resetTimeout: "60 seconds"
        })
        yield* fail(breaker)
        yield* TestClock.adjust("15 seconds")
        const runs = yield* Ref.make(0)
        const error = yield* breaker.protect(Ref.update(runs, (n) => n + 1)).pipe(Effect.flip)
        expect(yield* Ref.get(runs)).toBe(0)
        expect(error).toBeInstanceOf(CircuitBreaker.CircuitBreakerOpen)
        expect(error._tag).toBe("CircuitBreakerOpen")
        if (error._tag !== "CircuitBreakerOpen") throw new Error("unreachable")
        expect(error.breaker).toBe(breaker.name)
        expect(error.reason).toBe("Open")
        expect(Duration.toMillis(error.retryAfter)).toBe(45_000)
        expect(error.message).toContain(breaker.name)
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(45_000)
        expect(yield* breaker.isCallPermitted).toBe(false)
        expect((yield* breaker.metrics).rejectedCalls).toBe(1)
      }))

    it.effect("a rejection is a real CircuitBreakerOpen: instanceof, catchTag, equality, message and stack", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("rejection"), failureThreshold: 1 })
        yield* fail(breaker)
        const rejected = yield* breaker.protect(Effect.void).pipe(Effect.flip)
        const constructed = new CircuitBreaker.CircuitBreakerOpen({
          breaker: breaker.name,
          retryAfter: Duration.seconds(60),
          reason: "Open"
        })
        expect(rejected).toBeInstanceOf(CircuitBreaker.CircuitBreakerOpen)
        expect(rejected).toBeInstanceOf(Error)
        expect(Equal.equals(rejected, constructed)).toBe(true)
        expect(Object.keys(rejected)).toEqual(Object.keys(constructed))
        expect(rejected.message).toBe(constructed.message)
        expect(String(rejected.stack)).toContain(constructed.message)
        expect(JSON.stringify(rejected)).toBe(JSON.stringify(constructed))
        const caught = yield* breaker.protect(Effect.void).pipe(
          Effect.catchTag("CircuitBreakerOpen", (error) => Effect.succeed(error.reason))
        )
        expect(caught).toBe("Open")
      }))

    it.scoped("becomes HalfOpen lazily once the open duration has passed, with no timer", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("lazy"),
          failureThreshold: 1,
          resetTimeout: "10 seconds"
        })
        const read = yield* recordChanges(breaker)
        yield* fail(breaker)
        // No sleeping fiber: nothing would keep a process alive.
        expect(yield* TestClock.sleeps()).toEqual(Chunk.empty())
        yield* TestClock.adjust("9999 millis")
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("1 millis")
        expect(yield* breaker.state).toBe("HalfOpen")
        expect(yield* breaker.isCallPermitted).toBe(true)
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(0)
        const changes = yield* read
        expect(transitions(changes)).toEqual(["Closed->Open:FailureThreshold", "Open->HalfOpen:OpenDurationElapsed"])
        expect(changes[1]!.at).toBe(10_000)
      }))

    it.scoped("the lazy transition is emitted once, before what follows it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("emitted"),
          failureThreshold: 1,
          successThreshold: 1,
          resetTimeout: "1 second"
        })
        const read = yield* recordChanges(breaker)
        yield* fail(breaker)
        yield* TestClock.adjust("5 seconds")
        // A call observes the elapsed open period and closes the breaker in one go.
        yield* succeed(breaker)
        yield* breaker.state
        expect(transitions(yield* read)).toEqual([
          "Closed->Open:FailureThreshold",
          "Open->HalfOpen:OpenDurationElapsed",
          "HalfOpen->Closed:ProbesSucceeded"
        ])
      }))

    it.effect("late results are recorded in metrics but change no state and do not extend the open period", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("late"),
          failureThreshold: 2,
          resetTimeout: "10 seconds"
        })
        const slowSuccess = yield* inFlight(breaker)
        const slowFailure = yield* inFlight(breaker)
        expect(slowSuccess.admitted && slowFailure.admitted).toBe(true)
        yield* fail(breaker)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("5 seconds")
        yield* Deferred.succeed(slowSuccess.gate, "late")
        yield* Deferred.fail(slowFailure.gate, "late failure")
        expect(Exit.isSuccess(yield* Fiber.join(slowSuccess.fiber))).toBe(true)
        yield* Fiber.join(slowFailure.fiber)
        expect(yield* breaker.state).toBe("Open")
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(5_000)
        const metrics = yield* breaker.metrics
        expect(metrics.successfulCalls).toBe(1)
        expect(metrics.failedCalls).toBe(3)
        yield* TestClock.adjust("5 seconds")
        expect(yield* breaker.state).toBe("HalfOpen")
      }))
  })

  describe("half-open", () => {
    const openThenHalfOpen = (options: Partial<CircuitBreaker.CircuitBreaker.Options>) =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("half-open"),
          failureThreshold: 1,
          resetTimeout: "10 seconds",
          ...options
        })
        yield* fail(breaker)
        yield* TestClock.adjust("10 seconds")
        return breaker
      })

    it.effect("admits halfOpenMaxCalls probes and rejects the next at once with HalfOpenFull", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ halfOpenMaxCalls: 2 })
        const a = yield* inFlight(breaker)
        const b = yield* inFlight(breaker)
        expect([a.admitted, b.admitted]).toEqual([true, true])
        expect(yield* breaker.isCallPermitted).toBe(false)
        const rejected = yield* succeed(breaker).pipe(Effect.flip)
        expect(rejected._tag === "CircuitBreakerOpen" && rejected.reason).toBe("HalfOpenFull")
        // retryAfter: the longest a busy probe may still hold its permit.
        if (rejected._tag === "CircuitBreakerOpen") expect(Duration.toMillis(rejected.retryAfter)).toBe(10_000)
        expect((yield* breaker.metrics).probesInFlight).toBe(2)
      }))

    it.effect("successThreshold successes close the breaker and clear the window", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ successThreshold: 3 })
        yield* succeed(breaker)
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
        const metrics = yield* breaker.metrics
        expect(metrics.windowCalls).toBe(0)
        expect(metrics.consecutiveFailures).toBe(0)
      }))

    it.effect("a failed probe reopens for a fresh period that runs from when the probe ended", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({})
        const probe = yield* inFlight(breaker)
        yield* TestClock.adjust("3 seconds")
        yield* Deferred.fail(probe.gate, "still down")
        yield* Fiber.join(probe.fiber)
        expect(yield* breaker.state).toBe("Open")
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(10_000)
      }))

    it.effect("an interrupted or ignored probe gives its permit back", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ isFailure: (e) => e !== "ignored" })
        const probe = yield* inFlight(breaker)
        expect(yield* breaker.isCallPermitted).toBe(false)
        yield* Fiber.interrupt(probe.fiber)
        expect(yield* breaker.isCallPermitted).toBe(true)
        yield* fail(breaker, "ignored")
        expect(yield* breaker.isCallPermitted).toBe(true)
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.effect("a stuck probe's replacement is admitted one open duration after the stuck probe was admitted", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ successThreshold: 1 })
        yield* TestClock.adjust("2 seconds")
        const stuck = yield* inFlight(breaker)
        expect(stuck.admitted).toBe(true)
        yield* TestClock.adjust("9999 millis")
        expect(yield* breaker.isCallPermitted).toBe(false)
        yield* TestClock.adjust("1 millis")
        expect(yield* breaker.isCallPermitted).toBe(true)
        const replacement = yield* inFlight(breaker)
        expect(replacement.admitted).toBe(true)
        // The stuck probe ending late changes nothing; the replacement decides.
        yield* Deferred.fail(stuck.gate, "too late")
        yield* Fiber.join(stuck.fiber)
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* Deferred.succeed(replacement.gate, "fine")
        yield* Fiber.join(replacement.fiber)
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("a probe that ends after its permit expired is late, even when no call took the permit", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ resetTimeout: "1 second" })
        const probe = yield* inFlight(breaker)
        expect((yield* breaker.metrics).probesInFlight).toBe(1)
        yield* TestClock.adjust("5 seconds")
        expect((yield* breaker.metrics).probesInFlight).toBe(0)
        expect(yield* breaker.isCallPermitted).toBe(true)
        yield* Deferred.fail(probe.gate, "late failure")
        yield* Fiber.join(probe.fiber)
        expect((yield* breaker.metrics).failedCalls).toBe(2)
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.effect("recoveryFactor admits only that fraction of calls, rejecting the rest with HalfOpenFull", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ recoveryFactor: 0.5, halfOpenMaxCalls: 100, successThreshold: 100 })
        const outcomes: Array<string> = []
        for (let i = 0; i < 10; i++) {
          const exit = yield* succeed(breaker).pipe(Effect.exit)
          outcomes.push(
            Exit.isSuccess(exit) ? "run" : Exit.match(exit, {
              onSuccess: () => "run",
              onFailure: (cause) => String(cause._tag === "Fail" && (cause.error as any).reason)
            })
          )
        }
        expect(outcomes).toEqual([
          "run",
          "HalfOpenFull",
          "run",
          "HalfOpenFull",
          "run",
          "HalfOpenFull",
          "run",
          "HalfOpenFull",
          "run",
          "HalfOpenFull"
        ])
      }))

    it.effect("a slow probe is a failed probe when slow-call detection trips", () =>
      Effect.gen(function*() {
        const breaker = yield* openThenHalfOpen({ slowCallDuration: "1 second", slowCallRateThreshold: 0.5 })
        const probe = yield* inFlight(breaker)
        yield* TestClock.adjust("2 seconds")
        yield* Deferred.succeed(probe.gate, "slow")
        yield* Fiber.join(probe.fiber)
        expect(yield* breaker.state).toBe("Open")
      }))
  })

  describe("probePatience", () => {
    const patientBreaker = Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("patience"),
        failureThreshold: 1,
        successThreshold: 1,
        resetTimeout: "10 seconds",
        probePatience: "100 millis"
      })
      yield* fail(breaker)
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.state).toBe("HalfOpen")
      return breaker
    })

    it.effect("a probe slower than probePatience goes on in the background and still closes the breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* patientBreaker
        const answered = yield* Ref.make(false)
        const caller = yield* breaker.protect(
          Effect.zipRight(Effect.sleep("5 seconds"), Ref.set(answered, true))
        ).pipe(Effect.flip, Effect.fork)
        yield* TestClock.adjust("99 millis")
        expect(caller.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 milli")
        const error = yield* Fiber.join(caller)
        expect(error).toBeInstanceOf(CircuitBreaker.CircuitBreakerOpen)
        expect(error._tag).toBe("CircuitBreakerOpen")
        if (!(error instanceof CircuitBreaker.CircuitBreakerOpen)) return
        expect(error.reason).toBe("ProbePending")
        // The probe holds its permit for one open duration: 9.9 s remain.
        expect(Duration.toMillis(error.retryAfter)).toBe(9_900)
        expect(yield* breaker.isCallPermitted).toBe(false)
        const other = yield* breaker.protect(Effect.succeed("other")).pipe(Effect.flip)
        expect(other).toMatchObject({ _tag: "CircuitBreakerOpen", reason: "HalfOpenFull" })
        expect((yield* breaker.metrics).probesInFlight).toBe(1)
        yield* TestClock.adjust("4900 millis")
        expect(yield* Ref.get(answered)).toBe(true)
        expect(yield* breaker.state).toBe("Closed")
        const m = yield* breaker.metrics
        expect(m.successfulCalls).toBe(1)
        expect(m.rejectedCalls).toBe(1)
      }))

    it.scoped("a background probe that fails reopens the breaker from when it ended", () =>
      Effect.gen(function*() {
        const breaker = yield* patientBreaker
        const changes = yield* recordChanges(breaker)
        const error = yield* breaker.protect(Effect.zipRight(Effect.sleep("3 seconds"), Effect.fail("down"))).pipe(
          Effect.flip,
          Effect.fork
        )
        yield* TestClock.adjust("100 millis")
        expect(yield* Fiber.join(error)).toMatchObject({ reason: "ProbePending" })
        yield* TestClock.adjust("2900 millis")
        expect(yield* breaker.state).toBe("Open")
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(10_000)
        expect(transitions(yield* changes)).toEqual(["HalfOpen->Open:ProbeFailed"])
      }))

    it.effect("a probe that answers within probePatience answers its caller", () =>
      Effect.gen(function*() {
        const breaker = yield* patientBreaker
        const caller = yield* breaker.protect(Effect.as(Effect.sleep("99 millis"), "fresh")).pipe(Effect.fork)
        yield* TestClock.adjust("99 millis")
        expect(yield* Fiber.join(caller)).toBe("fresh")
        expect(yield* breaker.state).toBe("Closed")
        yield* TestClock.adjust("10 seconds")
        const reopened = yield* CircuitBreaker.make({
          name: uniqueName("patience-fail"),
          failureThreshold: 1,
          resetTimeout: "1 second",
          probePatience: "1 second"
        })
        yield* fail(reopened)
        yield* TestClock.adjust("1 second")
        expect(yield* fail(reopened, "still down")).toBe("still down")
        expect(yield* reopened.state).toBe("Open")
      }))

    it.effect("interrupting the caller before probePatience interrupts the probe and gives its permit back", () =>
      Effect.gen(function*() {
        const breaker = yield* patientBreaker
        const answered = yield* Ref.make(false)
        const caller = yield* breaker.protect(
          Effect.zipRight(Effect.sleep("5 seconds"), Ref.set(answered, true))
        ).pipe(Effect.fork)
        yield* TestClock.adjust("50 millis")
        yield* Fiber.interrupt(caller)
        expect((yield* breaker.metrics).probesInFlight).toBe(0)
        expect((yield* breaker.metrics).interruptedCalls).toBe(1)
        expect(yield* breaker.isCallPermitted).toBe(true)
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* TestClock.adjust("10 seconds")
        expect(yield* Ref.get(answered)).toBe(false)
      }))

    it.effect("no patience at all: the probe's caller is answered at once, the probe still decides the breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("patience-zero"),
          failureThreshold: 1,
          successThreshold: 1,
          resetTimeout: "10 seconds",
          probePatience: 0
        })
        yield* fail(breaker)
        yield* TestClock.adjust("10 seconds")
        const answered = yield* Ref.make(false)
        // No clock adjustment: the caller does not wait, even for a probe that answers at once.
        const error = yield* breaker.protect(Ref.set(answered, true)).pipe(Effect.flip)
        expect(error).toMatchObject({ _tag: "CircuitBreakerOpen", reason: "ProbePending" })
        yield* Effect.yieldNow()
        expect(yield* Ref.get(answered)).toBe(true)
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.metrics).successfulCalls).toBe(1)
      }))

    describe("on the live clock (one timer and an observer of the probe)", () => {
      const liveBreaker = (probePatience: Duration.DurationInput) =>
        Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({
            name: uniqueName("patience-live"),
            failureThreshold: 1,
            successThreshold: 1,
            // A probe holds its permit for one open duration: long enough for a loaded machine.
            resetTimeout: "300 millis",
            probePatience
          })
          yield* fail(breaker)
          yield* Effect.sleep("310 millis")
          expect(yield* breaker.state).toBe("HalfOpen")
          return breaker
        })

      it.live("a probe slower than probePatience: its caller gets ProbePending, the probe still closes the breaker", () =>
        Effect.gen(function*() {
          const breaker = yield* liveBreaker("5 millis")
          const release = yield* Deferred.make<void>()
          const error = yield* breaker.protect(Effect.as(Deferred.await(release), "late")).pipe(Effect.flip)
          expect(error).toMatchObject({ _tag: "CircuitBreakerOpen", reason: "ProbePending" })
          expect((yield* breaker.metrics).probesInFlight).toBe(1)
          yield* Deferred.succeed(release, undefined)
          while ((yield* breaker.metrics).probesInFlight > 0) yield* Effect.sleep("1 milli")
          expect(yield* breaker.state).toBe("Closed")
          expect((yield* breaker.metrics).successfulCalls).toBe(1)
        }))

      it.live("a probe that ends within probePatience answers its caller, with its value or its failure", () =>
        Effect.gen(function*() {
          const breaker = yield* liveBreaker("10 seconds")
          expect(yield* breaker.protect(Effect.as(Effect.sleep("2 millis"), "fresh"))).toBe("fresh")
          expect(yield* breaker.state).toBe("Closed")
          const failing = yield* liveBreaker("10 seconds")
          expect(yield* fail(failing, "still down")).toBe("still down")
          expect(yield* failing.state).toBe("Open")
        }))

      it.live("interrupting the caller while it waits interrupts the probe and gives its permit back", () =>
        Effect.gen(function*() {
          const breaker = yield* liveBreaker("10 seconds")
          const started = yield* Deferred.make<void>()
          const caller = yield* breaker.protect(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)).pipe(
            Effect.fork
          )
          yield* Deferred.await(started)
          yield* Fiber.interrupt(caller)
          while ((yield* breaker.metrics).probesInFlight > 0) yield* Effect.sleep("1 milli")
          expect((yield* breaker.metrics).interruptedCalls).toBe(1)
          expect(yield* breaker.isCallPermitted).toBe(true)
        }))
    })

    it.effect("calls admitted while Closed are not subject to probePatience", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("patience-closed"), probePatience: "100 millis" })
        const caller = yield* breaker.protect(Effect.as(Effect.sleep("5 seconds"), "slow")).pipe(Effect.fork)
        yield* TestClock.adjust("5 seconds")
        expect(yield* Fiber.join(caller)).toBe("slow")
      }))
  })

  describe("windows and rates", () => {
    it.effect("the failure rate is evaluated after successes too, once the window holds minimumCalls", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("rate"),
          failureThreshold: Infinity,
          failureRateThreshold: 0.5,
          minimumCalls: 4,
          window: { _tag: "Count", size: 10 }
        })
        yield* fail(breaker)
        yield* fail(breaker)
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.metrics).failureRate).toBeCloseTo(2 / 3)
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("a count window forgets the oldest calls", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("count"),
          failureThreshold: Infinity,
          failureRateThreshold: 0.5,
          minimumCalls: 4,
          window: { _tag: "Count", size: 4 }
        })
        yield* fail(breaker)
        for (let i = 0; i < 4; i++) yield* succeed(breaker)
        const metrics = yield* breaker.metrics
        expect(metrics.windowCalls).toBe(4)
        expect(metrics.failureRate).toBe(0)
        yield* fail(breaker)
        expect((yield* breaker.metrics).failureRate).toBe(0.25)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("a time window forgets calls older than its duration, even after a long idle gap", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("time"),
          failureThreshold: Infinity,
          failureRateThreshold: 0.5,
          minimumCalls: 3,
          window: { _tag: "Time", duration: "1 minute", buckets: 6 }
        })
        yield* fail(breaker)
        yield* fail(breaker)
        expect((yield* breaker.metrics).windowCalls).toBe(2)
        yield* TestClock.adjust("3 hours")
        expect((yield* breaker.metrics).windowCalls).toBe(0)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.metrics).windowCalls).toBe(1)
      }))

    it.effect("a time window keeps the calls of its duration", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("time-keep"),
          failureThreshold: Infinity,
          failureRateThreshold: 0.5,
          minimumCalls: 3,
          window: { _tag: "Time", duration: "1 minute", buckets: 6 }
        })
        yield* fail(breaker)
        yield* TestClock.adjust("30 seconds")
        yield* succeed(breaker)
        yield* TestClock.adjust("20 seconds")
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
        expect((yield* breaker.metrics).failureRate).toBeCloseTo(2 / 3)
      }))

    it.effect("the rate rule waits for minimumCalls", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("minimum"),
          failureThreshold: Infinity,
          failureRateThreshold: 0.1,
          minimumCalls: 5,
          window: { _tag: "Count", size: 100 }
        })
        for (let i = 0; i < 4; i++) yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("slow calls trip the slow-call rate and are counted", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("slow"),
          slowCallDuration: "2 seconds",
          slowCallRateThreshold: 0.5,
          minimumCalls: 2,
          window: { _tag: "Count", size: 10 }
        })
        yield* succeed(breaker)
        const slow = yield* inFlight(breaker)
        yield* TestClock.adjust("2 seconds")
        yield* Deferred.succeed(slow.gate, "slow")
        yield* Fiber.join(slow.fiber)
        const metrics = yield* breaker.metrics
        expect(metrics.slowCalls).toBe(1)
        expect(metrics.successfulCalls).toBe(2)
        expect(yield* breaker.state).toBe("Open")
      }))
  })

  describe("boundaries", () => {
    it.effect("a failure rate of exactly failureRateThreshold opens, one just above it does not", () =>
      Effect.gen(function*() {
        const run = (failureRateThreshold: number) =>
          Effect.gen(function*() {
            const breaker = yield* CircuitBreaker.make({
              name: uniqueName("rate-boundary"),
              failureThreshold: Infinity,
              failureRateThreshold,
              minimumCalls: 4,
              window: { _tag: "Count", size: 4 }
            })
            yield* succeed(breaker)
            yield* fail(breaker)
            yield* succeed(breaker)
            expect(yield* breaker.state).toBe("Closed")
            yield* fail(breaker)
            return yield* breaker.state
          })
        expect(yield* run(0.5)).toBe("Open")
        expect(yield* run(0.51)).toBe("Closed")
      }))

    it.effect("the rate rule applies at exactly minimumCalls, not one call before", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("minimum-boundary"),
          failureThreshold: Infinity,
          failureRateThreshold: 1,
          minimumCalls: 4
        })
        for (let i = 0; i < 3; i++) yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        expect((yield* breaker.metrics).failureRate).toBe(1)
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("a call of exactly slowCallDuration is slow, one a millisecond shorter is not", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("slow-edge"), slowCallDuration: "100 millis" })
        const timed = (millis: number) =>
          Effect.gen(function*() {
            const call = yield* Effect.fork(breaker.protect(Effect.sleep(Duration.millis(millis))))
            yield* TestClock.adjust(Duration.millis(millis))
            yield* Fiber.join(call)
          })
        yield* timed(99)
        expect((yield* breaker.metrics).slowCalls).toBe(0)
        yield* timed(100)
        expect((yield* breaker.metrics).slowCalls).toBe(1)
      }))

    it.effect("successThreshold - 1 probe successes keep it HalfOpen, the successThreshold-th closes it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("success-boundary"),
          failureThreshold: 1,
          successThreshold: 3,
          resetTimeout: "1 second"
        })
        yield* fail(breaker)
        yield* TestClock.adjust("1 second")
        yield* succeed(breaker)
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("HalfOpen")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("the state gauge maps every state: Closed 0, Open 1, HalfOpen 2, ForcedOpen 3, ForcedClosed 4", () =>
      Effect.gen(function*() {
        const name = uniqueName("gauge-rows")
        const breaker = yield* CircuitBreaker.make({
          name,
          failureThreshold: 1,
          resetTimeout: "1 second",
          tagMetricsWithName: true
        })
        const gauge = Effect.map(
          CircuitBreaker.stateMetric.pipe(Metric.tagged("breaker", name), Metric.value),
          (state) => state.value
        )
        expect(yield* gauge).toBe(0)
        yield* fail(breaker)
        expect(yield* gauge).toBe(1)
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.state).toBe("HalfOpen")
        expect(yield* gauge).toBe(2)
        yield* breaker.forceOpen
        expect(yield* gauge).toBe(3)
        yield* breaker.forceClosed
        expect(yield* gauge).toBe(4)
        yield* breaker.forceOpen
        yield* breaker.reset
        expect(yield* gauge).toBe(0)
      }))

    it.effect("the calls counter counts every outcome under its own label", () =>
      Effect.gen(function*() {
        const name = uniqueName("outcome-rows")
        const breaker = yield* CircuitBreaker.make({
          name,
          failureThreshold: 2,
          slowCallDuration: "1 second",
          isFailure: (error) => error !== "ignore me",
          tagMetricsWithName: true
        })
        yield* succeed(breaker)
        yield* fail(breaker, "ignore me")
        const interrupted = yield* Effect.fork(breaker.protect(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(interrupted)
        const slow = yield* Effect.fork(breaker.protect(Effect.sleep("1 second")))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(slow)
        yield* fail(breaker)
        yield* fail(breaker)
        yield* succeed(breaker).pipe(Effect.flip)
        const count = (outcome: string) =>
          CircuitBreaker.callsMetric.pipe(
            Metric.taggedWithLabels([MetricLabel.make("breaker", name), MetricLabel.make("outcome", outcome)]),
            Metric.value,
            Effect.map((state) => state.count)
          )
        const counts: Record<string, number> = {}
        for (const outcome of ["success", "failure", "ignored", "interrupted", "rejected", "slow"]) {
          counts[outcome] = yield* count(outcome)
        }
        expect(counts).toEqual({ success: 2, failure: 2, ignored: 1, interrupted: 1, rejected: 1, slow: 1 })
        const m = yield* breaker.metrics
        expect([m.successfulCalls, m.failedCalls, m.ignoredCalls, m.interruptedCalls, m.rejectedCalls, m.slowCalls])
          .toEqual([2, 2, 1, 1, 1, 1])
        expect(m.totalCalls).toBe(7)
      }))

    it.effect("retryAfter and the rejection reason for every state", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("retry-rows"),
          failureThreshold: 1,
          resetTimeout: "10 seconds"
        })
        const retryAfter = Effect.map(breaker.retryAfter, Duration.toMillis)
        const reason = breaker.protect(Effect.void).pipe(
          Effect.flip,
          Effect.map((error) => [error.reason, Duration.toMillis(error.retryAfter), error.message] as const)
        )
        expect(yield* retryAfter).toBe(0)
        yield* fail(breaker)
        yield* TestClock.adjust("4 seconds")
        expect(yield* retryAfter).toBe(6_000)
        const open = yield* reason
        expect(open.slice(0, 2)).toEqual(["Open", 6_000])
        expect(open[2]).toContain("is open: retry after 6s")
        yield* TestClock.adjust("6 seconds")
        expect(yield* retryAfter).toBe(0)
        const probe = yield* inFlight(breaker)
        expect(probe.admitted).toBe(true)
        yield* TestClock.adjust("3 seconds")
        expect(yield* retryAfter).toBe(7_000)
        const full = yield* reason
        expect(full.slice(0, 2)).toEqual(["HalfOpenFull", 7_000])
        expect(full[2]).toContain("admits no more probes")
        yield* breaker.forceOpen
        expect(yield* retryAfter).toBe(Infinity)
        const forced = yield* reason
        expect(forced.slice(0, 2)).toEqual(["ForcedOpen", Infinity])
        expect(forced[2]).toContain("until it is closed by hand")
        yield* breaker.forceClosed
        expect(yield* retryAfter).toBe(0)
        yield* Fiber.interrupt(probe.fiber)
      }))
  })

  describe("open schedule", () => {
    it.effect("draws each open duration from the schedule and restarts it when closed", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("schedule"),
          failureThreshold: 1,
          successThreshold: 1,
          openSchedule: Schedule.exponential("1 second")
        })
        const openFor = Effect.map(breaker.retryAfter, Duration.toMillis)
        yield* fail(breaker)
        expect(yield* openFor).toBe(1_000)
        yield* TestClock.adjust("1 second")
        yield* fail(breaker)
        expect(yield* openFor).toBe(2_000)
        yield* TestClock.adjust("2 seconds")
        yield* fail(breaker)
        expect(yield* openFor).toBe(4_000)
        yield* TestClock.adjust("4 seconds")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker)
        expect(yield* openFor).toBe(1_000)
      }))

    it.effect("keeps the last duration once the schedule is done", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("schedule-done"),
          failureThreshold: 1,
          openSchedule: Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(2)))
        })
        const openFor = Effect.map(breaker.retryAfter, Duration.toMillis)
        yield* fail(breaker)
        expect(yield* openFor).toBe(1_000)
        yield* TestClock.adjust("1 second")
        yield* fail(breaker)
        expect(yield* openFor).toBe(2_000)
        yield* TestClock.adjust("2 seconds")
        yield* fail(breaker)
        expect(yield* openFor).toBe(2_000)
      }))
  })

  describe("forced states", () => {
    it.effect("forceOpen rejects every call with ForcedOpen and no timeout ends it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("forced-open"), resetTimeout: "1 second" })
        yield* breaker.forceOpen
        yield* TestClock.adjust("1 day")
        expect(yield* breaker.state).toBe("ForcedOpen")
        const error = yield* succeed(breaker).pipe(Effect.flip)
        expect(error._tag === "CircuitBreakerOpen" && error.reason).toBe("ForcedOpen")
        if (error._tag === "CircuitBreakerOpen") expect(Duration.isFinite(error.retryAfter)).toBe(false)
        yield* breaker.reset
        expect(yield* succeed(breaker)).toBe("ok")
      }))

    it.effect("forceClosed runs and records every call, with no transition", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("forced-closed"), failureThreshold: 1 })
        yield* breaker.forceClosed
        for (let i = 0; i < 10; i++) yield* fail(breaker)
        expect(yield* breaker.state).toBe("ForcedClosed")
        const metrics = yield* breaker.metrics
        expect(metrics.failedCalls).toBe(10)
        expect(metrics.failureRate).toBe(1)
      }))

    it.effect("reset goes back to Closed, clears window and counters, and restarts the schedule", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("reset"),
          failureThreshold: 1,
          openSchedule: Schedule.exponential("1 second")
        })
        yield* fail(breaker)
        yield* TestClock.adjust("1 second")
        yield* fail(breaker)
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(2_000)
        yield* breaker.reset
        const metrics = yield* breaker.metrics
        expect(metrics.state).toBe("Closed")
        expect([metrics.totalCalls, metrics.failedCalls, metrics.rejectedCalls, metrics.windowCalls])
          .toEqual([0, 0, 0, 0])
        yield* fail(breaker)
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(1_000)
      }))

    it.scoped("changes emits every transition in order, forced ones and reset included", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("changes"), failureThreshold: 1 })
        const read = yield* recordChanges(breaker)
        yield* fail(breaker)
        yield* breaker.forceOpen
        yield* breaker.forceClosed
        yield* breaker.reset
        yield* breaker.reset
        const changes = yield* read
        expect(transitions(changes)).toEqual([
          "Closed->Open:FailureThreshold",
          "Open->ForcedOpen:ForceOpen",
          "ForcedOpen->ForcedClosed:ForceClosed",
          "ForcedClosed->Closed:Reset",
          "Closed->Closed:Reset"
        ])
        expect(changes.every((c) => c.breaker === breaker.name)).toBe(true)
      }))
  })

  describe("isolation", () => {
    it.effect("rejects everything while any scope holds it, and is reference-counted", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("isolate") })
        const first = yield* Scope.make()
        const second = yield* Scope.make()
        yield* Scope.extend(breaker.isolate, first)
        yield* Scope.extend(breaker.isolate, second)
        expect(yield* breaker.state).toBe("ForcedOpen")
        yield* Scope.close(first, Exit.void)
        const error = yield* succeed(breaker).pipe(Effect.flip)
        expect(error._tag === "CircuitBreakerOpen" && error.reason).toBe("ForcedOpen")
        yield* Scope.close(second, Exit.void)
        expect(yield* breaker.state).toBe("Closed")
        expect(yield* succeed(breaker)).toBe("ok")
      }))
    it.effect("a passing health check does not move an isolated breaker", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("isolate-health"),
          failureThreshold: 1,
          resetTimeout: "1 minute"
        })
        yield* fail(breaker)
        const scope = yield* Scope.make()
        yield* Scope.extend(breaker.isolate, scope)
        yield* breaker.halfOpen
        yield* Scope.close(scope, Exit.void)
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("timeInState counts from the last state the breaker reported, isolations included", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("isolate-time"), failureThreshold: 1 })
        yield* fail(breaker)
        yield* TestClock.adjust("10 seconds")
        const scope = yield* Scope.make()
        yield* Scope.extend(breaker.isolate, scope)
        yield* TestClock.adjust("3 seconds")
        expect(Duration.toMillis((yield* breaker.metrics).timeInState)).toBe(3_000)
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust("2 seconds")
        const metrics = yield* breaker.metrics
        expect(metrics.state).toBe("Open")
        expect(Duration.toMillis(metrics.timeInState)).toBe(2_000)
      }))

    it.effect("isolating makes a probe in flight late and gives its permit back", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("isolate-probe"),
          failureThreshold: 1,
          resetTimeout: "1 second"
        })
        yield* fail(breaker)
        yield* TestClock.adjust("1 second")
        const probe = yield* inFlight(breaker)
        expect(probe.admitted).toBe(true)
        yield* Effect.scoped(breaker.isolate)
        expect(yield* breaker.state).toBe("HalfOpen")
        expect((yield* breaker.metrics).probesInFlight).toBe(0)
        expect(yield* breaker.isCallPermitted).toBe(true)
        yield* Deferred.succeed(probe.gate, "late")
        yield* Fiber.join(probe.fiber)
        expect((yield* breaker.metrics).successfulCalls).toBe(1)
        expect(yield* breaker.state).toBe("HalfOpen")
      }))
  })

  describe("reads", () => {
    it.effect("state, metrics.state and isCallPermitted agree and take no permit", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("reads"),
          failureThreshold: 1,
          resetTimeout: "1 second"
        })
        yield* fail(breaker)
        yield* TestClock.adjust("1 second")
        for (let i = 0; i < 5; i++) {
          expect(yield* breaker.isCallPermitted).toBe(true)
          expect(yield* breaker.state).toBe("HalfOpen")
          expect((yield* breaker.metrics).state).toBe("HalfOpen")
        }
        const probe = yield* inFlight(breaker)
        expect(probe.admitted).toBe(true)
        expect(yield* breaker.isCallPermitted).toBe(false)
      }))

    it.effect("a read interrupted at any step loses no transition: subscribers still get every one, in order", () =>
      Effect.gen(function*() {
        type Read = (breaker: CircuitBreaker.CircuitBreaker) => Effect.Effect<unknown>
        const reads: ReadonlyArray<readonly [string, Read]> = [
          ["state", (breaker) => breaker.state],
          ["metrics", (breaker) => breaker.metrics],
          ["isCallPermitted", (breaker) => breaker.isCallPermitted],
          ["retryAfter", (breaker) => breaker.retryAfter]
        ]
        for (const [label, read] of reads) {
          for (let step = 1; step <= 40; step++) {
            const seen = yield* Effect.scoped(Effect.gen(function*() {
              const breaker = yield* CircuitBreaker.make({
                name: uniqueName("interrupted-read"),
                failureThreshold: 1,
                successThreshold: 1,
                resetTimeout: "1 second"
              })
              const changes = yield* recordChanges(breaker)
              yield* fail(breaker)
              yield* TestClock.adjust("1 second")
              // The reader is parked at its operation number `step` and interrupted there.
              const scheduler = new YieldOnce(step)
              const reader = yield* Effect.fork(Effect.withScheduler(read(breaker), scheduler))
              while (!scheduler.yielded && reader.unsafePoll() === null) yield* Effect.yieldNow()
              yield* Fiber.interrupt(reader)
              yield* succeed(breaker)
              yield* fail(breaker)
              return transitions(yield* changes)
            }))
            expect(seen, `${label}, interrupted after ${step} steps`).toEqual([
              "Closed->Open:FailureThreshold",
              "Open->HalfOpen:OpenDurationElapsed",
              "HalfOpen->Closed:ProbesSucceeded",
              "Closed->Open:FailureThreshold"
            ])
          }
        }
      }))

    it.effect("recentFailures keeps the last 50 with time and message", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("recent"), failureThreshold: Infinity })
        for (let i = 0; i < 60; i++) {
          yield* fail(breaker, new Error(`failure ${i}`))
          yield* TestClock.adjust("1 second")
        }
        const recent = (yield* breaker.metrics).recentFailures
        expect(recent.length).toBe(50)
        expect(recent[0]).toEqual({ at: 10_000, message: "failure 10" })
        expect(recent[49]).toEqual({ at: 59_000, message: "failure 59" })
      }))

    it.effect("counters add up and timeInState follows the clock", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("counters"), failureThreshold: 2 })
        yield* succeed(breaker)
        yield* fail(breaker)
        yield* fail(breaker)
        yield* succeed(breaker).pipe(Effect.flip)
        yield* TestClock.adjust("7 seconds")
        const m = yield* breaker.metrics
        expect(m.totalCalls).toBe(4)
        expect(m.successfulCalls + m.failedCalls + m.ignoredCalls + m.interruptedCalls + m.rejectedCalls).toBe(4)
        expect(m.stateChanges).toBe(1)
        expect(Duration.toMillis(m.timeInState)).toBe(7_000)
      }))
  })

  describe("health checks", () => {
    it.scoped("probe the dependency while open and move to HalfOpen when a check succeeds", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("health"),
          failureThreshold: 1,
          resetTimeout: "5 minutes"
        })
        const checks = yield* Ref.make(0)
        const healthy = yield* Ref.make(false)
        const check = Effect.flatMap(Ref.updateAndGet(checks, (n) => n + 1), () =>
          Effect.flatMap(Ref.get(healthy), (ok) => ok ? Effect.void : Effect.fail("down")))
        yield* CircuitBreaker.withHealthCheck(breaker, { check, interval: "30 seconds" })
        yield* TestClock.adjust("2 minutes")
        expect(yield* Ref.get(checks)).toBe(0) // Closed: nothing to check
        yield* fail(breaker)
        yield* TestClock.adjust("30 seconds")
        yield* TestClock.adjust("30 seconds")
        expect(yield* Ref.get(checks)).toBe(2)
        expect(yield* breaker.state).toBe("Open")
        yield* Ref.set(healthy, true)
        yield* TestClock.adjust("30 seconds")
        expect(yield* Ref.get(checks)).toBe(3)
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.scoped("stops probing when its scope closes", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("health-scope"),
          failureThreshold: 1,
          resetTimeout: "1 hour"
        })
        const checks = yield* Ref.make(0)
        const scope = yield* Scope.make()
        const check = Ref.update(checks, (n) => n + 1).pipe(Effect.zipRight(Effect.fail("down")))
        yield* CircuitBreaker.withHealthCheck(breaker, { check, interval: "1 second" }).pipe(
          Scope.extend(scope)
        )
        yield* fail(breaker)
        yield* TestClock.adjust("3 seconds")
        yield* Scope.close(scope, Exit.void)
        const seen = yield* Ref.get(checks)
        expect(seen).toBe(3)
        yield* TestClock.adjust("10 seconds")
        expect(yield* Ref.get(checks)).toBe(seen)
      }))

    it.scoped("a check that never answers is abandoned after its timeout and the next one runs on schedule", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("health-hang"),
          failureThreshold: 1,
          resetTimeout: "1 hour"
        })
        const checks = yield* Ref.make(0)
        // The first check hangs; every later one answers at once.
        const check = Effect.flatMap(
          Ref.updateAndGet(checks, (n) => n + 1),
          (n) => n === 1 ? Effect.never : Effect.void
        )
        yield* CircuitBreaker.withHealthCheck(breaker, { check, interval: "30 seconds" })
        yield* fail(breaker)
        yield* TestClock.adjust("30 seconds")
        expect(yield* Ref.get(checks)).toBe(1)
        yield* TestClock.adjust("29 seconds")
        expect(yield* Ref.get(checks)).toBe(1)
        expect(yield* breaker.state).toBe("Open")
        // At the interval the hanging check has timed out (timeout defaults to the interval): the next runs.
        yield* TestClock.adjust("1 second")
        expect(yield* Ref.get(checks)).toBe(2)
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.scoped("a check slower than an explicit timeout fails, and later checks keep their schedule", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("health-timeout"),
          failureThreshold: 1,
          resetTimeout: "1 hour"
        })
        const starts = yield* Ref.make<Array<number>>([])
        const check = Effect.flatMap(
          Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) =>
            Ref.update(starts, (all) => [...all, now])),
          () => Effect.sleep("6 seconds")
        )
        yield* fail(breaker)
        yield* CircuitBreaker.withHealthCheck(breaker, { check, interval: "10 seconds", timeout: "5 seconds" })
        yield* TestClock.adjust("45 seconds")
        expect(yield* Ref.get(starts)).toEqual([10_000, 20_000, 30_000, 40_000])
        expect(yield* breaker.state).toBe("Open")
      }))

    it.effect("refuses options that are not an object, a check that is not an Effect, a timeout over interval", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("health-options") })
        type Checks = CircuitBreaker.HealthCheckOptions<never, never>
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [null, "options"],
          [undefined, "options"],
          [42, "options"],
          [{ check: "ping", interval: "1 second" }, "check"],
          [{ check: Effect.void, interval: "1 second", timeout: "2 seconds" }, "timeout"],
          [{ check: Effect.void, interval: "1 second", timeout: 0 }, "timeout"]
        ]
        for (const [options, field] of cases) {
          const dataFirst = yield* CircuitBreaker.withHealthCheck(breaker, options as Checks).pipe(
            Effect.scoped,
            Effect.flip
          )
          expect(dataFirst._tag).toBe("InvalidOptions")
          expect(dataFirst.field).toBe(field)
          const dataLast = yield* CircuitBreaker.withHealthCheck(options as Checks)(breaker).pipe(
            Effect.scoped,
            Effect.flip
          )
          expect(dataLast.field).toBe(field)
        }
      }))

    it.effect("refuses a non-positive interval", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("health-invalid") })
        const error = yield* CircuitBreaker.withHealthCheck(breaker, { check: Effect.void, interval: 0 }).pipe(
          Effect.scoped,
          Effect.flip
        )
        expect(error._tag).toBe("InvalidOptions")
        expect(error.field).toBe("interval")
      }))
  })

  describe("options", () => {
    const invalid = (options: CircuitBreaker.CircuitBreaker.Options) =>
      CircuitBreaker.make(options).pipe(Effect.flip)

    it.effect("invalid options are a typed failure naming the field", () =>
      Effect.gen(function*() {
        const cases: Array<[CircuitBreaker.CircuitBreaker.Options, string]> = [
          [{ name: "" }, "name"],
          [{ name: "x", failureThreshold: 0 }, "failureThreshold"],
          [{ name: "x", failureThreshold: 1.5 }, "failureThreshold"],
          [{ name: "x", successThreshold: -1 }, "successThreshold"],
          [{ name: "x", halfOpenMaxCalls: 0 }, "halfOpenMaxCalls"],
          [{ name: "x", resetTimeout: "soon" as any }, "resetTimeout"],
          [{ name: "x", resetTimeout: -5 }, "resetTimeout"],
          [{ name: "x", resetTimeout: Duration.infinity }, "resetTimeout"],
          [{ name: "x", failureRateThreshold: 1.5 }, "failureRateThreshold"],
          [{ name: "x", failureRateThreshold: 0 }, "failureRateThreshold"],
          [{ name: "x", recoveryFactor: 0 }, "recoveryFactor"],
          [{ name: "x", minimumCalls: 0 }, "minimumCalls"],
          [{ name: "x", slowCallRateThreshold: 0.5 }, "slowCallRateThreshold"],
          [{ name: "x", window: { _tag: "Count", size: 0 } }, "window.size"],
          [{ name: "x", window: { _tag: "Time", duration: 0 } }, "window.duration"],
          [{ name: "x", window: { _tag: "Sliding" } as any }, "window"],
          [
            { name: "x", resetTimeout: "1 second", openSchedule: Schedule.spaced("1 second") },
            "resetTimeout, openSchedule"
          ],
          [{ name: "x", openSchedule: Schedule.stop }, "openSchedule"],
          [{ name: "x", probePatience: -1 }, "probePatience"],
          [{ name: "x", probePatience: "forever" as any }, "probePatience"],
          [{ name: "x", probePatience: Duration.infinity }, "probePatience"]
        ]
        for (const [options, field] of cases) {
          const error = yield* invalid(options)
          expect(error._tag).toBe("InvalidOptions")
          expect(error.field).toBe(field)
          expect(error.message).toContain(field)
        }
        for (const options of [null, undefined, 7, "redis", []]) {
          const error = yield* invalid(options as unknown as CircuitBreaker.CircuitBreaker.Options)
          expect(error._tag).toBe("InvalidOptions")
          expect(error.field).toBe("options")
        }
        const error = yield* invalid({ name: "x", failureThreshold: 0 })
        expect(error.message).toBe(
          `CircuitBreaker: invalid option "failureThreshold": expected an integer >= 1, or Infinity, received 0`
        )
      }))

    it.effect("fromConfig reads the options from the environment under the name", () =>
      Effect.gen(function*() {
        const provider = ConfigProvider.fromMap(
          new Map([
            ["REDIS_CACHE_FAILURE_THRESHOLD", "2"],
            ["REDIS_CACHE_RESET_TIMEOUT", "30 seconds"],
            ["REDIS_CACHE_WINDOW_SIZE", "20"]
          ]),
          { pathDelim: "_" }
        )
        const breaker = yield* CircuitBreaker.fromConfig("redis-cache", { successThreshold: 1 }).pipe(
          Effect.withConfigProvider(provider)
        )
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
        expect(Duration.toMillis(yield* breaker.retryAfter)).toBe(30_000)
        yield* TestClock.adjust("30 seconds")
        yield* succeed(breaker)
        expect(yield* breaker.state).toBe("Closed")
      }))

    it.effect("fromConfig names the field and the variable of an invalid value", () =>
      Effect.gen(function*() {
        const outOfRange = yield* CircuitBreaker.fromConfig("db").pipe(
          Effect.withConfigProvider(env([["DB_FAILURE_RATE_THRESHOLD", "2"]])),
          Effect.flip
        )
        expect(outOfRange._tag).toBe("InvalidOptions")
        expect(outOfRange.message).toContain("failureRateThreshold")
        expect(outOfRange.message).toContain("DB_FAILURE_RATE_THRESHOLD")
        const notANumber = yield* CircuitBreaker.fromConfig("db").pipe(
          Effect.withConfigProvider(env([["DB_FAILURE_THRESHOLD", "many"]])),
          Effect.flip
        )
        expect(notANumber._tag).toBe("InvalidOptions")
        expect(notANumber.message).toContain("failureThreshold")
        expect(notANumber.message).toContain("DB_FAILURE_THRESHOLD")
        expect(notANumber.message).toContain("many")
      }))

    it.effect("fromConfig names every invalid variable at once, in one InvalidOptions", () =>
      Effect.gen(function*() {
        const error = yield* CircuitBreaker.fromConfig("orders").pipe(
          Effect.withConfigProvider(env([
            ["ORDERS_FAILURE_THRESHOLD", "many"],
            ["ORDERS_SUCCESS_THRESHOLD", "few"],
            ["ORDERS_RESET_TIMEOUT", "30 seconds"]
          ])),
          Effect.flip
        )
        expect(error._tag).toBe("InvalidOptions")
        if (error._tag !== "InvalidOptions") return
        expect(error.module).toBe("CircuitBreaker")
        expect(error.field).toBe(
          "failureThreshold (ORDERS_FAILURE_THRESHOLD), successThreshold (ORDERS_SUCCESS_THRESHOLD)"
        )
        expect(error.received).toEqual({ ORDERS_FAILURE_THRESHOLD: "many", ORDERS_SUCCESS_THRESHOLD: "few" })
        expect(error.message).toContain("many")
        expect(error.message).toContain("few")
      }))

    it.effect("fromConfig refuses an empty variable instead of reading it as 0, for every variable", () =>
      Effect.gen(function*() {
        const variables: ReadonlyArray<readonly [string, string]> = [
          ["FAILURE_THRESHOLD", "failureThreshold"],
          ["SUCCESS_THRESHOLD", "successThreshold"],
          ["RESET_TIMEOUT", "resetTimeout"],
          ["HALF_OPEN_MAX_CALLS", "halfOpenMaxCalls"],
          ["FAILURE_RATE_THRESHOLD", "failureRateThreshold"],
          ["MINIMUM_CALLS", "minimumCalls"],
          ["WINDOW_SIZE", "windowSize"],
          ["WINDOW_DURATION", "windowDuration"],
          ["WINDOW_BUCKETS", "windowBuckets"],
          ["SLOW_CALL_DURATION", "slowCallDuration"],
          ["SLOW_CALL_RATE_THRESHOLD", "slowCallRateThreshold"],
          ["RECOVERY_FACTOR", "recoveryFactor"],
          ["PROBE_PATIENCE", "probePatience"]
        ]
        for (const [variable, option] of variables) {
          for (const text of ["", "  ", "x"]) {
            const error = yield* CircuitBreaker.fromConfig("db").pipe(
              Effect.withConfigProvider(env([[`DB_${variable}`, text]])),
              Effect.flip
            )
            expect(error._tag, `DB_${variable}=${JSON.stringify(text)}`).toBe("InvalidOptions")
            if (error._tag !== "InvalidOptions") continue
            expect(error.field).toBe(`${option} (DB_${variable})`)
            expect(error.received).toEqual({ [`DB_${variable}`]: text })
          }
        }
      }))

    it.effect("fromConfig reads every variable into its option", () =>
      Effect.gen(function*() {
        const options = yield* CircuitBreaker.config("db").pipe(
          Effect.withConfigProvider(env([
            ["DB_FAILURE_THRESHOLD", "Infinity"],
            ["DB_SUCCESS_THRESHOLD", " 2 "],
            ["DB_RESET_TIMEOUT", "30 seconds"],
            ["DB_HALF_OPEN_MAX_CALLS", "4"],
            ["DB_FAILURE_RATE_THRESHOLD", "0.5"],
            ["DB_MINIMUM_CALLS", "20"],
            ["DB_WINDOW_DURATION", "1 minute"],
            ["DB_WINDOW_BUCKETS", "6"],
            ["DB_SLOW_CALL_DURATION", "2 seconds"],
            ["DB_SLOW_CALL_RATE_THRESHOLD", "0.8"],
            ["DB_RECOVERY_FACTOR", "0.25"],
            ["DB_PROBE_PATIENCE", "50 millis"]
          ]))
        )
        expect(options.failureThreshold).toBe(Infinity)
        expect(options.successThreshold).toBe(2)
        expect(Duration.toMillis(options.resetTimeout!)).toBe(30_000)
        expect(options.halfOpenMaxCalls).toBe(4)
        expect(options.failureRateThreshold).toBe(0.5)
        expect(options.minimumCalls).toBe(20)
        expect(options.window?._tag).toBe("Time")
        if (options.window?._tag === "Time") {
          expect(Duration.toMillis(options.window.duration)).toBe(60_000)
          expect(options.window.buckets).toBe(6)
        }
        expect(Duration.toMillis(options.slowCallDuration!)).toBe(2_000)
        expect(options.slowCallRateThreshold).toBe(0.8)
        expect(options.recoveryFactor).toBe(0.25)
        expect(Duration.toMillis(options.probePatience!)).toBe(50)
        const counted = yield* CircuitBreaker.config("db").pipe(
          Effect.withConfigProvider(env([["DB_WINDOW_SIZE", "7"]]))
        )
        expect(counted.window).toEqual({ _tag: "Count", size: 7 })
        const invalid = yield* CircuitBreaker.config("db").pipe(
          Effect.withConfigProvider(env([["DB_MINIMUM_CALLS", "ten"]])),
          Effect.flip
        )
        expect(invalid.toString()).toContain("DB_MINIMUM_CALLS")
      }))

    it.effect("fromConfig works with ConfigProvider.fromEnv", () =>
      Effect.gen(function*() {
        process.env["PAYMENTS_API_FAILURE_THRESHOLD"] = "1"
        try {
          const breaker = yield* CircuitBreaker.fromConfig("paymentsApi").pipe(
            Effect.withConfigProvider(ConfigProvider.fromEnv())
          )
          yield* fail(breaker)
          expect(yield* breaker.state).toBe("Open")
        } finally {
          delete process.env["PAYMENTS_API_FAILURE_THRESHOLD"]
        }
      }))

    it.effect("fromConfig reads a bare number of a duration variable as seconds, a value with a unit as given", () =>
      Effect.gen(function*() {
        const read = (entries: ReadonlyArray<readonly [string, string]>) =>
          CircuitBreaker.config("redis").pipe(Effect.withConfigProvider(env(entries)))
        const bare = yield* read([
          ["REDIS_RESET_TIMEOUT", "30"],
          ["REDIS_WINDOW_DURATION", "60"],
          ["REDIS_SLOW_CALL_DURATION", "0.5"],
          ["REDIS_PROBE_PATIENCE", " 2 "]
        ])
        expect(Duration.toMillis(bare.resetTimeout!)).toBe(30_000)
        expect(bare.window?._tag === "Time" && Duration.toMillis(bare.window.duration)).toBe(60_000)
        expect(Duration.toMillis(bare.slowCallDuration!)).toBe(500)
        expect(Duration.toMillis(bare.probePatience!)).toBe(2_000)
        const withUnit = yield* read([["REDIS_RESET_TIMEOUT", "30 millis"]])
        expect(Duration.toMillis(withUnit.resetTimeout!)).toBe(30)
        for (const text of ["-1", "30s", "1e3"]) {
          const error = yield* CircuitBreaker.fromConfig("redis").pipe(
            Effect.withConfigProvider(env([["REDIS_RESET_TIMEOUT", text]])),
            Effect.flip
          )
          expect(error._tag, text).toBe("InvalidOptions")
          if (error._tag === "InvalidOptions") expect(error.field).toBe("resetTimeout (REDIS_RESET_TIMEOUT)")
        }
      }))

    it.effect("fromConfig reads the seed names <NAME>_CIRCUIT_BREAKER_THRESHOLD and _TIMEOUT (seconds)", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.fromConfig("llm-openai").pipe(
          Effect.withConfigProvider(env([
            ["LLM_OPENAI_CIRCUIT_BREAKER_THRESHOLD", "2"],
            ["LLM_OPENAI_CIRCUIT_BREAKER_TIMEOUT", "45"]
          ]))
        )
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Closed")
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("44 seconds")
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.state).toBe("HalfOpen")
      }))

    it.effect("fromConfig prefers the library's name to the seed's, and says so without the values", () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const logger = Logger.make(({ message }) => {
          logs.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        const options = yield* CircuitBreaker.config("redis").pipe(
          Effect.withConfigProvider(env([
            ["REDIS_FAILURE_THRESHOLD", "5"],
            ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "3"],
            ["REDIS_RESET_TIMEOUT", "10"],
            ["REDIS_CIRCUIT_BREAKER_TIMEOUT", "10"]
          ]))
        )
        expect(options.failureThreshold).toBe(5)
        expect(Duration.toMillis(options.resetTimeout!)).toBe(10_000)
        const breaker = yield* CircuitBreaker.fromConfig("redis").pipe(
          Effect.withConfigProvider(env([
            ["REDIS_FAILURE_THRESHOLD", "1"],
            ["REDIS_CIRCUIT_BREAKER_THRESHOLD", "3"],
            ["REDIS_CIRCUIT_BREAKER_TIMEOUT", "10"]
          ])),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
        yield* fail(breaker)
        expect(yield* breaker.state).toBe("Open")
        expect(logs).toEqual([
          "REDIS_FAILURE_THRESHOLD and REDIS_CIRCUIT_BREAKER_THRESHOLD are both set and differ: " +
          "REDIS_FAILURE_THRESHOLD is used"
        ])
      }))

    it.effect("fromConfig names the seed variable of an invalid seed value", () =>
      Effect.gen(function*() {
        const notANumber = yield* CircuitBreaker.fromConfig("redis").pipe(
          Effect.withConfigProvider(env([["REDIS_CIRCUIT_BREAKER_THRESHOLD", "many"]])),
          Effect.flip
        )
        expect(notANumber._tag).toBe("InvalidOptions")
        if (notANumber._tag === "InvalidOptions") {
          expect(notANumber.field).toBe("failureThreshold (REDIS_CIRCUIT_BREAKER_THRESHOLD)")
          expect(notANumber.received).toEqual({ REDIS_CIRCUIT_BREAKER_THRESHOLD: "many" })
        }
        const outOfRange = yield* CircuitBreaker.fromConfig("redis").pipe(
          Effect.withConfigProvider(env([["REDIS_CIRCUIT_BREAKER_TIMEOUT", "-5"]])),
          Effect.flip
        )
        expect(outOfRange._tag).toBe("InvalidOptions")
        if (outOfRange._tag === "InvalidOptions") {
          expect(outOfRange.field).toBe("resetTimeout (REDIS_CIRCUIT_BREAKER_TIMEOUT)")
        }
        const zero = yield* CircuitBreaker.fromConfig("redis").pipe(
          Effect.withConfigProvider(env([["REDIS_CIRCUIT_BREAKER_THRESHOLD", "0"]])),
          Effect.flip
        )
        expect(zero._tag === "InvalidOptions" && zero.field).toBe("failureThreshold (REDIS_CIRCUIT_BREAKER_THRESHOLD)")
      }))
  })

  describe("observability", () => {
    it.effect("updates Effect metrics tagged with the breaker name when tagMetricsWithName is set", () =>
      Effect.gen(function*() {
        const name = uniqueName("metrics")
        const breaker = yield* CircuitBreaker.make({ name, failureThreshold: 2, tagMetricsWithName: true })
        yield* succeed(breaker)
        yield* fail(breaker)
        yield* fail(breaker)
        yield* succeed(breaker).pipe(Effect.flip)
        const calls = (outcome: string) =>
          CircuitBreaker.callsMetric.pipe(
            Metric.taggedWithLabels([MetricLabel.make("breaker", name), MetricLabel.make("outcome", outcome)]),
            Metric.value,
            Effect.map((state) => state.count)
          )
        expect(yield* calls("success")).toBe(1)
        expect(yield* calls("failure")).toBe(2)
        expect(yield* calls("rejected")).toBe(1)
        const gauge = yield* CircuitBreaker.stateMetric.pipe(
          Metric.tagged("breaker", name),
          Metric.value
        )
        expect(gauge.value).toBe(1)
        const opened = yield* CircuitBreaker.stateChangesMetric.pipe(
          Metric.taggedWithLabels([MetricLabel.make("breaker", name), MetricLabel.make("to", "Open")]),
          Metric.value
        )
        expect(opened.count).toBe(1)
        const durations = yield* CircuitBreaker.callDurationMetric.pipe(Metric.tagged("breaker", name), Metric.value)
        expect(durations.count).toBe(3)
      }))

    it.effect("metrics carry the tags the caller sets with Effect.tagMetrics, on every metric", () =>
      Effect.gen(function*() {
        const tenant = uniqueName("tenant")
        const breaker = yield* CircuitBreaker.make({
          name: uniqueName("ambient"),
          failureThreshold: 2,
          resetTimeout: "1 second",
          successThreshold: 1
        })
        yield* Effect.gen(function*() {
          yield* succeed(breaker)
          yield* fail(breaker)
          yield* fail(breaker)
          yield* succeed(breaker).pipe(Effect.flip)
          yield* breaker.protect(Effect.fail(new Error("never run"))).pipe(Effect.flip)
        }).pipe(Effect.tagMetrics("tenant", tenant))
        const tagged = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, labels: ReadonlyArray<string>) =>
          metric.pipe(
            Metric.taggedWithLabels(labels.map((label) => {
              const [key, value] = label.split("=")
              return MetricLabel.make(key!, value!)
            })),
            Metric.value,
            Effect.tagMetrics("tenant", tenant)
          )
        const calls = (outcome: string) =>
          Effect.map(tagged(CircuitBreaker.callsMetric, [`outcome=${outcome}`]), (state) => state.count)
        expect(yield* calls("success")).toBe(1)
        expect(yield* calls("failure")).toBe(2)
        expect(yield* calls("rejected")).toBe(2)
        expect(yield* calls("ignored")).toBe(0)
        expect((yield* tagged(CircuitBreaker.stateMetric, [])).value).toBe(1)
        expect((yield* tagged(CircuitBreaker.stateChangesMetric, ["to=Open"])).count).toBe(1)
        expect((yield* tagged(CircuitBreaker.callDurationMetric, [])).count).toBe(3)
        // The lazy transition, observed by a read under the caller's tags, carries them too.
        yield* TestClock.adjust("1 second")
        yield* breaker.state.pipe(Effect.tagMetrics("tenant", tenant))
        expect((yield* tagged(CircuitBreaker.stateChangesMetric, ["to=HalfOpen"])).count).toBe(1)
        expect((yield* tagged(CircuitBreaker.stateMetric, [])).value).toBe(2)
        // Every series of the snapshot that carries the tenant tag is one of ours, with it.
        const series = (yield* Metric.snapshot).filter((pair) =>
          pair.metricKey.tags.some((label) => label.key === "tenant" && label.value === tenant)
        )
        expect(new Set(series.map((pair) => pair.metricKey.name))).toEqual(
          new Set([
            "effect_resilience_circuit_breaker_calls_total",
            "effect_resilience_circuit_breaker_state",
            "effect_resilience_circuit_breaker_state_changes_total",
            "effect_resilience_circuit_breaker_call_duration_seconds"
          ])
        )
        // Untagged by name by default: no series names this breaker.
        const all = yield* Metric.snapshot
        const named = all.filter((pair) =>
          pair.metricKey.tags.some((label) => label.key === "breaker" && label.value === breaker.name)
        )
        expect(named).toEqual([])
      }))

    it.effect("logs every transition with the breaker name", () =>
      Effect.gen(function*() {
        const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
        const logger = Logger.make(({ annotations, message }) => {
          lines.push({
            message: Array.isArray(message) ? message.join(" ") : String(message),
            annotations: Object.fromEntries(annotations)
          })
        })
        const name = uniqueName("logs")
        yield* Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make({
            name,
            failureThreshold: 1,
            resetTimeout: "1 second",
            successThreshold: 1
          })
          yield* fail(breaker)
          yield* TestClock.adjust("1 second")
          yield* succeed(breaker)
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        expect(lines.map((l) => l.message)).toEqual([
          `circuit breaker "${name}": Closed -> Open (FailureThreshold)`,
          `circuit breaker "${name}": Open -> HalfOpen (OpenDurationElapsed)`,
          `circuit breaker "${name}": HalfOpen -> Closed (ProbesSucceeded)`
        ])
        expect(lines.every((l) => l.annotations["breaker"] === name)).toBe(true)
      }))
  })

  describe("api", () => {
    it.effect("protect is dual and isCircuitBreaker recognises breakers", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ name: uniqueName("dual") })
        expect(yield* Effect.succeed(1).pipe(CircuitBreaker.protect(breaker))).toBe(1)
        expect(yield* CircuitBreaker.protect(Effect.succeed(2), breaker)).toBe(2)
        expect(CircuitBreaker.isCircuitBreaker(breaker)).toBe(true)
        expect(CircuitBreaker.isCircuitBreaker({})).toBe(false)
      }))
  })
})
