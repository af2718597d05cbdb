/**
 * A real `redis-server` for integration tests: started on a free loopback port in a temp
 * dir, with real faults (SIGKILL, SIGSTOP / SIGCONT, DEBUG SLEEP, CLIENT PAUSE, maxmemory)
 * and admin commands over a connection of its own. Stopped after the tests, also when a
 * test fails (an `afterAll` hook, the scope's finalizer, and a process exit hook).
 *
 * When the binary is missing, starting fails with a message saying what to install: a
 * test that needs Redis never skips silently.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { freePort, type Hooks, scopedServer, spawnWatchdog, useServer } from "./serverLifecycle.js"
export { freePort, type Hooks } from "./serverLifecycle.js"

export interface RedisServer {
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  /** The pid of the running server, `undefined` while it is down. */
  readonly pid: () => number | undefined
  /** Whether the server process is alive (stopped counts as alive). */
  readonly isRunning: () => boolean
  /** SIGKILL: connections are refused until `restart`. Resolves once the process is gone. */
  readonly kill: () => Promise<void>
  /** SIGSTOP: the process is frozen, connections stay open and nothing answers. */
  readonly stop: () => void
  /** SIGCONT: resumes a stopped server. */
  readonly cont: () => void
  /** Starts the server again on the same port (killing it first if it is alive) and waits for PING. */
  readonly restart: () => Promise<void>
  /** Runs one command on a fresh admin connection (no timeout) and returns its reply. */
  readonly admin: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  /** `admin` with bulk replies as `Buffer`s, to see the bytes a key holds. */
  readonly adminBuffer: (command: string, ...args: Array<string | number | Buffer>) => Promise<unknown>
  /** `DEBUG SLEEP seconds`: the server is busy for that long; resolves when it answers again. */
  readonly debugSleep: (seconds: number) => Promise<void>
  /** `CLIENT PAUSE millis ALL` (or `WRITE`): resolves once the pause is in effect. */
  readonly clientPause: (millis: number, mode?: "ALL" | "WRITE") => Promise<void>
  /** `CONFIG SET name value` */
  readonly configSet: (name: string, value: string) => Promise<void>
  /** Stops the server (SIGCONT then SIGKILL) and removes its temp dir. Idempotent. */
  readonly close: () => Promise<void>
  /** What the server printed, for failure messages. */
  readonly output: () => string
}

export interface StartOptions {
  /** Extra `redis-server` arguments, e.g. `["--maxmemory", "2mb"]`. */
  readonly args?: ReadonlyArray<string>
  /** How long to wait for PING (default 10 s). */
  readonly readyTimeoutMillis?: number
}

const candidates = (): Array<string> => {
  const fromEnv = process.env["REDIS_SERVER_BIN"]
  const dirs = (process.env["PATH"] ?? "").split(path.delimiter).filter((dir) => dir.length > 0)
  return [
    ...(fromEnv ? [fromEnv] : []),
    ...dirs.map((dir) => path.join(dir, "redis-server")),
    "/usr/bin/redis-server",
    "/usr/sbin/redis-server",
    "/usr/local/bin/redis-server"
  ]
}

/** The path of `redis-server`; throws saying what to install when it is missing. */
export const findRedisServer = (paths: ReadonlyArray<string> = candidates()): string => {
  for (const candidate of paths) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      // try the next one
    }
  }
  throw new Error("redis-server not found: apt-get install -y redis-server")
}

/** Sends a raw PING and resolves `true` when `+PONG` comes back within `timeoutMillis`. */
const ping = (host: string, port: number, timeoutMillis: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    let received = ""
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMillis)
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("*1\r\n$4\r\nPING\r\n"))
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1")
      if (received.includes("\r\n")) done(received.startsWith("+PONG"))
    })
  })

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const live = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // Synchronous on purpose: the only thing allowed in an exit handler. SIGKILL also ends a stopped process.
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

/**
 * A shell that SIGKILLs `pid` and removes its temp dir when its stdin closes, which happens
 * when this process dies in any way, SIGKILL included, where no exit hook runs: no server
 * outlives the tests.
 */
const watchdog = (pid: number, dir: string): ChildProcess | undefined =>
  spawnWatchdog("redis-watchdog", `kill -9 ${pid} 2>/dev/null; sleep 0.2; rm -rf -- "$1"`, [dir])

