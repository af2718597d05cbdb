import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "effect-resilience"
import * as QueryService from "../../examples/queryService.js"
import { freePort } from "../integration/serverLifecycle.js"
import { startRedisServer } from "../integration/redisServer.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

interface DemoRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** stdout and stderr, without colours, runs of spaces collapsed. */
  readonly text: string
}

/**
 * Runs `npm run demo`'s program in a child process, as a user would (`node --import tsx
 * examples/demo.ts`), calling `onLine` with each line it prints.
 */
const runDemo = (env: Record<string, string>, onLine: (line: string) => void = () => {}): Promise<DemoRun> =>
  new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/demo.ts"], {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let pending = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
      pending += chunk.toString("utf8")
      const lines = pending.split("\n")
      pending = lines.pop()!
      for (const line of lines) onLine(line)
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    const killer = setTimeout(() => child.kill("SIGKILL"), 90_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(killer)
      // eslint-disable-next-line no-control-regex
      const text = (stdout + "\n" + stderr).replace(/\u001b\[[0-9;]*m/g, "").replace(/[ \t]+/g, " ")
      resolvePromise({ code, stdout, stderr, text })
    })
  })

const secret = "hunter2-S3cret"

/** What no output of the demo may hold: the password, or a stack trace. */
const expectNoSecretNorStack = (run: DemoRun) => {
  expect(run.text).not.toContain(secret)
  expect(run.text).not.toMatch(/\n\s*at .+:\d+:\d+/)
  expect(run.text).not.toContain("FiberFailure")
}

/**
 * Runs the demo's scenario on `TestClock`: one adjustment wakes every sleep in time order, so
 * that each request, timeout and probe happens at its time on the timeline, without waiting.
 */
