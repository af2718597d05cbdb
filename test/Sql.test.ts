import * as SqlClient from "@effect/sql/SqlClient"
import type * as PgClient from "@effect/sql-pg/PgClient"
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Redacted,
  Ref,
  Schedule,
  Schema,
  Scope,
  TestClock,
  Tracer
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../src/Cache.js"
import { CircuitBreakerOpen } from "../src/CircuitBreaker.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import * as Retry from "../src/Retry.js"
import * as internalPg from "../src/internal/sqlPg.js"
import * as Sql from "../src/Sql.js"
import * as Pg from "../src/Sql/Pg.js"
import * as Sqlite from "../src/Sql/Sqlite.js"
import { TimeoutError } from "../src/Timeout.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-sql-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

/** Builds a resilient SQLite database in the current scope. */
const open = (options: Sqlite.Options) =>
  Effect.map(Layer.build(Sqlite.layer({ busyTimeout: 0, ...options })), (context) => ({
    context,
    db: Context.get(context, Sql.ResilientSql)
  }))

/** A second connection to the same file, to hold it locked. */
const locker = (filename: string) =>
  Effect.map(Layer.build(Sqlite.layerClient({ filename, busyTimeout: 0 })), (context) => {
    const sql = Context.get(context, SqlClient.SqlClient)
    return { lock: sql.unsafe("BEGIN EXCLUSIVE"), unlock: sql.unsafe("ROLLBACK") }
  })

/** Lets background fibers run until `condition` holds (at most `rounds` yields). */
const eventually = (condition: Effect.Effect<boolean>, rounds = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < rounds; i++) {
      if (yield* condition) return
      yield* Effect.sleep(Duration.zero).pipe(Effect.zipRight(Effect.yieldNow()))
    }
    throw new Error("condition not met")
  })

const sqlError = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })
const pgError = (code: string, message = "error") => sqlError(Object.assign(new Error(message), { code }))

describe("classification", () => {
  it("maps PostgreSQL and connection errors (as SqlError wraps them) into retry classes", () => {
    expect(Sql.classify(pgError("40001", "could not serialize access"))).toBe("Transient")
    expect(Sql.classify(pgError("40P01", "deadlock detected"))).toBe("Transient")
    expect(Sql.classify(pgError("08006"))).toBe("Transient")
    expect(Sql.classify(pgError("57P01", "terminating connection due to administrator command"))).toBe("Transient")
    expect(Sql.classify(pgError("57P03", "the database system is starting up"))).toBe("Transient")
    expect(Sql.classify(pgError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"))).toBe("Transient")
    expect(Sql.classify(sqlError(new Error("Connection terminated unexpectedly")))).toBe("Transient")
    expect(Sql.classify(pgError("23505", "duplicate key value violates unique constraint"))).toBe("Fatal")
    expect(Sql.classify(pgError("23503"))).toBe("Fatal")
    expect(Sql.classify(pgError("42601", "syntax error at or near"))).toBe("Fatal")
    expect(Sql.classify(pgError("42P01", "relation does not exist"))).toBe("Fatal")
    expect(Sql.classify(pgError("53300", "too many connections"))).toBe("Degraded")
    expect(Sql.classify(new TimeoutError({ operation: "q", timeout: Duration.seconds(1) }))).toBe("Transient")
  })

  it("maps into DatabaseError with reason, outcome and code", () => {
    const serialization = Sql.toDatabaseError("db", pgError("40001"))
    expect(serialization).toMatchObject({
      reason: "Busy",
      errorClass: "Transient",
      outcome: "NotApplied",
      code: "40001"
    })
    const refused = Sql.toDatabaseError("db", pgError("ECONNREFUSED"))
    expect(refused).toMatchObject({ reason: "Unavailable", outcome: "NotApplied", code: "ECONNREFUSED" })
    const terminated = Sql.toDatabaseError("db", sqlError(new Error("Connection terminated unexpectedly")))
    expect(terminated).toMatchObject({ reason: "Unavailable", errorClass: "Transient", outcome: "Unknown" })
    const constraint = Sql.toDatabaseError("db", pgError("23505"))
    expect(constraint).toMatchObject({ reason: "Constraint", errorClass: "Fatal", outcome: "NotApplied" })
    expect(constraint.message).toContain("database \"db\": Constraint [23505]")
    expect(Sql.isHealthFailure(constraint)).toBe(false)
    expect(Sql.isHealthFailure(refused)).toBe(true)
  })

  it.scoped("classifies the real errors of the SQLite driver", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({ filename: path.join(dir, "app.sqlite"), retry: false })
      const sql = yield* db.client
      yield* sql`CREATE TABLE t (x INTEGER NOT NULL UNIQUE)`
      yield* sql`INSERT INTO t (x) VALUES (1)`
      const failureOf = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)
      const unique = Sql.toDatabaseError("db", yield* failureOf(sql`INSERT INTO t (x) VALUES (1)`))
      expect(unique).toMatchObject({ reason: "Constraint", errorClass: "Fatal", code: "SQLITE_CONSTRAINT_UNIQUE" })
      const syntax = Sql.toDatabaseError("db", yield* failureOf(sql.unsafe("SELEC 1")))
      expect(syntax).toMatchObject({ reason: "Syntax", errorClass: "Fatal", code: "SQLITE_ERROR" })
      const missing = Sql.toDatabaseError("db", yield* failureOf(sql`SELECT * FROM nope`))
      expect(missing).toMatchObject({ reason: "Syntax", errorClass: "Fatal" })
    }).pipe(quiet))
})

