/**
 * The health registry against a real PostgreSQL that the test setup starts as a throwaway
 * cluster: at Emergency the database is read-only (writes are journaled by its outbox and
 * nothing reaches the server), and read-write again once the Emergency is over. A real
 * outage (`pg_ctl stop -m immediate`) makes the database Down, and the registry's checks
 * bring it back.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Logger, LogLevel, Redacted, Schedule, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as Outbox from "../../src/Outbox.js"
import * as Sql from "../../src/Sql.js"
import * as Pg from "../../src/Sql/Pg.js"
import { type PostgresServer, usePostgresServer } from "./postgresServer.js"

const server = usePostgresServer({ beforeAll, afterAll })

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-pg-health-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const ensureRunning = (pg: PostgresServer) =>
  Effect.addFinalizer(() => (pg.isRunning() ? Effect.void : Effect.promise(() => pg.start())))

const psql = (pg: PostgresServer, sql: string) => Effect.promise(() => pg.psql(sql))

const waitUntil = (condition: Effect.Effect<boolean>, what: string, timeout: Duration.DurationInput = "20 seconds") =>
  condition.pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("20 millis") }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting until ${what}`) })
  )

const Order = Schema.Struct({ id: Schema.String })

/** The database "shop" and its outbox "orders", built over the registry in the context. */
const shop = (pg: PostgresServer, table: string) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const context = yield* Layer.build(
      Pg.layer({ url: Redacted.make(pg.url), connectTimeout: "1 second" }, {
        name: "shop",
        timeout: "2 seconds",
        breaker: { failureThreshold: 2, successThreshold: 1, resetTimeout: "1 minute" },
        healthCheck: false,
        connectSchedule: Schedule.spaced("100 millis")
      })
    )
    const db = Context.get(context, Sql.ResilientSql)
    yield* db.query((sql) => sql.unsafe(`CREATE TABLE ${table} (id TEXT NOT NULL)`))
    const outbox = yield* Outbox.make({
      name: "orders",
      path: path.join(dir, "orders.outbox"),
      schema: Order,
      key: (order) => order.id,
      apply: (order) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO ${sql(table)} (id) VALUES (${order.id})`),
      replay: { schedule: Schedule.spaced("100 millis") }
    }).pipe(Effect.provide(context))
    return { db, outbox }
  })

const withRegistry = <A, E, R>(self: Effect.Effect<A, E, R>, options?: Health.Options) =>
  self.pipe(Effect.provide(Health.layer(options)), quiet)

describe("Health on PostgreSQL", () => {
  it.scopedLive("makes the database read-only at Emergency and read-write again after it", () =>
    withRegistry(Effect.gen(function*() {
      const pg = server()
      yield* ensureRunning(pg)
      const { db, outbox } = yield* shop(pg, "health_emergency")
      const rows = psql(pg, "SELECT string_agg(id, ',' ORDER BY id) FROM health_emergency")
      const a = yield* CircuitBreaker.make({ name: "a", failureThreshold: 1 })
      const b = yield* CircuitBreaker.make({ name: "b", failureThreshold: 1 })
      yield* Health.register({ name: "payments", critical: true, source: Health.fromBreaker(a) })
      yield* Health.register({ name: "ledger", critical: true, source: Health.fromBreaker(b) })
      expect((yield* outbox.write({ id: "o-1" }))._tag).toBe("Written")
      yield* a.forceOpen
      yield* b.forceOpen
      expect(yield* Health.health).toBe("Emergency")
      expect(yield* db.mode).toBe("ReadOnly")
      expect((yield* outbox.write({ id: "o-2" }))._tag).toBe("Queued")
      // The replay runs every 100 millis: nothing reaches the server while read-only.
      yield* Effect.sleep("500 millis")
      expect(yield* rows).toBe("o-1")
      yield* b.reset
      expect(yield* Health.health).toBe("Critical")
      expect(yield* db.mode).toBe("ReadWrite")
      yield* outbox.awaitEmpty.pipe(Effect.timeout("10 seconds"))
      expect(yield* rows).toBe("o-1,o-2")
    }), { critical: ["shop"] }))

  it.scopedLive("rates a stopped server Down (Critical) and its check brings it back, with its MTTR", () =>
    withRegistry(Effect.gen(function*() {
      const pg = server()
      yield* ensureRunning(pg)
      const { db } = yield* shop(pg, "health_outage")
      const dependency = Effect.map(Health.status, (s) => s.dependencies.find((d) => d.name === "shop")!)
      expect((yield* dependency).state).toBe("Operational")
      yield* Effect.promise(() => pg.stop("immediate"))
      // Two failed queries open the breaker: read-only, Down, the system Critical.
      for (let i = 0; i < 2; i++) yield* Effect.either(db.query((sql) => sql`SELECT 1`))
      expect(yield* db.breaker.state).toBe("Open")
      expect([(yield* dependency).state, yield* Health.health]).toEqual(["Down", "Critical"])
      yield* Effect.promise(() => pg.start())
      // The registry's check (SELECT 1 every 200 millis) half-opens the breaker long before its minute.
      yield* waitUntil(Effect.map(db.breaker.state, (state) => state === "HalfOpen"), "the check half-opens")
      yield* db.query((sql) => sql`SELECT 1`)
      const back = yield* dependency
      expect(back.state).toBe("Operational")
      expect(back.recoveries).toBe(1)
      expect(Duration.toMillis(back.mttr!)).toBeGreaterThan(0)
      expect(yield* Health.health).toBe("Healthy")
    }), { critical: ["shop"], checkInterval: "200 millis" }))
})