const runScenario = Effect.gen(function*() {
  const fiber = yield* Effect.fork(
    QueryService.run({ backend: Cache.layerMemory(), cacheLatency: QueryService.memoryCacheLatency }).pipe(
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
  )
  // The scenario takes 16 s and a few hundred ms to drain; give up well after that.
  yield* TestClock.adjust("20 seconds")
  const exit = yield* Fiber.poll(fiber)
  if (Option.isNone(exit)) return yield* Effect.die("the scenario did not end within 20 s on the TestClock")
  return yield* exit.value
})

describe("the demo's cache-first query service", () => {
  it.effect("no user sees the cache outage: fallbacks answer, the breaker opens and closes", () =>
    Effect.gen(function*() {
      const result = yield* runScenario
      const figures = QueryService.figures(result)

      expect(figures.requests).toBe(QueryService.rate * QueryService.duration / 1000)
      expect(result.requests.filter((r) => r.outcome === "error")).toEqual([])
      expect(figures.errors).toBe(0)

      // The outage is answered by fallbacks, and only then: before it, every cache call succeeds.
      const during = (name: string) => result.seconds.filter((s) => s.phase.name === name)
      expect(figures.outageFallbacks).toBeGreaterThan(0)
      expect(during("healthy").every((s) => s.fallbacks === 0)).toBe(true)
      // Hardly any request is a hit while the cache is frozen (only those answered just before it froze).
      expect(result.requests.filter((r) => r.phase.name === "outage" && r.outcome === "hit").length)
        .toBeLessThanOrEqual(2)

      // The breaker opens during the outage after its threshold, and closes after it, by itself.
      const { outage, resilience } = QueryService
      expect(figures.openedAt).toBeDefined()
      expect(figures.openedAt!).toBeGreaterThanOrEqual(outage.start + 100)
      expect(figures.openedAt!).toBeLessThan(outage.start + 1_000)
      expect(figures.closedAt).toBeDefined()
      expect(figures.closedAt!).toBeGreaterThanOrEqual(outage.start + outage.duration)
      expect(figures.closedAt!).toBeLessThanOrEqual(outage.start + outage.duration + 2_500)
      expect(result.changes.map((c) => `${c.from}->${c.to}`)).toEqual([
        "Closed->Open",
        ...Array.from({ length: figures.probes }, () => ["Open->HalfOpen", "HalfOpen->Open"]).flat(),
        "Open->HalfOpen",
        "HalfOpen->Closed"
      ])
      expect(figures.probes).toBeGreaterThanOrEqual(1)
      expect(result.breaker.state).toBe("Closed")

      // Only the calls before the breaker opened and the probes touched the frozen cache: one
      // call per probe, and at most a timeout's worth of traffic (get and set) before opening.
      const beforeOpening = resilience.breaker.failureThreshold + 2 * QueryService.rate / 10
      expect(result.chaos.outageHangs).toBeLessThanOrEqual(beforeOpening + figures.probes)
      expect(result.breaker.rejectedCalls).toBeGreaterThan(100)

      // Once open, no request waits for the cache timeout but the probes.
      const whileOpen = result.requests.filter((r) =>
        r.at >= figures.openedAt! && r.at < outage.start + outage.duration
      )
      const timeout = 100
      expect(whileOpen.filter((r) => r.latency >= timeout).length).toBeLessThanOrEqual(figures.probes)

      // The hit rate recovers once the breaker has closed.
      const afterClose = result.requests.filter((r) => r.at >= figures.closedAt! + 1_000)
      expect(afterClose.filter((r) => r.outcome === "hit").length / afterClose.length).toBeGreaterThan(0.6)

      // Every self-check of the demo holds, and the scripted outage tells its story.
      expect(QueryService.check(result).filter((c) => !c.pass)).toEqual([])
      expect(QueryService.scripted(result).filter((c) => !c.pass)).toEqual([])
    }))

  it("keys a query by the sha256 of its text, whitespace normalised", () => {
    const key = QueryService.cacheKey("SELECT 1")
    expect(key).toBe("query:" + "e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5")
    expect(QueryService.cacheKey("  SELECT\n   1 ")).toBe(key)
    expect(QueryService.cacheKey("SELECT 2")).not.toBe(key)
  })
})

describe("npm run demo against a real Redis", () => {
  it.concurrent("starts while Redis is frozen, survives a 4 s real freeze mid-run: exit 0, no user error", async () => {
    const server = await startRedisServer()
    try {
      const frozen: Array<string> = []
      let midRun: ReturnType<typeof setTimeout> | undefined
      server.stop()
      frozen.push("startup")
      const run = await runDemo({ REDIS_URL: server.url, REDIS_COMMAND_TIMEOUT: "60 millis" }, (line) => {
        // Frozen from before the process starts until its second second; then again for 4 s
        // from its 11th second, after the scripted outage, where the scripted story does not expect it.
        if (/^\s*1–2 s/.test(line)) server.cont()
        if (/^\s*10–11 s/.test(line)) {
          server.stop()
          frozen.push("mid-run")
          midRun = setTimeout(() => server.cont(), 4_000)
        }
      })
      clearTimeout(midRun)
      server.cont()
      expect(frozen).toEqual(["startup", "mid-run"])
      expect(run.text).toContain("errors seen by users 0")
      expect(run.text).toContain("✓ no user saw an error")
      const selfCheck = run.text.slice(run.text.indexOf("Self-check"))
      expect(selfCheck).toContain("✓ transitions on breaker.changes")
      expect(selfCheck).not.toContain("✗")
      // The header shows the options in force: the environment's command timeout, not the demo's default.
      expect(run.text).toContain("commandTimeout 60 ms")
      expect(run.text).toContain(`Redis at redis://127.0.0.1:${server.port}`)
      expect(run.code, run.text).toBe(0)
      // The real freeze shows in the figures: the breaker moved outside the scripted outage.
      const outside = /transitions outside it (\d+)/.exec(run.text)
      expect(Number(outside?.[1])).toBeGreaterThan(0)
    } finally {
      await server.close()
    }
  }, 120_000)

  it.concurrent("a refused REDIS_URL with a password: a degraded start, no password, no stack trace", async () => {
    const port = await freePort()
    const run = await runDemo({ REDIS_URL: `redis://app:${secret}@127.0.0.1:${port}` })
    expectNoSecretNorStack(run)
    expect(run.text).toContain(`Redis at redis://127.0.0.1:${port}`)
    expect(run.text).toContain("errors seen by users 0")
    expect(run.code, run.text).toBe(0)
  }, 120_000)

  it.concurrent("a REDIS_URL that can never work: one line naming REDIS_URL, exit 1, no secret nor stack", async () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      [`redis://app:${secret}@[::not-a-host`, "does not parse"],
      [`http://app:${secret}@cache:6379`, "the scheme is not redis or rediss"],
      [`redis://app:${secret}@127.0.0.1:99999`, "the port is out of range"],
      [`redis://127.0.0.1:70000?password=${secret}`, "the port is out of range"]
    ]
    const runs = await Promise.all(cases.map(([url]) => runDemo({ REDIS_URL: url })))
    runs.forEach((run, i) => {
      const [url, reason] = cases[i]!
      expectNoSecretNorStack(run)
      expect(run.code, url).toBe(1)
      expect(run.stdout.trim(), url).toBe("")
      const lines = run.stderr.trim().split("\n")
      expect(lines, url).toHaveLength(1)
      expect(lines[0]).toContain("InvalidOptions")
      expect(lines[0]).toContain("url (REDIS_URL)")
      expect(lines[0]).toContain(reason)
    })
  }, 120_000)
})
