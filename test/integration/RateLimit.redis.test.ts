/**
 * The fleet-wide rate limit against a real `redis-server`, from real child processes: four
 * processes hold 100 calls per second together, and when Redis is killed mid-run each
 * process follows its `onStoreUnavailable` (fail open or closed) without a caller error, and
 * the limit holds again once Redis is back.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as RateLimitRedis from "../../src/RateLimit/Redis.js"
import type { Settings } from "./fixtures/rateLimitProcess.js"
import { taggedMetric } from "../support/metrics.js"
import { useRedisServer } from "./redisServer.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = path.join(here, "fixtures", "rateLimitProcess.ts")
const root = path.resolve(here, "..", "..")

const server = useRedisServer({ beforeAll, afterAll })

interface Child {
  /** Tells the worker when to start calling. */
  readonly start: (at: number) => void
  readonly lines: () => ReadonlyArray<string>
  readonly exited: Promise<number | null>
  readonly stderr: () => string
}

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const child of children) child.kill("SIGKILL")
})

const run = (settings: Settings): Child => {
  // `node --import tsx`, not the `tsx` wrapper: one process per worker.
  const child = spawn(process.execPath, ["--import", "tsx", fixture, JSON.stringify(settings)], {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"]
  })
  children.add(child)
  const lines: Array<string> = []
  let partial = ""
  let stderr = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString("utf8")).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-10_000)
  })
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      children.delete(child)
      if (partial !== "") lines.push(partial)
      resolve(code)
    })
  })
  const start = (at: number) => {
    child.stdin!.end(`${at}\n`)
  }
  return { start, lines: () => lines, exited, stderr: () => stderr }
}

const admittedAt = (child: Child): Array<number> =>
  child.lines().flatMap((line) => (line.startsWith("ok ") ? [Number(line.slice(3))] : []))

const countIn = (times: ReadonlyArray<number>, from: number, to: number) =>
  times.filter((at) => at >= from && at < to).length

/**
 * Waits until every worker has made its limiter (loading takes seconds on a busy machine),
 * then starts them together.
 */
