/**
 * `npm run example:orders`: an order service that keeps taking orders while its database
 * goes away, and loses none.
 *
 * Twenty clients place orders for eight seconds. Each order inserts a row and takes one item
 * from the stock (`UPDATE stock SET left = left - 1`: not idempotent, so an order applied
 * twice would show). From second 2 to second 5 the database is unavailable. Writes are then
 * journaled by the outbox and replayed once the database is back; reads are answered from the
 * cache, marked stale. At the end the program counts: orders acknowledged to clients = rows in
 * the database, none twice, stock decremented exactly once per order.
 *
 * Three ways to run it:
 *
 * - `npm run example:orders`: an embedded SQLite file, and the outage is injected between
 *   the client and the service with `Chaos.layerSql`: from second 2 to second 5 every
 *   statement is refused as a down server refuses connections. The breaker opens, the mode
 *   is ReadOnly, reads are stale, writes are queued; then the breaker half-opens and closes.
 * - `DATABASE_URL=postgres://... npm run example:orders`: that PostgreSQL (the URL is read
 *   with `Config.redacted` and printed without its credentials); the outage is another
 *   connection that holds the tables locked (`LOCK TABLE ... ACCESS EXCLUSIVE`), and the
 *   server itself is left alone.
 * - `npm run example:orders -- --postgres`: a throwaway PostgreSQL that the program starts
 *   (PostgreSQL must be installed: `apt-get install -y postgresql`) and really stops
 *   (`pg_ctl stop -m immediate`), then starts again.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Cache, Chaos, InvalidOptions } from "effect-resilience"
import * as Outbox from "effect-resilience/Outbox"
import * as Sql from "effect-resilience/Sql"
import * as Pg from "effect-resilience/Sql/Pg"
import * as Sqlite from "effect-resilience/Sql/Sqlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { startPostgresServer } from "../test/integration/postgresServer.js"

// -----------------------------------------------------------------------------
// The timeline
// -----------------------------------------------------------------------------

/** The load and the outage (a test runs the same story with fewer clients). */
export interface Timeline {
  readonly clients: number
  readonly load: Duration.Duration
  readonly outageStart: Duration.Duration
  readonly outageEnd: Duration.Duration
}

export const timeline: Timeline = {
  clients: 20,
  load: Duration.seconds(8),
  outageStart: Duration.seconds(2),
  outageEnd: Duration.seconds(5)
}

const STOCK = 1_000_000

// -----------------------------------------------------------------------------
// The order service
// -----------------------------------------------------------------------------

const Order = Schema.Struct({
  id: Schema.String,
  customer: Schema.String,
  sku: Schema.String,
  cents: Schema.Int
})
type Order = typeof Order.Type

// No UNIQUE constraint on `id`: an order applied twice would be two rows.
const createTables = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg") =>
  Effect.gen(function*() {
    yield* sql.unsafe(`DROP TABLE IF EXISTS orders`)
    yield* sql.unsafe(`DROP TABLE IF EXISTS stock`)
    yield* sql.unsafe(`DROP TABLE IF EXISTS effect_resilience_outbox_applied`)
    yield* sql.unsafe(
      dialect === "pg"
        ? `CREATE TABLE orders (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, customer TEXT NOT NULL,
             sku TEXT NOT NULL, cents INTEGER NOT NULL)`
        : `CREATE TABLE orders (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, customer TEXT NOT NULL,
             sku TEXT NOT NULL, cents INTEGER NOT NULL)`
    )
    yield* sql.unsafe(`CREATE TABLE stock (sku TEXT PRIMARY KEY, "left" INTEGER NOT NULL)`)
    yield* sql`INSERT INTO stock (sku, "left") VALUES ('widget', ${STOCK})`
  })

