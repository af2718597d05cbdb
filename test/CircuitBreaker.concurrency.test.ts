import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"

class Boom extends Data.TaggedError("Boom")<{}> {}
class Ignorable extends Data.TaggedError("Ignorable")<{}> {}

const FIBERS = 1000

/** A breaker that has opened once and, one open duration later, is HalfOpen. */
const halfOpenBreaker = (halfOpenMaxCalls: number, successThreshold = halfOpenMaxCalls) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      name: "concurrency",
      failureThreshold: 1,
      successThreshold,
      halfOpenMaxCalls,
      resetTimeout: "1 second",
      isFailure: (error: unknown) => !(error instanceof Ignorable)
    })
    yield* Effect.flip(breaker.protect(Effect.fail(new Boom())))
    expect(yield* breaker.state).toBe("Open")
    yield* TestClock.adjust("1 second")
    expect(yield* breaker.state).toBe("HalfOpen")
    return breaker
  })

/** Collects the transitions published from now on into an array the test can read. */
const recordChanges = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const seen: Array<CircuitBreaker.StateChange> = []
    const changes = yield* breaker.subscribe
    yield* Effect.forkScoped(Stream.runForEach(changes, (change) => Effect.sync(() => seen.push(change))))
    return seen
  })

/** Lets forked fibers (the change collector) run until nothing is left to do. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 200; i++) yield* Effect.yieldNow()
})

/** Runs `count` fibers and resolves once every one of them has either started its effect or been rejected. */
const launch = <A, E>(
  breaker: CircuitBreaker.CircuitBreaker,
  count: number,
  body: (index: number) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const executions = yield* Ref.make(0)
    const decided = yield* Ref.make(0)
    const allDecided = yield* Deferred.make<void>()
    const rejections = yield* Ref.make<Record<string, number>>({})
    const decide = Effect.flatMap(
      Ref.updateAndGet(decided, (n) => n + 1),
      (n) => n === count ? Deferred.succeed(allDecided, undefined) : Effect.void
    )
    const fibers = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.fork(
          Effect.zipRight(
            // Spread the arrivals over several turns of the scheduler.
            Effect.repeatN(Effect.yieldNow(), i % 7),
            breaker.protect(Effect.zipRight(Effect.zipRight(Ref.update(executions, (n) => n + 1), decide), body(i)))
          ).pipe(
            Effect.tapError((error) =>
              error instanceof CircuitBreaker.CircuitBreakerOpen
                ? Effect.zipRight(
                  Ref.update(rejections, (r) => ({ ...r, [error.reason]: (r[error.reason] ?? 0) + 1 })),
                  decide
                )
                : Effect.void
            )
          )
        )
    )
    yield* Deferred.await(allDecided)
    return { fibers, executions, rejections }
  })

