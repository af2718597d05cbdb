import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, it } from "@effect/vitest"
import {
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
  Option,
  Schedule,
  Schema,
  Scope,
  TestClock
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Outbox from "../src/Outbox.js"
import * as Sql from "../src/Sql.js"
import * as Sqlite from "../src/Sql/Sqlite.js"

const Order = Schema.Struct({ id: Schema.String, cents: Schema.Number })
type Order = typeof Order.Type

type OrderOutboxOptions = Outbox.Options<Order, typeof Order.Encoded, SqlError>

const order = (i: number, cents = 100 + i): Order => ({ id: `o-${i}`, cents })

/** A temp dir for one test, removed when its scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-outbox-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

// No UNIQUE on `id`: a write applied twice would show up as two rows.
const createOrders = Sql.query((sql) =>
  sql`CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    cents INTEGER NOT NULL CHECK (cents >= 0)
  )`
)

const insertOrder = (o: Order) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO orders (id, cents) VALUES (${o.id}, ${o.cents})`)

/** The ids in the table, in insertion order, read with the raw client (whatever the breaker says). */
const rows = Effect.flatMap(Sql.ResilientSql, (db) => db.client).pipe(
  Effect.flatMap((sql) => sql<{ readonly id: string }>`SELECT id FROM orders ORDER BY seq`),
  Effect.map((all) => all.map((row) => row.id))
)

/** The embedded database (no health check: the tests drive the breaker). */
const database = (dir: string, options: Partial<Sqlite.Options> = {}) =>
  Sqlite.layer({ filename: path.join(dir, "app.sqlite"), busyTimeout: 0, healthCheck: false, ...options })

const outboxOptions = (dir: string, options: Partial<OrderOutboxOptions> = {}) => ({
  name: "orders",
  path: path.join(dir, "orders.outbox"),
  schema: Order,
  key: (o: Order) => o.id,
  apply: insertOrder,
  ...options
})

const quiet = Logger.minimumLogLevel(LogLevel.None)

/** Builds a layer in the current scope and returns its context. */
const build = <A, E>(layer: Layer.Layer<A, E>) => Layer.build(layer)

const setup = (options: { readonly outbox?: Partial<OrderOutboxOptions> } = {}) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const context = yield* build(database(dir))
    const db = Context.get(context, Sql.ResilientSql)
    yield* Effect.provide(createOrders, context)
    const outbox = yield* Effect.provide(Outbox.make(outboxOptions(dir, options.outbox)), context)
    return { dir, db, context, outbox, rows: Effect.provide(rows, context) }
  })

