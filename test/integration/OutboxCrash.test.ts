/**
 * The outbox survives the death of its process: a child process writes through the outbox
 * while the database is down and is killed with SIGKILL; a new process replays the journal
 * (and is itself killed in the middle of its replay, then replaced); in the end every write
 * the first process acknowledged is in the database exactly once.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { usePostgresServer } from "./postgresServer.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = path.join(here, "fixtures", "outboxProcess.ts")
const root = path.resolve(here, "..", "..")

interface Child {
  readonly process: ChildProcess
  readonly lines: () => ReadonlyArray<string>
  /** Resolves once a line satisfies `predicate`; rejects when the process exits first or on timeout. */
  readonly waitFor: (predicate: (line: string) => boolean, timeoutMillis: number) => Promise<string>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly stderr: () => string
}

const children = new Set<ChildProcess>()

const run = (args: ReadonlyArray<string>): Child => {
  // `node --import tsx`, not the `tsx` wrapper: one process, so SIGKILL kills the writer itself.
  const child = spawn(process.execPath, ["--import", "tsx", fixture, ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  const lines: Array<string> = []
  let partial = ""
  let stderr = ""
  const waiters = new Set<() => void>()
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = partial + chunk.toString("utf8")
    const parts = text.split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    for (const wake of waiters) wake()
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-10_000)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => {
      children.delete(child)
      if (partial !== "") lines.push(partial)
      partial = ""
      for (const wake of waiters) wake()
      resolve({ code, signal })
    })
  })
  const tail = () => lines.slice(-20).join("\n")
  let done = false
  void exited.then(() => {
    done = true
  })
  const waitFor = (predicate: (line: string) => boolean, timeoutMillis: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = lines.find(predicate)
        if (found !== undefined) {
          cleanup()
          resolve(found)
        } else if (done) {
          cleanup()
          reject(new Error(`the child exited before the expected line; stderr:\n${stderr}\nstdout:\n${tail()}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out waiting for a line; stderr:\n${stderr}\nstdout:\n${tail()}`))
      }, timeoutMillis)
      const cleanup = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  return { process: child, lines: () => lines, waitFor, exited, stderr: () => stderr }
}

const kill = async (child: Child) => {
  child.process.kill("SIGKILL")
  const { signal } = await child.exited
  return signal
}

afterAll(() => {
  for (const child of children) child.kill("SIGKILL")
})

const acknowledged = (child: Child) =>
  child.lines().flatMap((line) => {
    const match = /^ack (\S+) (Written|Queued)$/.exec(line)
    return match ? [match[1]!] : []
  })

const replayedOf = (line: string) => Number(/^replayed (\d+)/.exec(line)?.[1] ?? "0")

/**
 * Writes with the database down until at least `minimumAcks` writes are acknowledged, then
 * SIGKILL; replays in a new process killed as soon as it has applied something; replays
 * to the end in a third one. Returns the acknowledged ids.
 */
const crashAndReplay = async (options: {
  readonly target: string
  readonly journal: string
  readonly minimumAcks: number
  readonly beforeReplay: () => Promise<void>
}) => {
  const writer = run(["write", options.target, options.journal, "1000000"])
  await writer.waitFor((line) => line.startsWith("ready"), 30_000)
  await writer.waitFor(() => acknowledged(writer).length >= options.minimumAcks, 30_000)
  expect(await kill(writer)).toBe("SIGKILL")
  const acked = acknowledged(writer)
  expect(acked.length).toBeGreaterThanOrEqual(options.minimumAcks)
  // Every acknowledgement came from the journal: the database was down.
  expect(writer.lines().filter((line) => line.startsWith("ack ") && !line.endsWith(" Queued"))).toEqual([])
  expect(writer.lines().filter((line) => line.startsWith("error "))).toEqual([])

  await options.beforeReplay()

  // A first replay, killed as soon as it has applied something (or finished already).
  const first = run(["replay", options.target, options.journal, "10"])
  const ready = await first.waitFor((line) => line.startsWith("ready"), 30_000)
  expect(Number(ready.split(" ")[1])).toBeGreaterThanOrEqual(acked.length)
  await first.waitFor((line) => replayedOf(line) > 0 || line.startsWith("drained"), 30_000)
  await kill(first)

  // A second replay finishes the job.
  const second = run(["replay", options.target, options.journal, "100"])
  const drained = await second.waitFor((line) => line.startsWith("drained"), 60_000)
  const { code } = await second.exited
  expect(code).toBe(0)
  return { acked, firstReplayed: Math.max(0, ...first.lines().map(replayedOf)), drained }
}

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-crash-"))