describe("options", () => {
  it.scoped("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const field = (options: Sqlite.Options) =>
        Effect.map(Effect.flip(open({ filename: path.join(dir, "a.sqlite"), ...options })), (error) => {
          expect(error).toBeInstanceOf(InvalidOptions)
          return error.field
        })
      expect(yield* field({ timeout: -1 })).toBe("timeout")
      expect(yield* field({ name: "" })).toBe("name")
      expect(yield* field({ healthCheck: { interval: 0 } })).toBe("healthCheck.interval")
      expect(yield* field({ breaker: { failureThreshold: 0 } })).toBe("failureThreshold")
      expect(yield* field({ busyTimeout: "soon" as never })).toBe("busyTimeout")
      expect(yield* field({ synchronous: "ALWAYS" as never })).toBe("synchronous")
      expect(yield* field({ retry: { Transient: Schedule.recurs(1) }, filename: "" })).toBe("filename")
    }).pipe(quiet))
})

describe("null options", () => {
  it.scoped("every constructor refuses null or a non-object as InvalidOptions naming options", () =>
    Effect.gen(function*() {
      const filename = path.join(yield* tempDir, "app.sqlite")
      for (const bad of [null, 42, "orders"]) {
        const builds: ReadonlyArray<Effect.Effect<unknown, unknown, Scope.Scope>> = [
          Layer.build(Sqlite.layer(bad as never)),
          Layer.build(Sqlite.layerClient(bad as never)),
          Layer.build(Pg.layer(bad as never)),
          Layer.build(Pg.layerClient(bad as never)),
          Layer.build(Pg.layer({ host: "localhost" }, bad as never)),
          Layer.build(Sql.layer(bad as never).pipe(Layer.provide(Sqlite.layerClient({ filename })))),
          Layer.build(Sql.layerConnecting(Sqlite.layerClient({ filename }), bad as never))
        ]
        for (const build of builds) {
          const error = yield* Effect.flip(build)
          expect(error).toMatchObject({ _tag: "InvalidOptions", field: "options" })
        }
      }
    }).pipe(quiet))
})

