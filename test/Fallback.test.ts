import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  ExecutionPlan,
  Exit,
  Fiber,
  Layer,
  Option,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import { InvalidOptions } from "../src/InvalidOptions.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

class Unavailable extends Data.TaggedError("Unavailable")<{ readonly provider: string }> {}
class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {}

/** Opens a breaker by failing `failureThreshold` protected calls. */
const trip = (breaker: CircuitBreaker.CircuitBreaker, times: number) =>
  Effect.repeatN(Effect.ignore(breaker.protect(Effect.fail("down"))), times - 1)

/** Lets forked fibers run until they block. */
const settle = Effect.zipRight(Effect.yieldNow(), Effect.yieldNow())

/** Asserts that `f` throws an `InvalidOptions` naming `field`. */
const expectInvalid = (f: () => unknown, field: string) => {
  let thrown: unknown
  try {
    f()
  } catch (error) {
    thrown = error
  }
  expect(thrown).toBeInstanceOf(InvalidOptions)
  expect((thrown as InvalidOptions).field).toBe(field)
}

describe("Fallback.to", () => {
  it.effect("replaces any failure with the value, and the error channel becomes never", () =>
    Effect.gen(function*() {
      const failing: Effect.Effect<number, Unavailable> = Effect.fail(new Unavailable({ provider: "a" }))
      const recovered: Effect.Effect<number | null, never> = failing.pipe(Fallback.to(null))
      expect(yield* recovered).toBeNull()
      expect(yield* Effect.succeed(7).pipe(Fallback.to(0))).toBe(7)
      // data-first
      expect(yield* Fallback.to(failing, -1)).toBe(-1)
    }))

  it.effect("with when, replaces only the accepted errors; a refinement removes its type", () =>
    Effect.gen(function*() {
      const isUnavailable = (error: Unavailable | BadRequest): error is Unavailable => error._tag === "Unavailable"
      const call = (error: Unavailable | BadRequest): Effect.Effect<string, Unavailable | BadRequest> =>
        Effect.fail(error)
      const recovered: Effect.Effect<string, BadRequest> = call(new Unavailable({ provider: "a" })).pipe(
        Fallback.to("cached", { when: isUnavailable })
      )
      expect(yield* recovered).toBe("cached")
      const passed = yield* call(new BadRequest({ reason: "no prompt" })).pipe(
        Fallback.to("cached", { when: isUnavailable }),
        Effect.flip
      )
      expect(passed).toEqual(new BadRequest({ reason: "no prompt" }))
    }))

  it.effect("does not catch defects", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.die("bug").pipe(Fallback.to(1)))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
    }))

  it("throws InvalidOptions when `when` is not a function", () => {
    expectInvalid(() => Fallback.to(Effect.fail(1), 0, { when: 3 as any }), "when")
  })
})

describe("Fallback.orElse", () => {
  it.effect("gives the fallback the error the call failed with", () =>
    Effect.gen(function*() {
      const reasons: Array<unknown> = []
      const value = yield* Effect.fail(new Unavailable({ provider: "primary" })).pipe(
        Fallback.orElse((reason) =>
          Effect.sync(() => reasons.push(reason)).pipe(Effect.as(`fallback:${reason.provider}`))
        )
      )
      expect(value).toBe("fallback:primary")
      expect(reasons).toEqual([new Unavailable({ provider: "primary" })])
    }))

  it.effect("gives the fallback the CircuitBreakerOpen that stopped the call, which did not run", () =>
    Effect.gen(function*() {
      const name = uniqueName("db")
      const breaker = yield* CircuitBreaker.make({ name, failureThreshold: 2, resetTimeout: "30 seconds" })
      yield* trip(breaker, 2)
      let ran = 0
      const reason = yield* breaker.protect(Effect.sync(() => ran++)).pipe(
        Fallback.orElse((reason) => Effect.succeed(reason))
      )
      expect(ran).toBe(0)
      expect(reason).toBeInstanceOf(CircuitBreaker.CircuitBreakerOpen)
      const rejection = reason as CircuitBreaker.CircuitBreakerOpen
      expect(rejection.breaker).toBe(name)
      expect(rejection.reason).toBe("Open")
      expect(Duration.toMillis(rejection.retryAfter)).toBe(30_000)
    }))

  it.effect("with when, only the accepted errors fall back; the fallback's own failure surfaces", () =>
    Effect.gen(function*() {
      const isUnavailable = (error: Unavailable | BadRequest): error is Unavailable => error._tag === "Unavailable"
      const call = (error: Unavailable | BadRequest): Effect.Effect<string, Unavailable | BadRequest> =>
        Effect.fail(error)
      const untouched = yield* call(new BadRequest({ reason: "x" })).pipe(
        Fallback.orElse(() => Effect.succeed("secondary"), { when: isUnavailable }),
        Effect.flip
      )
      expect(untouched._tag).toBe("BadRequest")
      const failed = yield* call(new Unavailable({ provider: "a" })).pipe(
        Fallback.orElse((reason) => Effect.fail(`secondary failed after ${reason.provider}`), { when: isUnavailable }),
        Effect.flip
      )
      expect(failed).toBe("secondary failed after a")
    }))
})