describe("Outbox options", () => {
  it.scoped("refuses invalid options with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir))
      const refused = (options: Partial<OrderOutboxOptions>) =>
        Effect.provide(Outbox.make(outboxOptions(dir, options)), context).pipe(
          Effect.flip,
          Effect.map((error) => (error._tag === "InvalidOptions" ? error.field : error._tag))
        )
      expect(yield* refused({ capacity: 0 })).toBe("capacity")
      expect(yield* refused({ capacity: 1.5 })).toBe("capacity")
      expect(yield* refused({ path: "" })).toBe("path")
      expect(yield* refused({ name: " " })).toBe("name")
      expect(yield* refused({ dedupeTable: "applied; DROP TABLE orders" })).toBe("dedupeTable")
      expect(yield* refused({ dedupe: "sometimes" as never })).toBe("dedupe")
      expect(yield* refused({ replay: { batchSize: 0 } })).toBe("replay.batchSize")
      expect(yield* refused({ apply: undefined as never })).toBe("apply")
      expect(yield* refused({ schema: "Order" as never })).toBe("schema")
    }).pipe(Effect.provide(quiet)))

  it.scoped("fails with JournalError when the journal's directory does not exist", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir))
      const error = yield* Effect.provide(
        Outbox.make(outboxOptions(dir, { path: path.join(dir, "missing", "orders.outbox") })),
        context
      ).pipe(Effect.flip)
      expect(error._tag).toBe("OutboxJournalError")
      if (error._tag === "OutboxJournalError") {
        expect(error.operation).toBe("open")
        expect(error.message).toContain("directory does not exist")
      }
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox writes", () => {
  it.scoped("writes directly while the database is read-write and nothing waits", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup()
      expect(yield* db.mode).toBe("ReadWrite")
      expect(yield* outbox.write(order(1))).toEqual({ _tag: "Written", key: "o-1" })
      expect(yield* outbox.write(order(2))).toEqual({ _tag: "Written", key: "o-2" })
      expect(yield* rows).toEqual(["o-1", "o-2"])
      const metrics = yield* outbox.metrics
      expect(metrics).toMatchObject({ depth: 0, written: 2, queued: 0, replayed: 0, refused: 0 })
    }).pipe(Effect.provide(quiet)))

  it.scoped("journals writes while the breaker is open and replays them in order once it closes", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { replay: { batchSize: 7 } } })
      yield* db.breaker.forceOpen
      expect(yield* db.mode).toBe("ReadOnly")
      const results = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => order(i)), (o) => outbox.write(o))
      expect(results.every((result) => result._tag === "Queued")).toBe(true)
      // Sequence numbers follow the order of the writes.
      const seqs = results.map((result) => (result._tag === "Queued" ? result.seq : -1))
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
      expect(yield* outbox.depth).toBe(40)
      expect(yield* rows).toEqual([])

      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(Array.from({ length: 40 }, (_, i) => `o-${i}`))
      expect(yield* outbox.metrics).toMatchObject({ depth: 0, queued: 40, replayed: 40, written: 0 })
    }).pipe(Effect.provide(quiet)))

  it.scoped("keeps later writes behind queued ones, even once the database is back", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup()
      yield* db.breaker.forceOpen
      yield* outbox.write(order(1))
      yield* outbox.write(order(2))
      // The replay is held back by the open breaker; the database itself answers again.
      yield* db.breaker.forceClosed
      const third = yield* outbox.write(order(3))
      expect(third._tag).toBe("Queued")
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-1", "o-2", "o-3"])
      // Once the journal is empty, writes go straight to the database again.
      expect((yield* outbox.write(order(4)))._tag).toBe("Written")
      expect(yield* rows).toEqual(["o-1", "o-2", "o-3", "o-4"])
    }).pipe(Effect.provide(quiet)))

  it.scoped("a key already waiting is not queued twice", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup()
      yield* db.breaker.forceOpen
      const first = yield* outbox.write(order(1))
      const again = yield* outbox.write(order(1))
      expect(first).toMatchObject({ _tag: "Queued", key: "o-1", duplicate: false })
      expect(again).toMatchObject({ _tag: "Queued", key: "o-1", duplicate: true })
      if (first._tag === "Queued" && again._tag === "Queued") expect(again.seq).toBe(first.seq)
      expect(yield* outbox.depth).toBe(1)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-1"])
    }).pipe(Effect.provide(quiet)))

  it.scoped("a write the database refuses fails with a Fatal DatabaseError and is not journaled", () =>
    Effect.gen(function*() {
      const { outbox, rows } = yield* setup()
      const error = yield* Effect.flip(outbox.write(order(1, -5)))
      expect(error._tag).toBe("DatabaseError")
      if (error._tag === "DatabaseError") {
        expect(error.reason).toBe("Constraint")
        expect(error.errorClass).toBe("Fatal")
        expect(error.code).toMatch(/^SQLITE_CONSTRAINT/)
      }
      expect(yield* outbox.depth).toBe(0)
      expect(yield* rows).toEqual([])
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox replay is exactly once", () => {
  it.scoped("an entry whose write had landed (answer lost) is not applied again", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup()
      // The direct write lands; its caller, not knowing, queues it again under the same key.
      expect((yield* outbox.write(order(1)))._tag).toBe("Written")
      yield* db.breaker.forceOpen
      yield* outbox.enqueue(order(1))
      yield* outbox.enqueue(order(2))
      expect(yield* outbox.depth).toBe(2)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-1", "o-2"])
      expect(yield* outbox.metrics).toMatchObject({ replayed: 2, alreadyApplied: 1 })
    }).pipe(Effect.provide(quiet)))

  it.scoped("without the processed-keys table, the same replay duplicates (the table is what prevents it)", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { dedupe: "none" } })
      yield* outbox.write(order(1))
      yield* db.breaker.forceOpen
      yield* outbox.enqueue(order(1))
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-1", "o-1"])
    }).pipe(Effect.provide(quiet)))

  it.scoped("entries survive the outbox's scope and are replayed by the next outbox on the same journal", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir))
      const db = Context.get(context, Sql.ResilientSql)
      yield* Effect.provide(createOrders, context)
      yield* db.breaker.forceOpen

      const first = yield* Scope.make()
      const outbox1 = yield* Effect.provide(Outbox.make(outboxOptions(dir)), context).pipe(Scope.extend(first))
      for (let i = 0; i < 25; i++) yield* outbox1.write(order(i))
      expect(yield* outbox1.depth).toBe(25)
      // While it is open, nobody else may replay its journal.
      const busy = yield* Effect.flip(Effect.provide(Outbox.make(outboxOptions(dir)), context))
      expect(busy._tag).toBe("OutboxJournalError")
      yield* Scope.close(first, Exit.void)

      const outbox2 = yield* Effect.provide(Outbox.make(outboxOptions(dir)), context)
      expect(yield* outbox2.depth).toBe(25)
      yield* db.breaker.reset
      yield* outbox2.awaitEmpty
      expect(yield* Effect.provide(rows, context)).toEqual(Array.from({ length: 25 }, (_, i) => `o-${i}`))
    }).pipe(Effect.provide(quiet)))

  it.scoped("an entry the database refuses becomes a dead letter; the others are applied in order", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { replay: { batchSize: 10 } } })
      yield* db.breaker.forceOpen
      for (let i = 0; i < 6; i++) yield* outbox.write(order(i, i === 3 ? -1 : 10))
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-0", "o-1", "o-2", "o-4", "o-5"])
      const dead = yield* outbox.deadLetters
      expect(dead.map((letter) => letter.key)).toEqual(["o-3"])
      expect(dead[0]!.error).toMatch(/CHECK constraint failed|Constraint/)
      expect(JSON.parse(dead[0]!.payload)).toEqual({ id: "o-3", cents: -1 })
      expect(yield* outbox.metrics).toMatchObject({ replayed: 5, deadLettered: 1, depth: 0 })
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox capacity", () => {
  it.scoped("when full it refuses with OutboxFull and keeps every earlier entry", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { capacity: 5 } })
      yield* db.breaker.forceOpen
      for (let i = 0; i < 5; i++) expect((yield* outbox.write(order(i)))._tag).toBe("Queued")
      const refused = yield* Effect.flip(outbox.write(order(5)))
      expect(refused).toBeInstanceOf(Outbox.OutboxFull)
      expect(refused).toMatchObject({ _tag: "OutboxFull", outbox: "orders", capacity: 5, key: "o-5" })
      expect(yield* outbox.depth).toBe(5)
      // A key already waiting takes no room: it is still accepted.
      expect(yield* outbox.write(order(2))).toMatchObject({ _tag: "Queued", duplicate: true })
      expect((yield* outbox.metrics).refused).toBe(1)

      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-0", "o-1", "o-2", "o-3", "o-4"])
      // Room again.
      expect((yield* outbox.write(order(5)))._tag).toBe("Written")
    }).pipe(Effect.provide(quiet)))

  it.scoped("50 fibers racing for 20 places: exactly 20 accepted, 30 refused, none lost", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { capacity: 20 } })
      yield* db.breaker.forceOpen
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => order(i)),
        (o) => Effect.either(outbox.write(o)),
        { concurrency: 50 }
      )
      const accepted = results.flatMap((result) => (Either.isRight(result) ? [result.right.key] : []))
      const refused = results.filter((result) => Either.isLeft(result) && result.left._tag === "OutboxFull")
      expect(accepted.length).toBe(20)
      expect(refused.length).toBe(30)
      expect((yield* outbox.metrics).refused).toBe(30)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect([...(yield* rows)].sort()).toEqual([...accepted].sort())
    }).pipe(Effect.provide(quiet)))

  it.effect("the default capacity is 50,000", () => Effect.sync(() => expect(Outbox.defaultCapacity).toBe(50_000)))
})