/** Starts a `redis-server` on a free loopback port and waits until it answers PING. */
export const startRedisServer = async (options: StartOptions = {}): Promise<RedisServer> => {
  const binary = findRedisServer()
  installExitHook()
  const host = "127.0.0.1"
  let port = await freePort(host)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-redis-"))
  const readyTimeout = options.readyTimeoutMillis ?? 10_000
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  let output = ""
  let closed = false

  const launch = async (): Promise<void> => {
    const args = [
      "--port", String(port),
      "--bind", host,
      "--dir", dir,
      "--save", "",
      "--appendonly", "no",
      "--enable-debug-command", "local",
      "--daemonize", "no",
      "--logfile", "",
      ...(options.args ?? [])
    ]
    const proc = spawn(binary, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
    child = proc
    live.add(proc)
    const guard = proc.pid === undefined ? undefined : watchdog(proc.pid, dir)
    const append = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-20_000)
    }
    proc.stdout?.on("data", append)
    proc.stderr?.on("data", append)
    let hasExited = false
    exited = new Promise<void>((resolve) => {
      proc.once("exit", () => {
        hasExited = true
        guard?.kill("SIGKILL")
        live.delete(proc)
        if (child === proc) child = undefined
        resolve()
      })
    })
    proc.once("error", (error) => {
      output += `\nspawn error: ${error.message}`
    })
    const deadline = Date.now() + readyTimeout
    while (Date.now() < deadline) {
      if (hasExited) {
        throw new Error(`redis-server exited before answering PING on port ${port}:\n${output}`)
      }
      if (await ping(host, port, 500)) return
      await sleep(25)
    }
    proc.kill("SIGKILL")
    throw new Error(`redis-server did not answer PING on port ${port} within ${readyTimeout} ms:\n${output}`)
  }

  const kill = async (): Promise<void> => {
    const proc = child
    if (proc === undefined) return
    proc.kill("SIGKILL")
    await exited
  }

  const withAdmin = async <A>(run: (connection: Redis) => Promise<A>): Promise<A> => {
    const connection = new Redis({
      host,
      port,
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 5_000
    })
    connection.on("error", () => {
      // reported through the command's rejection
    })
    try {
      await connection.connect()
      return await run(connection)
    } finally {
      connection.disconnect()
    }
  }
  const admin = (command: string, ...args: Array<string | number | Buffer>): Promise<unknown> =>
    withAdmin((connection) => connection.call(command, ...args))
  const adminBuffer = (command: string, ...args: Array<string | number | Buffer>): Promise<unknown> =>
    withAdmin((connection) => connection.callBuffer(command, ...args))

  // The port was free when we looked; another process may take it first: try a few.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch()
      break
    } catch (error) {
      if (attempt < 3 && output.includes("Address already in use")) {
        output = ""
        port = await freePort(host)
        continue
      }
      fs.rmSync(dir, { recursive: true, force: true })
      throw error
    }
  }

  const server: RedisServer = {
    host,
    port,
    url: `redis://${host}:${port}`,
    pid: () => child?.pid,
    isRunning: () => child !== undefined,
    kill,
    stop: () => {
      child?.kill("SIGSTOP")
    },
    cont: () => {
      child?.kill("SIGCONT")
    },
    restart: async () => {
      if (child !== undefined) {
        child.kill("SIGCONT")
        await kill()
      }
      await launch()
    },
    admin,
    adminBuffer,
    debugSleep: async (seconds) => {
      await admin("DEBUG", "SLEEP", String(seconds))
    },
    clientPause: async (millis, mode = "ALL") => {
      await admin("CLIENT", "PAUSE", String(millis), mode)
    },
    configSet: async (name, value) => {
      await admin("CONFIG", "SET", name, value)
    },
    close: async () => {
      if (closed) return
      closed = true
      if (child !== undefined) {
        child.kill("SIGCONT")
        await kill()
      }
      fs.rmSync(dir, { recursive: true, force: true })
    },
    output: () => output
  }
  return server
}

/**
 * A server as an Effect scoped resource: started on acquisition, stopped when the scope
 * closes (whether the test passed or failed).
 */
export const redisServer = (options: StartOptions = {}): Effect.Effect<RedisServer, Error, Scope.Scope> =>
  scopedServer(() => startRedisServer(options))

/**
 * Registers `beforeAll` / `afterAll` hooks starting one server for a test file, and
 * returns a getter for it: `const server = useRedisServer({ beforeAll, afterAll })`.
 */
export const useRedisServer = (hooks: Hooks, options: StartOptions = {}): () => RedisServer =>
  useServer(hooks, "Redis server", () => startRedisServer(options))