describe("Fallback.firstSuccess", () => {
  it.effect("skips a provider whose breaker is open at once: no time passes and it never runs", () =>
    Effect.gen(function*() {
      const primaryName = uniqueName("primary")
      const primary = yield* CircuitBreaker.make({ name: primaryName, failureThreshold: 1, resetTimeout: "1 minute" })
      yield* trip(primary, 1)
      const runs = { primary: 0, secondary: 0 }
      const before = yield* Clock.currentTimeMillis
      const fiber = yield* Fallback.firstSuccess([
        {
          name: "primary",
          breaker: primary,
          run: primary.protect(Effect.sync(() => runs.primary++).pipe(Effect.as("from primary")))
        },
        { name: "secondary", run: Effect.sync(() => runs.secondary++).pipe(Effect.as("from secondary")) }
      ]).pipe(Effect.fork)
      yield* settle
      // Done without the TestClock moving: nothing waited.
      const answer = yield* Fiber.poll(fiber)
      expect(Option.isSome(answer)).toBe(true)
      expect(yield* Clock.currentTimeMillis).toBe(before)
      const result = yield* Fiber.join(fiber)
      expect(result.value).toBe("from secondary")
      expect(result.provider).toBe("secondary")
      expect(runs).toEqual({ primary: 0, secondary: 1 })
      expect(result.failures).toHaveLength(1)
      const skipped = result.failures[0]
      expect(skipped._tag).toBe("Skipped")
      if (skipped._tag === "Skipped") {
        expect(skipped.provider).toBe("primary")
        expect(skipped.rejection.breaker).toBe(primaryName)
        expect(skipped.rejection.reason).toBe("Open")
        expect(Duration.toMillis(skipped.rejection.retryAfter)).toBe(60_000)
      }
      // Reading the breaker took no permit and recorded no rejection.
      expect((yield* primary.metrics).rejectedCalls).toBe(0)
    }))

  it.effect("tries providers in order and stops at the first success", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const provider = (name: string, outcome: "ok" | "fail") => ({
        name,
        run: Effect.suspend(() => {
          order.push(name)
          return outcome === "ok"
            ? Effect.succeed(`${name} answered`)
            : Effect.fail(new Unavailable({ provider: name }))
        })
      })
      const answer = yield* Fallback.firstSuccess([
        provider("a", "fail"),
        provider("b", "fail"),
        provider("c", "ok"),
        provider("d", "ok")
      ])
      expect(order).toEqual(["a", "b", "c"])
      expect(answer.provider).toBe("c")
      expect(answer.value).toBe("c answered")
      expect(answer.failures).toEqual([
        { _tag: "Failed", provider: "a", error: new Unavailable({ provider: "a" }) },
        { _tag: "Failed", provider: "b", error: new Unavailable({ provider: "b" }) }
      ])
    }))

  it.effect("a provider whose breaker reopened probes again once its open duration has passed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("p"),
        failureThreshold: 1,
        resetTimeout: "10 seconds"
      })
      yield* trip(breaker, 1)
      const providers = [
        { name: "primary", breaker, run: breaker.protect(Effect.succeed("primary")) },
        { name: "secondary", run: Effect.succeed("secondary") }
      ] as const
      expect((yield* Fallback.firstSuccess(providers)).provider).toBe("secondary")
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fallback.firstSuccess(providers)).provider).toBe("primary")
    }))

  it.effect("fails with AllProvidersFailed listing each provider's failure or skip, in order", () =>
    Effect.gen(function*() {
      const forcedName = uniqueName("forced")
      const forced = yield* CircuitBreaker.make({ name: forcedName })
      yield* forced.forceOpen
      const error = yield* Fallback.firstSuccess([
        { name: "a", run: Effect.fail(new Unavailable({ provider: "a" })) },
        { name: "b", breaker: forced, run: forced.protect(Effect.succeed("never")) },
        { name: "c", run: Effect.fail(new BadRequest({ reason: "too long" })) }
      ]).pipe(Effect.flip)
      expect(error).toBeInstanceOf(Fallback.AllProvidersFailed)
      expect(error._tag).toBe("AllProvidersFailed")
      expect(error.failures.map((failure) => [failure._tag, failure.provider])).toEqual([
        ["Failed", "a"],
        ["Skipped", "b"],
        ["Failed", "c"]
      ])
      const [a, b, c] = error.failures
      expect(a._tag === "Failed" && a.error).toEqual(new Unavailable({ provider: "a" }))
      expect(b._tag === "Skipped" && b.rejection.reason).toBe("ForcedOpen")
      expect(b._tag === "Skipped" && b.rejection.breaker).toBe(forcedName)
      expect(c._tag === "Failed" && c.error).toEqual(new BadRequest({ reason: "too long" }))
      expect(error.message).toContain("a: ")
      expect(error.message).toContain("b: skipped")
      expect(error.message).toContain("c: ")
    }))

  it.effect("a provider turned away by its half-open breaker inside run is skipped, not failed", () =>
    Effect.gen(function*() {
      const name = uniqueName("half-open")
      const breaker = yield* CircuitBreaker.make({ name, failureThreshold: 1, resetTimeout: "10 seconds" })
      yield* trip(breaker, 1)
      yield* TestClock.adjust("10 seconds")
      const gate = yield* Effect.makeLatch(false)
      const providers = [
        { name: "primary", breaker, run: breaker.protect(Effect.as(gate.await, "primary")) },
        { name: "secondary", run: Effect.succeed("secondary") }
      ] as const
      // The first call takes the only probe permit and waits on the primary.
      const probe = yield* Effect.fork(Fallback.firstSuccess(providers))
      yield* settle
      const answer = yield* Fallback.firstSuccess(providers)
      expect(answer.provider).toBe("secondary")
      expect(answer.failures).toHaveLength(1)
      const skipped = answer.failures[0]
      expect(skipped._tag).toBe("Skipped")
      expect(skipped._tag === "Skipped" && skipped.rejection.reason).toBe("HalfOpenFull")
      expect(skipped._tag === "Skipped" && skipped.rejection.breaker).toBe(name)
      yield* gate.open
      expect((yield* Fiber.join(probe)).provider).toBe("primary")
    }))

  it.effect("does not catch a provider's defect", () =>
    Effect.gen(function*() {
      let secondRan = false
      const exit = yield* Effect.exit(Fallback.firstSuccess([
        { name: "a", run: Effect.die("bug") },
        { name: "b", run: Effect.sync(() => (secondRan = true)) }
      ]))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
      expect(secondRan).toBe(false)
    }))

  it.effect("answers 500 concurrent callers through the secondary while the primary's breaker is open", () =>
    Effect.gen(function*() {
      const primary = yield* CircuitBreaker.make({
        name: uniqueName("p"),
        failureThreshold: 1,
        resetTimeout: "1 minute"
      })
      yield* trip(primary, 1)
      const primaryRuns = yield* Ref.make(0)
      const answers = yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => i),
        (i) =>
          Fallback.firstSuccess([
            { name: "primary", breaker: primary, run: primary.protect(Ref.update(primaryRuns, (n) => n + 1)) },
            { name: "secondary", run: Effect.yieldNow().pipe(Effect.as(i)) }
          ]),
        { concurrency: "unbounded" }
      )
      expect(answers.map((answer) => answer.value)).toEqual(Array.from({ length: 500 }, (_, i) => i))
      expect(answers.every((answer) => answer.provider === "secondary")).toBe(true)
      expect(yield* Ref.get(primaryRuns)).toBe(0)
    }))

  it("throws InvalidOptions for an empty list, a nameless provider or a run that is not an Effect", () => {
    expectInvalid(() => Fallback.firstSuccess([] as any), "providers")
    expectInvalid(() => Fallback.firstSuccess([{ name: " ", run: Effect.void }]), "providers[0].name")
    expectInvalid(() => Fallback.firstSuccess([{ name: "a", run: Effect.void }, { name: "b", run: 3 as any }]),
      "providers[1].run")
    expectInvalid(() => Fallback.firstSuccess([{ name: "a", run: Effect.void, breaker: {} as any }]),
      "providers[0].breaker")
  })
})