describe("resilient queries on SQLite", () => {
  it.scoped("runs a query in a pipe, with the client provided", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { context, db } = yield* open({ filename: path.join(dir, "app.sqlite") })
      const one = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly one: number }>`SELECT 1 AS one`)
        .pipe(Sql.resilient, Effect.provide(context))
      expect(one).toEqual([{ one: 1 }])
      const sql = yield* db.client
      expect(yield* sql<{ readonly two: number }>`SELECT 2 AS two`.pipe(db.resilient)).toEqual([{ two: 2 }])
      expect(yield* sql<{ readonly three: number }>`SELECT 3 AS three`.pipe(Sql.withResilience(db))).toEqual([
        { three: 3 }
      ])
      expect(yield* db.mode).toBe("ReadWrite")
    }).pipe(quiet))

  it.scoped("Sql.layer runs over the SqlClient already in the context", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* Layer.build(
        Sql.layer({ name: "given" }).pipe(Layer.provide(Sqlite.layerClient({ filename: path.join(dir, "a.sqlite") })))
      )
      const db = Context.get(context, Sql.ResilientSql)
      expect(db.name).toBe("given")
      expect(yield* db.connected).toBe(true)
      expect(yield* Sql.query((sql) => sql<{ readonly one: number }>`SELECT 1 AS one`).pipe(Effect.provide(context)))
        .toEqual([{ one: 1 }])
    }).pipe(quiet))

  it.scoped("retries a locked file (Transient) and succeeds once the lock is gone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const { db } = yield* open({ filename, retry: { Transient: Schedule.recurs(5) } })
      yield* db.query((sql) => sql`CREATE TABLE t (x INTEGER)`)
      const { lock, unlock } = yield* locker(filename)
      yield* lock
      const attempts = yield* Ref.make(0)
      const write = Effect.gen(function*() {
        const n = yield* Ref.updateAndGet(attempts, (a) => a + 1)
        if (n === 3) yield* unlock
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO t (x) VALUES (${n})`
      })
      yield* db.resilient(write)
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(yield* db.query((sql) => sql<{ readonly x: number }>`SELECT x FROM t`)).toEqual([{ x: 3 }])
      expect(yield* db.breaker.state).toBe("Closed")
    }).pipe(quiet))

  it.scoped("never retries a Fatal error, and a constraint violation does not count against the breaker", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({ filename: path.join(dir, "app.sqlite"), breaker: { failureThreshold: 2 } })
      yield* db.query((sql) => sql`CREATE TABLE t (x INTEGER NOT NULL UNIQUE)`)
      yield* db.query((sql) => sql`INSERT INTO t (x) VALUES (1)`)
      const attempts = yield* Ref.make(0)
      const duplicate = Effect.zipRight(
        Ref.update(attempts, (a) => a + 1),
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO t (x) VALUES (1)`)
      )
      for (let i = 0; i < 5; i++) {
        const error = yield* Effect.flip(db.resilient(duplicate))
        expect(error).toMatchObject({ _tag: "DatabaseError", reason: "Constraint", errorClass: "Fatal" })
      }
      expect(yield* Ref.get(attempts)).toBe(5)
      expect(yield* db.breaker.state).toBe("Closed")
    }).pipe(quiet))

  it.scoped("a caller's own error passes through untouched and is not retried", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({ filename: path.join(dir, "app.sqlite") })
      const attempts = yield* Ref.make(0)
      const error = yield* Effect.flip(
        db.resilient(Effect.zipRight(Ref.update(attempts, (a) => a + 1), Effect.fail("NotFound" as const)))
      )
      expect(error).toBe("NotFound")
      expect(yield* Ref.get(attempts)).toBe(1)
    }).pipe(quiet))

  it.scoped("bounds each attempt with the timeout (TestClock)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({ filename: path.join(dir, "app.sqlite"), timeout: "2 seconds", retry: false })
      const select = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)
      const slow = Effect.zipRight(Effect.sleep("1 minute"), select)
      const fiber = yield* Effect.fork(db.resilient(slow))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(exit)
      expect(error).toMatchObject({
        _tag: "DatabaseError",
        reason: "Timeout",
        errorClass: "Transient",
        outcome: "Unknown"
      })
    }).pipe(quiet))

  it.scoped("a read-only file: writes fail as ReadOnly (Persistent), not retried", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const { db: writable } = yield* open({ filename })
      yield* writable.query((sql) => sql`CREATE TABLE t (x INTEGER)`)
      const { db } = yield* open({ filename, client: { readonly: true }, name: "readonly" })
      const attempts = yield* Ref.make(0)
      const error = yield* Effect.flip(db.resilient(Effect.zipRight(
        Ref.update(attempts, (a) => a + 1),
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO t (x) VALUES (1)`)
      )))
      expect(error).toMatchObject({ reason: "ReadOnly", errorClass: "Persistent", code: "SQLITE_READONLY" })
      expect(yield* Ref.get(attempts)).toBe(1)
      // Reads still work.
      expect(yield* db.query((sql) => sql`SELECT COUNT(*) AS n FROM t`)).toEqual([{ n: 0 }])
    }).pipe(quiet))
})

describe("breaker, health check and read-only mode on SQLite (TestClock)", () => {
  it.scoped("a locked file opens the breaker; the write-lock health check closes it once the lock is gone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const { db } = yield* open({
        filename,
        retry: false,
        breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "120 seconds" },
        healthCheck: { interval: "5 seconds" }
      })
      yield* db.query((sql) => sql`CREATE TABLE t (x INTEGER)`)
      const insert = (x: number) => db.query((sql) => sql`INSERT INTO t (x) VALUES (${x})`)
      const { lock, unlock } = yield* locker(filename)
      yield* lock
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(insert(i))
        expect(error).toMatchObject({
          reason: "Busy",
          errorClass: "Transient",
          outcome: "NotApplied",
          code: "SQLITE_BUSY"
        })
      }
      expect(yield* db.breaker.state).toBe("Open")
      expect(yield* db.mode).toBe("ReadOnly")
      const rejected = yield* Effect.flip(insert(9))
      expect(rejected).toMatchObject({ reason: "CircuitOpen", outcome: "NotApplied" })
      // The health check runs while open; the file is still locked: it stays open.
      yield* TestClock.adjust("5 seconds")
      expect(yield* db.breaker.state).toBe("Open")
      yield* unlock
      yield* TestClock.adjust("5 seconds")
      yield* eventually(Effect.map(db.breaker.state, (state) => state === "HalfOpen"))
      yield* insert(10)
      yield* insert(11)
      expect(yield* db.breaker.state).toBe("Closed")
      expect(yield* db.mode).toBe("ReadWrite")
      expect(yield* db.query((sql) => sql<{ readonly x: number }>`SELECT x FROM t ORDER BY x`)).toEqual([
        { x: 10 },
        { x: 11 }
      ])
    }).pipe(quiet))

  it.scoped("a missing directory can never work: the layer fails with InvalidOptions naming filename", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "volume", "app.sqlite")
      for (const layer of [Sqlite.layer({ filename }), Sqlite.layerClient({ filename })]) {
        const error = yield* Effect.flip(Layer.build(layer as Layer.Layer<unknown, unknown>))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error).toMatchObject({ module: "Sql/Sqlite", field: "filename", received: filename })
        expect((error as InvalidOptions).message).toContain("a file in a directory that exists")
      }
      // The same client under layerConnecting: a configuration error, not an outage.
      const connecting = yield* Effect.flip(Layer.build(Sql.layerConnecting(Sqlite.layerClient({ filename }))))
      expect(connecting).toMatchObject({ _tag: "InvalidOptions", field: "filename" })
      // Checked when the layer is built: a directory made in between is fine.
      const layer = Sqlite.layer({ filename, busyTimeout: 0 })
      fs.mkdirSync(path.join(dir, "volume"))
      const db = Context.get(yield* Layer.build(layer), Sql.ResilientSql)
      expect(yield* db.connected).toBe(true)
      expect(yield* db.query((sql) => sql<{ readonly one: number }>`SELECT 1 AS one`)).toEqual([{ one: 1 }])
    }).pipe(quiet))

  it.scoped("an unreachable database is an outage: read-only, one log line, connected once it answers", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      let down = true
      const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })
      // A client whose database does not answer until `down` is false.
      const client = Layer.unwrapEffect(
        Effect.sync((): Layer.Layer<SqlClient.SqlClient, unknown> =>
          down ? Layer.fail(sqlError(refused)) : Sqlite.layerClient({ filename, busyTimeout: 0 })
        )
      )
      const lines: Array<{ readonly message: string; readonly error: unknown }> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) => {
          lines.push({
            message: String(Array.isArray(message) ? message.join(" ") : message),
            error: HashMap.get(annotations, "error").pipe(Option.getOrUndefined)
          })
        })
      )
      const db = Context.get(
        yield* Layer.build(
          Sql.layerConnecting(client, { name: "app", retry: false, connectSchedule: Schedule.spaced("1 second") })
        ).pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.Info)),
        Sql.ResilientSql
      )
      expect(yield* db.connected).toBe(false)
      expect(yield* db.mode).toBe("ReadOnly")
      const warning = lines.find((line) => line.message.includes("is not reachable"))!
      expect(warning.message).toBe(
        "database \"app\" is not reachable: starting read-only, connecting in the background"
      )
      expect(warning.error).toBe(
        "database \"app\": Unavailable [ECONNREFUSED]: Failed to execute statement: connect ECONNREFUSED 127.0.0.1:5432"
      )
      down = false
      yield* TestClock.adjust("1 second")
      yield* eventually(db.connected)
      expect(yield* db.mode).toBe("ReadWrite")
      expect(yield* db.query((sql) => sql<{ readonly one: number }>`SELECT 1 AS one`)).toEqual([{ one: 1 }])
    }).pipe(quiet))

  it.scoped("announces read-only mode once per outage, as a warning", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const messages: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
            messages.push(String(Array.isArray(message) ? message[0] : message))
          }
        })
      )
      yield* Effect.gen(function*() {
        const { db } = yield* open({ filename: path.join(dir, "app.sqlite"), healthCheck: false })
        yield* db.breaker.forceOpen
        yield* db.breaker.forceOpen
        yield* eventually(Effect.sync(() => messages.length > 0))
        yield* db.breaker.reset
        yield* Effect.yieldNow()
      }).pipe(Effect.provide(capture))
      expect(messages.filter((m) => m.includes("read-only")).length).toBe(1)
      expect(messages[0]).toContain("database \"sqlite\" is read-only")
    }))
})

describe("degraded reads", () => {
  const Item = Schema.Struct({ id: Schema.Number, name: Schema.String })

  it.scoped("while the breaker is open, reads are served from the cache, marked stale, with no error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const { context, db } = yield* open({ filename, retry: false, healthCheck: false })
      const cache = yield* Layer.build(Cache.layerMemory())
      yield* db.query((sql) => sql`CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
      yield* db.query((sql) => sql`INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')`)
      const items = yield* Sql.reader({ ttl: "10 seconds", staleIfError: "1 hour", schema: Item }).pipe(
        Effect.provide(context)
      )
      const loads = yield* Ref.make(0)
      const byId = (id: number) =>
        Effect.zipRight(
          Ref.update(loads, (n) => n + 1),
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.map(sql<typeof Item.Type>`SELECT id, name FROM items WHERE id = ${id}`, (rows) => rows[0]!))
        )
      const read = (id: number) => items.get(`item:${id}`, byId(id)).pipe(Effect.provide(cache))

      expect(yield* read(1)).toMatchObject({ value: { id: 1, name: "one" }, stale: false, source: "Load" })
      expect(yield* read(1)).toMatchObject({ stale: false, source: "Cache" })
      expect(yield* Ref.get(loads)).toBe(1)

      // The database's writes fail (locked file) until the breaker opens.
      const { lock } = yield* locker(filename)
      yield* lock
      const write = db.query((sql) => sql`INSERT INTO items (id, name) VALUES (9, 'x')`)
      for (let i = 0; i < 3; i++) yield* Effect.flip(write)
      expect(yield* db.mode).toBe("ReadOnly")

      yield* TestClock.adjust("11 seconds")
      const during = yield* Effect.forEach(Array.from({ length: 50 }, () => 1), read, { concurrency: 50 })
      for (const result of during) {
        expect(result).toMatchObject({ value: { id: 1, name: "one" }, stale: true, source: "Stale" })
        expect(Duration.toMillis(result.age)).toBe(11_000)
      }
      // Nothing reached the database: the open breaker answered.
      expect(yield* Ref.get(loads)).toBe(1)
      // A key that was never cached has no stale copy: the outage shows.
      const missing = yield* Effect.flip(read(2))
      expect(missing).toMatchObject({ _tag: "DatabaseError", reason: "CircuitOpen" })
    }).pipe(quiet))
})