/** One order: a row, and one widget fewer. Run by the outbox in a transaction with its key. */
const placeOrder = (order: Order) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO orders (id, customer, sku, cents)
      VALUES (${order.id}, ${order.customer}, ${order.sku}, ${order.cents})`
    yield* sql`UPDATE stock SET "left" = "left" - 1 WHERE sku = ${order.sku}`
  })

const StockLevel = Schema.Struct({ sku: Schema.String, left: Schema.Number })

// -----------------------------------------------------------------------------
// The database, and how to take it away
// -----------------------------------------------------------------------------

export interface Target {
  readonly description: string
  readonly dialect: "sqlite" | "pg"
  readonly layer: Layer.Layer<Sql.ResilientSql, unknown>
  /** Makes the database unavailable until the returned effect runs. */
  readonly outage: (db: Sql.ResilientSqlService) => Effect.Effect<Effect.Effect<void>, unknown, never>
  readonly outageDescription: string
  readonly close: Effect.Effect<void>
}

export const resilience: Sql.Options = {
  timeout: "500 millis",
  breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "30 seconds" },
  healthCheck: { interval: "200 millis", timeout: "300 millis" },
  connectSchedule: Schedule.spaced("200 millis")
}

/**
 * The embedded SQLite file, behind `Chaos.layerSql`: during the outage window (on the
 * `Clock`, from when the layer is built) every statement is refused, as by a server that is
 * down, and the write-lock health check fails with them.
 */
export const sqliteTarget = (dir: string, times: Timeline = timeline): Target => {
  const filename = path.join(dir, "orders.sqlite")
  const client = Chaos.layerSql({
    outages: [{ start: times.outageStart, duration: Duration.subtract(times.outageEnd, times.outageStart) }]
  }).pipe(Layer.provide(Sqlite.layerClient({ filename })))
  return {
    description: `embedded SQLite file (${filename})`,
    dialect: "sqlite",
    layer: Sql.layerConnecting(client, {
      name: "orders-db",
      ...resilience,
      healthCheck: { ...resilience.healthCheck, query: Sqlite.writeLockCheck }
    }),
    outageDescription: "Chaos.layerSql refuses every statement, as a database that is down",
    // The window is on the layer's clock: it begins and ends by itself.
    outage: () => Effect.succeed(Effect.void),
    close: Effect.void
  }
}

/** A PostgreSQL that the program does not own: its tables are locked for the outage. */
const pgLockTarget = (url: Redacted.Redacted): Target => ({
  description: `PostgreSQL at ${redact(Redacted.value(url))} (DATABASE_URL)`,
  dialect: "pg",
  layer: Pg.layer({ url, maxConnections: 20 }, { name: "orders-db", ...resilience }),
  outageDescription: "another connection holds the tables locked (LOCK TABLE ... IN ACCESS EXCLUSIVE MODE)",
  outage: (db) =>
    Effect.gen(function*() {
      const sql = yield* db.client
      const release = yield* Effect.makeLatch(false)
      const locked = yield* Effect.makeLatch(false)
      const holder = yield* sql.withTransaction(
        Effect.zipRight(
          sql`LOCK TABLE orders, stock IN ACCESS EXCLUSIVE MODE`,
          Effect.zipRight(locked.open, release.await)
        )
      ).pipe(Effect.forkDaemon)
      yield* locked.await
      return Effect.zipRight(release.open, Effect.ignore(Fiber.join(holder)))
    }),
  close: Effect.void
})

/** A throwaway PostgreSQL of our own, really stopped for the outage. */
const pgOwnedTarget = Effect.promise(() => startPostgresServer({ database: "orders" })).pipe(
  Effect.map((server): Target => ({
    description: `throwaway PostgreSQL ${server.version} on 127.0.0.1:${server.port} (--postgres)`,
    dialect: "pg",
    layer: Pg.layer({ url: Redacted.make(server.url), maxConnections: 20, connectTimeout: "1 second" }, {
      name: "orders-db",
      ...resilience
    }),
    outageDescription: "the server is stopped (pg_ctl stop -m immediate), then started again",
    outage: () =>
      Effect.as(Effect.promise(() => server.stop("immediate")), Effect.promise(() => server.start())),
    close: Effect.promise(() => server.close())
  }))
)

// Never print credentials: the URL without its userinfo and query.
const redact = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return "(an unparsable URL)"
  }
}

// -----------------------------------------------------------------------------
// The program
// -----------------------------------------------------------------------------

interface Tally {
  acknowledged: Array<string>
  written: number
  queued: number
  failed: Array<string>
  reads: number
  staleReads: number
  failedReads: number
  modes: Set<Sql.Mode>
  transitions: Array<string>
}

/** What the run counted: the story's figures and the accounting. */
export interface Summary {
  readonly acknowledged: number
  readonly written: number
  readonly queued: number
  readonly failedWrites: number
  readonly reads: number
  readonly staleReads: number
  readonly failedReads: number
  /** The modes the clients saw, in the order first seen. */
  readonly modes: ReadonlyArray<Sql.Mode>
  /** The breaker's transitions, as `from -> to`. */
  readonly transitions: ReadonlyArray<string>
  readonly rows: number
  readonly distinctIds: number
  readonly widgetsTaken: number
  readonly missing: number
  readonly replayed: number
  readonly ok: boolean
}

const seconds = (millis: number) => (millis / 1000).toFixed(1).padStart(5)

/** The whole story on a target; its clock is the `Clock`, so a test runs it on `TestClock`. */
export const run = (target: Target, dir: string, times: Timeline = timeline) =>
  Effect.gen(function*() {
    const db = yield* Sql.ResilientSql
    const now = Clock.currentTimeMillis
    const started = yield* now
    const at = Effect.map(now, (t) => `${seconds(t - started)}s`)

    yield* Console.log(`database: ${target.description}`)
    yield* Console.log(
      `outage from ${Duration.format(times.outageStart)} to ${Duration.format(times.outageEnd)}: ${
        target.outageDescription
      }`
    )
    yield* Console.log(`${times.clients} clients place orders for ${Duration.format(times.load)}\n`)

    yield* db.query((sql) => createTables(sql, target.dialect))
    const outbox = yield* Outbox.make({
      name: "orders",
      path: path.join(dir, "orders.outbox"),
      schema: Order,
      key: (order) => order.id,
      apply: placeOrder,
      replay: { batchSize: 100, schedule: Schedule.spaced("200 millis") }
    })
    const stock = yield* Sql.reader({ ttl: "500 millis", staleIfError: "1 hour", schema: StockLevel })
    const readStock = stock.get(
      "stock:widget",
      Sql.query((sql) => sql<typeof StockLevel.Type>`SELECT sku, "left" FROM stock WHERE sku = 'widget'`).pipe(
        Effect.map((rows) => rows[0]!)
      )
    )

    // A warm start, as a service that has been running: one connection per client (opened
    // with the client directly, outside the breaker) and the stock level in the cache.
    const raw = yield* db.client
    yield* Effect.forEach(Array.from({ length: times.clients }), () => raw`SELECT 1`, {
      concurrency: "unbounded",
      discard: true
    })
    yield* readStock

    // Print each change of the database's breaker as it happens.
    const tally: Tally = {
      acknowledged: [],
      written: 0,
      queued: 0,
      failed: [],
      reads: 0,
      staleReads: 0,
      failedReads: 0,
      modes: new Set(),
      transitions: []
    }
    yield* db.breaker.changes.pipe(
      Stream.runForEach((change) =>
        Effect.flatMap(at, (time) => {
          tally.transitions.push(`${change.from} -> ${change.to}`)
          return Console.log(`${time}  breaker ${change.from} -> ${change.to} (${change.reason}); mode: ${
            change.to === "Open" ? "read-only" : change.to === "Closed" ? "read-write" : "probing"
          }`)
        })
      ),
      Effect.forkScoped
    )

    const until = started + Duration.toMillis(times.load)

    const client = (c: number) =>
      Effect.gen(function*() {
        let n = 0
        while ((yield* now) < until) {
          tally.modes.add(yield* db.mode)
          const order: Order = { id: `c${c}-${n++}`, customer: `customer-${c}`, sku: "widget", cents: 1999 }
          const result = yield* Effect.either(outbox.write(order))
          if (result._tag === "Right") {
            tally.acknowledged.push(result.right.key)
            if (result.right._tag === "Written") tally.written++
            else tally.queued++
          } else {
            tally.failed.push(`${order.id}: ${result.left.message}`)
          }
          // Every fifth request reads the stock level.
          if (n % 5 === 0) {
            const read = yield* Effect.either(readStock)
            tally.reads++
            if (read._tag === "Left") tally.failedReads++
            else if (read.right.stale) tally.staleReads++
          }
          yield* Effect.sleep("15 millis")
        }
      })

    const report = Effect.gen(function*() {
      const metrics = yield* outbox.metrics
      yield* Console.log(
        `${yield* at}  mode ${(yield* db.mode).padEnd(9)}` +
          ` acknowledged ${String(tally.acknowledged.length).padStart(5)}` +
          ` (written ${String(tally.written).padStart(5)}, queued ${String(tally.queued).padStart(5)})` +
          `  outbox depth ${String(metrics.depth).padStart(5)}, replayed ${String(metrics.replayed).padStart(5)}` +
          `  reads ${tally.reads} (stale ${tally.staleReads}, failed ${tally.failedReads})`
      )
    })
    const reporter = yield* Effect.forkScoped(Effect.repeat(Effect.delay(report, "1 second"), Schedule.forever))

    const outageTimeline = Effect.gen(function*() {
      yield* Effect.sleep(times.outageStart)
      yield* Console.log(`${yield* at}  OUTAGE: ${target.outageDescription}`)
      const end = yield* target.outage(db)
      const outageBegan = yield* now
      yield* Effect.sleep(Duration.subtract(times.outageEnd, times.outageStart))
      yield* end
      const backAt = yield* now
      yield* Console.log(`${yield* at}  the database is back after ${seconds(backAt - outageBegan).trim()}s`)
      yield* outbox.awaitEmpty
      const drainedIn = (yield* now) - backAt
      yield* Console.log(
        `${yield* at}  the outbox is empty, ${seconds(drainedIn).trim()}s after the database came back`
      )
      return drainedIn
    })

    const timelineFiber = yield* Effect.fork(outageTimeline)
    yield* Effect.forEach(Array.from({ length: times.clients }, (_, c) => c), client, {
      concurrency: "unbounded",
      discard: true
    })
    yield* Console.log(`${yield* at}  load over; waiting for the outbox to drain`)
    const drainedIn = yield* Fiber.join(timelineFiber).pipe(Effect.timeout("20 seconds"))
    yield* outbox.awaitEmpty
    yield* Fiber.interrupt(reporter)
    yield* report

    // The count, read with the client directly.
    const sql = yield* db.client
    const [counted] = yield* sql<{ readonly rows: number; readonly ids: number }>`
      SELECT COUNT(*) AS rows, COUNT(DISTINCT id) AS ids FROM orders`
    const [left] = yield* sql<{ readonly left: number }>`SELECT "left" FROM stock WHERE sku = 'widget'`
    const present = new Set((yield* sql<{ readonly id: string }>`SELECT id FROM orders`).map((row) => row.id))
    const rows = Number(counted!.rows)
    const distinct = Number(counted!.ids)
    const taken = STOCK - Number(left!.left)
    const missing = tally.acknowledged.filter((id) => !present.has(id))
    const metrics = yield* outbox.metrics

    yield* Console.log("")
    yield* Console.log(`orders acknowledged to clients: ${tally.acknowledged.length}` +
      ` (${tally.written} written at once, ${tally.queued} queued in the outbox)`)
    yield* Console.log(`rows in the database:            ${rows} (${distinct} distinct ids)`)
    yield* Console.log(`widgets taken from the stock:    ${taken}`)
    yield* Console.log(
      `missing: ${missing.length}, duplicated: ${rows - distinct}, failed writes: ${tally.failed.length}`
    )
    yield* Console.log(`outbox: replayed ${metrics.replayed}, found already applied ${metrics.alreadyApplied}, ` +
      `refused ${metrics.refused}, dead letters ${metrics.deadLettered}; ` +
      `emptied ${seconds(drainedIn).trim()}s after the database came back`)
    yield* Console.log(`reads: ${tally.reads}, of which stale ${tally.staleReads}, failed ${tally.failedReads}`)
    yield* Console.log(`modes seen: ${[...tally.modes].join(", ")}; breaker: ${tally.transitions.join(", ")}`)
    const ok = missing.length === 0 && rows === distinct && rows === tally.acknowledged.length &&
      taken === rows && tally.failed.length === 0 && tally.failedReads === 0
    yield* Console.log(ok ? "\nOK: every acknowledged order is in the database exactly once." : "\nFAILED")
    if (!ok) {
      for (const failure of tally.failed.slice(0, 5)) yield* Console.log(`  ${failure}`)
    }
    const summary: Summary = {
      acknowledged: tally.acknowledged.length,
      written: tally.written,
      queued: tally.queued,
      failedWrites: tally.failed.length,
      reads: tally.reads,
      staleReads: tally.staleReads,
      failedReads: tally.failedReads,
      modes: [...tally.modes],
      transitions: tally.transitions,
      rows,
      distinctIds: distinct,
      widgetsTaken: taken,
      missing: missing.length,
      replayed: metrics.replayed,
      ok
    }
    return summary
  })

/** A temp dir for the outbox's journal (and the SQLite file), removed at the end. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-orders-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The default run, on the embedded SQLite file with the chaos outage, as a function. */
export const runSqlite = (times: Timeline = timeline) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const target = sqliteTarget(dir, times)
    return yield* run(target, dir, times).pipe(Effect.provide(Layer.merge(target.layer, Cache.layerMemory())))
  }).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  const dir = yield* tempDir
  const url = yield* Config.option(Config.redacted("DATABASE_URL"))
  const target = process.argv.includes("--postgres")
    ? yield* Effect.acquireRelease(pgOwnedTarget, (owned) => owned.close)
    : Option.isSome(url) && Redacted.value(url.value).trim() !== ""
    ? pgLockTarget(url.value)
    : sqliteTarget(dir)
  const summary = yield* run(target, dir).pipe(Effect.provide(Layer.merge(target.layer, Cache.layerMemory())))
  if (!summary.ok) return yield* Effect.die(new Error("the count does not match"))
}).pipe(
  Effect.scoped,
  // Settings that can never work (a bad DATABASE_URL), or a database that is not there to
  // set up the tables, are one typed line, without a stack.
  Effect.catchIf(
    (error): error is InvalidOptions | Sql.DatabaseError =>
      error instanceof InvalidOptions || error instanceof Sql.DatabaseError,
    (error) => Effect.zipRight(Console.error(error.message), Effect.sync(() => void (process.exitCode = 1)))
  ),
  // The program prints its own timeline; the library's warnings (stale reads, retries) are quiet.
  Logger.withMinimumLogLevel(LogLevel.Error)
)

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) NodeRuntime.runMain(main)