describe("Fallback.makeFailover", () => {
  it.effect("makes one breaker per provider, once, and skips the primary after it opens", () =>
    Effect.gen(function*() {
      const calls = { primary: 0, secondary: 0 }
      const primaryName = uniqueName("primary")
      const failover = yield* Fallback.makeFailover([
        {
          name: primaryName,
          breaker: { failureThreshold: 2, resetTimeout: "30 seconds" },
          run: (prompt: string, breaker) =>
            breaker.protect(Effect.suspend(() => {
              calls.primary++
              return Effect.fail(new Unavailable({ provider: "primary" }))
            })).pipe(Effect.as(`primary: ${prompt}`))
        },
        {
          name: "secondary",
          run: (prompt: string, breaker) =>
            breaker.protect(Effect.sync(() => calls.secondary++)).pipe(Effect.as(`secondary: ${prompt}`))
        }
      ])
      expect(failover.providers.map((provider) => provider.name)).toEqual([primaryName, "secondary"])
      expect(failover.providers[0].breaker.name).toBe(primaryName)
      for (let i = 0; i < 5; i++) {
        const answer = yield* failover.run(`q${i}`)
        expect(answer.value).toBe(`secondary: q${i}`)
      }
      // The primary ran until its breaker (made once, shared by every run) opened.
      expect(calls).toEqual({ primary: 2, secondary: 5 })
      expect(yield* failover.providers[0].breaker.state).toBe("Open")
    }))

  it.effect("gradual recovery (recoveryFactor 0.5) behind a failover: the primary gets traffic again, closes", () =>
    Effect.gen(function*() {
      let primaryUp = false
      const served = { primary: 0, secondary: 0 }
      const primaryName = uniqueName("primary")
      const failover = yield* Fallback.makeFailover([
        {
          name: primaryName,
          breaker: { failureThreshold: 2, successThreshold: 3, resetTimeout: "30 seconds", recoveryFactor: 0.5 },
          run: (prompt: string, breaker) =>
            breaker.protect(Effect.suspend(() =>
              primaryUp
                ? Effect.sync(() => served.primary++).pipe(Effect.as(`primary: ${prompt}`))
                : Effect.fail(new Unavailable({ provider: "primary" }))
            ))
        },
        {
          name: "secondary",
          run: (prompt: string) => Effect.sync(() => served.secondary++).pipe(Effect.as(`secondary: ${prompt}`))
        }
      ])
      const breaker = failover.providers[0].breaker
      // The primary is down for a minute: its breaker opens, the secondary answers.
      for (let i = 0; i < 6; i++) {
        expect((yield* failover.run(`q${i}`)).provider).toBe("secondary")
        yield* TestClock.adjust("10 seconds")
      }
      expect(served.primary).toBe(0)
      expect(yield* breaker.state).not.toBe("Closed")
      // The primary comes back. Over an hour, one request every 10 seconds.
      primaryUp = true
      const providers: Array<string> = []
      for (let i = 0; i < 360; i++) {
        providers.push((yield* failover.run(`r${i}`)).provider)
        yield* TestClock.adjust("10 seconds")
      }
      expect(yield* breaker.state).toBe("Closed")
      // Half-open, every other request goes to the primary; 3 successes close the breaker,
      // and from then on the primary answers every request.
      const firstPrimary = providers.indexOf(primaryName)
      expect(firstPrimary).toBeGreaterThanOrEqual(0)
      expect(firstPrimary).toBeLessThanOrEqual(3)
      expect(providers.slice(firstPrimary + 5).every((provider) => provider === primaryName)).toBe(true)
      expect(served.primary).toBeGreaterThan(350)
    }))

  it.effect("fails with InvalidOptions naming the field for bad breaker options", () =>
    Effect.gen(function*() {
      const error = yield* Fallback.makeFailover([
        { name: "a", breaker: { failureThreshold: 0 }, run: () => Effect.void }
      ]).pipe(Effect.flip)
      expect(error).toBeInstanceOf(InvalidOptions)
      expect(error.field).toBe("failureThreshold")
      const empty = yield* Fallback.makeFailover([] as any).pipe(Effect.flip)
      expect(empty.field).toBe("providers")
    }))
})

