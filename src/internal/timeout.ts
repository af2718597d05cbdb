import type * as Context from "effect/Context"
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
    return timed(self, Duration.toMillis(limit.right), onTimeout)
  }
)

/**
 * Runs `self` with a deadline `millis` from now, interrupting it when the deadline passes.
 *
 * The operation runs in a fiber of its own, started and run synchronously as far as it
 * goes: an operation that completes without suspending (a cache hit, a fallback value, a
 * guard) never pays for a timer or a race. Only an operation that suspends races the
 * deadline on the `Clock`; when it loses, it is interrupted and awaited (its finalizers have
 * run when `TimeoutError` is returned). As with `Fiber.await`, `FiberRef` changes made by
 * the operation stay with it: joining them back would cost more than the rest of the call.
 */
const timed = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  onTimeout: () => TimeoutError
): Effect.Effect<A, E | TimeoutError, R> =>
  Effect.clockWith((clock) =>
    Effect.withFiberRuntime<A, E | TimeoutError, R>((parent, status) => {
      const startedAt = clock.unsafeCurrentTimeMillis()
      const runtime = Runtime.make({
        context: parent.currentContext as Context.Context<R>,
        fiberRefs: parent.getFiberRefs(),
        runtimeFlags: status.runtimeFlags
      })
      const scheduler = new Scheduler.SyncScheduler()
      const fiber = Runtime.runFork(runtime)(self, { scheduler })
      scheduler.flush()
      const exit = fiber.unsafePoll()
      if (exit !== null) return exit
      const remaining = Math.max(0, millis - (clock.unsafeCurrentTimeMillis() - startedAt))
      return Effect.onInterrupt(
        Effect.flatMap(
          Effect.timeoutOption(Fiber.await(fiber), Duration.millis(remaining)),
          (done): Effect.Effect<A, E | TimeoutError> =>
            Option.isSome(done)
              ? done.value
              : Effect.zipRight(Fiber.interrupt(fiber), Effect.fail(onTimeout()))
        ),
        () => Fiber.interrupt(fiber)
      )
    })
  )
