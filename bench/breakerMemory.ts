/**
 * The breaker memory suite, for keyed breakers (one per tenant, per host, per key) that come
 * and go by the thousand: the heap a live breaker holds, and what a dropped one leaves
 * behind (in Effect's global metric registry, for instance). Heap figures are taken after
 * full collections, so node must run with `--expose-gc` (as `npm run bench` does); without
 * it the suite says so and measures nothing.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import type { Figure, Suite, SuiteResult } from "./harness.js"
import { gc, heapAfterGc, target } from "./harness.js"

/** Breakers kept alive at once for the live-heap figure. */
const live = 2_000
/** Breakers made, used once and dropped for the residual figure. */
const dropped = 5_000
/** Breakers made and dropped first, so that code and caches the first ones warm are not counted. */
const warmup = 1_000

const title = "Circuit breaker: memory per breaker (distinct names, heap after GC)"

/** Makes `count` breakers named `<prefix>-<i>` and calls each once; returns them. */
const makeUsed = (prefix: string, count: number): Effect.Effect<Array<CircuitBreaker.CircuitBreaker>> =>
  Effect.gen(function*() {
    const breakers: Array<CircuitBreaker.CircuitBreaker> = []
    for (let i = 0; i < count; i++) {
      const breaker = yield* Effect.orDie(CircuitBreaker.make({ name: `${prefix}-${i}` }))
      yield* Effect.orDie(breaker.protect(Effect.void))
      breakers.push(breaker)
    }
    return breakers
  })

const cpuMicros = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** The breaker memory suite. */
export const suite: Suite = {
  name: "breaker-memory",
  title,
  run: () =>
    Effect.gen(function*() {
      const collect = gc
      if (collect === undefined) {
        const reason = "node runs without --expose-gc (npm run bench passes it)"
        yield* Console.log(`${title}\n  skipped: ${reason}\n`)
        return {
          name: "breaker-memory",
          title,
          measurements: [],
          figures: [],
          targets: [],
          details: { skipped: reason }
        } satisfies SuiteResult
      }
      yield* makeUsed("bench-memory-warmup", warmup)

      // Made, used once, dropped: what stays is what a dropped breaker leaves behind.
      const beforeDropped = yield* heapAfterGc(collect)
      const cpuStart = cpuMicros()
      yield* makeUsed("bench-memory-dropped", dropped)
      const makeMicros = (cpuMicros() - cpuStart) / dropped
      const afterDropped = yield* heapAfterGc(collect)

      // Kept alive: what a breaker holds.
      const beforeLive = yield* heapAfterGc(collect)
      const kept = yield* makeUsed("bench-memory-live", live)
      const afterLive = yield* heapAfterGc(collect)
      const keptCount = kept.length

      const residual: Figure = {
        id: "residual",
        label: `left per breaker after ${dropped.toLocaleString("en-US")} made, used once, dropped`,
        value: (afterDropped - beforeDropped) / dropped,
        unit: "bytes"
      }
      const heap: Figure = {
        id: "live",
        label: `live heap per breaker (${keptCount.toLocaleString("en-US")} alive, each used once)`,
        value: (afterLive - beforeLive) / keptCount,
        unit: "bytes"
      }
      const figures: ReadonlyArray<Figure> = [
        heap,
        residual,
        {
          id: "make.distinct",
          label: "make + one call, each with a new name (CPU)",
          value: makeMicros,
          unit: "µs"
        }
      ]
      return {
        name: "breaker-memory",
        title,
        measurements: [],
        figures,
        targets: [
          target(heap, "live heap per breaker <= 2 KB", "<=", 2048),
          target(residual, "left behind per dropped breaker <= 100 bytes", "<=", 100)
        ],
        details: {
          breakers: "CircuitBreaker.make({ name: `<prefix>-<i>` }) (default options), then one protect(Effect.void)",
          warmup,
          heap: "process.memoryUsage().heapUsed after 4 x (gc(), setImmediate)",
          bytes: { beforeDropped, afterDropped, beforeLive, afterLive }
        }
      } satisfies SuiteResult
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
}