/**
 * A hedged call whose attempts behave as `plan` says (by attempt number, 1-based), and
 * that records which attempts started, finished and were interrupted (their finalizer ran).
 */
const attempts = (
  plan: (attempt: number) => Effect.Effect<string, string>
) => {
  const log = { started: [] as Array<number>, finished: [] as Array<number>, interrupted: [] as Array<number> }
  let next = 0
  const effect = Effect.suspend(() => {
    const attempt = ++next
    log.started.push(attempt)
    return plan(attempt).pipe(
      Effect.tap(() => Effect.sync(() => log.finished.push(attempt))),
      Effect.onInterrupt(() => Effect.sync(() => log.interrupted.push(attempt)))
    )
  })
  return { effect, log }
}

describe("Fallback.hedge", () => {
  it.effect("starts a second attempt after the delay; the first success wins and the loser is interrupted", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts((attempt) =>
        attempt === 1
          ? Effect.sleep("10 seconds").pipe(Effect.as("slow"))
          : Effect.sleep("100 millis").pipe(Effect.as("fast"))
      )
      const fiber = yield* effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 2 }), Effect.fork)
      yield* TestClock.adjust("999 millis")
      expect(log.started).toEqual([1])
      yield* TestClock.adjust("1 millis")
      expect(log.started).toEqual([1, 2])
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBe("fast")
      // The loser's finalizer ran before the hedge returned.
      expect(log.interrupted).toEqual([1])
      expect(log.finished).toEqual([2])
      expect(yield* Clock.currentTimeMillis).toBe(1_100)
    }))

  it.effect("with delay 0 starts every attempt at once, with no clock time passing", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts((attempt) =>
        attempt === 3 ? Effect.succeed("third") : Effect.never
      )
      const fiber = yield* effect.pipe(Fallback.hedge({ delay: 0, maxAttempts: 3 }), Effect.fork)
      yield* TestClock.adjust(0)
      expect(log.started).toEqual([1, 2, 3])
      expect(yield* Fiber.join(fiber)).toBe("third")
      expect([...log.interrupted].sort()).toEqual([1, 2])
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }))

  it.effect("does not start a second attempt when the first finishes within the delay", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts(() => Effect.sleep("300 millis").pipe(Effect.as("ok")))
      const fiber = yield* effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 3 }), Effect.fork)
      yield* TestClock.adjust("300 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      yield* TestClock.adjust("10 seconds")
      expect(log.started).toEqual([1])
      expect(log.interrupted).toEqual([])
    }))

  it.effect("never has more than maxAttempts attempts, and interrupting the hedge interrupts them all", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts(() => Effect.never)
      const fiber = yield* effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 3 }), Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(log.started).toEqual([1, 2])
      yield* TestClock.adjust("1 minute")
      expect(log.started).toEqual([1, 2, 3])
      yield* Fiber.interrupt(fiber)
      expect([...log.interrupted].sort()).toEqual([1, 2, 3])
    }))

  it.effect("a failed attempt starts the next at once; when all fail, fails with the last failure", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts((attempt) => Effect.fail(`error ${attempt}`))
      const error = yield* effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 3 }), Effect.flip)
      expect(error).toBe("error 3")
      expect(log.started).toEqual([1, 2, 3])
      expect(yield* Clock.currentTimeMillis).toBe(0)
    }))

  it.effect("waits for the attempts still running when an earlier one fails", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts((attempt) =>
        attempt === 1 ? Effect.sleep("5 seconds").pipe(Effect.as("first")) : Effect.fail("second failed")
      )
      const fiber = yield* effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 2 }), Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(log.started).toEqual([1, 2])
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("4 seconds")
      expect(yield* Fiber.join(fiber)).toBe("first")
    }))

  it.effect("a failure refused by `when` ends the hedge with it and interrupts the others", () =>
    Effect.gen(function*() {
      const { effect, log } = attempts((attempt) =>
        attempt === 1 ? Effect.never : Effect.sleep("10 millis").pipe(Effect.zipRight(Effect.fail("fatal")))
      )
      const fiber = yield* effect.pipe(
        Fallback.hedge({ delay: "1 second", maxAttempts: 3, when: (error) => error !== "fatal" }),
        Effect.either,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toEqual(Either.left("fatal"))
      expect(log.started).toEqual([1, 2])
      expect(log.interrupted).toEqual([1])
    }))

  it.effect("100 concurrent hedged calls each return their winner and interrupt exactly their losers", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(0)
      const calls = Array.from({ length: 100 }, (_, i) => i)
      const fiber = yield* Effect.forEach(calls, (i) => {
        let attempt = 0
        // Call i: its first attempt takes 5 s; its second answers 50 ms after starting.
        const effect = Effect.suspend(() => {
          const n = ++attempt
          return Effect.sleep(n === 1 ? "5 seconds" : "50 millis").pipe(
            Effect.as(`${i}/${n}`),
            Effect.onInterrupt(() => Ref.update(interrupted, (count) => count + 1))
          )
        })
        return effect.pipe(Fallback.hedge({ delay: "1 second", maxAttempts: 3 }))
      }, { concurrency: "unbounded" }).pipe(Effect.fork)
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("50 millis")
      const results = yield* Fiber.join(fiber)
      expect(results).toEqual(calls.map((i) => `${i}/2`))
      expect(yield* Ref.get(interrupted)).toBe(100)
    }))

  it("throws InvalidOptions for a bad delay or maxAttempts", () => {
    expectInvalid(() => Fallback.hedge(Effect.void, { delay: -1 }), "delay")
    expectInvalid(() => Fallback.hedge(Effect.void, { delay: Duration.infinity }), "delay")
    expectInvalid(() => Fallback.hedge(Effect.void, { delay: "1 second", maxAttempts: 0 }), "maxAttempts")
    expectInvalid(() => Fallback.hedge(Effect.void, { delay: "1 second", maxAttempts: 1.5 }), "maxAttempts")
    expectInvalid(() => Fallback.hedge(Effect.void, {} as any), "delay")
    expectInvalid(() => Fallback.hedge(Effect.void, null as any), "options")
    expectInvalid(() => Fallback.hedge(Effect.void, { delay: "1 second", when: 3 as any }), "when")
    // The edges of the accepted ranges are accepted.
    expect(Effect.isEffect(Fallback.hedge(Effect.void, { delay: 0, maxAttempts: 1 }))).toBe(true)
  })
})