describe("CircuitBreaker under concurrency", () => {
  for (const halfOpenMaxCalls of [1, 5]) {
    it.scoped(`${FIBERS} fibers hitting a HalfOpen breaker admit exactly halfOpenMaxCalls = ${halfOpenMaxCalls}`, () =>
      Effect.gen(function*() {
        const breaker = yield* halfOpenBreaker(halfOpenMaxCalls)
        const seen = yield* recordChanges(breaker)
        const gate = yield* Deferred.make<void>()
        const { executions, fibers, rejections } = yield* launch(breaker, FIBERS, () => Deferred.await(gate))

        expect(yield* Ref.get(executions)).toBe(halfOpenMaxCalls)
        expect(yield* Ref.get(rejections)).toEqual({ HalfOpenFull: FIBERS - halfOpenMaxCalls })
        const during = yield* breaker.metrics
        expect(during.state).toBe("HalfOpen")
        expect(during.probesInFlight).toBe(halfOpenMaxCalls)
        expect(yield* breaker.isCallPermitted).toBe(false)

        // The probes succeed: exactly successThreshold (= halfOpenMaxCalls) successes close it.
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.forEach(fibers, Fiber.await)
        expect(exits.filter(Exit.isSuccess)).toHaveLength(halfOpenMaxCalls)
        const after = yield* breaker.metrics
        expect(after.state).toBe("Closed")
        expect(after.successfulCalls).toBe(halfOpenMaxCalls)
        expect(after.rejectedCalls).toBe(FIBERS - halfOpenMaxCalls)
        expect(after.totalCalls).toBe(FIBERS + 1) // and the failure that opened it
        expect(after.probesInFlight).toBe(0)
        yield* settle
        expect(seen.map(({ from, reason, to }) => ({ from, to, reason }))).toEqual([
          { from: "HalfOpen", to: "Closed", reason: "ProbesSucceeded" }
        ])
      }))
  }

  it.scoped("interrupting a probe gives its permit back", () =>
    Effect.gen(function*() {
      const breaker = yield* halfOpenBreaker(1)
      const probe = yield* Effect.fork(breaker.protect(Effect.never))
      yield* Effect.yieldNow()
      expect((yield* breaker.metrics).probesInFlight).toBe(1)
      const refused = yield* Effect.flip(breaker.protect(Effect.void))
      expect(refused._tag === "CircuitBreakerOpen" && refused.reason).toBe("HalfOpenFull")

      yield* Fiber.interrupt(probe)
      const metrics = yield* breaker.metrics
      expect(metrics.probesInFlight).toBe(0)
      expect(metrics.interruptedCalls).toBe(1)
      expect(metrics.state).toBe("HalfOpen")
      expect(yield* breaker.isCallPermitted).toBe(true)
      // No time has passed: the permit came back because of the interruption, not a lease expiry.
      const ran = yield* Ref.make(false)
      yield* breaker.protect(Ref.set(ran, true))
      expect(yield* Ref.get(ran)).toBe(true)
    }))

  it.scoped(`interrupting probes of ${FIBERS} concurrent calls gives back exactly their permits`, () =>
    Effect.gen(function*() {
      const breaker = yield* halfOpenBreaker(5)
      const gate = yield* Deferred.make<void>()
      const first = yield* launch(breaker, FIBERS, () => Deferred.await(gate))
      expect(yield* Ref.get(first.executions)).toBe(5)
      // Interrupt two of the five probes (and, harmlessly, every rejected fiber).
      const exits = yield* Effect.forEach(first.fibers, (fiber) => Fiber.poll(fiber))
      const running = first.fibers.filter((_, i) => exits[i]!._tag === "None")
      expect(running).toHaveLength(5)
      yield* Fiber.interrupt(running[0]!)
      yield* Fiber.interrupt(running[3]!)
      expect((yield* breaker.metrics).probesInFlight).toBe(3)

      const second = yield* launch(breaker, FIBERS, () => Deferred.await(gate))
      expect(yield* Ref.get(second.executions)).toBe(2)
      expect(yield* Ref.get(second.rejections)).toEqual({ HalfOpenFull: FIBERS - 2 })
      expect((yield* breaker.metrics).probesInFlight).toBe(5)
      yield* Fiber.interruptAll([...first.fibers, ...second.fibers])
      expect((yield* breaker.metrics).probesInFlight).toBe(0)
    }))

  it.scoped("interrupting fibers at random points while many calls are in flight never leaks a permit", () =>
    Effect.gen(function*() {
      const halfOpenMaxCalls = 5
      const breaker = yield* halfOpenBreaker(halfOpenMaxCalls)
      const seen = yield* recordChanges(breaker)
      const random = Random.make(20240611)
      let launched = 0
      for (let round = 0; round < 20; round++) {
        const fibers = yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
          Effect.gen(function*() {
            const before = yield* random.nextIntBetween(0, 6)
            const inside = yield* random.nextIntBetween(0, 6)
            // Probes that end on their own end without counting either way (ignored errors),
            // so the breaker stays HalfOpen and every permit must come back.
            const ending = i % 3 === 0 ? Effect.fail(new Ignorable()) : Effect.never
            return yield* Effect.fork(
              Effect.zipRight(
                Effect.repeatN(Effect.yieldNow(), before),
                breaker.protect(Effect.zipRight(Effect.repeatN(Effect.yieldNow(), inside), ending))
              )
            )
          }))
        launched += fibers.length
        // Interrupt each fiber after a random number of turns: before it asked, while it runs,
        // or after it ended.
        yield* Effect.forEach(fibers, (fiber) =>
          Effect.flatMap(random.nextIntBetween(0, 10), (turns) =>
            Effect.fork(Effect.zipRight(Effect.repeatN(Effect.yieldNow(), turns), Fiber.interrupt(fiber)))), {
          concurrency: "unbounded"
        })
        yield* Effect.forEach(fibers, Fiber.await, { discard: true })
        const metrics = yield* breaker.metrics
        expect(metrics.probesInFlight, `round ${round}`).toBe(0)
        expect(metrics.state).toBe("HalfOpen")
        expect(metrics.totalCalls).toBe(
          metrics.successfulCalls + metrics.failedCalls + metrics.ignoredCalls + metrics.interruptedCalls +
            metrics.rejectedCalls
        )
        expect(metrics.totalCalls).toBeLessThanOrEqual(launched + 1)
      }
      const metrics = yield* breaker.metrics
      // The rounds did run probes and did interrupt some of them.
      expect(metrics.interruptedCalls).toBeGreaterThan(0)
      expect(metrics.ignoredCalls).toBeGreaterThan(0)
      expect(metrics.rejectedCalls).toBeGreaterThan(0)
      // No time has passed, so no permit was reclaimed by expiry: every one came back on its own.
      expect(yield* breaker.isCallPermitted).toBe(true)
      const gate = yield* Deferred.make<void>()
      const last = yield* launch(breaker, 50, () => Deferred.await(gate))
      expect(yield* Ref.get(last.executions)).toBe(halfOpenMaxCalls)
      yield* Fiber.interruptAll(last.fibers)
      yield* settle
      expect(seen).toEqual([])
    }))

  it.scoped(`${FIBERS} concurrent failing calls in Closed open the breaker once`, () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "closed", failureThreshold: 5, resetTimeout: "1 minute" })
      const seen = yield* recordChanges(breaker)
      const gate = yield* Deferred.make<void, Boom>()
      // All of them are admitted while Closed, then all fail at once.
      const { executions, fibers } = yield* launch(breaker, FIBERS, () => Deferred.await(gate))
      expect(yield* Ref.get(executions)).toBe(FIBERS)
      yield* Deferred.fail(gate, new Boom())
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      expect(exits.every(Exit.isFailure)).toBe(true)
      const metrics = yield* breaker.metrics
      expect(metrics.state).toBe("Open")
      expect(metrics.failedCalls).toBe(FIBERS)
      expect(metrics.totalCalls).toBe(FIBERS)
      expect(metrics.stateChanges).toBe(1)
      // The failures after the fifth are late: they neither extend the open period nor count twice.
      expect(metrics.consecutiveFailures).toBe(5)
      yield* settle
      expect(seen.map(({ from, reason, to }) => ({ from, to, reason }))).toEqual([
        { from: "Closed", to: "Open", reason: "FailureThreshold" }
      ])
    }))

  it.scoped(`${FIBERS} concurrent failing calls arriving while it opens: counters add up, one opening`, () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "closed", failureThreshold: 5, resetTimeout: "1 minute" })
      const seen = yield* recordChanges(breaker)
      const results = yield* Effect.forEach(
        Array.from({ length: FIBERS }, (_, i) => i),
        (i) =>
          Effect.zipRight(
            Effect.repeatN(Effect.yieldNow(), i % 5),
            breaker.protect(Effect.zipRight(Effect.yieldNow(), Effect.fail(new Boom())))
          ).pipe(Effect.either),
        { concurrency: "unbounded" }
      )
      const failed = results.filter((r) => Either.isLeft(r) && r.left._tag === "Boom").length
      const rejected = results.filter((r) => Either.isLeft(r) && r.left._tag === "CircuitBreakerOpen").length
      expect(failed + rejected).toBe(FIBERS)
      expect(failed).toBeGreaterThanOrEqual(5)
      expect(rejected).toBeGreaterThan(0)
      const metrics = yield* breaker.metrics
      expect(metrics.state).toBe("Open")
      expect(metrics.failedCalls).toBe(failed)
      expect(metrics.rejectedCalls).toBe(rejected)
      expect(metrics.totalCalls).toBe(FIBERS)
      expect(metrics.stateChanges).toBe(1)
      yield* settle
      expect(seen.map(({ from, reason, to }) => ({ from, to, reason }))).toEqual([
        { from: "Closed", to: "Open", reason: "FailureThreshold" }
      ])
    }))

  it.scoped("isolation taken and released by many scopes at once is reference-counted", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "isolated" })
      const seen = yield* recordChanges(breaker)
      const scopes = yield* Effect.forEach(Array.from({ length: 200 }, () => Scope.make()), (s) => s)
      yield* Effect.forEach(scopes, (scope) => Scope.extend(breaker.isolate, scope), { concurrency: "unbounded" })
      expect(yield* breaker.state).toBe("ForcedOpen")
      yield* Effect.forEach(scopes.slice(1), (scope) => Scope.close(scope, Exit.void), { concurrency: "unbounded" })
      expect(yield* breaker.state).toBe("ForcedOpen")
      yield* Scope.close(scopes[0]!, Exit.void)
      expect(yield* breaker.state).toBe("Closed")
      yield* settle
      expect(seen.map(({ from, reason, to }) => ({ from, to, reason }))).toEqual([
        { from: "Closed", to: "ForcedOpen", reason: "Isolated" },
        { from: "ForcedOpen", to: "Closed", reason: "IsolationReleased" }
      ])
    }))

  it.effect(`${FIBERS} callers of a HalfOpen breaker with probePatience: only probes run, none waits longer`, () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "concurrency-patience",
        failureThreshold: 1,
        successThreshold: 3,
        halfOpenMaxCalls: 3,
        resetTimeout: "10 seconds",
        probePatience: "100 millis"
      })
      yield* Effect.flip(breaker.protect(Effect.fail(new Boom())))
      yield* TestClock.adjust("10 seconds")
      const executions = yield* Ref.make(0)
      const finished = yield* Ref.make(0)
      const fibers = yield* Effect.forEach(
        Array.from({ length: FIBERS }, (_, i) => i),
        (i) =>
          Effect.fork(
            Effect.zipRight(
              Effect.repeatN(Effect.yieldNow(), i % 7),
              breaker.protect(
                Effect.zipRight(
                  Ref.update(executions, (n) => n + 1),
                  Effect.zipRight(Effect.sleep("5 seconds"), Ref.update(finished, (n) => n + 1))
                )
              )
            ).pipe(Effect.either)
          )
      )
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      yield* TestClock.adjust("100 millis")
      const results = yield* Effect.forEach(fibers, Fiber.join)
      const reasons: Record<string, number> = {}
      for (const result of results) {
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result) && result.left instanceof CircuitBreaker.CircuitBreakerOpen) {
          reasons[result.left.reason] = (reasons[result.left.reason] ?? 0) + 1
        }
      }
      expect(reasons).toEqual({ ProbePending: 3, HalfOpenFull: FIBERS - 3 })
      expect(yield* Ref.get(executions)).toBe(3)
      expect(yield* Ref.get(finished)).toBe(0)
      // The probes go on without their callers and decide the breaker.
      yield* TestClock.adjust("4900 millis")
      expect(yield* Ref.get(finished)).toBe(3)
      expect(yield* breaker.state).toBe("Closed")
      const m = yield* breaker.metrics
      expect(m.successfulCalls).toBe(3)
      // A probe is counted once, by its outcome: its caller's ProbePending is not a rejection.
      expect(m.rejectedCalls).toBe(FIBERS - 3)
      expect(m.totalCalls).toBe(FIBERS + 1)
    }))
})
