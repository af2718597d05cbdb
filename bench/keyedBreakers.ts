/**
 * The keyed breakers suite: 100,000 distinct keys through `CircuitBreaker.keyed` with a
 * `capacity` of 10,000, each key used once. The map must keep at most `capacity` breakers
 * alive and the heap flat while keys stream through; once every key has been idle past
 * `idleTimeToLive` (the background sweep, no call needed), the heap must return to its
 * baseline. Heap figures are taken after full collections, so node must run with
 * `--expose-gc` (as `npm run bench` does); without it the suite says so and measures nothing.
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import type { Figure, Suite, SuiteResult } from "./harness.js"
import { gc, heapAfterGc, target } from "./harness.js"

const keys = 100_000
const capacity = 10_000
/** Heap samples are taken every this many keys. */
const sampleEvery = 10_000
const idleTimeToLive = Duration.seconds(2)
const title = "Keyed breakers: 100,000 keys through capacity 10,000 (heap after GC)"

const cpuMicros = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** Streams `count` distinct keys `<prefix>-<i>` through `keyed`, one call each. */
const streamKeys = (
  keyed: CircuitBreaker.KeyedCircuitBreaker,
  prefix: string,
  from: number,
  count: number
): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = from; i < from + count; i++) {
      yield* Effect.orDie(Effect.void.pipe(keyed.protect(`${prefix}-${i}`)))
    }
  })

/** The keyed breakers suite. */
export const suite: Suite = {
  name: "keyed-breakers",
  title,
  run: () =>
    Effect.gen(function*() {
      const collect = gc
      if (collect === undefined) {
        const reason = "node runs without --expose-gc (npm run bench passes it)"
        yield* Console.log(`${title}\n  skipped: ${reason}\n`)
        return {
          name: "keyed-breakers",
          title,
          measurements: [],
          figures: [],
          targets: [],
          details: { skipped: reason }
        } satisfies SuiteResult
      }
      const samples: Array<{ readonly keys: number; readonly alive: number; readonly heap: number }> = []
      let peakAlive = 0
      let cpu = 0
      /** One run: every key through a fresh keyed breaker, sampled, then left idle past its time to live. */
      const cycle = (prefix: string, sample: boolean) =>
        Effect.scoped(Effect.gen(function*() {
          const keyed = yield* Effect.orDie(
            CircuitBreaker.keyed({ name: `bench-keyed-${prefix}`, capacity, idleTimeToLive })
          )
          for (let done = 0; done < keys; done += sampleEvery) {
            const cpuStart = cpuMicros()
            yield* streamKeys(keyed, prefix, done, sampleEvery)
            if (!sample) continue
            cpu += cpuMicros() - cpuStart
            const alive = yield* keyed.size
            peakAlive = Math.max(peakAlive, alive)
            samples.push({ keys: done + sampleEvery, alive, heap: yield* heapAfterGc(collect) })
          }
          // Every key idle: the sweep (every half of idleTimeToLive) evicts them with no call made.
          yield* Effect.sleep(Duration.sum(idleTimeToLive, Duration.seconds(1.5)))
          const heap = yield* heapAfterGc(collect)
          const alive = yield* keyed.size
          return { heap, alive }
        }))
      // A first, unmeasured run warms the code paths (compiled code is heap too) and the caches
      // they fill; the baseline is taken after it.
      yield* cycle("warm", false)
      const baseline = yield* heapAfterGc(collect)
      const afterIdle = yield* cycle("key", true)

      // Everything dropped, the keyed breaker included: what remains is the run's own noise (code, caches).
      const afterClose = yield* heapAfterGc(collect)
      const full = samples.find((sample) => sample.keys === capacity * 2) ?? samples[0]!
      const last = samples[samples.length - 1]!
      const alive: Figure = {
        id: "alive.max",
        label: "breakers alive at most (sampled every 10,000 keys)",
        value: peakAlive,
        unit: "breakers"
      }
      const growth: Figure = {
        id: "heap.growth",
        label: `heap growth from ${full.keys.toLocaleString("en-US")} to ${keys.toLocaleString("en-US")} keys`,
        value: (last.heap - full.heap) / 1024,
        unit: "KB"
      }
      const perAlive: Figure = {
        id: "heap.per.alive",
        label: "heap per alive key at capacity (above baseline)",
        value: (last.heap - baseline) / Math.max(1, last.alive),
        unit: "bytes"
      }
      const residual: Figure = {
        id: "heap.after.idle",
        label: "heap above baseline once every key is idle past idleTimeToLive",
        value: (afterIdle.heap - baseline) / 1024,
        unit: "KB"
      }
      const closed: Figure = {
        id: "heap.after.close",
        label: "heap above baseline once the keyed breaker's scope is closed (noise)",
        value: (afterClose - baseline) / 1024,
        unit: "KB"
      }
      const figures: ReadonlyArray<Figure> = [
        alive,
        growth,
        perAlive,
        residual,
        closed,
        {
          id: "alive.after.idle",
          label: "breakers alive after the idle sweep",
          value: afterIdle.alive,
          unit: "breakers"
        },
        { id: "key.cpu", label: "get + make + one call per new key (CPU)", value: cpu / keys, unit: "µs" }
      ]
      return {
        name: "keyed-breakers",
        title,
        measurements: [],
        figures,
        targets: [
          target(alive, "at most capacity (10,000) breakers alive", "<=", capacity),
          // Flat: what 80,000 more keys may add is noise, under 5% of the heap at capacity.
          target(
            growth,
            "heap flat from 20,000 to 100,000 keys (growth <= 5% of the heap at capacity)",
            "<=",
            (full.heap - baseline) * 0.05 / 1024
          ),
          // Back to baseline: what stays is under 2% of the heap 10,000 live breakers held.
          target(
            residual,
            "heap back to baseline after idle (<= 2% of the heap at capacity above it)",
            "<=",
            (full.heap - baseline) * 0.02 / 1024
          )
        ],
        details: {
          keyed: "CircuitBreaker.keyed({ capacity: 10000, idleTimeToLive: 2 s }), one protect(Effect.void) per key",
          heap: "process.memoryUsage().heapUsed after 4 x (gc(), setImmediate)",
          bytes: { baseline, afterIdle: afterIdle.heap, afterClose },
          samples
        }
      } satisfies SuiteResult
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
}
