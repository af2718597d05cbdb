/**
 * `npm run example:fleet` as a user runs it, with a real redis-server: the shared breaker
 * lets at most half as many calls reach the dead dependency as local breakers do, one probe
 * per open period speaks for the fleet, and killing Redis mid-run makes no caller error.
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, expect } from "vitest"
import { useRedisServer } from "../integration/redisServer.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const server = useRedisServer({ beforeAll, afterAll })

interface FleetRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const runFleet = (env: Record<string, string>, onLine: (line: string) => void = () => {}): Promise<FleetRun> =>
  new Promise((resolvePromise, reject) => {
    const environment: Record<string, string | undefined> = { ...process.env, ...env }
    if (env["REDIS_URL"] === undefined) delete environment["REDIS_URL"]
    const child = spawn(process.execPath, ["--import", "tsx", "examples/fleet.ts"], {
      cwd: root,
      env: environment,
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
    const killer = setTimeout(() => child.kill("SIGKILL"), 170_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(killer)
      resolvePromise({ code, stdout, stderr })
    })
  })

const callsOf = (stdout: string) => {
  const match = /^dead-dependency calls: shared (\d+), local (\d+)/m.exec(stdout)
  if (match === null) throw new Error(`no summary line in:\n${stdout}`)
  return { shared: Number(match[1]), local: Number(match[2]) }
}

describe("npm run example:fleet", () => {
  it.live("with Redis: shared calls are at most half of local ones, one probe per open period, no caller error", () =>
    Effect.promise(async () => {
      const run = await runFleet({ REDIS_URL: server().url })
      expect(run.code, run.stdout + run.stderr).toBe(0)
      const calls = callsOf(run.stdout)
      console.log(run.stdout)
      expect(calls.local).toBeGreaterThan(0)
      expect(calls.shared).toBeLessThanOrEqual(calls.local / 2)
      expect(run.stdout).toMatch(/probes per open period: shared 1\.00,/)
      expect(run.stdout).toMatch(/^caller errors: 0$/m)
    }), 180_000)

  it.live("Redis killed while the shared run goes on: exit 0 and no caller error", () =>
    Effect.promise(async () => {
      let killed: Promise<void> | undefined
      const run = await runFleet({ REDIS_URL: server().url, FLEET_DURATION: "6" }, (line) => {
        if (line.startsWith("local breakers:") && killed === undefined) {
          // The shared run starts now: its workers boot, then Redis dies under them.
          killed = new Promise((resolveKill) => setTimeout(resolveKill, 4_000)).then(() => server().kill())
        }
      })
      await killed
      expect(killed).toBeDefined()
      expect(run.code, run.stdout + run.stderr).toBe(0)
      expect(run.stdout).toMatch(/^dead-dependency calls: shared \d+, local \d+/m)
      expect(run.stdout).toMatch(/^caller errors: 0$/m)
      await server().restart()
    }), 180_000)

  it.live("without REDIS_URL: the local run, then says the shared run needs Redis, exit 0", () =>
    Effect.promise(async () => {
      const run = await runFleet({ FLEET_DURATION: "2", FLEET_WORKERS: "2" })
      expect(run.code, run.stdout + run.stderr).toBe(0)
      expect(run.stdout).toMatch(/^local breakers: \d+ calls reached the dead dependency/m)
      expect(run.stdout).toMatch(/need Redis: set REDIS_URL/)
      expect(run.stdout).toMatch(/^caller errors: 0$/m)
    }), 120_000)
})