describe("one query is one breaker call", () => {
  it.scoped("a Sql.query inside a reader's loader leaves HalfOpen: fresh reads once the database is back", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const { context, db } = yield* open({
        filename,
        retry: false,
        healthCheck: false,
        breaker: { failureThreshold: 1, successThreshold: 2, resetTimeout: "30 seconds" }
      })
      const cache = yield* Layer.build(Cache.layerMemory())
      yield* db.query((sql) => sql`CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
      yield* db.query((sql) => sql`INSERT INTO items (id, name) VALUES (1, 'one')`)
      const items = yield* Sql.reader({ ttl: "1 second", staleIfError: "1 hour" }).pipe(Effect.provide(context))
      // The pattern of docs/database.md: a Sql.query inside the reader's loader.
      const read = items.get(
        "item:1",
        Sql.query((sql) => sql<{ readonly name: string }>`SELECT name FROM items WHERE id = 1`).pipe(
          Effect.map((rows) => rows[0]!.name)
        )
      ).pipe(Effect.provide(context), Effect.provide(cache))
      expect(yield* read).toMatchObject({ value: "one", stale: false })

      const { lock, unlock } = yield* locker(filename)
      yield* lock
      yield* Effect.flip(db.query((sql) => sql`INSERT INTO items (id, name) VALUES (2, 'two')`))
      expect(yield* db.breaker.state).toBe("Open")
      yield* unlock
      yield* db.query((sql) => sql`SELECT 1`).pipe(Effect.flip)
      yield* TestClock.adjust("31 seconds")
      expect(yield* db.breaker.state).toBe("HalfOpen")
      // Two fresh reads are the two half-open successes that close the breaker.
      expect(yield* read).toMatchObject({ value: "one", stale: false, source: "Load" })
      yield* TestClock.adjust("2 seconds")
      expect(yield* read).toMatchObject({ value: "one", stale: false, source: "Load" })
      expect(yield* db.breaker.state).toBe("Closed")
      expect(yield* db.mode).toBe("ReadWrite")
    }).pipe(quiet))

  it.scoped("a query nested in a call of the same database is counted once, and retried only by the outer call", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({ filename: path.join(dir, "app.sqlite"), healthCheck: false })
      const before = (yield* db.breaker.metrics).totalCalls
      const rows = yield* db.resilient(
        Effect.flatMap(db.query((sql) => sql<{ readonly one: number }>`SELECT 1 AS one`), (first) =>
          Effect.map(db.query((sql) => sql<{ readonly two: number }>`SELECT 2 AS two`), (second) => [first, second]))
      )
      expect(rows).toEqual([[{ one: 1 }], [{ two: 2 }]])
      expect((yield* db.breaker.metrics).totalCalls - before).toBe(1)
    }).pipe(quiet))
})

describe("a caller's own error is the caller's", () => {
  class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}

  it.scoped("through a reader, it reaches the caller: no stale copy stands in for an answer of the database", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { context, db } = yield* open({ filename: path.join(dir, "app.sqlite"), healthCheck: false })
      const cache = yield* Layer.build(Cache.layerMemory())
      yield* db.query((sql) => sql`CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
      yield* db.query((sql) => sql`INSERT INTO items (id, name) VALUES (1, 'one')`)
      const items = yield* Sql.reader({ ttl: "1 second", staleIfError: "1 hour" }).pipe(Effect.provide(context))
      const read = items.get(
        "item:1",
        Sql.query((sql) => sql<{ readonly name: string }>`SELECT name FROM items WHERE id = 1`).pipe(
          Effect.flatMap((rows) =>
            rows.length === 0 ? Effect.fail(new NotFound({ id: 1 })) : Effect.succeed(rows[0]!.name)
          )
        )
      ).pipe(Effect.provide(context), Effect.provide(cache))
      expect(yield* read).toMatchObject({ value: "one", stale: false })
      yield* db.query((sql) => sql`DELETE FROM items WHERE id = 1`)
      yield* TestClock.adjust("2 seconds")
      expect(yield* Effect.flip(read)).toEqual(new NotFound({ id: 1 }))
      // An outage, by contrast, is answered by the stale copy.
      yield* db.query((sql) => sql`INSERT INTO items (id, name) VALUES (1, 'one')`)
      expect(yield* read).toMatchObject({ value: "one", stale: false })
      yield* db.breaker.forceOpen
      yield* TestClock.adjust("2 seconds")
      expect(yield* read).toMatchObject({ value: "one", stale: true })
      expect((yield* db.breaker.metrics).failedCalls).toBe(0)
    }).pipe(quiet))

  it.scoped("passes through unchanged, counts as a success, never opens the breaker nor turns read-only", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({
        filename: path.join(dir, "app.sqlite"),
        healthCheck: false,
        breaker: { failureThreshold: 3 }
      })
      yield* db.query((sql) => sql`CREATE TABLE items (id INTEGER PRIMARY KEY)`)
      const before = yield* db.breaker.metrics
      const findOrFail = (id: number) =>
        db.query((sql) => sql<{ readonly id: number }>`SELECT id FROM items WHERE id = ${id}`).pipe(
          Effect.flatMap((rows) => (rows.length === 0 ? Effect.fail(new NotFound({ id })) : Effect.succeed(rows[0]!)))
        )
      const inside = (id: number) =>
        db.query((sql) =>
          Effect.flatMap(sql<{ readonly id: number }>`SELECT id FROM items WHERE id = ${id}`, (rows) =>
            Effect.fromNullable(rows[0]))
        )
      for (let i = 0; i < 5; i++) {
        const error = yield* Effect.flip(db.resilient(Effect.flatMap(SqlClient.SqlClient, () => findOrFail(i))))
        expect(error).toEqual(new NotFound({ id: i }))
        const missing = yield* Effect.flip(inside(i))
        expect(missing._tag).toBe("NoSuchElementException")
      }
      const after = yield* db.breaker.metrics
      expect(after.failedCalls - before.failedCalls).toBe(0)
      expect(after.successfulCalls - before.successfulCalls).toBe(10)
      expect(yield* db.breaker.state).toBe("Closed")
      expect(yield* db.mode).toBe("ReadWrite")
    }).pipe(quiet))
})

