/**
 * Resilient database access, degraded mode and the outbox against a real PostgreSQL that
 * the test setup starts as a throwaway cluster. Faults are real: `pg_ctl stop -m immediate`
 * in the middle of a write load, real serialization failures and deadlocks.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Redacted,
  Ref,
  Schedule,
  Schema
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as Cache from "../../src/Cache.js"
import * as Outbox from "../../src/Outbox.js"
import * as Sql from "../../src/Sql.js"
import * as Pg from "../../src/Sql/Pg.js"
import { findPostgresBinDir, notFoundMessage, type PostgresServer, usePostgresServer } from "./postgresServer.js"

const server = usePostgresServer({ beforeAll, afterAll })

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-pg-outbox-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Makes sure the server is up again after a test, whatever happened in it. */
const ensureRunning = (pg: PostgresServer) =>
  Effect.addFinalizer(() => (pg.isRunning() ? Effect.void : Effect.promise(() => pg.start())))

const psql = (pg: PostgresServer, sql: string) => Effect.promise(() => pg.psql(sql))

const resilience: Sql.Options = {
  timeout: "2 seconds",
  breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "30 seconds" },
  healthCheck: { interval: "100 millis", timeout: "1 second" },
  connectSchedule: Schedule.spaced("100 millis")
}

const open = (
  pg: PostgresServer,
  options: Sql.Options = {},
  client: { readonly maxConnections?: number; readonly connectTimeout?: Duration.DurationInput } = {}
) =>
  Effect.map(
    Layer.build(Pg.layer({ url: Redacted.make(pg.url), maxConnections: 20, connectTimeout: "1 second", ...client }, {
      ...resilience,
      ...options
    })),
    (context) => ({ context, db: Context.get(context, Sql.ResilientSql) })
  )

const waitUntil = (condition: Effect.Effect<boolean>, what: string, timeout: Duration.DurationInput = "20 seconds") =>
  condition.pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("20 millis") }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting until ${what}`) })
  )

describe("PostgreSQL harness", () => {
  it("fails with the install command when PostgreSQL is missing", () => {
    expect(() => findPostgresBinDir(["/nonexistent/postgresql"], undefined)).toThrow(notFoundMessage)
    expect(notFoundMessage).toBe("PostgreSQL not found: apt-get install -y postgresql")
  })

  it.scopedLive("runs PostgreSQL 15 on a loopback port, and stops and starts it again", () =>
    Effect.gen(function*() {
      const pg = server()
      yield* ensureRunning(pg)
      expect(pg.version).toBe(15)
      expect(pg.url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/test`)
      expect(yield* psql(pg, "SHOW server_version_num")).toMatch(/^15/)
      yield* Effect.promise(() => pg.stop("immediate"))
      expect(pg.isRunning()).toBe(false)
      const refused = yield* Effect.flip(
        Effect.tryPromise({ try: () => pg.psql("SELECT 1"), catch: (error) => error as Error })
      )
      expect(refused.message).toMatch(/Connection refused|could not connect/i)
      yield* Effect.promise(() => pg.start())
      expect(yield* psql(pg, "SELECT 1")).toBe("1")
    }))
})

