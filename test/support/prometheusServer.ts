/**
 * A real `prometheus` server for integration tests: started on a free loopback port in a
 * temp dir, scraping one target every second, queried through its HTTP API, and stopped
 * after the tests, also when a test fails (an `afterAll` hook, the scope's finalizer, a
 * process exit hook and a watchdog that outlives a SIGKILL). Also `promtool`, and a reader
 * of the text exposition for assertions.
 *
 * When a binary is missing, starting fails with a message saying what to install: a test
 * that needs Prometheus never skips silently.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import {
  freePort,
  type Hooks,
  scopedServer,
  spawnWatchdog,
  useServer
} from "../integration/serverLifecycle.js"
export { freePort, type Hooks } from "../integration/serverLifecycle.js"

/** The path of a Prometheus binary; throws saying what to install when it is missing. */
export const findBinary = (name: "prometheus" | "promtool"): string => {
  const dirs = (process.env["PATH"] ?? "").split(path.delimiter).filter((dir) => dir.length > 0)
  for (const dir of [...dirs, "/usr/bin", "/usr/local/bin"]) {
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      // try the next one
    }
  }
  throw new Error(`${name} not found: apt-get install -y prometheus`)
}

/** What a `promtool` run printed and how it exited. */
export interface PromtoolResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `promtool` with `args`, writing `stdin` to it when given. */
export const promtool = (args: ReadonlyArray<string>, stdin?: string): Promise<PromtoolResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(findBinary("promtool"), args, { stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.on("error", () => undefined)
    child.stdin.end(stdin ?? "")
  })

/** One sample of a text exposition: its metric name, labels and value. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Reads the samples of a text exposition (comments skipped). */
export const parseExposition = (text: string): Array<Sample> =>
  text.split("\n").flatMap((line) => {
    const match = sampleLine.exec(line.trim())
    if (match === null || line.startsWith("#")) return []
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? "").matchAll(labelPair)) {
      labels[pair[1]!] = pair[2]!.replace(/\\n/g, "\n").replace(/\\"/g, "\"").replace(/\\\\/g, "\\")
    }
    const raw = match[3]!
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw)
    return [{ name: match[1]!, labels, value }]
  })

/** The samples named `name` whose labels include every one of `labels`. */
export const samplesOf = (
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): Array<Sample> =>
  samples.filter((sample) =>
    sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  )