const startAll = async (all: ReadonlyArray<Child>): Promise<number> => {
  const deadline = Date.now() + 45_000
  while (!all.every((child) => child.lines().includes("ready"))) {
    if (Date.now() > deadline) throw new Error(`workers not ready: ${all.map((child) => child.stderr()).join("\n")}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const startAt = Date.now() + 300
  for (const child of all) child.start(startAt)
  return startAt
}

/** Waits for every child to exit, and checks that none saw an error and all started on time. */
const finish = async (all: ReadonlyArray<Child>, startAt: number) => {
  const codes = await Promise.all(all.map((child) => child.exited))
  for (const [i, child] of all.entries()) {
    const context = `worker ${i} (exit ${codes[i]}):\n${child.stderr()}\n${child.lines().slice(-5).join("\n")}`
    expect(codes[i], context).toBe(0)
    expect(child.lines().filter((line) => line.startsWith("error")), context).toEqual([])
    expect(child.lines().some((line) => line.startsWith("done ")), context).toBe(true)
    // A worker that was not ready before the start would skew the figures.
    const first = admittedAt(child)[0]
    expect(first === undefined || first >= startAt, context).toBe(true)
  }
}

const base = (redisUrl: string, name: string): Settings => ({
  redisUrl,
  name,
  limit: 100,
  intervalMillis: 1000,
  fibers: 5,
  paceMillis: 20,
  durationMillis: 5000,
  onStoreUnavailable: "admit",
  commandTimeoutMillis: 100
})

describe("RateLimit/Redis across processes", () => {
  it("holds 100 calls per second across 4 processes within 5%", async () => {
    const url = server().url
    const settings = base(url, `fleet-${Date.now()}`)
    const workers = Array.from({ length: 4 }, () => run(settings))
    const startAt = await startAll(workers)
    await finish(workers, startAt)
    const all = workers.flatMap(admittedAt).sort((a, b) => a - b)
    // Offered: 4 x 5 fibers x 50 tries/s = 1000/s. The token bucket starts full (a burst of
    // `limit`), then refills 100/s: the steady rate is measured after the first second.
    const from = startAt + 1000
    const to = startAt + settings.durationMillis - 200
    const steady = countIn(all, from, to) / ((to - from) / 1000)
    const total = all.length
    const perWorker = workers.map((worker) => admittedAt(worker).length)
    console.log(`fleet rate limit: steady ${steady.toFixed(1)}/s, total ${total} in 5 s, per worker ${perWorker}`)
    expect(Math.abs(steady - 100) / 100).toBeLessThanOrEqual(0.05)
    // Over the whole run: the first burst plus 100/s.
    expect(total).toBeLessThanOrEqual(Math.ceil(100 + 100 * settings.durationMillis / 1000 * 1.05))
    // Every worker got a share: the limit is shared, not per process.
    for (const count of perWorker) expect(count).toBeGreaterThan(50)
  }, 60_000)

  it("fails open or closed, as asked, while Redis is killed, and holds the limit again once it is back", async () => {
    const redis = server()
    const stamp = Date.now()
    const open = { ...base(redis.url, `open-${stamp}`), limit: 50, durationMillis: 6500 }
    const closed: Settings = { ...open, name: `closed-${stamp}`, onStoreUnavailable: "reject" }
    const openWorkers = [run(open), run(open)]
    const closedWorkers = [run(closed), run(closed)]
    const startAt = await startAll([...openWorkers, ...closedWorkers])
    const killAt = startAt + 2500
    const restartAt = startAt + 4000
    await new Promise((resolve) => setTimeout(resolve, killAt - Date.now()))
    await redis.kill()
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, restartAt - Date.now())))
    await redis.restart()
    const restarted = Date.now()
    await finish([...openWorkers, ...closedWorkers], startAt)

    const openTimes = openWorkers.flatMap(admittedAt)
    const closedTimes = closedWorkers.flatMap(admittedAt)
    const rate = (times: ReadonlyArray<number>, from: number, to: number) =>
      countIn(times, from, to) / ((to - from) / 1000)
    // Before: both hold 50/s (after the first burst).
    const before = [rate(openTimes, startAt + 1000, killAt), rate(closedTimes, startAt + 1000, killAt)]
    // While Redis is down (after the command timeout): open admits what is offered, closed nothing.
    const downFrom = killAt + 300
    const during = [rate(openTimes, downFrom, restartAt), rate(closedTimes, downFrom, restartAt)]
    // Back: reconnected within the reconnect delay, the limit holds again (a fresh bucket: one burst).
    const backFrom = restarted + 1500
    const backTo = startAt + open.durationMillis - 100
    const after = [rate(openTimes, backFrom, backTo), rate(closedTimes, backFrom, backTo)]
    console.log(
      `redis killed: before ${before.map((r) => r.toFixed(0))}/s, down ${during.map((r) => r.toFixed(0))}/s, ` +
        `back ${after.map((r) => r.toFixed(0))}/s (open, closed)`
    )
    // Windows of a second or two: a call more or less is a few percent.
    for (const r of before) expect(r).toBeLessThanOrEqual(50 * 1.15)
    // Offered 2 x 5 fibers x 50/s = 500/s (less on a busy machine): well over the limit.
    expect(during[0]).toBeGreaterThan(100)
    expect(during[1]).toBe(0)
    for (const r of after) {
      expect(r).toBeGreaterThan(25)
      expect(r).toBeLessThanOrEqual(50 * 1.15)
    }
  }, 60_000)

  it("refuses a mode and a bad store option, naming the field", async () => {
    const mode = await Effect.runPromise(
      Effect.flip(Effect.scoped(
        RateLimitRedis.make({ limit: 1, interval: "1 second", mode: "wait" } as never).pipe(
          Effect.provide(RateLimitRedis.layer({ url: server().url }))
        )
      ))
    )
    expect(mode.field).toBe("mode")
    const unavailable = await Effect.runPromise(
      Effect.flip(Effect.scoped(
        RateLimitRedis.make({ limit: 1, interval: "1 second", onStoreUnavailable: "maybe" as never }).pipe(
          Effect.provide(RateLimitRedis.layer({ url: server().url }))
        )
      ))
    )
    expect(unavailable.field).toBe("onStoreUnavailable")
    const url = await Effect.runPromise(Effect.flip(Effect.scoped(RateLimitRedis.makeStore({ url: "http://x" }))))
    expect(url.field).toBe("url")
  })

  it("rejects with the in-process limiter's RateLimitExceeded, retryAfter from the store", async () => {
    const name = `one-${Date.now()}`
    const program = Effect.gen(function*() {
      const limiter = yield* RateLimitRedis.make({ name, limit: 2, interval: "1 second" })
      yield* limiter.acquire
      yield* limiter.acquire
      const error = yield* Effect.flip(limiter.acquire)
      const rejected = yield* taggedMetric("effect_resilience_rate_limit_rejected_total", { limiter: name })
      return { error, rejected }
    }).pipe(Effect.scoped, Effect.provide(RateLimitRedis.layer({ url: server().url })))
    const { error, rejected } = await Effect.runPromise(program)
    expect(rejected?.count).toBe(1)
    expect(error._tag).toBe("RateLimitExceeded")
    expect(error.limit).toBe(2)
    expect(error.limiter.startsWith("one-")).toBe(true)
    const millis = error.retryAfter.value._tag === "Millis" ? error.retryAfter.value.millis : -1
    expect(millis).toBeGreaterThan(0)
    expect(millis).toBeLessThanOrEqual(500)
  })

  it("layerConfig reads REDIS_URL, REDIS_COMMAND_TIMEOUT (bare number: seconds) and the key prefix", async () => {
    const withEnv = (env: Record<string, string>) =>
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    const prefix = `configured-${Date.now()}:`
    const admitted = await Effect.runPromise(
      Effect.gen(function*() {
        const limiter = yield* RateLimitRedis.make({ name: "from-config", limit: 1, interval: "1 minute" })
        yield* limiter.acquire
        return yield* Effect.flip(limiter.acquire)
      }).pipe(
        Effect.provide(RateLimitRedis.layerConfig()),
        withEnv({ REDIS_URL: server().url, REDIS_COMMAND_TIMEOUT: "0.5", REDIS_RATE_LIMIT_KEY_PREFIX: prefix })
      )
    )
    expect(admitted._tag).toBe("RateLimitExceeded")
    expect(await server().admin("EXISTS", `${prefix}from-config`)).toBe(1)
    const badTimeout = await Effect.runPromise(
      Effect.flip(Effect.scoped(Layer.build(RateLimitRedis.layerConfig()))).pipe(
        withEnv({ REDIS_COMMAND_TIMEOUT: "soon" })
      )
    )
    expect(String(badTimeout)).toContain("REDIS_COMMAND_TIMEOUT")
    const badUrl = await Effect.runPromise(
      Effect.flip(Effect.scoped(Layer.build(RateLimitRedis.layerConfig()))).pipe(
        withEnv({ REDIS_URL: "http://user:secret@host" })
      )
    )
    expect(badUrl._tag).toBe("InvalidOptions")
    expect(String(badUrl)).not.toContain("secret")
  })

  it("answers within the command timeout while Redis is frozen: admit runs the call, reject refuses it", async () => {
    const redis = server()
    const stamp = Date.now()
    const program = Effect.gen(function*() {
      const open = yield* RateLimitRedis.make({ name: `frozen-open-${stamp}`, limit: 10, interval: "1 second" })
      const closed = yield* RateLimitRedis.make({
        name: `frozen-closed-${stamp}`,
        limit: 10,
        interval: "1 second",
        onStoreUnavailable: "reject"
      })
      yield* open.acquire
      yield* closed.acquire
      redis.stop()
      const timed = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.gen(function*() {
          const started = Date.now()
          const result = yield* Effect.either(effect)
          return { result, millis: Date.now() - started }
        })
      const admitted = yield* timed(open.run(Effect.succeed("ran")))
      const refused = yield* timed(closed.run(Effect.succeed("ran")))
      return { admitted, refused }
    }).pipe(
      Effect.scoped,
      Effect.provide(RateLimitRedis.layer({ url: redis.url, commandTimeout: "100 millis" })),
      Effect.ensuring(Effect.sync(() => redis.cont()))
    )
    const { admitted, refused } = await Effect.runPromise(program)
    expect(admitted.result._tag === "Right" && admitted.result.right).toBe("ran")
    expect(refused.result._tag === "Left" && refused.result.left._tag).toBe("RateLimitExceeded")
    const retryAfter = refused.result._tag === "Left" ? refused.result.left.retryAfter : undefined
    expect(retryAfter?.value._tag === "Millis" && retryAfter.value.millis).toBe(1000)
    // Bounded by the command timeout (100 ms), with room for a busy machine.
    for (const { millis } of [admitted, refused]) {
      expect(millis).toBeGreaterThanOrEqual(90)
      expect(millis).toBeLessThan(1000)
    }
  })
})
