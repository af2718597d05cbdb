/**
 * Starts `examples/service.ts` as a child process (Node with `tsx`), as `npm run
 * example:service` does, and resolves once it listens: with its base URL (read from the
 * line it prints), everything it has printed so far and a way to stop it. Used by the
 * tests that drive the service over real HTTP.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

export interface RunningService {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  /** Everything the service printed on stdout and stderr so far. */
  readonly output: () => string
  /** Stops it (SIGTERM, then SIGKILL after 5 seconds) and resolves when it has exited. */
  readonly stop: () => Promise<void>
}

/**
 * Starts the service with `env` over the current environment (`PORT` defaults to 0: any free
 * port); a variable set to `undefined` is removed. Rejects, with what it printed, when it
 * exits or does not listen within `timeoutMillis`.
 */
export const launch = (
  env: Readonly<Record<string, string | undefined>>,
  timeoutMillis = 60_000
): Promise<RunningService> => {
  const environment: Record<string, string> = {}
  for (const [name, value] of Object.entries({ ...process.env, PORT: "0", ...env })) {
    if (value !== undefined) environment[name] = value
  }
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "examples/service.ts"], {
    cwd: root,
    env: environment,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
      await exited
      clearTimeout(timer)
    }
  }
  return new Promise<RunningService>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`the service did not listen within ${timeoutMillis} ms:\n${output}`)))
    }, timeoutMillis)
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8")
      const listening = /listening on (http:\/\/\S+)/.exec(output)
      if (listening !== null) {
        clearTimeout(timer)
        resolve({ baseUrl: listening[1]!, output: () => output, stop })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the service exited (${code ?? signal}) before listening:\n${output}`))
    })
  })
}