describe("Outbox metrics and backoff (TestClock)", () => {
  it.scoped("oldestAge follows the Clock; depth and counters follow the journal", () =>
    Effect.gen(function*() {
      const { db, outbox } = yield* setup()
      yield* db.breaker.forceOpen
      expect((yield* outbox.metrics).oldestAge).toEqual(Duration.zero)
      yield* outbox.write(order(1))
      yield* TestClock.adjust("30 seconds")
      yield* outbox.write(order(2))
      const metrics = yield* outbox.metrics
      expect(metrics.depth).toBe(2)
      expect(Duration.toMillis(metrics.oldestAge)).toBe(30_000)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* outbox.metrics).toMatchObject({ depth: 0, oldestAge: Duration.zero, replayed: 2 })
    }).pipe(Effect.provide(quiet)))

  it.scoped("replay backs off on the schedule while the database stays unreachable, and resumes on recovery", () =>
    Effect.gen(function*() {
      // The target file is held under an exclusive lock by another connection: every write is busy.
      const dir = yield* tempDir
      const filename = path.join(dir, "app.sqlite")
      const context = yield* build(database(dir, { breaker: { failureThreshold: 1000 }, retry: false }))
      const db = Context.get(context, Sql.ResilientSql)
      yield* Effect.provide(createOrders, context)
      const attempts = { count: 0 }
      const outbox = yield* Effect.provide(
        Outbox.make(
          outboxOptions(dir, {
            apply: (o) => Effect.zipRight(Effect.sync(() => attempts.count++), insertOrder(o)),
            replay: { schedule: Schedule.spaced("10 seconds") }
          })
        ),
        context
      )
      const lock = yield* build(Sqlite.layerClient({ filename, busyTimeout: 0 }))
      const holder = Context.get(lock, SqlClient.SqlClient)
      yield* holder.unsafe("BEGIN EXCLUSIVE")

      yield* outbox.enqueue(order(1))
      // The first attempt happens at once and fails (busy): the dedupe insert never gets to apply.
      yield* Effect.yieldNow()
      yield* TestClock.adjust("1 millis")
      const failedAfterFirst = (yield* db.breaker.metrics).failedCalls
      expect(failedAfterFirst).toBeGreaterThanOrEqual(1)
      // Nothing more before the schedule's delay...
      yield* TestClock.adjust("9 seconds")
      expect((yield* db.breaker.metrics).failedCalls).toBe(failedAfterFirst)
      // ...one more attempt after it.
      yield* TestClock.adjust("1 second")
      expect((yield* db.breaker.metrics).failedCalls).toBe(failedAfterFirst + 1)
      expect(yield* outbox.depth).toBe(1)

      yield* holder.unsafe("ROLLBACK")
      yield* TestClock.adjust("10 seconds")
      yield* outbox.awaitEmpty
      expect(yield* Effect.provide(rows, context)).toEqual(["o-1"])
      expect(attempts.count).toBe(1)
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox under concurrency", () => {
  it.scoped("the same key written by 10 fibers at once is stored once", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup()
      yield* db.breaker.forceOpen
      const results = yield* Effect.forEach(Array.from({ length: 10 }, () => order(7)), (o) => outbox.write(o), {
        concurrency: "unbounded"
      })
      const queued = results.flatMap((result) => (result._tag === "Queued" ? [result] : []))
      expect(queued.length).toBe(10)
      expect(queued.filter((result) => !result.duplicate).length).toBe(1)
      expect(new Set(queued.map((result) => result.seq)).size).toBe(1)
      expect(yield* outbox.depth).toBe(1)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-7"])
    }).pipe(Effect.provide(quiet)))

  it.scoped("200 writes from 50 fibers across an outage: every acknowledged write lands exactly once", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({ outbox: { replay: { batchSize: 25 } } })
      const acknowledged: Array<string> = []
      const writer = (fiber: number) =>
        Effect.forEach(Array.from({ length: 4 }, (_, i) => order(fiber * 4 + i)), (o) =>
          Effect.tap(outbox.write(o), (result) => Effect.sync(() => acknowledged.push(result.key))))
      const half = Effect.forEach(Array.from({ length: 25 }, (_, f) => f), writer, { concurrency: "unbounded" })
      yield* half
      yield* db.breaker.forceOpen
      const second = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 25 }, (_, f) => f + 25), writer, { concurrency: "unbounded" })
      )
      yield* Fiber.join(second)
      yield* db.breaker.reset
      yield* outbox.awaitEmpty
      const present = yield* rows
      expect(acknowledged.length).toBe(200)
      expect(present.length).toBe(200)
      expect(new Set(present).size).toBe(200)
      expect([...present].sort()).toEqual([...acknowledged].sort())
      expect((yield* outbox.metrics).queued).toBe(100)
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox answers: refused, queued or closed", () => {
  class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { id: Schema.String }) {}
  const driverError = (code: string) =>
    Effect.fail(new SqlError({ cause: Object.assign(new Error(code), { code }), message: code }))

  it.scoped("a write that apply refuses fails with apply's error, is never journaled and never opens the breaker", () =>
    Effect.gen(function*() {
      const { db, outbox, rows } = yield* setup({
        outbox: {
          apply: (o) => (o.cents === 0 ? Effect.fail(new OutOfStock({ id: o.id })) : insertOrder(o))
        } as Partial<OrderOutboxOptions>
      })
      for (let i = 0; i < 6; i++) {
        const error = yield* Effect.flip(outbox.write(order(i, 0)))
        expect(error).toEqual(new OutOfStock({ id: `o-${i}` }))
      }
      expect(yield* db.breaker.state).toBe("Closed")
      expect((yield* db.breaker.metrics).failedCalls).toBe(0)
      expect(yield* db.mode).toBe("ReadWrite")
      expect(yield* outbox.depth).toBe(0)
      expect((yield* outbox.metrics).queued).toBe(0)
      expect(yield* outbox.write(order(9))).toEqual({ _tag: "Written", key: "o-9" })
      expect(yield* rows).toEqual(["o-9"])
    }).pipe(Effect.provide(quiet)))

  it.scoped("only Constraint, Syntax or apply's own error is returned: every other database error is journaled", () =>
    Effect.gen(function*() {
      const codes: Record<string, string> = {
        "53300": "Resources",
        "53100": "Resources",
        "25006": "ReadOnly",
        "SQLITE_READONLY": "ReadOnly",
        "SQLITE_FULL": "Resources",
        "40001": "Busy",
        "57014": "Timeout",
        "08006": "Unavailable",
        "XX000": "Unknown"
      }
      for (const [code, reason] of Object.entries(codes)) {
        const { db, outbox } = yield* setup({
          outbox: { apply: () => driverError(code) } as Partial<OrderOutboxOptions>
        })
        expect(Sql.toDatabaseError("db", { _tag: "SqlError", cause: { code } }).reason).toBe(reason)
        const result = yield* outbox.write(order(1))
        expect(result, code).toMatchObject({ _tag: "Queued", key: "o-1", duplicate: false })
        expect(yield* outbox.depth).toBe(1)
        yield* db.breaker.forceOpen
      }
      const refusals = [["23505", "Constraint"], ["42601", "Syntax"], ["SQLITE_CONSTRAINT", "Constraint"]] as const
      for (const [code, reason] of refusals) {
        const { outbox } = yield* setup({
          outbox: { apply: () => driverError(code!) } as Partial<OrderOutboxOptions>
        })
        const error = yield* Effect.flip(outbox.write(order(1)))
        expect(error, code).toMatchObject({ _tag: "DatabaseError", reason, errorClass: "Fatal" })
        expect(yield* outbox.depth).toBe(0)
      }
    }).pipe(Effect.provide(quiet)))

  it.scoped("write and enqueue after the outbox's scope closed fail at once with JournalError \"closed\"", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir))
      yield* Effect.provide(createOrders, context)
      const scope = yield* Scope.make()
      const outbox = yield* Outbox.make(outboxOptions(dir)).pipe(Effect.provide(context), Scope.extend(scope))
      expect((yield* outbox.write(order(1)))._tag).toBe("Written")
      yield* Scope.close(scope, Exit.void)
      const db = Context.get(context, Sql.ResilientSql)
      const attempts = [
        outbox.write(order(2)),
        outbox.enqueue(order(3)),
        Effect.zipRight(db.breaker.forceOpen, outbox.write(order(4)))
      ]
      for (const attempt of attempts) {
        const fiber = yield* Effect.fork(Effect.flip(attempt))
        yield* TestClock.adjust("1 second")
        const exit = yield* Fiber.poll(fiber)
        expect(exit._tag).toBe("Some")
        const error = yield* Fiber.join(fiber)
        expect(error).toMatchObject({ _tag: "OutboxJournalError", operation: "closed", outbox: "orders" })
      }
      yield* db.breaker.reset
      expect(yield* Effect.provide(rows, context)).toEqual(["o-1"])
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox boundaries", () => {
  it.scoped("capacity is exact: the capacity-th entry is accepted, the next one refused, room comes back by one", () =>
    Effect.gen(function*() {
      for (const capacity of [1, 2, 7]) {
        const { db, outbox, rows } = yield* setup({ outbox: { capacity } })
        yield* db.breaker.forceOpen
        for (let i = 0; i < capacity; i++) {
          expect(yield* outbox.write(order(i))).toMatchObject({ _tag: "Queued", key: `o-${i}`, duplicate: false })
        }
        expect(yield* outbox.depth).toBe(capacity)
        expect(yield* Effect.flip(outbox.enqueue(order(capacity)))).toMatchObject({ _tag: "OutboxFull", capacity })
        expect(yield* Effect.flip(outbox.write(order(capacity + 1)))).toMatchObject({ _tag: "OutboxFull", capacity })
        expect((yield* outbox.metrics)).toMatchObject({ depth: capacity, queued: capacity, refused: 2 })
        yield* db.breaker.reset
        yield* outbox.awaitEmpty
        expect((yield* rows).length).toBe(capacity)
        // Empty again: exactly `capacity` more fit.
        yield* db.breaker.forceOpen
        for (let i = 0; i < capacity; i++) expect((yield* outbox.enqueue(order(100 + i)))._tag).toBe("Queued")
        expect(yield* Effect.flip(outbox.enqueue(order(200)))).toMatchObject({ _tag: "OutboxFull" })
        yield* db.breaker.reset
        yield* outbox.awaitEmpty
      }
    }).pipe(Effect.provide(quiet)))

  it.scoped("one batch of writes arriving at once gets exactly the room left", () =>
    Effect.gen(function*() {
      const { db, outbox } = yield* setup({ outbox: { capacity: 10 } })
      yield* db.breaker.forceOpen
      for (let i = 0; i < 7; i++) yield* outbox.enqueue(order(i))
      const results = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => order(10 + i)),
        (o) => Effect.either(outbox.enqueue(o)),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Either.isRight).length).toBe(3)
      expect(results.filter((result) => Either.isLeft(result) && result.left._tag === "OutboxFull").length).toBe(5)
      expect(yield* outbox.depth).toBe(10)
    }).pipe(Effect.provide(quiet)))

  it.scoped("the bounds of the options are inclusive: capacity 1, batchSize 1 and 1000 are accepted", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir))
      const made = (name: string, options: Partial<OrderOutboxOptions>) =>
        Effect.provide(
          Outbox.make(outboxOptions(dir, { name, path: path.join(dir, `${name}.outbox`), ...options })),
          context
        )
      expect((yield* made("a", { capacity: 1 })).capacity).toBe(1)
      yield* made("b", { replay: { batchSize: 1 } })
      yield* made("c", { replay: { batchSize: 1000 } })
      const refused = (options: Partial<OrderOutboxOptions>) =>
        Effect.map(
          Effect.flip(made("d", options)),
          (error) => (error._tag === "InvalidOptions" ? error.field : error._tag)
        )
      expect(yield* refused({ replay: { batchSize: 1001 } })).toBe("replay.batchSize")
      expect(yield* refused({ replay: { batchSize: 0 } })).toBe("replay.batchSize")
      expect(yield* refused({ capacity: 0 })).toBe("capacity")
      const nothing = yield* Effect.flip(Effect.provide(Outbox.make(null as never), context))
      expect(nothing).toMatchObject({ _tag: "InvalidOptions", field: "options" })
    }).pipe(Effect.provide(quiet)))
})

