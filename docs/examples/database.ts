/**
 * The examples of docs/database.md. In an application, import the modules from the package:
 * `import * as Sql from "effect-resilience/Sql"`, `import * as Outbox from "effect-resilience/Outbox"`,
 * `import * as Sqlite from "effect-resilience/Sql/Sqlite"`, `import * as Pg from "effect-resilience/Sql/Pg"`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Config, Context, Duration, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import { Cache, CircuitBreaker } from "effect-resilience"
import * as Outbox from "effect-resilience/Outbox"
import * as Sql from "effect-resilience/Sql"
import * as Pg from "effect-resilience/Sql/Pg"
import * as Sqlite from "effect-resilience/Sql/Sqlite"

// --- Layers ------------------------------------------------------------------------------

// The embedded default: a SQLite file.
export const Embedded = Sqlite.layer({ filename: "orders.sqlite", name: "orders" })

// PostgreSQL, chosen by the environment: DATABASE_URL set means PostgreSQL. The URL is
// read redacted: its password never reaches an error, a log line or a span.
export const Production = Pg.layerConfig(
  { url: Config.redacted("DATABASE_URL"), maxConnections: Config.succeed(20) },
  { name: "orders", timeout: "5 seconds" }
)

export const Database = Layer.unwrapEffect(
  Effect.map(
    Config.option(Config.redacted("DATABASE_URL")),
    (url) => (url._tag === "Some" ? Production : Embedded)
  )
)

// Any other `SqlClient` layer, connected in the background when the database is down at start.
export const Custom = Sql.layerConnecting(
  Pg.layerClient({ url: Redacted.make("postgres://app@db.internal:5432/app") }),
  { name: "orders", healthCheck: { interval: "2 seconds" } }
)

// --- Resilient queries ------------------------------------------------------------------

interface OrderRow {
  readonly id: string
  readonly cents: number
}

// In a pipe: the statement runs through the breaker, the timeout and the retries.
export const countOrders = Effect.gen(function*() {
  const db = yield* Sql.ResilientSql
  const sql = yield* db.client
  const [row] = yield* sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM orders`.pipe(db.resilient)
  return Number(row?.n ?? 0)
})

// Or with the client in the context.
export const orderById = (id: string) =>
  Sql.query((sql) => sql<OrderRow>`SELECT id, cents FROM orders WHERE id = ${id}`)

// A transaction is retried as a whole (a serialization failure or a deadlock aborts all of it).
export const transfer = (from: string, to: string, cents: number) =>
  Effect.flatMap(Sql.ResilientSql, (db) =>
    db.transaction(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE accounts SET cents = cents - ${cents} WHERE id = ${from}`
      yield* sql`UPDATE accounts SET cents = cents + ${cents} WHERE id = ${to}`
    })))

// What failed, and what to do about it.
export const explain = orderById("o-1").pipe(
  Effect.catchTag("DatabaseError", (error) => {
    switch (error.reason) {
      case "Constraint":
      case "Syntax":
        return Effect.die(error) // a bug, or bad input: retrying cannot help
      case "CircuitOpen":
        return Effect.succeed([]) // read-only mode: answer without the database
      default:
        return Effect.fail(error) // Unavailable, Busy, Timeout...: already retried
    }
  })
)

// --- Degraded reads ---------------------------------------------------------------------

const Order = Schema.Struct({ id: Schema.String, cents: Schema.Number })

export const readOrder = (id: string) =>
  Effect.gen(function*() {
    const orders = yield* Sql.reader({ ttl: "30 seconds", staleIfError: "1 hour", schema: Order })
    const result = yield* orders.get(
      `order:${id}`,
      Sql.query((sql) => sql<typeof Order.Type>`SELECT id, cents FROM orders WHERE id = ${id}`).pipe(
        Effect.flatMap((rows) => Effect.fromNullable(rows[0]))
      )
    )
    if (result.stale) yield* Effect.logWarning(`order ${id} served from the cache, ${Duration.format(result.age)} old`)
    return result.value
  })

export const ReadsLive = Layer.merge(Database, Cache.layerMemory({ capacity: 10_000, ttl: "1 hour" }))

// --- The outbox -------------------------------------------------------------------------

class Orders extends Context.Tag("Orders")<Orders, Outbox.Outbox<typeof Order.Type>>() {}

export const OrdersLive = Outbox.layer(Orders, {
  name: "orders",
  path: "orders.outbox.sqlite",
  schema: Order,
  // The idempotency key: a client that retries the same order sends the same id.
  key: (order) => order.id,
  apply: (order) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`INSERT INTO orders (id, cents) VALUES (${order.id}, ${order.cents})`)
}).pipe(Layer.provide(Database))

export const placeOrder = (order: typeof Order.Type) =>
  Effect.gen(function*() {
    const orders = yield* Orders
    const result = yield* orders.write(order)
    // "Written": in the database. "Queued": on disk, replayed once the database is back.
    return result._tag
  }).pipe(
    Effect.catchTags({
      OutboxFull: () => Effect.fail("try again later" as const),
      OutboxJournalError: (error) => Effect.die(error)
    })
  )

export const outboxHealth = Effect.gen(function*() {
  const orders = yield* Orders
  const metrics = yield* orders.metrics
  return { depth: metrics.depth, oldestAgeSeconds: metrics.oldestAge, replayed: metrics.replayed }
})

// --- Tuning -----------------------------------------------------------------------------

export const Tuned = Sqlite.layer({
  filename: "orders.sqlite",
  busyTimeout: "50 millis",
  timeout: "2 seconds",
  breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "2 minutes" },
  retry: { Transient: Schedule.recurs(2), Degraded: Schedule.stop },
  healthCheck: { interval: "1 second", timeout: "500 millis" }
})

// A breaker shared with other code (a dashboard, an admin endpoint that forces it open).
export const Shared = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "orders-db", failureThreshold: 3, isFailure: Sql.isHealthFailure })
  return Sqlite.layer({ filename: "orders.sqlite", breaker })
})
