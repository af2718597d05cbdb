/**
 * `npm run example:fleet`: several worker processes (4 by default) call one dead HTTP
 * dependency on loopback, first each with its own local breaker, then with one breaker shared
 * on Redis (`REDIS_URL`). It prints how many calls reached the dead dependency in each run,
 * how long after the first worker's breaker opened the last one stopped calling, and how many
 * probes each open period let through.
 *
 * With local breakers every process learns on its own that the dependency is dead, and
 * every process probes it once per open period; with the shared breaker the fleet learns
 * once, and one probe per open period speaks for everyone. Without `REDIS_URL` the example
 * runs the local part only, says that the shared part needs Redis, and exits 0.
 *
 * Variables: `REDIS_URL`, `FLEET_WORKERS` (4), `FLEET_FIBERS` per worker (4),
 * `FLEET_DURATION` per run in seconds (10), `FLEET_OPEN_MILLIS`, the open duration (250).
 * Killing Redis while it runs changes nothing for the callers: the workers fall back to their
 * local breakers, and no caller sees an error of the shared store.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as http from "node:http"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const workerScript = path.join(here, "fleet", "worker.ts")

const number = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback)
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const workers = number("FLEET_WORKERS", 4)
const fibers = number("FLEET_FIBERS", 4)
const durationMillis = number("FLEET_DURATION", 10) * 1000
const openMillis = number("FLEET_OPEN_MILLIS", 250)
const redisUrl = process.env["REDIS_URL"]?.trim() || undefined

/** A dependency that is down: every request waits 20 ms and gets a 503. Counts what reaches it. */
const startDeadDependency = async () => {
  let arrivals = 0
  const server = http.createServer((request, response) => {
    arrivals++
    request.resume()
    setTimeout(() => {
      response.writeHead(503)
      response.end("down")
    }, 20)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}/`,
    arrivals: () => arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

interface WorkerRun {
  readonly lines: ReadonlyArray<string>
  readonly code: number | null
}

interface Started {
  readonly ready: Promise<void>
  readonly go: () => void
  readonly done: Promise<WorkerRun>
}

const startWorker = (env: Record<string, string>): Started => {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", workerScript], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines: Array<string> = []
  let partial = ""
  let markReady = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString("utf8")).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    if (parts.includes("ready")) markReady()
  })
  child.stdin!.on("error", () => undefined)
  const killer = setTimeout(() => child.kill("SIGKILL"), durationMillis + 90_000)
  const done = new Promise<WorkerRun>((resolve) => {
    child.on("close", (code) => {
      clearTimeout(killer)
      markReady()
      if (partial !== "") lines.push(partial)
      resolve({ lines, code })
    })
  })
  return { ready, go: () => child.stdin!.end("go\n"), done }
}

interface Summary {
  readonly calls: number
  /** From the first worker's opening to the last worker's, in milliseconds. */
  readonly stopSpread: number | undefined
  readonly probesPerOpenPeriod: number | undefined
  readonly callerErrors: number
  readonly exitCodes: ReadonlyArray<number | null>
  /** Shared run: probes counted in each open period (epoch). */
  readonly probesByPeriod: ReadonlyArray<number>
}

const run = async (mode: "local" | "shared"): Promise<Summary> => {
  const dependency = await startDeadDependency()
  const breaker = `fleet-${process.pid}-${Date.now()}`
  const started = Array.from({ length: workers }, (_, n) =>
    startWorker({
        FLEET_MODE: mode,
        FLEET_TARGET: dependency.url,
        FLEET_WORKER: `w${n}`,
        FLEET_FIBERS: String(fibers),
        FLEET_DURATION_MILLIS: String(durationMillis),
        FLEET_OPEN_MILLIS: String(openMillis),
        FLEET_BREAKER: breaker,
        ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl })
      })
  )
  await Promise.all(started.map((worker) => worker.ready))
  for (const worker of started) worker.go()
  const runs = await Promise.all(started.map((worker) => worker.done))
  const calls = dependency.arrivals()
  await dependency.close()
  const transitions = runs.map((r) => r.lines.filter((l) => l.startsWith("transition ")).map((l) => l.split(" ")))
  // A worker stopped calling when it was first turned away by its breaker.
  const stops = runs
    .map((r) => r.lines.find((l) => l.startsWith("stopped ")))
    .filter((l): l is string => l !== undefined)
    .map((l) => Number(l.split(" ")[1]))
  const stopSpread = stops.length === workers ? Math.max(...stops) - Math.min(...stops) : undefined
  const callerErrors = runs.reduce((n, r) => n + r.lines.filter((l) => l.startsWith("caller-error")).length, 0)
  let probesPerOpenPeriod: number | undefined
  let probesByPeriod: Array<number> = []
  if (mode === "shared") {
    const byEpoch = new Map<number, number>()
    for (const r of runs) {
      for (const line of r.lines.filter((l) => l.startsWith("probe "))) {
        const epoch = Number(line.split(" ")[1])
        byEpoch.set(epoch, (byEpoch.get(epoch) ?? 0) + 1)
      }
    }
    probesByPeriod = [...byEpoch.values()]
    probesPerOpenPeriod = probesByPeriod.length === 0
      ? undefined
      : probesByPeriod.reduce((a, b) => a + b, 0) / probesByPeriod.length
  } else {
    // Each local breaker probes once per open period of its own: fleet-wide, the probes of every
    // worker over the open periods of one.
    const probes = transitions.reduce((n, t) => n + t.filter(([, , from]) => from === "HalfOpen").length, 0)
    const periods = transitions.reduce(
      (n, t) => n + t.filter(([, , from, to]) => from === "Open" && to === "HalfOpen").length,
      0
    )
    probesPerOpenPeriod = periods === 0 ? undefined : probes / (periods / workers)
  }
  return { calls, stopSpread, probesPerOpenPeriod, callerErrors, exitCodes: runs.map((r) => r.code), probesByPeriod }
}

const format = (value: number | undefined, digits = 1) => value === undefined ? "n/a" : value.toFixed(digits)

const main = async () => {
  console.log(
    `fleet: ${workers} workers x ${fibers} fibers call a dead dependency for ${durationMillis / 1000} s per run ` +
      `(open duration ${openMillis} ms, halfOpenMaxCalls 1)`
  )
  const local = await run("local")
  console.log(
    `local breakers: ${local.calls} calls reached the dead dependency; last worker stopped ` +
      `${format(local.stopSpread, 0)} ms after the first opened; probes per open period: ` +
      `${format(local.probesPerOpenPeriod)} (one per worker)`
  )
  if (redisUrl === undefined) {
    console.log("shared breakers: skipped, they need Redis: set REDIS_URL=redis://host:port to run them")
    console.log(`dead-dependency calls: local ${local.calls}`)
    console.log(`caller errors: ${local.callerErrors}`)
    return local.callerErrors === 0 ? 0 : 1
  }
  const shared = await run("shared")
  const periods = shared.probesByPeriod
  console.log(
    `shared breaker: ${shared.calls} calls reached the dead dependency; last worker stopped ` +
      `${format(shared.stopSpread, 0)} ms after the first opened; probes per open period: ` +
      `${format(shared.probesPerOpenPeriod, 2)} fleet-wide ` +
      `(min ${periods.length === 0 ? "n/a" : Math.min(...periods)}, ` +
      `max ${periods.length === 0 ? "n/a" : Math.max(...periods)}, over ${periods.length} open periods)`
  )
  console.log(
    `dead-dependency calls: shared ${shared.calls}, local ${local.calls}; ` +
      `last worker stopped after the first opened: shared ${format(shared.stopSpread, 0)} ms, local ${
        format(local.stopSpread, 0)
      } ms; probes per open period: shared ${format(shared.probesPerOpenPeriod, 2)}, local ${
        format(local.probesPerOpenPeriod)
      }`
  )
  const errors = local.callerErrors + shared.callerErrors
  console.log(`caller errors: ${errors}`)
  const crashed = [...local.exitCodes, ...shared.exitCodes].some((code) => code !== 0)
  if (crashed) {
    console.log(`worker exit codes: local ${local.exitCodes.join(",")}, shared ${shared.exitCodes.join(",")}`)
  }
  return errors === 0 && !crashed ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
)