describe("PostgreSQL settings", () => {
  const secret = "s3cr3t-pa55"

  it.scoped("settings that can never work fail the layer with InvalidOptions naming the option, secret-free", () =>
    Effect.gen(function*() {
      const refused = (config: PgClient.PgClientConfig) =>
        Effect.flip(Layer.build(Pg.layer(config, { healthCheck: false }))).pipe(
          Effect.map((error) => {
            expect(error).toBeInstanceOf(InvalidOptions)
            expect(error.message).not.toContain(secret)
            expect(JSON.stringify(error)).not.toContain(secret)
            return { field: error.field, message: error.message }
          })
        )
      const url = (text: string) => ({ url: Redacted.make(text) })
      const cases: Array<readonly [PgClient.PgClientConfig, string, string]> = [
        [url(`mysql://app:${secret}@localhost:3306/app`), "url", "the scheme is mysql"],
        [url("not a url"), "url", "no scheme"],
        [url(`postgres://app:${secret}@localhost:99999/app`), "url", "the port is out of range"],
        [url(`postgres://app:${secret}@localhost:0/app`), "url", "the port is out of range"],
        [url(`postgres://app:${secret}@localhost:port/app`), "url", "the port is out of range"],
        [url(`postgresql://app:${secret}@[::not-a-host/app`), "url", "does not parse"],
        [url(`postgres://app:${secret}@/app`), "url", "no host"],
        [{ host: "localhost", port: 70_000 }, "port", "an integer in 1..65535"],
        [{ host: "localhost", port: 5432.5 }, "port", "an integer in 1..65535"],
        [{ url: `postgres://app:${secret}@localhost/app` as never }, "url", "a Redacted URL"],
        [{ host: "localhost", password: secret as never }, "password", "a Redacted password"]
      ]
      for (const [config, field, why] of cases) {
        const error = yield* refused(config)
        expect(error.field).toBe(field)
        expect(error.message).toContain(why)
      }
      // The URL is shown without its userinfo and query.
      expect((yield* refused(url(`mysql://app:${secret}@db.internal:3306/app?password=${secret}`))).message)
        .toContain("received \"mysql://***@db.internal:3306/app?***\"")
      // A unix socket in the query is a host.
      expect(Either.isRight(internalPg.validateUrl("postgres:///app?host=/var/run/postgresql"))).toBe(true)
      expect(Either.isRight(internalPg.validateUrl(`postgresql://app:${secret}@127.0.0.1:5432/app`))).toBe(true)
      expect(yield* Effect.flip(Layer.build(Pg.layerClient(url("not a url"))))).toMatchObject({ field: "url" })
    }).pipe(quiet))

  it.scoped("DATABASE_URL is read redacted: an invalid one is InvalidOptions without the password", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map([["DATABASE_URL", `http://app:${secret}@localhost:5432/app`]]))
      const error = yield* Effect.flip(Layer.build(Pg.layerConfig()).pipe(Effect.withConfigProvider(provider)))
      expect(error).toMatchObject({ _tag: "InvalidOptions", field: "url" })
      expect(error.message).not.toContain(secret)
      expect(JSON.stringify(error)).not.toContain(secret)
    }).pipe(quiet))

  it.live("an unreachable server with a password in its URL: degraded start, and no secret in errors, logs, "
    + "metric tags or span attributes", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, cause, message }) => {
          seen.push(String(message), JSON.stringify([...HashMap.toEntries(annotations)]), Cause.pretty(cause))
        })
      )
      const spans: Array<string> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
          const self: Tracer.Span = {
            _tag: "Span",
            name,
            spanId: `${spans.length}`,
            traceId: "t",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes,
            links,
            sampled: true,
            kind,
            end: () => spans.push(`${name} ${JSON.stringify([...attributes])}`),
            attribute: (key, value) => void attributes.set(key, value),
            event: () => undefined,
            addLinks: () => undefined
          }
          return self
        },
        context: (f) => f()
      })
      yield* Effect.gen(function*() {
        const context = yield* Layer.build(
          Pg.layer({ url: Redacted.make(`postgres://app:${secret}@127.0.0.1:1/app`), connectTimeout: "1 second" }, {
            name: "orders-pg",
            retry: false,
            healthCheck: false,
            connectSchedule: Schedule.spaced("1 hour")
          })
        )
        const db = Context.get(context, Sql.ResilientSql)
        expect(yield* db.connected).toBe(false)
        expect(yield* db.mode).toBe("ReadOnly")
        const error = yield* Effect.flip(db.query((sql) => sql`SELECT 1`).pipe(Effect.withSpan("order lookup")))
        expect(error).toMatchObject({ _tag: "DatabaseError", reason: "Unavailable" })
        seen.push(error.message, String(error), JSON.stringify(error), Cause.pretty(Cause.fail(error)))
      }).pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.All), Effect.withTracer(tracer))
      const metrics = yield* Metric.snapshot
      for (const pair of metrics) seen.push(JSON.stringify(pair.metricKey.tags))
      expect(seen.length).toBeGreaterThan(3)
      expect(spans.length).toBeGreaterThan(0)
      for (const text of [...seen, ...spans]) expect(text).not.toContain(secret)
      expect(seen.some((text) => text.includes("is not reachable"))).toBe(true)
    }).pipe(Effect.scoped))
})

