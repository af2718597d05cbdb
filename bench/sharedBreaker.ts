/**
 * The shared breaker suite: what sharing a breaker's state on Redis costs per call, against
 * the local breaker, in one loop of the same run, with a real local `redis-server`. The Closed
 * path of a shared breaker only counts outcomes in memory (a background fiber reports them
 * every 100 ms), so its cost should stay within a small factor of the local breaker's; an open
 * shared breaker rejects from the snapshot it holds, without Redis. Each case is checked: the
 * closed cases ran the call, the open cases rejected every call, and the shared breaker's
 * reports reached Redis.
 *
 * When `redis-server` is not installed the suite says so and measures nothing.
 */
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as SharedCircuitBreaker from "../src/CircuitBreaker/Redis.js"
import { findRedisServer, redisServer } from "../test/integration/redisServer.js"
import type { Case, Figure, Suite } from "./harness.js"
import { byId, measureCases, ratio } from "./harness.js"

const title = "Shared breaker on Redis: cost per call against the local breaker (compiled, one loop, same run)"

/** Counts the calls that ran and the rejections, so that `verify` can tell which path a case took. */
const counted = (breaker: CircuitBreaker.CircuitBreaker) => {
  const counts = { ran: 0, rejected: 0 }
  const body = Effect.sync(() => {
    counts.ran++
  })
  const call = Effect.catchAll(breaker.protect(body), () =>
    Effect.sync(() => {
      counts.rejected++
    }))
  return { counts, call }
}

/** The shared breaker suite. */
export const suite: Suite = {
  name: "shared-breaker",
  title,
  run: (settings) =>
    Effect.gen(function*() {
      const binary = Either.try(() => findRedisServer())
      if (Either.isLeft(binary)) {
        const reason = "redis-server is not installed (Debian: apt-get install -y redis-server)"
        yield* Console.log(`${title}\n  skipped: ${reason}\n`)
        return {
          name: "shared-breaker",
          title,
          measurements: [],
          figures: [],
          targets: [],
          details: { skipped: reason }
        }
      }
      const server = yield* redisServer()
      const context = yield* Layer.build(SharedCircuitBreaker.layer({ url: server.url }))
      const store = Context.get(context, SharedCircuitBreaker.Store)
      const shared = <E>(options: SharedCircuitBreaker.Options<E>) =>
        SharedCircuitBreaker.make(options).pipe(Effect.provideService(SharedCircuitBreaker.Store, store))

      const localClosed = counted(yield* CircuitBreaker.make({ name: "bench-local-closed" }))
      const sharedClosed = counted(yield* shared({ name: "bench-shared-closed" }))
      const localOpenBreaker = yield* CircuitBreaker.make({
        name: "bench-local-open",
        failureThreshold: 1,
        resetTimeout: "1 hour"
      })
      const localOpen = counted(localOpenBreaker)
      const openBreaker = yield* shared({
        name: "bench-shared-open",
        failureThreshold: Number.POSITIVE_INFINITY,
        resetTimeout: "1 hour",
        shared: { minimumCalls: 1, reportInterval: "10 millis" }
      })
      const sharedOpen = counted(openBreaker)
      // Opens: the local breaker by its own rule, the shared one once its report reached Redis.
      // Their transitions are logged: not in the table.
      yield* Effect.either(localOpenBreaker.protect(Effect.fail("down"))).pipe(
        Logger.withMinimumLogLevel(LogLevel.Warning)
      )
      yield* Effect.either(openBreaker.protect(Effect.fail("down"))).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
      yield* Effect.sleep("300 millis")
      if ((yield* openBreaker.state) !== "Open") return yield* Effect.fail("the shared breaker did not open")

      const ranEvery = (counts: { ran: number; rejected: number }) => (calls: number) =>
        counts.ran >= calls && counts.rejected === 0
          ? Effect.void
          : Effect.fail(`expected every call to run, ran ${counts.ran} of ${calls}, rejected ${counts.rejected}`)
      const rejectedEvery = (counts: { ran: number; rejected: number }) => (calls: number) =>
        counts.rejected >= calls && counts.ran === 0
          ? Effect.void
          : Effect.fail(`expected every call rejected, rejected ${counts.rejected} of ${calls}, ran ${counts.ran}`)

      const cases: ReadonlyArray<Case> = [
        {
          id: "local.closed",
          label: "CircuitBreaker.protect, Closed",
          call: localClosed.call,
          verify: ranEvery(localClosed.counts)
        },
        {
          id: "shared.closed",
          label: "SharedCircuitBreaker.protect, Closed (outcomes reported every 100 ms)",
          call: sharedClosed.call,
          verify: ranEvery(sharedClosed.counts)
        },
        {
          id: "local.open",
          label: "CircuitBreaker.protect, Open (rejected)",
          call: localOpen.call,
          verify: rejectedEvery(localOpen.counts)
        },
        {
          id: "shared.open",
          label: "SharedCircuitBreaker.protect, Open (rejected from the snapshot)",
          call: sharedOpen.call,
          verify: rejectedEvery(sharedOpen.counts)
        }
      ]
      const measurements = yield* measureCases(cases, settings)
      // The reports reached Redis: the shared window holds calls.
      yield* Effect.sleep("300 millis")
      const window = (yield* Effect.promise(() =>
        server.admin("HGET", "effect-resilience:breaker:{bench-shared-closed}", "b")
      )) as string | null
      const reported = window === null
        ? 0
        : Object.values(JSON.parse(window) as Record<string, [number, number]>).reduce((n, [calls]) => n + calls, 0)
      if (reported === 0) return yield* Effect.fail("no outcome of the shared breaker reached Redis")
      const perSecond = (id: string): Figure => ({
        id: `${id}.callsPerSecond`,
        label: `${byId(measurements, id).label}: calls per second of CPU`,
        value: Math.round(1e9 / byId(measurements, id).nsPerCall),
        unit: "calls/s"
      })
      const figures: ReadonlyArray<Figure> = [
        perSecond("local.closed"),
        perSecond("shared.closed"),
        perSecond("local.open"),
        perSecond("shared.open"),
        ratio(measurements, "shared Closed / local Closed", "shared.closed", "local.closed"),
        ratio(measurements, "shared Open / local Open", "shared.open", "local.open"),
        {
          id: "reportedCalls",
          label: "calls of the shared breaker counted in Redis's window at the end (the last 10 s)",
          value: reported,
          unit: "calls"
        }
      ]
      return {
        name: "shared-breaker",
        title,
        measurements,
        ratioColumns: [],
        figures,
        targets: [],
        details: {
          reportInterval: "100 ms",
          syncInterval: "1 second",
          redisCommandsPerBreaker: "at most 10 reports and 1 read per second, whatever the call rate"
        }
      }
    })
}
