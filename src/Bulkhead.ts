/**
 * A bulkhead: at most `maxConcurrent` calls run at once, at most `maxQueue` more wait in
 * arrival order, and any call beyond that is rejected at once with `BulkheadFull`, so one
 * slow dependency cannot take every fiber and connection of the process with it.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { InvalidOptions } from "./InvalidOptions.js"
import * as internal from "./internal/bulkhead.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

export {
  /**
   * The rejection of a call when `maxConcurrent` calls run and `maxQueue` wait: `bulkhead`
   * (name), `maxConcurrent` and `maxQueue`. Classified `Degraded` by `Retry.classify`.
   *
   * @since 0.1.0
   * @category errors
   */
  BulkheadFull
} from "./internal/bulkhead.js"

/**
 * A snapshot of a bulkhead.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Calls running now (permits held). */
  readonly active: number
  /** Calls waiting now. */
  readonly queued: number
  /** Calls rejected since the bulkhead was made. */
  readonly rejected: number
  readonly maxConcurrent: number
  readonly maxQueue: number
}

/**
 * A bulkhead. Its gauges `effect_resilience_bulkhead_active` and
 * `effect_resilience_bulkhead_queued` and its counter `effect_resilience_bulkhead_rejected_total`
 * are tagged `bulkhead=<name>`, plus the tags the calling fiber carries (`Effect.tagMetrics`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  /**
   * Runs `effect` when a permit is free, waits in FIFO order when none is and the queue has
   * room, and otherwise fails at once with `BulkheadFull`. A waiter that is interrupted
   * leaves the queue; a permit is given back however the call ends.
   */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | internal.BulkheadFull, R>
  readonly stats: Effect.Effect<Stats>
}

/**
 * @since 0.1.0
 */
export declare namespace Bulkhead {
  /**
   * The options of `make`.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Options {
    /** Names the bulkhead in errors, metrics and traces (default `"bulkhead"`). */
    readonly name?: string | undefined
    /** Calls that run at once (an integer >= 1; required). */
    readonly maxConcurrent: number
    /** Calls that may wait for a permit (an integer >= 0 or `Infinity`; default 0). */
    readonly maxQueue?: number | undefined
  }
}

/**
 * Makes a bulkhead. A call that waits in the queue does so in a child span of the caller's
 * (`resilience.bulkhead.wait`); a rejection is a `resilience.bulkhead.rejected` event. Fails
 * with `InvalidOptions` naming the field when an option is out of range.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ name: "reports", maxConcurrent: 4, maxQueue: 16 })
 *   return yield* bulkhead.run(Effect.succeed("report"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Bulkhead.Options) => Effect.Effect<Bulkhead, InvalidOptions> = internal.make

/**
 * Runs an effect through a bulkhead: data-first or in a pipe.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "effect-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2, maxQueue: 2 })
 *   return yield* Effect.succeed(42).pipe(Bulkhead.run(bulkhead))
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const run: {
  (bulkhead: Bulkhead): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | internal.BulkheadFull, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | internal.BulkheadFull, R>
} = internal.run

/**
 * Whether a value is a `Bulkhead`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isBulkhead: (u: unknown) => u is Bulkhead = internal.isBulkhead