describe("ResilientSql on PostgreSQL", () => {
  it.scopedLive("maps real constraint and syntax errors to Fatal, never retried", () =>
    Effect.gen(function*() {
      const pg = server()
      const { db } = yield* open(pg)
      yield* db.query((sql) => sql`CREATE TABLE fatal_t (id INTEGER PRIMARY KEY)`)
      yield* db.query((sql) => sql`INSERT INTO fatal_t (id) VALUES (1)`)
      const attempts = yield* Ref.make(0)
      const counted = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
        Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.flatMap(SqlClient.SqlClient, f))
      const unique = yield* Effect.flip(db.resilient(counted((sql) => sql`INSERT INTO fatal_t (id) VALUES (1)`)))
      expect(unique).toMatchObject({ reason: "Constraint", errorClass: "Fatal", code: "23505", outcome: "NotApplied" })
      const syntax = yield* Effect.flip(db.resilient(counted((sql) => sql.unsafe("SELEC 1"))))
      expect(syntax).toMatchObject({ reason: "Syntax", errorClass: "Fatal", code: "42601" })
      expect(yield* Ref.get(attempts)).toBe(2)
      expect(yield* db.breaker.state).toBe("Closed")
    }).pipe(quiet))

  it.scopedLive("retries a real serialization failure (40001): the transaction runs again and commits", () =>
    Effect.gen(function*() {
      const pg = server()
      const { db } = yield* open(pg)
      yield* db.query((sql) => sql`CREATE TABLE serial_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`)
      yield* db.query((sql) => sql`INSERT INTO serial_t (id, n) VALUES (1, 0)`)
      const attempts = yield* Ref.make(0)
      const seen = yield* Deferred.make<void>()
      const committed = yield* Deferred.make<void>()
      // T1 reads in a REPEATABLE READ snapshot, waits for T2 to update the row, then updates it.
      const t1 = db.transaction(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
        yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
        yield* sql`SELECT n FROM serial_t WHERE id = 1`
        if (attempt === 1) {
          yield* Deferred.succeed(seen, undefined)
          yield* Deferred.await(committed)
        }
        yield* sql`UPDATE serial_t SET n = n + 10 WHERE id = 1`
      }))
      const fiber = yield* Effect.fork(t1)
      yield* Deferred.await(seen)
      yield* db.query((sql) => sql`UPDATE serial_t SET n = n + 1 WHERE id = 1`)
      yield* Deferred.succeed(committed, undefined)
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(attempts)).toBe(2)
      expect(yield* db.query((sql) => sql<{ readonly n: number }>`SELECT n FROM serial_t WHERE id = 1`)).toEqual([
        { n: 11 }
      ])
    }).pipe(quiet))

  it.scopedLive("retries a real deadlock (40P01): both transactions end up committed", () =>
    Effect.gen(function*() {
      const pg = server()
      const { db } = yield* open(pg, { timeout: "5 seconds" })
      yield* db.query((sql) => sql`CREATE TABLE deadlock_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`)
      yield* db.query((sql) => sql`INSERT INTO deadlock_t (id, n) VALUES (1, 0), (2, 0)`)
      const attempts = yield* Ref.make(0)
      const bothLocked = yield* Deferred.make<void>()
      const locked = yield* Ref.make(0)
      const crossing = (first: number, second: number) =>
        db.transaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
          yield* sql`SET LOCAL deadlock_timeout = '100ms'`
          yield* sql`UPDATE deadlock_t SET n = n + 1 WHERE id = ${first}`
          if (attempt <= 2) {
            if ((yield* Ref.updateAndGet(locked, (n) => n + 1)) === 2) yield* Deferred.succeed(bothLocked, undefined)
            yield* Deferred.await(bothLocked)
          }
          yield* sql`UPDATE deadlock_t SET n = n + 1 WHERE id = ${second}`
        }))
      yield* Effect.all([crossing(1, 2), crossing(2, 1)], { concurrency: 2 })
      // One of the two was chosen as the deadlock victim and ran again.
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(yield* db.query((sql) => sql<{ readonly n: number }>`SELECT n FROM deadlock_t ORDER BY id`)).toEqual([
        { n: 2 },
        { n: 2 }
      ])
    }).pipe(quiet))

  it.scopedLive("a stopped server: Transient errors open the breaker; the SELECT 1 health check closes it", () =>
    Effect.gen(function*() {
      const pg = server()
      yield* ensureRunning(pg)
      const { db } = yield* open(pg, { retry: false })
      expect(yield* db.query((sql) => sql`SELECT 1 AS one`)).toEqual([{ one: 1 }])
      yield* Effect.promise(() => pg.stop("immediate"))
      const errors = []
      while ((yield* db.breaker.state) === "Closed" && errors.length < 10) {
        errors.push(yield* Effect.flip(db.query((sql) => sql`SELECT 1 AS one`)))
      }
      expect(errors.length).toBe(3)
      for (const error of errors) expect(error).toMatchObject({ reason: "Unavailable", errorClass: "Transient" })
      expect(errors.some((error) => error.code === "ECONNREFUSED")).toBe(true)
      expect(yield* db.mode).toBe("ReadOnly")
      const started = Date.now()
      yield* Effect.promise(() => pg.start())
      yield* waitUntil(Effect.map(db.breaker.state, (state) => state === "HalfOpen"), "the breaker half-opens")
      const recoveredIn = Date.now() - started
      expect(yield* db.query((sql) => sql`SELECT 1 AS one`)).toEqual([{ one: 1 }])
      expect(yield* db.query((sql) => sql`SELECT 1 AS one`)).toEqual([{ one: 1 }])
      expect(yield* db.breaker.state).toBe("Closed")
      expect(recoveredIn).toBeLessThan(5_000)
    }).pipe(quiet))

  it.scopedLive("a table locked by another session: each call times out on time, and the breaker opens", () =>
    Effect.gen(function*() {
      const pg = server()
      // A small pool: the lock holder and the stuck queries take every connection, so the
      // cancel of a stuck query (which needs a connection) has to wait for the lock too.
      const { db } = yield* open(
        pg,
        { retry: false, timeout: "300 millis", breaker: { failureThreshold: 3 } },
        { maxConnections: 2, connectTimeout: "3 seconds" }
      )
      yield* db.query((sql) => sql`CREATE TABLE locked_t (id INTEGER)`)
      const sql = yield* db.client
      const locked = yield* Effect.makeLatch(false)
      const release = yield* Effect.makeLatch(false)
      const holder = yield* Effect.fork(sql.withTransaction(
        Effect.zipRight(sql`LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE`, Effect.zipRight(locked.open, release.await))
      ))
      yield* locked.await
      const took: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const started = Date.now()
        const error = yield* Effect.flip(db.query((sql) => sql`INSERT INTO locked_t (id) VALUES (${i})`))
        took.push(Date.now() - started)
        expect(error).toMatchObject({ reason: "Timeout", errorClass: "Transient", outcome: "Unknown" })
      }
      // The cancel of a query stuck behind the lock does not hold the caller.
      for (const millis of took) expect(millis).toBeLessThan(1_000)
      expect(yield* db.breaker.state).toBe("Open")
      yield* release.open
      yield* Fiber.join(holder)
      yield* waitUntil(Effect.map(db.breaker.state, (state) => state === "HalfOpen"), "the breaker half-opens")
      yield* db.query((sql) => sql`INSERT INTO locked_t (id) VALUES (10)`)
      yield* db.query((sql) => sql`INSERT INTO locked_t (id) VALUES (11)`)
      expect(yield* db.breaker.state).toBe("Closed")
    }).pipe(quiet))

  it.scopedLive("the layer starts while the server is down (read-only) and connects when it is up", () =>
    Effect.gen(function*() {
      const pg = server()
      yield* ensureRunning(pg)
      yield* Effect.promise(() => pg.stop("immediate"))
      const { db } = yield* open(pg)
      expect(yield* db.connected).toBe(false)
      expect(yield* db.mode).toBe("ReadOnly")
      expect(yield* Effect.flip(db.query((sql) => sql`SELECT 1`))).toMatchObject({ reason: "Unavailable" })
      yield* Effect.promise(() => pg.start())
      yield* waitUntil(db.connected, "the client connects")
      yield* waitUntil(Effect.map(db.mode, (mode) => mode === "ReadWrite"), "read-write")
      expect(yield* db.query((sql) => sql`SELECT 1 AS one`)).toEqual([{ one: 1 }])
    }).pipe(quiet))
})

