/**
 * A real PostgreSQL for integration tests: a throwaway cluster made with `initdb` in a temp
 * dir (as the `postgres` user when we run as root, since PostgreSQL refuses to run as root),
 * started with `pg_ctl` on a free loopback port with its unix socket in the temp dir and
 * trust authentication, with a test database. Real faults: `stop()` is
 * `pg_ctl stop -m immediate` (every backend killed, crash recovery on the next start),
 * `start()` brings it back on the same port.
 *
 * Torn down after the tests, also when a test fails: the scope's finalizer or the
 * `afterAll` hook, a process exit hook, and a watchdog shell that stops the cluster when
 * this process dies in any way (SIGKILL included).
 *
 * When PostgreSQL is missing, starting fails with a message saying what to install: a test
 * that needs PostgreSQL never skips silently.
 */
import { type ChildProcess, execFile, execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { freePort, type Hooks, scopedServer, spawnWatchdog, useServer } from "./serverLifecycle.js"
export { freePort, type Hooks } from "./serverLifecycle.js"

export interface PostgresServer {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  /** `postgres://postgres@127.0.0.1:PORT/DATABASE` */
  readonly url: string
  /** The directory of `initdb`, `pg_ctl`, `psql`, e.g. `/usr/lib/postgresql/15/bin`. */
  readonly binDir: string
  /** The major version of the binaries, e.g. `15`. */
  readonly version: number
  /** Whether the server is up (as far as `start` and `stop` know). */
  readonly isRunning: () => boolean
  /** `pg_ctl stop -m immediate` (or another mode): resolves once the server is gone. */
  readonly stop: (mode?: "immediate" | "fast" | "smart") => Promise<void>
  /** `pg_ctl start` on the same port: resolves once it accepts connections. */
  readonly start: () => Promise<void>
  /** Runs SQL with `psql` (tuples only, unaligned) and returns its output, trimmed. */
  readonly psql: (sql: string, database?: string) => Promise<string>
  /** Makes a database; resolves to its URL. */
  readonly createDatabase: (name: string) => Promise<string>
  /** Stops the server and removes its temp dir. Idempotent. */
  readonly close: () => Promise<void>
  /** The end of the server's log, for failure messages. */
  readonly output: () => string
}

export interface StartOptions {
  /** The test database to make (default `"test"`). */
  readonly database?: string
  /** How long `pg_ctl start` may wait for the server (default 30 s). */
  readonly readyTimeoutSeconds?: number
}

export const notFoundMessage = "PostgreSQL not found: apt-get install -y postgresql"

const REQUIRED_BINARIES = ["initdb", "pg_ctl", "psql"] as const

/**
 * The directory of the newest PostgreSQL binaries under `root` (Debian installs them in
 * `/usr/lib/postgresql/<version>/bin`, or `POSTGRES_BIN_DIR` when set); throws saying what to
 * install when there are none.
 */
export const findPostgresBinDir = (
  roots: ReadonlyArray<string> = ["/usr/lib/postgresql"],
  fromEnv: string | undefined = process.env["POSTGRES_BIN_DIR"]
): { readonly binDir: string; readonly version: number } => {
  const complete = (dir: string) =>
    REQUIRED_BINARIES.every((binary) => {
      try {
        fs.accessSync(path.join(dir, binary), fs.constants.X_OK)
        return true
      } catch {
        return false
      }
    })
  if (fromEnv !== undefined && fromEnv !== "" && complete(fromEnv)) {
    const match = /(\d+)/.exec(path.basename(path.dirname(fromEnv)))
    return { binDir: fromEnv, version: match ? Number(match[1]) : 0 }
  }
  for (const root of roots) {
    let versions: Array<string>
    try {
      versions = fs.readdirSync(root).filter((entry) => /^\d+$/.test(entry))
    } catch {
      continue
    }
    versions.sort((a, b) => Number(b) - Number(a))
    for (const version of versions) {
      const binDir = path.join(root, version, "bin")
      if (complete(binDir)) return { binDir, version: Number(version) }
    }
  }
  throw new Error(notFoundMessage)
}

// PostgreSQL refuses to run as root: as root, every server command runs as `postgres`.
const asRoot = () => process.getuid?.() === 0
const POSTGRES_USER = "postgres"

const command = (binary: string, args: ReadonlyArray<string>): readonly [string, ReadonlyArray<string>] =>
  asRoot() ? ["runuser", ["-u", POSTGRES_USER, "--", binary, ...args]] : [binary, args]

const run = (
  binary: string,
  args: ReadonlyArray<string>,
  timeoutMillis = 60_000
): Promise<string> =>
  new Promise((resolve, reject) => {
    const [file, argv] = command(binary, args)
    execFile(
      file,
      argv as Array<string>,
      { timeout: timeoutMillis, cwd: os.tmpdir(), env: { ...process.env, LC_ALL: "C", LANG: "C" } },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${path.basename(binary)} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`))
        } else {
          resolve(stdout)
        }
      }
    )
  })

const runSync = (binary: string, args: ReadonlyArray<string>) => {
  const [file, argv] = command(binary, args)
  execFileSync(file, argv as Array<string>, { stdio: "ignore", timeout: 30_000, cwd: os.tmpdir() })
}

interface Cluster {
  readonly binDir: string
  readonly dataDir: string
  readonly dir: string
}

const live = new Set<Cluster>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // Synchronous on purpose: the only thing allowed in an exit handler.
  process.on("exit", () => {
    for (const cluster of live) {
      try {
        runSync(path.join(cluster.binDir, "pg_ctl"), ["stop", "-D", cluster.dataDir, "-m", "immediate", "-w"])
      } catch {
        // not running
      }
      fs.rmSync(cluster.dir, { recursive: true, force: true })
    }
  })
}

/**
 * A shell that stops the cluster and removes its temp dir when its stdin closes, which
 * happens when this process dies in any way, SIGKILL included, where no exit hook runs:
 * `pg_ctl` daemonizes the server, so nothing else would stop it.
 */
const watchdog = (cluster: Cluster): ChildProcess | undefined => {
  const stop = asRoot()
    ? `runuser -u ${POSTGRES_USER} -- "$1" stop -D "$2" -m immediate -w`
    : `"$1" stop -D "$2" -m immediate -w`
  return spawnWatchdog(
    "postgres-watchdog",
    `${stop} >/dev/null 2>&1; rm -rf -- "$3"`,
    [path.join(cluster.binDir, "pg_ctl"), cluster.dataDir, cluster.dir],
    os.tmpdir()
  )
}

const postgresIds = (): { readonly uid: number; readonly gid: number } => {
  const uid = Number(execFileSync("id", ["-u", POSTGRES_USER]).toString().trim())
  const gid = Number(execFileSync("id", ["-g", POSTGRES_USER]).toString().trim())
  return { uid, gid }
}

/** Makes a cluster in a temp dir, starts it on a free loopback port and makes the test database. */
export const startPostgresServer = async (options: StartOptions = {}): Promise<PostgresServer> => {
  const { binDir, version } = findPostgresBinDir()
  installExitHook()
  const host = "127.0.0.1"
  const database = options.database ?? "test"
  const readyTimeout = options.readyTimeoutSeconds ?? 30
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-pg-"))
  const dataDir = path.join(dir, "data")
  const logFile = path.join(dir, "server.log")
  const cluster: Cluster = { binDir, dataDir, dir }
  const bin = (name: string) => path.join(binDir, name)
  let port = 0
  let guard: ChildProcess | undefined
  let running = false
  let closed = false

  const output = () => {
    try {
      return fs.readFileSync(logFile, "utf8").slice(-20_000)
    } catch {
      return ""
    }
  }

  const start = async (): Promise<void> => {
    const serverOptions = [
      `-p ${port}`,
      `-k ${dir}`,
      "-c listen_addresses=127.0.0.1",
      "-c max_connections=200",
      "-c shared_buffers=32MB"
    ].join(" ")
    await run(bin("pg_ctl"), [
      "start", "-D", dataDir, "-l", logFile, "-w", "-t", String(readyTimeout), "-o", serverOptions
    ])
    running = true
  }

  const stop = async (mode: "immediate" | "fast" | "smart" = "immediate"): Promise<void> => {
    await run(bin("pg_ctl"), ["stop", "-D", dataDir, "-m", mode, "-w"])
    running = false
  }

  const psql = (sql: string, db = database): Promise<string> =>
    run(bin("psql"), [
      "-h", host, "-p", String(port), "-U", POSTGRES_USER, "-d", db,
      "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql
    ]).then((out) => out.trim())

  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    try {
      if (running) await stop("immediate")
    } catch {
      // already down
    }
    live.delete(cluster)
    fs.rmSync(dir, { recursive: true, force: true })
    guard?.kill("SIGKILL")
  }

  try {
    if (asRoot()) {
      const { gid, uid } = postgresIds()
      fs.chownSync(dir, uid, gid)
    }
    await run(bin("initdb"), [
      "-D", dataDir, "-U", POSTGRES_USER, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"
    ])
    live.add(cluster)
    guard = watchdog(cluster)
    // The port was free when we looked; another process may take it first: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort(host)
      try {
        await start()
        break
      } catch (error) {
        if (attempt < 3 && /already in use|could not bind/i.test(output())) continue
        throw new Error(`${error instanceof Error ? error.message : String(error)}\n${output()}`)
      }
    }
    await psql(`CREATE DATABASE "${database}"`, "postgres")
  } catch (error) {
    await close()
    throw error
  }

  return {
    host,
    port,
    database,
    user: POSTGRES_USER,
    url: `postgres://${POSTGRES_USER}@${host}:${port}/${database}`,
    binDir,
    version,
    isRunning: () => running,
    stop,
    start,
    psql,
    createDatabase: async (name) => {
      await psql(`CREATE DATABASE "${name}"`, "postgres")
      return `postgres://${POSTGRES_USER}@${host}:${port}/${name}`
    },
    close,
    output
  }
}

/**
 * A server as an Effect scoped resource: started on acquisition, stopped when the scope
 * closes (whether the test passed or failed).
 */
export const postgresServer = (options: StartOptions = {}): Effect.Effect<PostgresServer, Error, Scope.Scope> =>
  scopedServer(() => startPostgresServer(options))

/**
 * Registers `beforeAll` / `afterAll` hooks starting one server for a test file, and
 * returns a getter for it: `const server = usePostgresServer({ beforeAll, afterAll })`.
 */
export const usePostgresServer = (hooks: Hooks, options: StartOptions = {}): () => PostgresServer =>
  useServer(hooks, "PostgreSQL server", () => startPostgresServer(options), { start: 120_000, stop: 60_000 })