describe("the error table, row by row", () => {
  type Row = readonly [
    error: unknown,
    reason: Sql.Reason,
    errorClass: string,
    outcome: Sql.Outcome,
    healthFailure: boolean
  ]
  const withCode = (code: string, message = `error ${code}`) => sqlError(Object.assign(new Error(message), { code }))
  const message = (text: string) => sqlError(new Error(text))

  const rows: ReadonlyArray<readonly [string, Row]> = [
    // PostgreSQL SQLSTATEs with their own row
    ["40001", [withCode("40001"), "Busy", "Transient", "NotApplied", true]],
    ["40P01", [withCode("40P01"), "Busy", "Transient", "NotApplied", true]],
    ["55P03", [withCode("55P03"), "Busy", "Transient", "NotApplied", true]],
    ["57014", [withCode("57014", "canceling statement"), "Timeout", "Transient", "Unknown", true]],
    ["57P01", [withCode("57P01"), "Unavailable", "Transient", "Unknown", true]],
    ["57P02", [withCode("57P02"), "Unavailable", "Transient", "Unknown", true]],
    ["57P03", [withCode("57P03"), "Unavailable", "Transient", "Unknown", true]],
    ["25006", [withCode("25006"), "ReadOnly", "Persistent", "NotApplied", true]],
    ["42601", [withCode("42601"), "Syntax", "Fatal", "NotApplied", false]],
    // PostgreSQL SQLSTATE classes
    ["08000", [withCode("08000"), "Unavailable", "Transient", "Unknown", true]],
    ["08001", [withCode("08001"), "Unavailable", "Transient", "Unknown", true]],
    ["08006", [withCode("08006"), "Unavailable", "Transient", "Unknown", true]],
    ["53000", [withCode("53000"), "Resources", "Degraded", "NotApplied", true]],
    ["53100", [withCode("53100"), "Resources", "Degraded", "NotApplied", true]],
    ["53300", [withCode("53300"), "Resources", "Degraded", "NotApplied", true]],
    ["23505", [withCode("23505"), "Constraint", "Fatal", "NotApplied", false]],
    ["23503", [withCode("23503"), "Constraint", "Fatal", "NotApplied", false]],
    ["23514", [withCode("23514"), "Constraint", "Fatal", "NotApplied", false]],
    ["22001", [withCode("22001"), "Constraint", "Fatal", "NotApplied", false]],
    ["22P02", [withCode("22P02"), "Constraint", "Fatal", "NotApplied", false]],
    ["42P01", [withCode("42P01"), "Syntax", "Fatal", "NotApplied", false]],
    ["42703", [withCode("42703"), "Syntax", "Fatal", "NotApplied", false]],
    ["28P01", [withCode("28P01"), "Syntax", "Fatal", "NotApplied", false]],
    ["28000", [withCode("28000"), "Syntax", "Fatal", "NotApplied", false]],
    ["3D000", [withCode("3D000"), "Syntax", "Fatal", "NotApplied", false]],
    // SQLite result codes, primary and extended
    ["SQLITE_BUSY", [withCode("SQLITE_BUSY"), "Busy", "Transient", "NotApplied", true]],
    ["SQLITE_BUSY_SNAPSHOT", [withCode("SQLITE_BUSY_SNAPSHOT"), "Busy", "Transient", "NotApplied", true]],
    ["SQLITE_LOCKED", [withCode("SQLITE_LOCKED"), "Busy", "Transient", "NotApplied", true]],
    ["SQLITE_PROTOCOL", [withCode("SQLITE_PROTOCOL"), "Busy", "Transient", "NotApplied", true]],
    ["SQLITE_CANTOPEN", [withCode("SQLITE_CANTOPEN"), "Unavailable", "Transient", "NotApplied", true]],
    ["SQLITE_NOTADB", [withCode("SQLITE_NOTADB"), "Unavailable", "Transient", "NotApplied", true]],
    ["SQLITE_CORRUPT", [withCode("SQLITE_CORRUPT"), "Unavailable", "Transient", "NotApplied", true]],
    ["SQLITE_IOERR", [withCode("SQLITE_IOERR"), "Unavailable", "Transient", "Unknown", true]],
    ["SQLITE_IOERR_WRITE", [withCode("SQLITE_IOERR_WRITE"), "Unavailable", "Transient", "Unknown", true]],
    ["SQLITE_READONLY", [withCode("SQLITE_READONLY"), "ReadOnly", "Persistent", "NotApplied", true]],
    ["SQLITE_PERM", [withCode("SQLITE_PERM"), "ReadOnly", "Persistent", "NotApplied", true]],
    ["SQLITE_AUTH", [withCode("SQLITE_AUTH"), "ReadOnly", "Persistent", "NotApplied", true]],
    ["SQLITE_FULL", [withCode("SQLITE_FULL"), "Resources", "Degraded", "NotApplied", true]],
    ["SQLITE_NOMEM", [withCode("SQLITE_NOMEM"), "Resources", "Degraded", "NotApplied", true]],
    ["SQLITE_CONSTRAINT", [withCode("SQLITE_CONSTRAINT"), "Constraint", "Fatal", "NotApplied", false]],
    ["SQLITE_CONSTRAINT_UNIQUE", [withCode("SQLITE_CONSTRAINT_UNIQUE"), "Constraint", "Fatal", "NotApplied", false]],
    ["SQLITE_MISMATCH", [withCode("SQLITE_MISMATCH"), "Constraint", "Fatal", "NotApplied", false]],
    ["SQLITE_TOOBIG", [withCode("SQLITE_TOOBIG"), "Constraint", "Fatal", "NotApplied", false]],
    ["SQLITE_RANGE", [withCode("SQLITE_RANGE"), "Syntax", "Fatal", "NotApplied", false]],
    ["SQLITE_ERROR syntax", [withCode("SQLITE_ERROR", "near \"SELEC\": syntax error"), "Syntax", "Fatal", "NotApplied",
      false]],
    ["SQLITE_ERROR no such table", [withCode("SQLITE_ERROR", "no such table: nope"), "Syntax", "Fatal", "NotApplied",
      false]],
    // Node connection codes
    ["ECONNREFUSED", [withCode("ECONNREFUSED"), "Unavailable", "Transient", "NotApplied", true]],
    ["ENOTFOUND", [withCode("ENOTFOUND"), "Unavailable", "Transient", "NotApplied", true]],
    ["ENOENT", [withCode("ENOENT"), "Unavailable", "Transient", "NotApplied", true]],
    ["ECONNRESET", [withCode("ECONNRESET"), "Unavailable", "Transient", "Unknown", true]],
    ["ECONNABORTED", [withCode("ECONNABORTED"), "Unavailable", "Transient", "Unknown", true]],
    ["EPIPE", [withCode("EPIPE"), "Unavailable", "Transient", "Unknown", true]],
    ["ETIMEDOUT", [withCode("ETIMEDOUT"), "Unavailable", "Transient", "Unknown", true]],
    ["EHOSTUNREACH", [withCode("EHOSTUNREACH"), "Unavailable", "Transient", "Unknown", true]],
    ["ENETUNREACH", [withCode("ENETUNREACH"), "Unavailable", "Transient", "Unknown", true]],
    ["EAI_AGAIN", [withCode("EAI_AGAIN"), "Unavailable", "Transient", "Unknown", true]],
    // pg's connection failures without a code
    ["terminated", [message("Connection terminated unexpectedly"), "Unavailable", "Transient", "Unknown", true]],
    ["connection error", [message("Client has encountered a connection error and is not queryable"), "Unavailable",
      "Transient", "Unknown", true]],
    ["closed client", [message("Client was closed and is not queryable"), "Unavailable", "Transient", "Unknown", true]],
    ["ended pool", [message("Cannot use a pool after calling end on the pool"), "Unavailable", "Transient", "Unknown",
      true]],
    ["connect timeout", [message("timeout exceeded when trying to connect"), "Unavailable", "Transient", "Unknown",
      true]],
    ["connection timed out", [message("Connection timed out"), "Unavailable", "Transient", "Unknown", true]],
    // the library's own failures
    ["the timeout", [new TimeoutError({ operation: "q", timeout: Duration.seconds(1) }), "Timeout", "Transient",
      "Unknown", true]],
    ["an open breaker", [new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(7), reason: "Open" }),
      "CircuitOpen", "Transient", "NotApplied", false]],
    ["a half-open breaker", [
      new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.zero, reason: "HalfOpenFull" }),
      "CircuitOpen", "Transient", "NotApplied", false]],
    // wrapped
    ["AggregateError of a dual-stack connect", [sqlError(Object.assign(new AggregateError([
      Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" })
    ]), {})), "Unavailable", "Transient", "NotApplied", true]],
    ["an unknown SQLSTATE", [withCode("XX000"), "Unknown", Retry.classify(withCode("XX000")), "Unknown", true]]
  ]

  for (const [name, [error, reason, errorClass, outcome, healthFailure]] of rows) {
    it(`${name}: ${reason}, ${errorClass}, ${outcome}, ${healthFailure ? "counts" : "does not count"}`, () => {
      const mapped = Sql.toDatabaseError("db", error)
      expect(mapped).toMatchObject({ _tag: "DatabaseError", database: "db", reason, errorClass, outcome })
      expect(Sql.classify(error)).toBe(errorClass)
      expect(Sql.classify(mapped)).toBe(errorClass)
      expect(Sql.isHealthFailure(error)).toBe(healthFailure)
      expect(Sql.isHealthFailure(mapped)).toBe(healthFailure)
      expect(mapped.cause).toBe(error)
      if (/^[0-9A-Z]{5}$/.test(name) || name.startsWith("SQLITE_") || name.startsWith("E")) {
        if (!name.includes(" ")) expect(mapped.code).toBe(name)
      }
    })
  }

  it("an open breaker's DatabaseError keeps retryAfter; no other reason has one", () => {
    const open = Sql.toDatabaseError(
      "db",
      new CircuitBreakerOpen({ breaker: "db", retryAfter: Duration.seconds(7), reason: "Open" })
    )
    expect(open.retryAfter).toEqual(Duration.seconds(7))
    expect(Sql.toDatabaseError("db", withCode("40001")).retryAfter).toBeUndefined()
  })

  it.scoped("a CircuitOpen DatabaseError raised inside a call never counts against the breaker", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { db } = yield* open({
        filename: path.join(dir, "app.sqlite"),
        retry: false,
        healthCheck: false,
        breaker: { failureThreshold: 1 }
      })
      // Another database's open breaker, met inside a call of this one.
      const other = Sql.toDatabaseError(
        "other",
        new CircuitBreakerOpen({ breaker: "other", retryAfter: Duration.seconds(5), reason: "Open" })
      )
      for (let i = 0; i < 3; i++) {
        expect(yield* Effect.flip(db.resilient(Effect.fail(other)))).toBe(other)
      }
      expect(yield* db.breaker.state).toBe("Closed")
      expect((yield* db.breaker.metrics).failedCalls).toBe(0)
      // A health failure does count: one opens it.
      yield* Effect.flip(db.resilient(Effect.fail(Sql.toDatabaseError("other", withCode("ECONNREFUSED")))))
      expect(yield* db.breaker.state).toBe("Open")
    }).pipe(quiet))
})
