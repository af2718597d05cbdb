import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/**
 * The failure of the outbox's journal file: it cannot be opened (missing directory, in use
 * by another process), written (disk full, I/O error) or read.
 *
 * @internal
 */
export class JournalError extends Data.TaggedError("OutboxJournalError")<{
  readonly outbox: string
  readonly path: string
  readonly operation: "open" | "append" | "read" | "remove" | "deadLetter" | "closed"
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = typeof this.cause === "object" && this.cause !== null && "message" in this.cause
      ? String((this.cause as { readonly message: unknown }).message)
      : String(this.cause)
    return `outbox "${this.outbox}": journal ${this.operation} failed (${this.path}): ${cause}`
  }
}

/** A row of the journal. @internal */
export interface Row {
  readonly seq: number
  readonly key: string
  readonly payload: string
  readonly enqueuedAt: number
}

/** A row that replay could not apply. @internal */
export interface DeadRow extends Row {
  readonly failedAt: number
  readonly error: string
}

/** What one append did for one entry. @internal */
export type Appended =
  | { readonly _tag: "Queued"; readonly seq: number; readonly duplicate: boolean }
  | { readonly _tag: "Full" }

/** @internal */
export interface Journal {
  /**
   * Appends entries in one transaction (one fsync), in order, each unless its key is
   * already queued (then it reports that entry's seq) or `room` new entries were taken.
   */
  readonly append: (
    entries: ReadonlyArray<{ readonly key: string; readonly payload: string }>,
    enqueuedAt: number,
    room: number
  ) => Effect.Effect<ReadonlyArray<Appended>, JournalError>
  /** The oldest entries, in order. */
  readonly read: (limit: number) => Effect.Effect<ReadonlyArray<Row>, JournalError>
  /** Removes entries (once applied). */
  readonly remove: (seqs: ReadonlyArray<number>) => Effect.Effect<void, JournalError>
  /** Moves an entry the database refused to the dead letters. */
  readonly deadLetter: (row: Row, failedAt: number, error: string) => Effect.Effect<void, JournalError>
  readonly count: Effect.Effect<number, JournalError>
  readonly oldest: Effect.Effect<Option.Option<number>, JournalError>
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadRow>, JournalError>
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS outbox_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS outbox_dead_letters (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    error TEXT NOT NULL
  )`
] as const

interface EntryRecord {
  readonly seq: number
  readonly key: string
  readonly payload: string
  readonly enqueued_at: number
}

interface DeadRecord extends EntryRecord {
  readonly failed_at: number
  readonly error: string
}

const toRow = (record: EntryRecord): Row => ({
  seq: Number(record.seq),
  key: record.key,
  payload: record.payload,
  enqueuedAt: Number(record.enqueued_at)
})

/**
 * Opens (or makes) the journal: a SQLite file in WAL mode with `synchronous = FULL`, so a
 * committed append is on disk (fsync'd) before it is acknowledged, and with
 * `locking_mode = EXCLUSIVE`, so one process at a time owns it (another one fails to open
 * it, rather than replaying the same entries at the same time).
 *
 * @internal
 */
export const open = (outbox: string, path: string): Effect.Effect<Journal, JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const fail = (operation: JournalError["operation"]) => (cause: unknown) =>
      new JournalError({ outbox, path, operation, cause })
    const sql: SqlClient.SqlClient = yield* SqliteClient.make({ filename: path, disableWAL: true }).pipe(
      Effect.provide(Reactivity.layer),
      // The driver throws (a defect) when the file cannot be opened.
      Effect.catchAllDefect((defect) => Effect.fail(fail("open")(defect)))
    )
    yield* Effect.gen(function*() {
      yield* sql.unsafe("PRAGMA busy_timeout = 0")
      yield* sql.unsafe("PRAGMA locking_mode = EXCLUSIVE")
      const [mode] = yield* sql.unsafe<{ readonly journal_mode: string }>("PRAGMA journal_mode = WAL")
      if (mode?.journal_mode !== "wal") {
        return yield* Effect.fail(new Error(`could not enter WAL mode (got ${mode?.journal_mode})`))
      }
      yield* sql.unsafe("PRAGMA synchronous = FULL")
      for (const statement of SCHEMA) yield* sql.unsafe(statement)
      // Takes the file's lock now, and keeps it until the journal is closed.
      yield* sql.unsafe("BEGIN EXCLUSIVE")
      yield* sql.unsafe("COMMIT")
    }).pipe(Effect.mapError(fail("open")))

    // Two statements per batch, whatever its size: which keys are already waiting, then one
    // multi-row insert of the new ones that fit.
    const append: Journal["append"] = (entries, enqueuedAt, room) =>
      sql.withTransaction(Effect.gen(function*() {
        const keys = Array.from(new Set(entries.map((entry) => entry.key)))
        const existing = new Map<string, number>()
        if (keys.length > 0) {
          const found = yield* sql<{ readonly seq: number; readonly key: string }>`
            SELECT seq, key FROM outbox_entries WHERE ${sql.in("key", keys)}`
          for (const row of found) existing.set(row.key, Number(row.seq))
        }
        const accepted: Array<{ readonly key: string; readonly payload: string; readonly enqueued_at: number }> = []
        const taken = new Set<string>()
        for (const entry of entries) {
          if (existing.has(entry.key) || taken.has(entry.key) || accepted.length >= room) continue
          taken.add(entry.key)
          accepted.push({ key: entry.key, payload: entry.payload, enqueued_at: enqueuedAt })
        }
        const inserted = new Map<string, number>()
        if (accepted.length > 0) {
          const rows = yield* sql<{ readonly seq: number; readonly key: string }>`
            INSERT INTO outbox_entries ${sql.insert(accepted)} RETURNING seq, key`
          for (const row of rows) inserted.set(row.key, Number(row.seq))
        }
        const reported = new Set<string>()
        return entries.map((entry): Appended => {
          const before = existing.get(entry.key)
          if (before !== undefined) return { _tag: "Queued", seq: before, duplicate: true }
          const seq = inserted.get(entry.key)
          if (seq === undefined) return { _tag: "Full" }
          // The same key twice in one batch: stored once, the second one is a duplicate.
          const duplicate = reported.has(entry.key)
          reported.add(entry.key)
          return { _tag: "Queued", seq, duplicate }
        })
      })).pipe(Effect.mapError(fail("append")))

    const read: Journal["read"] = (limit) =>
      sql<EntryRecord>`SELECT seq, key, payload, enqueued_at FROM outbox_entries ORDER BY seq LIMIT ${limit}`.pipe(
        Effect.map((records) => records.map(toRow)),
        Effect.mapError(fail("read"))
      )

    const remove: Journal["remove"] = (seqs) =>
      seqs.length === 0
        ? Effect.void
        : sql`DELETE FROM outbox_entries WHERE ${sql.in("seq", seqs)}`.pipe(
          Effect.asVoid,
          Effect.mapError(fail("remove"))
        )

    const deadLetter: Journal["deadLetter"] = (row, failedAt, error) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql`
          INSERT OR REPLACE INTO outbox_dead_letters (seq, key, payload, enqueued_at, failed_at, error)
          VALUES (${row.seq}, ${row.key}, ${row.payload}, ${row.enqueuedAt}, ${failedAt}, ${error})`
        yield* sql`DELETE FROM outbox_entries WHERE seq = ${row.seq}`
      })).pipe(Effect.mapError(fail("deadLetter")))

    const count = sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM outbox_entries`.pipe(
      Effect.map(([row]) => Number(row?.n ?? 0)),
      Effect.mapError(fail("read"))
    )

    const oldest = sql<{ readonly enqueued_at: number }>`
      SELECT enqueued_at FROM outbox_entries ORDER BY seq LIMIT 1`.pipe(
      Effect.map(([row]) => (row === undefined ? Option.none() : Option.some(Number(row.enqueued_at)))),
      Effect.mapError(fail("read"))
    )

    const deadLetters = sql<DeadRecord>`
      SELECT seq, key, payload, enqueued_at, failed_at, error FROM outbox_dead_letters ORDER BY seq`.pipe(
      Effect.map((records) =>
        records.map((record): DeadRow => ({
          ...toRow(record),
          failedAt: Number(record.failed_at),
          error: record.error
        }))
      ),
      Effect.mapError(fail("read"))
    )

    return { append, read, remove, deadLetter, count, oldest, deadLetters }
  })
