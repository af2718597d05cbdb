/**
 * The local decisions of the breaker shared on Redis, on the TestClock. The store is a service:
 * here an in-memory store that answers like the script (open on reported failures, one probe
 * lease, close on a probe's success) and that a test can silence, so that what is tested is
 * the process's side: its clock, its intervals, its snapshot and its stream of transitions.
 * What Redis does (atomicity, the server's time, pub/sub, leases across processes) is tested
 * against a real server in test/integration/SharedCircuitBreaker.redis.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as SharedCircuitBreaker from "../src/CircuitBreaker/Redis.js"
import type * as decision from "../src/internal/sharedBreakerScript.js"
import { SharedStoreUnavailable, Store } from "../src/internal/sharedBreakerStore.js"

interface Call {
  readonly op: string
  readonly at: number
  readonly extra: ReadonlyArray<string | number>
  /** The open durations the call carries, as the script receives them. */
  readonly openDurations: string
}

interface MemoryStore {
  readonly layer: Layer.Layer<Store>
  readonly calls: Array<Call>
  /** Every command fails, as a Redis that stopped answering. */
  down: boolean
  /** Opens the shared state as another process would, with or without publishing it. */
  readonly openElsewhere: (now: number, openMillis: number, publish: boolean) => void
  readonly ops: (op: string) => Array<Call>
}

const memoryStore = (): MemoryStore => {
  const generation = "g1"
  let status: "c" | "o" = "c"
  let epoch = 0
  let until = 0
  let probe = false
  const listeners: Array<(message: string) => void> = []
  const publish = (message: string) => {
    for (const listener of listeners) listener(message)
  }
  const open = (now: number, openMillis: number, announce: boolean) => {
    status = "o"
    epoch++
    until = now + openMillis
    probe = false
    if (announce) publish(`open ${generation} ${epoch} ${openMillis}`)
  }
  const reply = (now: number, extra = "", value = 0): decision.Reply => ({
    status: status === "c" ? "Closed" : now < until ? "Open" : "HalfOpen",
    generation,
    epoch,
    remainingMillis: status === "o" && now < until ? until - now : 0,
    extra,
    value,
    granted: probe ? 1 : 0
  })
  const memory: MemoryStore = {
    calls: [],
    down: false,
    openElsewhere: (now, openMillis, announce) => open(now, openMillis, announce),
    ops: (op) => memory.calls.filter((call) => call.op === op),
    layer: Layer.succeed(Store, {
      server: "memory",
      keyPrefix: "test:",
      commandTimeout: Duration.millis(50),
      check: Effect.void,
      subscribe: (_channel, listener) =>
        Effect.sync(() => {
          listeners.push(listener)
        }),
      run: (_key, args) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const op = String(args[0])
          const openMillis = Number(String(args[7]).split(",")[0])
          const extra = args.slice(13)
          if (memory.down) {
            return Effect.fail(new SharedStoreUnavailable({ server: "memory", operation: op, cause: "down" }))
          }
          memory.calls.push({ op, at: now, extra, openDurations: String(args[7]) })
          switch (op) {
            case "report":
              if (status === "c" && Number(extra[1]) > 0) open(now, openMillis, true)
              return Effect.succeed(reply(now))
            case "acquire":
              if (status === "o" && now >= until && !probe) {
                probe = true
                return Effect.succeed(reply(now, "probe", 1))
              }
              return Effect.succeed(status === "o" && now >= until ? reply(now, "full", 1_000) : reply(now))
            case "result":
              probe = false
              if (extra[2] === "s") {
                status = "c"
                epoch++
                publish(`close ${generation} ${epoch} 0`)
              } else if (extra[2] === "f") {
                open(now, openMillis, true)
              }
              return Effect.succeed(reply(now))
            case "halfopen":
              if (status === "o" && now < until) {
                until = now
                publish(`open ${generation} ${epoch} 0`)
              }
              return Effect.succeed(reply(now))
            case "reset":
              status = "c"
              epoch = 0
              publish("reset - 0 0")
              return Effect.succeed(reply(now))
            default:
              return Effect.succeed(reply(now))
          }
        })
    })
  }
  return memory
}

const fail = Effect.fail(new Error("down"))

/** Collects the breaker's transitions as [from, to, reason]. */
const collect = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make<Array<readonly [string, string, string]>>([])
    const stream = yield* breaker.subscribe
    yield* Effect.forkScoped(
      Stream.runForEach(stream, (change) =>
        Ref.update(seen, (all) => [...all, [change.from, change.to, change.reason] as const]))
    )
    return seen
  })

