import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Ref from "effect/Ref"
import type * as Bulkhead from "../Bulkhead.js"
import { InvalidOptions } from "../InvalidOptions.js"
import * as options from "./options.js"
import * as tracing from "./tracing.js"
import { counter } from "./metric.js"
import { withLabels } from "./metricLabels.js"

/** @internal */
export const TypeId: Bulkhead.TypeId = Symbol.for("effect-resilience/Bulkhead") as Bulkhead.TypeId

/**
 * The rejection of a call when `maxConcurrent` calls run and `maxQueue` wait.
 *
 * @internal
 */
export class BulkheadFull extends Data.TaggedError("BulkheadFull")<{
  readonly bulkhead: string
  readonly maxConcurrent: number
  readonly maxQueue: number
}> {
  override get message(): string {
    return `bulkhead "${this.bulkhead}" is full: ${this.maxConcurrent} calls running and ${this.maxQueue} waiting`
  }
}

// -----------------------------------------------------------------------------
// Pure core: (state, event) => [decision, state]
// -----------------------------------------------------------------------------

/**
 * `active` counts the permits held, including one handed to a waiter that has not resumed
 * yet; `queue` holds the waiters in arrival order. A released permit goes straight to the
 * head of the queue (it is never put back for a newcomer to take), which makes the order
 * exactly FIFO.
 *
 * @internal
 */
export interface State {
  readonly active: number
  readonly queue: Chunk.Chunk<Deferred.Deferred<void>>
  readonly rejected: number
}

interface Limits {
  readonly maxConcurrent: number
  readonly maxQueue: number
}

const RUN = 0
const WAIT = 1
const FULL = 2
type Admission = typeof RUN | typeof WAIT | typeof FULL

/**
 * A call arrives. Without a `waiter` the caller only asks whether it may run or must wait
 * (then it comes back with a waiter), so the fast path allocates nothing.
 *
 * @internal
 */
export const enter = (
  state: State,
  limits: Limits,
  waiter: Deferred.Deferred<void> | undefined
): readonly [Admission, State] => {
  if (state.active < limits.maxConcurrent) {
    return [RUN, { active: state.active + 1, queue: state.queue, rejected: state.rejected }]
  }
  if (Chunk.size(state.queue) < limits.maxQueue) {
    if (waiter === undefined) return [WAIT, state]
    return [WAIT, { active: state.active, queue: Chunk.append(state.queue, waiter), rejected: state.rejected }]
  }
  return [FULL, { active: state.active, queue: state.queue, rejected: state.rejected + 1 }]
}

/**
 * A permit is given back: to the head of the queue if anyone waits.
 *
 * @internal
 */
export const release = (state: State): readonly [Deferred.Deferred<void> | undefined, State] => {
  if (Chunk.isNonEmpty(state.queue)) {
    const queue = Chunk.drop(state.queue, 1)
    return [Chunk.unsafeHead(state.queue), { active: state.active, queue, rejected: state.rejected }]
  }
  return [undefined, { active: state.active - 1, queue: state.queue, rejected: state.rejected }]
}

/**
 * A waiter is interrupted: it leaves the queue, or, when it was already handed a permit,
 * must give that permit back (`true`).
 *
 * @internal
 */
export const leave = (state: State, waiter: Deferred.Deferred<void>): readonly [boolean, State] => {
  const index = Chunk.findFirstIndex(state.queue, (w) => w === waiter)
  if (index._tag === "None") return [true, state]
  return [false, { active: state.active, queue: Chunk.remove(state.queue, index.value), rejected: state.rejected }]
}

// -----------------------------------------------------------------------------
// Effect shell
// -----------------------------------------------------------------------------

const activeGauge = Metric.gauge("effect_resilience_bulkhead_active", {
  description: "Calls running inside a bulkhead"
})
const queuedGauge = Metric.gauge("effect_resilience_bulkhead_queued", {
  description: "Calls waiting for a bulkhead"
})
const rejectedCounter = counter("effect_resilience_bulkhead_rejected_total", "Calls rejected by a full bulkhead")

const maxQueueCheck = options.integerAtLeastOrInfinity(0)