/** The value of the one sample named `name` with `labels`; throws when there is none or several. */
export const valueOf = (
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): number => {
  const found = samplesOf(samples, name, labels)
  if (found.length !== 1) {
    throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`)
  }
  return found[0]!.value
}

/** One series of an instant query: its labels and value. */
export interface QueryResult {
  readonly metric: Readonly<Record<string, string>>
  readonly value: number
}

export interface PrometheusServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly port: number
  /** The target it scrapes, `host:port`. */
  readonly target: string
  /** Runs an instant query through `/api/v1/query`. */
  readonly query: (promql: string) => Promise<Array<QueryResult>>
  /**
   * Runs `query` until `accept` holds for its result (default: a non-empty result), every
   * 250 ms, for at most `timeoutMillis` (default 15 s); throws with the last result otherwise.
   */
  readonly waitFor: (
    promql: string,
    accept?: (results: Array<QueryResult>) => boolean,
    timeoutMillis?: number
  ) => Promise<Array<QueryResult>>
  /** The health of its scrape of the target: `up`, `down` or `unknown`, with the last error. */
  readonly targetHealth: () => Promise<{ readonly health: string; readonly lastError: string }>
  /** Stops the server and removes its temp dir. Idempotent. */
  readonly close: () => Promise<void>
  /** What the server printed, for failure messages. */
  readonly output: () => string
}

export interface StartOptions {
  /** The target to scrape, `host:port`. */
  readonly target: string
  /** The path of the metrics (default `/metrics`). */
  readonly metricsPath?: string
  /** How long to wait for `/-/ready` (default 20 s). */
  readonly readyTimeoutMillis?: number
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const live = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  })
}

const isReady = async (url: string): Promise<boolean> => {
  try {
    const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })
    return response.status === 200
  } catch {
    return false
  }
}

/** Starts `prometheus` on a free loopback port, scraping `target` every second, and waits until it is ready. */
export const startPrometheusServer = async (options: StartOptions): Promise<PrometheusServer> => {
  const binary = findBinary("prometheus")
  installExitHook()
  const host = "127.0.0.1"
  const port = await freePort(host)
  const url = `http://${host}:${port}`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-prometheus-"))
  const config = [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "  evaluation_interval: 1s",
    "scrape_configs:",
    "  - job_name: effect-resilience",
    `    metrics_path: ${JSON.stringify(options.metricsPath ?? "/metrics")}`,
    "    static_configs:",
    `      - targets: [${JSON.stringify(options.target)}]`,
    ""
  ].join("\n")
  fs.writeFileSync(path.join(dir, "prometheus.yml"), config)
  const args = [
    `--config.file=${path.join(dir, "prometheus.yml")}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    `--web.listen-address=${host}:${port}`,
    "--log.level=warn"
  ]
  const child = spawn(binary, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
  live.add(child)
  const guard = child.pid === undefined
    ? undefined
    : spawnWatchdog("prometheus-watchdog", `kill -9 ${child.pid} 2>/dev/null; sleep 0.2; rm -rf -- "$1"`, [dir])
  let output = ""
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-20_000)
  }
  child.stdout?.on("data", append)
  child.stderr?.on("data", append)
  let hasExited = false
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      hasExited = true
      guard?.kill("SIGKILL")
      live.delete(child)
      resolve()
    })
  })
  child.once("error", (error) => {
    output += `\nspawn error: ${error.message}`
  })

  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    if (!hasExited) {
      child.kill("SIGTERM")
      const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])
      if (!stopped) {
        child.kill("SIGKILL")
        await exited
      }
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }

  const readyTimeout = options.readyTimeoutMillis ?? 20_000
  const deadline = Date.now() + readyTimeout
  let ready = false
  while (Date.now() < deadline) {
    if (hasExited) {
      await close()
      throw new Error(`prometheus exited before it was ready on port ${port}:\n${output}`)
    }
    if (await isReady(url)) {
      ready = true
      break
    }
    await sleep(100)
  }
  if (!ready) {
    await close()
    throw new Error(`prometheus was not ready on port ${port} within ${readyTimeout} ms:\n${output}`)
  }

  const query = async (promql: string): Promise<Array<QueryResult>> => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
    const body = await response.json() as {
      status: string
      error?: string
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
    }
    if (body.status !== "success" || body.data === undefined) {
      throw new Error(`query ${promql} failed: ${body.error ?? response.status}`)
    }
    if (body.data.resultType !== "vector") {
      throw new Error(`query ${promql} gave a ${body.data.resultType}, not an instant vector`)
    }
    return body.data.result.map((series) => ({ metric: series.metric, value: Number(series.value[1]) }))
  }

  const waitFor = async (
    promql: string,
    accept: (results: Array<QueryResult>) => boolean = (results) => results.length > 0,
    timeoutMillis = 15_000
  ): Promise<Array<QueryResult>> => {
    const until = Date.now() + timeoutMillis
    let last: Array<QueryResult> = []
    while (Date.now() < until) {
      last = await query(promql)
      if (accept(last)) return last
      await sleep(250)
    }
    throw new Error(`query ${promql} did not give the expected result in ${timeoutMillis} ms: ${JSON.stringify(last)}`)
  }

  const targetHealth = async () => {
    const response = await fetch(`${url}/api/v1/targets`)
    const body = await response.json() as {
      data: { activeTargets: Array<{ health: string; lastError: string }> }
    }
    const target = body.data.activeTargets[0]
    return { health: target?.health ?? "unknown", lastError: target?.lastError ?? "" }
  }

  return { url, port, target: options.target, query, waitFor, targetHealth, close, output: () => output }
}

/** The server as an Effect scoped resource, stopped when the scope closes. */
export const prometheusServer = (options: StartOptions): Effect.Effect<PrometheusServer, Error, Scope.Scope> =>
  scopedServer(() => startPrometheusServer(options))

/** Starts one server for a test file (`beforeAll` / `afterAll`); returns a getter for it. */
export const usePrometheusServer = (hooks: Hooks, options: () => StartOptions): () => PrometheusServer =>
  useServer(hooks, "prometheus server", () => startPrometheusServer(options()), { start: 30_000, stop: 10_000 })