describe("Outbox crash (SIGKILL) on PostgreSQL", () => {
  const server = usePostgresServer({ beforeAll, afterAll }, { database: "crash" })

  it("no acknowledged write is lost or duplicated across a SIGKILL while the database is down", async () => {
    const pg = server()
    const dir = tempDir()
    try {
      // No UNIQUE constraint: a write applied twice would be two rows.
      await pg.psql("CREATE TABLE crash_orders (id TEXT NOT NULL, n INTEGER NOT NULL)")
      await pg.stop("immediate")
      const { acked, drained, firstReplayed } = await crashAndReplay({
        target: pg.url,
        journal: path.join(dir, "journal.sqlite"),
        minimumAcks: 500,
        beforeReplay: () => pg.start()
      })
      const duplicates = await pg.psql("SELECT id FROM crash_orders GROUP BY id HAVING COUNT(*) > 1")
      expect(duplicates).toBe("")
      const present = new Set((await pg.psql("SELECT id FROM crash_orders")).split("\n").filter((id) => id !== ""))
      const missing = acked.filter((id) => !present.has(id))
      expect(missing).toEqual([])
      // Rows beyond the acknowledged ones are writes journaled just before the kill, not yet reported.
      expect(present.size).toBeGreaterThanOrEqual(acked.length)
      console.log(
        `crash on PostgreSQL: ${acked.length} writes acknowledged before SIGKILL, ${present.size} rows after replay ` +
          `(first replay killed after ${firstReplayed} applied; ${drained}), 0 duplicates, 0 missing`
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})

describe("Outbox crash (SIGKILL) on the embedded SQLite layer", () => {
  it("no acknowledged write is lost or duplicated while another connection holds the database file locked", async () => {
    const dir = tempDir()
    const scope = Effect.runSync(Scope.make())
    try {
      const filename = path.join(dir, "app.sqlite")
      const target = `sqlite:${filename}`
      // The outage: this process holds the file's write lock until the replay.
      const locker = await Effect.runPromise(
        SqliteClient.make({ filename }).pipe(Scope.extend(scope), Effect.provide(Reactivity.layer))
      )
      await Effect.runPromise(locker.unsafe("CREATE TABLE crash_orders (id TEXT NOT NULL, n INTEGER NOT NULL)"))
      await Effect.runPromise(locker.unsafe("BEGIN EXCLUSIVE"))
      const { acked, drained } = await crashAndReplay({
        target,
        journal: path.join(dir, "journal.sqlite"),
        minimumAcks: 500,
        beforeReplay: async () => {
          await Effect.runPromise(locker.unsafe("ROLLBACK"))
          await Effect.runPromise(Scope.close(scope, Exit.void))
        }
      })
      const rows = await Effect.runPromise(
        Effect.flatMap(
          SqliteClient.make({ filename }),
          (sql) => sql<{ readonly id: string }>`SELECT id FROM crash_orders`
        ).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
      )
      const ids = rows.map((row) => row.id)
      expect(new Set(ids).size).toBe(ids.length)
      const present = new Set(ids)
      expect(acked.filter((id) => !present.has(id))).toEqual([])
      console.log(`crash on SQLite: ${acked.length} acknowledged before SIGKILL, ${ids.length} rows, ${drained}`)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