describe("Outbox logs", () => {
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

  it.scoped("a cause is logged on one line, while the dead letter keeps the whole message", () =>
    Effect.gen(function*() {
      const { db, outbox } = yield* setup({
        outbox: {
          apply: () => Effect.fail(new Error("refused:\n  line two\n  line three"))
        } as unknown as Partial<OrderOutboxOptions>
      })
      yield* db.breaker.forceOpen
      yield* outbox.enqueue(order(1))
      yield* db.breaker.reset
      for (let i = 0; i < 100 && (yield* outbox.depth) > 0; i++) yield* TestClock.adjust("100 millis")
      const [dead] = yield* outbox.deadLetters
      expect(dead).toMatchObject({ key: "o-1", error: "refused:\n  line two\n  line three" })
      const logged = lines.find((line) => line.message.includes("kept as a dead letter"))!
      expect(logged.error).toBe("refused: line two line three")
    }).pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.All)))
})

describe("Outbox replay while half-open", () => {
  it.scoped("batches hold at most 10 entries while the breaker is half-open, full batches once it is closed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const context = yield* build(database(dir, {
        retry: false,
        breaker: { failureThreshold: 1, successThreshold: 2, resetTimeout: "10 seconds" }
      }))
      const db = Context.get(context, Sql.ResilientSql)
      yield* Effect.provide(createOrders, context)
      // Inside each transaction, the keys recorded so far: every entry of a batch sees the
      // whole batch recorded (its keys are inserted before its writes).
      const recordedAtFirst = new Set<number>()
      const outbox = yield* Effect.provide(
        Outbox.make(outboxOptions(dir, {
          apply: (o) =>
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              Effect.zipRight(
                Effect.map(
                  sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM effect_resilience_outbox_applied`,
                  (found) => void recordedAtFirst.add(Number(found[0]!.n))
                ),
                insertOrder(o)
              )),
          replay: { batchSize: 100, schedule: Schedule.spaced("1 second") }
        })),
        context
      )
      // One failure opens the breaker.
      yield* Effect.flip(db.resilient(Effect.fail(Sql.toDatabaseError("db", { code: "ECONNREFUSED" }))))
      expect(yield* db.breaker.state).toBe("Open")
      for (let i = 0; i < 30; i++) yield* outbox.enqueue(order(i))
      yield* TestClock.adjust("10 seconds")
      for (let i = 0; i < 20 && (yield* outbox.depth) > 0; i++) yield* TestClock.adjust("1 second")
      expect(yield* outbox.depth).toBe(0)
      expect(yield* db.breaker.state).toBe("Closed")
      // Two half-open batches of 10 (the two successes that close it), then the rest in one.
      expect([...recordedAtFirst].sort((a, b) => a - b)).toEqual([10, 20, 30])
      expect((yield* Effect.provide(rows, context)).length).toBe(30)
    }).pipe(Effect.provide(quiet)))
})