class Llm extends Context.Tag("test/Llm")<Llm, {
  readonly complete: (prompt: string) => Effect.Effect<string, Unavailable>
}>() {}

/** A provider as a Layer, counting how often it was built and called. */
const llmLayer = (name: string, healthy: boolean | (() => boolean)) => {
  const counts = { built: 0, calls: 0 }
  const isHealthy = typeof healthy === "boolean" ? () => healthy : healthy
  const layer = Layer.effect(
    Llm,
    Effect.sync(() => {
      counts.built++
      return {
        complete: (prompt: string) =>
          Effect.suspend(() => {
            counts.calls++
            return isHealthy()
              ? Effect.succeed(`${name}: ${prompt}`)
              : Effect.fail(new Unavailable({ provider: name }))
          })
      }
    })
  )
  return { layer, counts }
}

const complete = (prompt: string) => Effect.flatMap(Llm, (llm) => llm.complete(prompt))

describe("Fallback.step / Fallback.withPlan (ExecutionPlan)", () => {
  it.effect("fails over from one Layer to the next, and skips a Layer whose breaker opened without building it", () =>
    Effect.gen(function*() {
      const primary = llmLayer("primary", false)
      const secondary = llmLayer("secondary", true)
      const breaker = yield* CircuitBreaker.make({ name: uniqueName("primary"), failureThreshold: 2 })
      const plan = ExecutionPlan.make(
        Fallback.step({ provide: primary.layer, breaker, attempts: 2 }),
        Fallback.step({ provide: secondary.layer })
      )
      expect(yield* complete("one").pipe(Fallback.withPlan(plan))).toBe("secondary: one")
      // Two attempts through the breaker: both recorded, and it opened.
      expect(primary.counts).toEqual({ built: 2, calls: 2 })
      expect(yield* breaker.state).toBe("Open")
      const metrics = yield* breaker.metrics
      expect(metrics.failedCalls).toBe(2)

      const before = yield* Clock.currentTimeMillis
      expect(yield* complete("two").pipe(Fallback.withPlan(plan))).toBe("secondary: two")
      expect(yield* Clock.currentTimeMillis).toBe(before)
      // Skipped: not built, not called, and its remaining attempt not spent waiting.
      expect(primary.counts).toEqual({ built: 2, calls: 2 })
      expect(secondary.counts).toEqual({ built: 2, calls: 2 })
    }))

  it.effect("gradual recovery (recoveryFactor 0.5) behind a plan step: the primary Layer gets traffic again", () =>
    Effect.gen(function*() {
      let primaryUp = false
      const primary = llmLayer("primary", () => primaryUp)
      const secondary = llmLayer("secondary", true)
      const breaker = yield* CircuitBreaker.make({
        name: uniqueName("primary"),
        failureThreshold: 2,
        successThreshold: 3,
        resetTimeout: "30 seconds",
        recoveryFactor: 0.5
      })
      const plan = ExecutionPlan.make(
        Fallback.step({ provide: primary.layer, breaker }),
        Fallback.step({ provide: secondary.layer })
      )
      for (let i = 0; i < 6; i++) {
        expect(yield* complete(`q${i}`).pipe(Fallback.withPlan(plan))).toBe(`secondary: q${i}`)
        yield* TestClock.adjust("10 seconds")
      }
      primaryUp = true
      const answers: Array<string> = []
      for (let i = 0; i < 360; i++) {
        answers.push(yield* complete("r").pipe(Fallback.withPlan(plan)))
        yield* TestClock.adjust("10 seconds")
      }
      expect(yield* breaker.state).toBe("Closed")
      const firstPrimary = answers.indexOf("primary: r")
      expect(firstPrimary).toBeGreaterThanOrEqual(0)
      expect(firstPrimary).toBeLessThanOrEqual(3)
      expect(answers.slice(firstPrimary + 5).every((answer) => answer === "primary: r")).toBe(true)
    }))

  it.effect("a step's schedule spaces its attempts and the hand-over into it; the last failure surfaces", () =>
    Effect.gen(function*() {
      const primary = llmLayer("primary", false)
      const secondary = llmLayer("secondary", false)
      const plan = ExecutionPlan.make(
        Fallback.step({ provide: primary.layer, attempts: 3, schedule: Schedule.spaced("1 second") }),
        Fallback.step({ provide: secondary.layer, attempts: 1, schedule: Schedule.spaced("500 millis") })
      )
      const fiber = yield* complete("x").pipe(Fallback.withPlan(plan), Effect.flip, Effect.fork)
      yield* settle
      expect(primary.counts.calls).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(primary.counts.calls).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(primary.counts.calls).toBe(3)
      // ExecutionPlan feeds the primary's last failure to the secondary's schedule first.
      expect(secondary.counts.calls).toBe(0)
      yield* TestClock.adjust("500 millis")
      expect(secondary.counts.calls).toBe(1)
      const error = yield* Fiber.join(fiber)
      expect(error).toEqual(new Unavailable({ provider: "secondary" }))
      expect(primary.counts.calls).toBe(3)
    }))

  it.effect("under plain Effect.withExecutionPlan a breaker step still skips while its breaker is open", () =>
    Effect.gen(function*() {
      const primary = llmLayer("primary", true)
      const secondary = llmLayer("secondary", true)
      const breaker = yield* CircuitBreaker.make({ name: uniqueName("primary") })
      yield* breaker.forceOpen
      const plan = ExecutionPlan.make(
        Fallback.step({ provide: primary.layer, breaker }),
        Fallback.step({ provide: secondary.layer })
      )
      expect(yield* complete("hi").pipe(Effect.withExecutionPlan(plan))).toBe("secondary: hi")
      expect(primary.counts.built).toBe(0)
    }))

  it("throws InvalidOptions for a step without a Layer or with bad attempts", () => {
    expectInvalid(() => Fallback.step({ provide: 3 as any }), "provide")
    expectInvalid(() => Fallback.step({ provide: Layer.empty, attempts: 0 }), "attempts")
  })
})