/** @internal */
export const make = (given: Bulkhead.Bulkhead.Options): Effect.Effect<Bulkhead.Bulkhead, InvalidOptions> =>
  Effect.gen(function*() {
    const module = "Bulkhead"
    const input = yield* options.object(module, given, true, "an object { maxConcurrent, maxQueue?, name? }")
    const name = yield* options.field(module, "name", input.name, options.nonEmptyString, "bulkhead")
    if (input.maxConcurrent === undefined) {
      return yield* new InvalidOptions({
        module,
        field: "maxConcurrent",
        expected: "an integer >= 1",
        received: undefined
      })
    }
    const maxConcurrent = yield* options.field(
      module,
      "maxConcurrent",
      input.maxConcurrent,
      options.integerAtLeast(1),
      1
    )
    const maxQueue = yield* options.field(module, "maxQueue", input.maxQueue, maxQueueCheck, 0)
    const limits: Limits = { maxConcurrent, maxQueue }
    const ref = yield* Ref.make<State>({ active: 0, queue: Chunk.empty(), rejected: 0 })
    // Tagged `bulkhead=<name>` and with the tags the calling fiber carries (`Effect.tagMetrics`).
    const labelled = withLabels([MetricLabel.make("bulkhead", name)])

    const report = (state: State) =>
      labelled((labels) => {
        activeGauge.unsafeUpdate(state.active, labels)
        queuedGauge.unsafeUpdate(Chunk.size(state.queue), labels)
      })

    const countRejected = labelled((labels) => rejectedCounter.unsafeUpdate(1, labels))
    const full = Effect.zipRight(
      countRejected,
      tracing.eventThen("resilience.bulkhead.rejected", () => ({
        "resilience.policy": "bulkhead",
        "resilience.name": name,
        "resilience.outcome": "rejected",
        "resilience.max_concurrent": maxConcurrent,
        "resilience.max_queue": maxQueue
      }), () => Effect.fail(new BulkheadFull({ bulkhead: name, maxConcurrent, maxQueue })))
    )
    // The wait of a queued call, as a child span of the caller's: the time it spent queued
    // shows in the trace, and ends `interrupted` when the caller gave up.
    const wait = (waiter: Deferred.Deferred<void>, position: number) =>
      tracing.childSpan(Deferred.await(waiter), "resilience.bulkhead.wait", () => ({
        "resilience.policy": "bulkhead",
        "resilience.name": name,
        "resilience.queue_position": position
      }))

    const releasePermit: Effect.Effect<void> = Effect.flatMap(
      Ref.modify(ref, (state) => {
        const [next, after] = release(state)
        return [[next, after] as const, after]
      }),
      ([next, after]) =>
        next === undefined ? report(after) : Effect.zipRight(Deferred.succeed(next, void 0), report(after))
    )

    // Called uninterruptibly when a waiter is interrupted.
    const leaveQueue = (waiter: Deferred.Deferred<void>): Effect.Effect<void> =>
      Effect.flatMap(
        Ref.modify(ref, (state) => {
          const [handedPermit, after] = leave(state, waiter)
          return [[handedPermit, after] as const, after]
        }),
        ([handedPermit, after]) => handedPermit ? releasePermit : report(after)
      )

    const admit = (waiter: Deferred.Deferred<void> | undefined) =>
      Ref.modify(ref, (state) => {
        const [admission, after] = enter(state, limits, waiter)
        return [[admission, after] as const, after]
      })

    const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadFull, R> =>
      Effect.uninterruptibleMask((restore) => {
        const permitted = Effect.ensuring(restore(effect), releasePermit)
        return Effect.flatMap(admit(undefined), ([admission, after]): Effect.Effect<A, E | BulkheadFull, R> => {
          if (admission === RUN) return Effect.zipRight(report(after), permitted)
          if (admission === FULL) return full
          // The slow path: come back with a waiter; the state may have moved meanwhile.
          return Effect.flatMap(Deferred.make<void>(), (waiter) =>
            Effect.flatMap(admit(waiter), ([admission, after]): Effect.Effect<A, E | BulkheadFull, R> => {
              if (admission === RUN) return Effect.zipRight(report(after), permitted)
              if (admission === FULL) return full
              return report(after).pipe(
                Effect.zipRight(
                  Effect.onInterrupt(restore(wait(waiter, Chunk.size(after.queue))), () => leaveQueue(waiter))
                ),
                Effect.zipRight(permitted)
              )
            }))
        })
      })

    const bulkhead: Bulkhead.Bulkhead = {
      [TypeId]: TypeId,
      name,
      maxConcurrent,
      maxQueue,
      run,
      stats: Effect.map(Ref.get(ref), (state) => ({
        active: state.active,
        queued: Chunk.size(state.queue),
        rejected: state.rejected,
        maxConcurrent,
        maxQueue
      }))
    }
    return bulkhead
  })

/** @internal */
export const run = dual<
  (bulkhead: Bulkhead.Bulkhead) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFull, R>,
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead.Bulkhead) => Effect.Effect<A, E | BulkheadFull, R>
>(2, (self, bulkhead) => bulkhead.run(self))

/** @internal */
export const isBulkhead = (u: unknown): u is Bulkhead.Bulkhead => typeof u === "object" && u !== null && TypeId in u
