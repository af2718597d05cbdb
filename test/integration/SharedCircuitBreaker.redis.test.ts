/**
 * The shared breaker against a real redis-server, with several real processes
 * (fixtures/sharedBreakerProcess.ts) calling one dependency on loopback.
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { afterAll, afterEach, beforeAll, expect } from "vitest"
import * as SharedCircuitBreaker from "../../src/CircuitBreaker/Redis.js"
import * as decision from "../../src/internal/sharedBreakerScript.js"
import {
  type Answer,
  type Dependency,
  fields,
  sleep,
  startDependency,
  startWorker,
  type Worker
} from "./fixtures/sharedBreakerFleet.js"
import type { Settings } from "./fixtures/sharedBreakerProcess.js"
import { useRedisServer } from "./redisServer.js"

const server = useRedisServer({ beforeAll, afterAll })

const prefix = "effect-resilience:breaker:"
const keyOf = (name: string) => `${prefix}{${name}}`

let names = 0
const uniqueName = (what: string) => `${what}-${process.pid}-${++names}`

const workers: Array<Worker> = []
const dependencies: Array<Dependency> = []
afterEach(async () => {
  for (const worker of workers.splice(0)) worker.process.kill("SIGKILL")
  for (const dependency of dependencies.splice(0)) await dependency.close()
  if (server().isRunning()) server().cont()
})

const dependency = async (answer: (arrival: { readonly worker: string; readonly probeEpoch: number | undefined }) => Answer) => {
  const started = await startDependency(answer)
  dependencies.push(started)
  return started
}

const worker = (settings: Omit<Settings, "redisUrl" | "mode"> & { readonly mode?: Settings["mode"] }) => {
  const started = startWorker({ mode: "shared", redisUrl: server().url, ...settings })
  workers.push(started)
  return started
}

const hget = async (name: string, field: string): Promise<string | null> =>
  (await server().admin("HGET", keyOf(name), field)) as string | null

const waitUntil = async (condition: () => Promise<boolean> | boolean, timeoutMillis: number, what: string) => {
  const deadline = Date.now() + timeoutMillis
  while (Date.now() < deadline) {
    if (await condition()) return
    await sleep(10)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const noCallerErrors = (all: ReadonlyArray<Worker>) => {
  for (const w of all) {
    expect(w.lines.filter((line) => line.startsWith("error")), `${w.name} stderr: ${w.stderr()}`).toEqual([])
  }
}

describe("decisions (pure)", () => {
  it("a reply is applied only when it is news: same generation and an older epoch is dropped", () => {
    const known: decision.Snapshot = { generation: "g", epoch: 4, status: "Open", openUntil: 1_500, fullUntil: 0 }
    const older: decision.Reply = {
      status: "Closed",
      generation: "g",
      epoch: 3,
      remainingMillis: 0,
      extra: "",
      value: 0,
      granted: 0
    }
    expect(decision.applyReply(known, older, 1_000)).toBe(known)
    const otherGeneration = decision.applyReply(known, { ...older, generation: "h" }, 1_000)
    expect(otherGeneration.status).toBe("Closed")
    const open = decision.applyReply(known, { ...older, epoch: 5, status: "Open", remainingMillis: 250 }, 1_000)
    expect(open).toEqual({ generation: "g", epoch: 5, status: "Open", openUntil: 1_250, fullUntil: 0 })
  })

  it("routes: closed runs locally; a known open period is honoured even when Redis is down; half-open asks for a lease", () => {
    const open: decision.Snapshot = { generation: "g", epoch: 1, status: "Open", openUntil: 2_000, fullUntil: 0 }
    expect(decision.route(decision.initialSnapshot, true, 0)).toEqual({ _tag: "Local" })
    expect(decision.route(open, false, 1_000)).toEqual({ _tag: "Reject", reason: "Open", retryAfterMillis: 1_000 })
    expect(decision.route(open, true, 2_000)).toEqual({ _tag: "Acquire" })
    expect(decision.route(open, false, 2_000)).toEqual({ _tag: "Local" })
    expect(decision.route({ ...open, fullUntil: 2_300 }, true, 2_100)).toEqual({
      _tag: "Reject",
      reason: "HalfOpenFull",
      retryAfterMillis: 200
    })
  })

  it("messages: reset forgets everything, an open message sets the open period from its arrival", () => {
    const known: decision.Snapshot = { generation: "g", epoch: 2, status: "Closed", openUntil: 0, fullUntil: 0 }
    const message = decision.decodeMessage("open g 3 500")!
    expect(decision.applyMessage(known, message, 100)).toEqual({
      generation: "g",
      epoch: 3,
      status: "Open",
      openUntil: 600,
      fullUntil: 0
    })
    expect(decision.applyMessage(known, decision.decodeMessage("reset - 0 0")!, 100)).toEqual(decision.initialSnapshot)
    expect(decision.decodeMessage("bogus")).toBeUndefined()
  })
})

describe("script (real Redis)", () => {
  const connect = () => {
    const redis = new Redis(server().url, { lazyConnect: true })
    redis.defineCommand("shared", { numberOfKeys: 1, lua: decision.script })
    return redis as Redis & { shared: (key: string, ...args: Array<string | number>) => Promise<unknown> }
  }
  // window 10 s in 10 buckets, minimumCalls 4, rate 0.5, quorum 2, open 200 ms, 2 probes,
  // lease 300 ms, 1 success closes.
  const args = (op: string, owner: string, name: string) =>
    [op, owner, 10_000, 10, 4, 0.5, 2, 200, 2, 300, 1, 60_000, `${keyOf(name)}:events`] as const

  it("aggregates outcomes across processes and opens only with a quorum of failing processes", async () => {
    const redis = connect()
    await redis.connect()
    try {
      const name = uniqueName("script-quorum")
      const report = async (owner: string, successes: number, failures: number) =>
        decision.decodeReply(await redis.shared(keyOf(name), ...args("report", owner, name), successes, failures))!
      const first = await report("a", 0, 10)
      expect(first.status).toBe("Closed")
      expect(first.extra).toBe("noquorum")
      const second = await report("b", 2, 1)
      expect(second.status).toBe("Open")
      expect(second.remainingMillis).toBeGreaterThan(150)
      expect(await hget(name, "opens")).toBe("1")
    } finally {
      redis.disconnect()
    }
  })

  it("grants exactly halfOpenMaxCalls leases per open period, replaces an expired one, and a failed probe reopens", async () => {
    const redis = connect()
    await redis.connect()
    try {
      const name = uniqueName("script-lease")
      const call = async (op: string, owner: string, ...extra: Array<string | number>) =>
        decision.decodeReply(await redis.shared(keyOf(name), ...args(op, owner, name), ...extra))!
      await call("report", "a", 0, 5)
      expect((await call("report", "b", 0, 5)).status).toBe("Open")
      expect((await call("acquire", "a")).status).toBe("Open")
      await sleep(220)
      const leases = await Promise.all(["a", "b", "c", "d"].map((owner) => call("acquire", owner)))
      expect(leases.filter((reply) => reply.extra === "probe").map((reply) => reply.value).sort()).toEqual([1, 2])
      const full = leases.find((reply) => reply.extra === "full")!
      expect(full.value).toBeGreaterThan(200)
      await sleep(320)
      const replaced = await call("acquire", "c")
      expect(replaced.extra).toBe("probe")
      expect(replaced.epoch).toBe(leases[0]!.epoch)
      // The first lease expired and went to c: a's result is late and changes nothing.
      const late = await call("result", "a", leases[0]!.epoch, leases[0]!.value, "f", leases[0]!.generation)
      expect(late.extra).toBe("late")
      const failed = await call("result", "c", replaced.epoch, replaced.value, "f", replaced.generation)
      expect(failed.status).toBe("Open")
      expect(failed.epoch).toBe(replaced.epoch + 1)
      await sleep(220)
      const next = await call("acquire", "d")
      expect(next.extra).toBe("probe")
      const closed = await call("result", "d", next.epoch, next.value, "s", next.generation)
      expect(closed.status).toBe("Closed")
    } finally {
      redis.disconnect()
    }
  })
})

const failing: Answer = { status: 503, delayMillis: 5 }

describe("several processes", () => {
  it.live("an opening on one process stops the others within syncInterval + commandTimeout (pub/sub: milliseconds)", () =>
    Effect.promise(async () => {
      const name = uniqueName("propagation")
      // Only p0's calls fail: the others succeed, and stop only because the fleet's state opened.
      const healthy: Answer = { status: 200, delayMillis: 2 }
      const dep = await dependency(() => healthy)
      const breaker: SharedCircuitBreaker.Options = {
        name,
        failureThreshold: 1_000,
        resetTimeout: "30 seconds",
        shared: { minimumCalls: 20, failureRateThreshold: 0.01, syncInterval: "1 second" }
      }
      const fleet = ["p0", "p1", "p2", "p3"].map((name) =>
        worker({ worker: name, target: dep.url, fibers: 4, durationMillis: 5_000, breaker })
      )
      await Promise.all(fleet.map((w) => w.waitFor((line) => line.startsWith("ready"), 20_000)))
      await sleep(300)
      dep.answer = (arrival) => arrival.worker === "p0" ? failing : healthy
      await waitUntil(async () => (await hget(name, "st")) === "o", 10_000, "the shared state to open")
      const openedAt = Number(await hget(name, "at"))
      await Promise.all(fleet.map((w) => w.exited))
      const bound = 1_000 + 100
      const delays = ["p1", "p2", "p3"].map((w) => {
        const last = Math.max(0, ...dep.arrivals.filter((a) => a.worker === w).map((a) => a.at))
        return last - openedAt
      })
      console.log(`propagation: last call after the opening, per process (ms): ${delays.join(", ")}`)
      for (const delay of delays) expect(delay).toBeLessThanOrEqual(bound)
      // Nobody called during the open period after the bound.
      expect(dep.arrivals.filter((a) => a.at > openedAt + bound)).toEqual([])
      noCallerErrors(fleet)
    }), 60_000)
})