describe("SharedCircuitBreaker on the TestClock", () => {
  it.scoped("outcomes are counted in memory and reported once per reportInterval, summed", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "batching",
        failureThreshold: 100,
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      for (let i = 0; i < 5; i++) yield* breaker.protect(Effect.succeed(i))
      yield* TestClock.adjust("99 millis")
      expect(memory.ops("report")).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(memory.ops("report").map((call) => [call.at, call.extra[0], call.extra[1]])).toEqual([[100, 5, 0]])
      for (let i = 0; i < 3; i++) yield* breaker.protect(Effect.succeed(i))
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("300 millis")
      // Nothing new to report: no command is sent.
      expect(memory.ops("report").map((call) => [call.at, call.extra[0], call.extra[1]])).toEqual([
        [100, 5, 0],
        [200, 3, 0]
      ])
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("backstop: the state is read every syncInterval, and an opening whose message is lost shows then", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "backstop",
        resetTimeout: "1 minute",
        shared: { reportInterval: "100 millis", syncInterval: "1 second" }
      })
      expect(memory.ops("read").map((call) => call.at)).toEqual([0])
      yield* TestClock.adjust("3 seconds")
      expect(memory.ops("read").map((call) => call.at)).toEqual([0, 1_000, 2_000, 3_000])
      memory.openElsewhere(3_200, 60_000, false)
      yield* TestClock.adjust("999 millis")
      expect(yield* breaker.state).toBe("Closed")
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("Open")
      const rejected = yield* Effect.flip(breaker.protect(Effect.succeed(1)))
      expect(rejected.reason).toBe("Open")
      // Read at 4,000 ms, the period opened at 3,200 ms: 59,200 ms remain.
      expect(Duration.toMillis(rejected.retryAfter)).toBe(59_200)
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("a known open period is honoured to its end while the store is silent, then the local breaker", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "honour",
        failureThreshold: 100,
        shared: { openDuration: "30 seconds", reportInterval: "100 millis", syncInterval: "1 second" }
      })
      memory.openElsewhere(0, 30_000, true)
      memory.down = true
      const calls = yield* Ref.make(0)
      const counted = Ref.updateAndGet(calls, (n) => n + 1)
      yield* TestClock.adjust("29999 millis")
      const rejected = yield* Effect.flip(breaker.protect(counted))
      expect([rejected.reason, Duration.toMillis(rejected.retryAfter)]).toEqual(["Open", 1])
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.protect(counted)).toBe(1)
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* breaker.shared).healthy).toBe(false)
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("changes: Closed -> Open once (local and shared both open), Open -> HalfOpen, HalfOpen -> Closed", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "stream",
        failureThreshold: 2,
        successThreshold: 1,
        resetTimeout: "10 seconds",
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      const seen = yield* collect(breaker)
      yield* Effect.either(breaker.protect(fail))
      yield* Effect.either(breaker.protect(fail))
      yield* TestClock.adjust("100 millis")
      // The local breaker opened at 0 ms, the shared state at 100 ms: one transition.
      expect(memory.ops("report").length).toBe(1)
      expect((yield* breaker.shared).status).toBe("Open")
      expect(yield* Ref.get(seen)).toEqual([["Closed", "Open", "FailureThreshold"]])
      yield* TestClock.adjust("9999 millis")
      expect(yield* Ref.get(seen)).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect(yield* breaker.protect(Effect.succeed("probe"))).toBe("probe")
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("Closed")
      expect(yield* Ref.get(seen)).toEqual([
        ["Closed", "Open", "FailureThreshold"],
        ["Open", "HalfOpen", "OpenDurationElapsed"],
        ["HalfOpen", "Closed", "ProbesSucceeded"]
      ])
      // The local breaker's own reset, after the fleet closed, is not told again.
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(seen)).toHaveLength(3)
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("changes: an opening from elsewhere, a failed probe reopening, then reset, each once in order", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "reopen",
        failureThreshold: 100,
        resetTimeout: "5 seconds",
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      const seen = yield* collect(breaker)
      memory.openElsewhere(0, 5_000, true)
      yield* TestClock.adjust("5 seconds")
      const failed = yield* Effect.flip(breaker.protect(fail))
      expect(failed).toEqual(new Error("down"))
      yield* TestClock.adjust("1 millis")
      expect(yield* breaker.state).toBe("Open")
      yield* breaker.reset
      yield* TestClock.adjust("1 millis")
      const at = (yield* Ref.get(seen)).map(([from, to, reason]) => `${from}->${to} ${reason}`)
      expect(at).toEqual([
        "Closed->Open FailureRate",
        "Open->HalfOpen OpenDurationElapsed",
        "HalfOpen->Open ProbeFailed",
        "Open->Closed Reset"
      ])
      expect(memory.ops("reset")).toHaveLength(1)
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("changes: reads during an open period do not hide its end; halfOpen ends the next period now", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "reads",
        failureThreshold: 100,
        resetTimeout: "5 seconds",
        shared: { reportInterval: "100 millis", syncInterval: "700 millis" }
      })
      const seen = yield* collect(breaker)
      memory.openElsewhere(0, 5_000, true)
      yield* TestClock.adjust("4999 millis")
      expect(memory.ops("read").length).toBe(8)
      expect(yield* Ref.get(seen)).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(seen)).toEqual([
        ["Closed", "Open", "FailureRate"],
        ["Open", "HalfOpen", "OpenDurationElapsed"]
      ])
      yield* Effect.flip(breaker.protect(fail))
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("Open")
      yield* breaker.halfOpen
      expect(yield* breaker.state).toBe("HalfOpen")
      yield* TestClock.adjust("1 millis")
      expect((yield* Ref.get(seen)).map(([from, to]) => `${from}->${to}`)).toEqual([
        "Closed->Open",
        "Open->HalfOpen",
        "HalfOpen->Open",
        "Open->HalfOpen"
      ])
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("openSchedule: its first durations are drawn once and sent for the script to pick from", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      yield* SharedCircuitBreaker.make({
        name: "drawn",
        openSchedule: Schedule.exponential("100 millis").pipe(Schedule.whileInput((opening: number) => opening <= 3)),
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      yield* SharedCircuitBreaker.make({
        name: "long",
        openSchedule: Schedule.spaced("2 seconds"),
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      yield* SharedCircuitBreaker.make({
        name: "fixed",
        openSchedule: Schedule.spaced("2 seconds"),
        shared: { openDuration: "5 seconds", reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      const [drawn, long, fixed] = memory.ops("read").map((call) => call.openDurations)
      expect(drawn).toBe("100,200,400")
      expect(long!.split(",")).toEqual(Array.from({ length: 32 }, () => "2000"))
      expect(fixed).toBe("5000")
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("changes: a silent Redis in a half-open period gives way to the local state, and back after", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      const breaker = yield* SharedCircuitBreaker.make({
        name: "silent",
        failureThreshold: 100,
        resetTimeout: "5 seconds",
        shared: { reportInterval: "100 millis", syncInterval: "1 second" }
      })
      const seen = yield* collect(breaker)
      memory.openElsewhere(0, 5_000, true)
      yield* TestClock.adjust("5 seconds")
      memory.down = true
      // The lease cannot be asked for: the call runs through the local breaker.
      expect(yield* breaker.protect(Effect.succeed("local"))).toBe("local")
      expect(yield* breaker.state).toBe("Closed")
      memory.down = false
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect((yield* Ref.get(seen)).map(([from, to, reason]) => `${from}->${to} ${reason}`)).toEqual([
        "Closed->Open FailureRate",
        "Open->HalfOpen OpenDurationElapsed",
        "HalfOpen->Closed Reset",
        "Closed->HalfOpen OpenDurationElapsed"
      ])
    }).pipe(Effect.provide(memory.layer))
  })

  it.scoped("changes carry the time of the fiber's Clock", () => {
    const memory = memoryStore()
    return Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000)
      const breaker = yield* SharedCircuitBreaker.make({
        name: "time",
        resetTimeout: "2 seconds",
        shared: { reportInterval: "100 millis", syncInterval: "1 hour" }
      })
      const changes = yield* breaker.subscribe
      const firstTwo = yield* Effect.fork(Stream.runCollect(Stream.take(changes, 2)))
      memory.openElsewhere(1_000_000, 2_000, true)
      yield* TestClock.adjust("2 seconds")
      const all = Array.from(yield* Fiber.join(firstTwo))
      expect(all.map((change) => [change.to, change.at])).toEqual([["Open", 1_000_000], ["HalfOpen", 1_002_000]])
    }).pipe(Effect.provide(memory.layer))
  })
})