describe("one query is one breaker call, on a real outage", () => {
  it.scopedLive(
    "a reader whose loader is a Sql.query leaves read-only mode: fresh reads within the recovery time after a restart",
    () =>
      Effect.gen(function*() {
        const pg = server()
        yield* ensureRunning(pg)
        const { context, db } = yield* open(pg, { retry: false })
        const cache = yield* Layer.build(Cache.layerMemory())
        yield* db.query((sql) => sql`DROP TABLE IF EXISTS reader_items`)
        yield* db.query((sql) => sql`CREATE TABLE reader_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
        yield* db.query((sql) => sql`INSERT INTO reader_items (id, name) VALUES (1, 'one')`)
        const items = yield* Sql.reader({ ttl: "100 millis", staleIfError: "1 hour" }).pipe(Effect.provide(context))
        // docs/database.md's pattern: a Sql.query inside the reader's loader.
        const read = items.get(
          "reader:1",
          Sql.query((sql) => sql<{ readonly name: string }>`SELECT name FROM reader_items WHERE id = 1`).pipe(
            Effect.map((rows) => rows[0]!.name)
          )
        ).pipe(Effect.provide(context), Effect.provide(cache))
        expect(yield* read).toMatchObject({ value: "one", stale: false })

        yield* Effect.promise(() => pg.stop("immediate"))
        yield* waitUntil(
          Effect.zipRight(Effect.ignore(read), Effect.map(db.mode, (mode) => mode === "ReadOnly")),
          "read-only"
        )
        expect(yield* read).toMatchObject({ value: "one", stale: true })

        const started = Date.now()
        yield* Effect.promise(() => pg.start())
        // Recovery: the health check (every 100 millis here, 5 s by default) half-opens the
        // breaker; two successful reads close it.
        yield* waitUntil(
          Effect.map(Effect.either(read), (result) => result._tag === "Right" && !result.right.stale),
          "a fresh read",
          "10 seconds"
        )
        yield* Effect.sleep("150 millis")
        expect(yield* read).toMatchObject({ value: "one", stale: false })
        const recoveredIn = Date.now() - started
        yield* waitUntil(Effect.map(db.breaker.state, (state) => state === "Closed"), "closed", "2 seconds")
        expect(yield* db.mode).toBe("ReadWrite")
        expect(recoveredIn).toBeLessThan(5_000)
      }).pipe(quiet)
  )
})

describe("outage under load", () => {
  const Order = Schema.Struct({ id: Schema.String, fiber: Schema.Number, n: Schema.Number })
  const Item = Schema.Struct({ id: Schema.Number, name: Schema.String })

  it.scopedLive(
    "5,000 writes from 50 fibers across `pg_ctl stop -m immediate`: every acknowledged write lands exactly once, " +
      "and reads during the outage are served stale without an error",
    () =>
      Effect.gen(function*() {
        const pg = server()
        yield* ensureRunning(pg)
        const dir = yield* tempDir
        // No UNIQUE on `id`: a write applied twice would be two rows.
        yield* psql(pg, "CREATE TABLE outage_orders (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, fiber INT, n INT)")
        yield* psql(pg, "CREATE TABLE outage_items (id INT PRIMARY KEY, name TEXT NOT NULL)")
        yield* psql(pg, "INSERT INTO outage_items SELECT g, 'item-' || g FROM generate_series(1, 20) g")

        const { context, db } = yield* open(pg)
        const cache = yield* Layer.build(Cache.layerMemory())
        const outbox = yield* Outbox.make({
          name: "outage",
          path: path.join(dir, "outage.outbox"),
          schema: Order,
          key: (order) => order.id,
          apply: (order) =>
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              sql`INSERT INTO outage_orders (id, fiber, n) VALUES (${order.id}, ${order.fiber}, ${order.n})`),
          replay: { batchSize: 200, schedule: Schedule.spaced("100 millis") }
        }).pipe(Effect.provide(context))
        const items = yield* Sql.reader({ ttl: "300 millis", staleIfError: "1 hour", schema: Item }).pipe(
          Effect.provide(context)
        )
        const readItem = (id: number) =>
          items.get(
            `item:${id}`,
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              Effect.map(sql<typeof Item.Type>`SELECT id, name FROM outage_items WHERE id = ${id}`, (rows) => rows[0]!))
          ).pipe(Effect.provide(cache))
        // Warm the cache.
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i + 1), readItem, { discard: true })

        const acknowledged: Array<string> = []
        const failures: Array<unknown> = []
        const outage = { stoppedAt: 0, startedAt: 0, upAt: 0, drainedAt: 0 }
        const reads = { total: 0, stale: 0, failed: 0, maxMillis: 0 }

        const writer = (fiber: number) =>
          Effect.forEach(
            Array.from({ length: 100 }, (_, n) => n),
            (n) =>
              outbox.write({ id: `f${fiber}-${n}`, fiber, n }).pipe(
                Effect.tap((result) => Effect.sync(() => acknowledged.push(result.key))),
                Effect.catchAll((error) => Effect.sync(() => failures.push(error))),
                Effect.zipRight(Effect.sleep("20 millis"))
              ),
            { discard: true }
          )

        const reader = (r: number) =>
          Effect.gen(function*() {
            let i = r
            while (outage.upAt === 0) {
              const started = Date.now()
              const result = yield* Effect.either(readItem((i++ % 20) + 1))
              const millis = Date.now() - started
              if (outage.stoppedAt > 0) {
                reads.total++
                reads.maxMillis = Math.max(reads.maxMillis, millis)
                if (result._tag === "Left") reads.failed++
                else if (result.right.stale) reads.stale++
              }
              yield* Effect.sleep("10 millis")
            }
          })

        // The fault, on a timeline driven by the load: stop once 1,000 writes are acknowledged,
        // start again after at least 1.5 seconds down.
        const fault = Effect.gen(function*() {
          yield* waitUntil(Effect.sync(() => acknowledged.length >= 1_000), "1,000 acknowledged writes")
          outage.stoppedAt = Date.now()
          yield* Effect.promise(() => pg.stop("immediate"))
          yield* Effect.sleep("1500 millis")
          outage.startedAt = Date.now()
          yield* Effect.promise(() => pg.start())
          outage.upAt = Date.now()
        })

        const readers = yield* Effect.fork(Effect.forEach(Array.from({ length: 10 }, (_, r) => r), reader, {
          concurrency: "unbounded",
          discard: true
        }))
        const faultFiber = yield* Effect.fork(fault)
        const loadStarted = Date.now()
        yield* Effect.forEach(Array.from({ length: 50 }, (_, f) => f), writer, {
          concurrency: "unbounded",
          discard: true
        })
        const loadEnded = Date.now()
        yield* Fiber.join(faultFiber)
        yield* Fiber.join(readers)
        const duringOutage = yield* outbox.metrics
        yield* outbox.awaitEmpty.pipe(Effect.timeout("30 seconds"))
        outage.drainedAt = Date.now()
        const after = yield* outbox.metrics

        const counted = yield* psql(pg, "SELECT COUNT(*) || ' ' || COUNT(DISTINCT id) FROM outage_orders")
        const [rowCount, distinct] = counted.split(" ").map(Number)
        const ids = new Set((yield* psql(pg, "SELECT id FROM outage_orders")).split("\n"))

        expect(failures).toEqual([])
        expect(acknowledged.length).toBe(5_000)
        expect(rowCount).toBe(5_000)
        expect(distinct).toBe(5_000)
        expect(acknowledged.filter((id) => !ids.has(id))).toEqual([])
        // The outage was real: writes were journaled, and replayed.
        expect(after.queued).toBeGreaterThan(0)
        expect(after.replayed).toBe(after.queued)
        expect(after.written + after.queued).toBe(5_000)
        expect(after.depth).toBe(0)
        // Reads during the outage: all served, stale ones marked.
        expect(reads.failed).toBe(0)
        expect(reads.total).toBeGreaterThan(0)
        expect(reads.stale).toBeGreaterThan(0)
        expect(yield* db.breaker.state).toBe("Closed")

        console.log(JSON.stringify({
          writes: 5_000,
          fibers: 50,
          acknowledged: acknowledged.length,
          writtenDirectly: after.written,
          queued: after.queued,
          replayed: after.replayed,
          alreadyApplied: after.alreadyApplied,
          depthAtEndOfLoad: duringOutage.depth,
          outageMillis: outage.upAt - outage.stoppedAt,
          replayMillisAfterServerUp: outage.drainedAt - outage.upAt,
          loadMillis: loadEnded - loadStarted,
          rowsCounted: rowCount,
          distinctIds: distinct,
          readsDuringOutage: reads.total,
          staleReads: reads.stale,
          failedReads: reads.failed,
          maxReadMillisDuringOutage: reads.maxMillis
        }))
      }).pipe(quiet),
    90_000
  )
})
