import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scheduler from "effect/Scheduler"
import { InvalidOptions } from "../InvalidOptions.js"
import * as options from "./options.js"
import * as tracing from "./tracing.js"

/**
 * The failure of an operation that did not finish within its limit.
 *
 * @internal
 */
export class TimeoutError extends Data.TaggedError("TimeoutError")<{
  readonly operation: string
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `operation "${this.operation}" timed out after ${Duration.format(this.timeout)}`
  }
}

/** @internal */
export interface TimeoutOptions {
  readonly operation?: string | undefined
}

const DEFAULT_OPERATION = "unnamed"

/** @internal */
export const timeout = dual<
  (
    duration: Duration.DurationInput,
    options?: TimeoutOptions
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput,
    options?: TimeoutOptions
  ) => Effect.Effect<A, E | TimeoutError, R>
>(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.DurationInput,
    input?: TimeoutOptions
  ): Effect.Effect<A, E | TimeoutError, R> => {
    const limit = options.duration("Timeout", "duration", duration, Duration.infinity, {
      positive: true,
      finite: false
    })
    if (Either.isLeft(limit)) throw limit.left
    if (input !== undefined && (typeof input !== "object" || input === null || Array.isArray(input))) {
      throw new InvalidOptions({
        module: "Timeout",
        field: "options",
        expected: "an object { operation? }",
        received: input
      })
    }
    // Checked by hand: this runs wherever a program is built, possibly per request.
    const operation = input?.operation ?? DEFAULT_OPERATION
    if (typeof operation !== "string" || operation.trim() === "") {
      throw new InvalidOptions({
        module: "Timeout",
        field: "operation",
        expected: "a non-empty string",
        received: operation
      })
    }
    // No limit: nothing to race, nothing to pay for.
    if (!Duration.isFinite(limit.right)) return self
    const onTimeout = () => new TimeoutError({ operation, timeout: limit.right })
    return timed(self, operation, Duration.toMillis(limit.right), onTimeout)
  }
)

/**
 * The scheduler of an operation's fiber: the operation runs synchronously until it first
 * yields (`Effect.yieldNow`, `Effect.forever`, a long run of steps reaching the fiber's
 * operation budget); the task of that yield is held, and handed to the caller's scheduler
 * once the caller has armed the deadline. From then on, every task goes to the caller's
 * scheduler: the operation takes turns with the other fibers and can be interrupted.
 */
class FirstYieldScheduler implements Scheduler.Scheduler {
  private held: Array<readonly [Scheduler.Task, number, Fiber.RuntimeFiber<unknown, unknown> | undefined]> | undefined =
    []
  constructor(private readonly next: Scheduler.Scheduler) {}
  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return this.next.shouldYield(fiber)
  }
  scheduleTask(task: Scheduler.Task, priority: number, fiber?: Fiber.RuntimeFiber<unknown, unknown>): void {
    if (this.held === undefined) this.next.scheduleTask(task, priority, fiber)
    else this.held.push([task, priority, fiber])
  }
  /** Hands the held tasks over: the operation now runs on the caller's scheduler. */
  release(): void {
    const held = this.held
    this.held = undefined
    if (held === undefined) return
    for (let i = 0; i < held.length; i++) {
      const [task, priority, fiber] = held[i]!
      this.next.scheduleTask(task, priority, fiber)
    }
  }
}

/** Adds the `resilience.timeout` event to the caller's span, if it is in one. */
const record = (
  caller: Fiber.RuntimeFiber<unknown, unknown>,
  clock: Clock.Clock,
  operation: string,
  millis: number,
  startedAt: number,
  outcome: "completed" | "timed_out"
): void => {
  // Checked first: a caller in no span allocates nothing here, on every call.
  if (tracing.unsafeCurrentSpan(caller) === undefined) return
  tracing.unsafeEvent(caller, "resilience.timeout", () => ({
    "resilience.policy": "timeout",
    "resilience.name": operation,
    "resilience.outcome": outcome,
    "resilience.timeout_ms": millis,
    "resilience.elapsed_ms": clock.unsafeCurrentTimeMillis() - startedAt
  }))
}

/**
 * Runs `self` with a deadline `millis` from now, interrupting it when the deadline passes.
 *
 * The operation runs in a fiber of its own, started synchronously and run as far as its
 * first yield or suspension: an operation that completes before either (a cache hit, a
 * fallback value, a guard) never pays for a timer or a race. Any other operation races the
 * deadline on the `Clock`, taking turns with every other fiber (a loop that never waits on
 * I/O included); when it loses, it is interrupted and awaited (its finalizers have run when
 * `TimeoutError` is returned). As with `Fiber.await`, `FiberRef` changes made by the
 * operation stay with it: joining them back would cost more than the rest of the call.
 *
 * Either way the caller's span, if any, gets a `resilience.timeout` event: `completed` or
 * `timed_out`, with the limit and the time taken.
 */
const timed = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  operation: string,
  millis: number,
  onTimeout: () => TimeoutError
): Effect.Effect<A, E | TimeoutError, R> =>
  Effect.withFiberRuntime<A, E | TimeoutError, R>((parent, status) => {
    // The clock of the caller's services, read in this same step.
    const clock = Context.get(parent.currentDefaultServices, Clock.Clock)
    const startedAt = clock.unsafeCurrentTimeMillis()
    const runtime = Runtime.make({
      context: parent.currentContext as Context.Context<R>,
      fiberRefs: parent.getFiberRefs(),
      runtimeFlags: status.runtimeFlags
    })
    const scheduler = new FirstYieldScheduler(parent.currentScheduler)
    const fiber = Runtime.runFork(runtime, self, { scheduler })
    const exit = fiber.unsafePoll()
    if (exit !== null) {
      record(parent, clock, operation, millis, startedAt, "completed")
      return exit
    }
    const remaining = Math.max(0, millis - (clock.unsafeCurrentTimeMillis() - startedAt))
    // The operation's next turn runs on the caller's scheduler, after the caller has armed
    // the deadline below (scheduled tasks run once the running fiber gives up the thread).
    scheduler.release()
    return Effect.onInterrupt(
      Effect.flatMap(
        Effect.timeoutOption(Fiber.await(fiber), Duration.millis(remaining)),
        (done): Effect.Effect<A, E | TimeoutError> => {
          if (Option.isSome(done)) {
            record(parent, clock, operation, millis, startedAt, "completed")
            return done.value
          }
          return Effect.zipRight(
            Fiber.interrupt(fiber),
            Effect.suspend(() => {
              record(parent, clock, operation, millis, startedAt, "timed_out")
              return Effect.fail(onTimeout())
            })
          )
        }
      ),
      () => Fiber.interrupt(fiber)
    )
  })
