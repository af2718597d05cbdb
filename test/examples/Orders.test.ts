import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Orders from "../../examples/orders.js"

/**
 * The example's default run (SQLite, the outage injected by `Chaos.layerSql`) on the
 * `TestClock`: one adjustment wakes every sleep in time order, so the whole timeline runs
 * without waiting, with the example's own resilience settings.
 */
const times: Orders.Timeline = {
  clients: 2,
  load: Duration.seconds(6),
  outageStart: Duration.seconds(2),
  outageEnd: Duration.seconds(4)
}

describe("examples/orders.ts on its default database", () => {
  it.effect("shows the read-only story: ReadOnly during the outage, stale reads, the breaker open and close", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Orders.runSqlite(times).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
      yield* TestClock.adjust("60 seconds")
      const exit = yield* Fiber.poll(fiber)
      if (Option.isNone(exit)) return yield* Effect.die("the example did not end within 60 s on the TestClock")
      const summary = yield* exit.value

      // The story.
      expect(summary.modes).toEqual(["ReadWrite", "ReadOnly"])
      expect(summary.transitions).toEqual(["Closed -> Open", "Open -> HalfOpen", "HalfOpen -> Closed"])
      expect(summary.staleReads).toBeGreaterThan(0)
      expect(summary.failedReads).toBe(0)
      expect(summary.queued).toBeGreaterThan(0)
      expect(summary.written).toBeGreaterThan(0)
      expect(summary.replayed).toBe(summary.queued)

      // The accounting.
      expect(summary.failedWrites).toBe(0)
      expect(summary.acknowledged).toBe(summary.written + summary.queued)
      expect(summary.rows).toBe(summary.acknowledged)
      expect(summary.distinctIds).toBe(summary.rows)
      expect(summary.widgetsTaken).toBe(summary.rows)
      expect(summary.missing).toBe(0)
      expect(summary.ok).toBe(true)
      // 2 clients, one order every 15 ms (and then some) for 6 s.
      expect(summary.acknowledged).toBeGreaterThan(2 * 6_000 / 20)
      expect(summary.acknowledged).toBeLessThanOrEqual(2 * Math.ceil(6_000 / 15))
    }))
})
