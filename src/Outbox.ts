/**
 * A durable, bounded journal of database writes that survives a database outage and the
 * death of the process, replayed in order, exactly once at the database, once the
 * database is back.
 *
 * A write goes to the database directly while it is reachable and nothing is waiting;
 * otherwise it is appended to a local SQLite journal file (WAL, `synchronous = FULL`: on
 * disk before it is acknowledged). A background fiber replays the journal in order as
 * soon as the database's breaker lets calls through, with backoff. Each entry carries an
 * idempotency key recorded, in the same transaction as the write, in a processed-keys
 * table: a write whose answer was lost is never applied twice. When the journal holds
 * `capacity` entries, new writes fail with `OutboxFull`; earlier entries are kept.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as ParseResult from "effect/ParseResult"
import type * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/outbox.js"
import type { OutboxFull } from "./internal/outbox.js"
import type { JournalError } from "./internal/outboxJournal.js"
import type { ResilientSql } from "./internal/sql.js"
import type { DatabaseError } from "./internal/sqlErrors.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

export {
  /**
   * A write refused because the outbox holds `capacity` entries: `outbox` (its name),
   * `capacity` and the write's `key`. Nothing was stored; every earlier entry is kept.
   *
   * @since 0.1.0
   * @category errors
   */
  OutboxFull
} from "./internal/outbox.js"

export {
  /**
   * The journal file failed (`_tag: "OutboxJournalError"`): it could not be opened (a
   * missing directory, another process holding it), written (disk full) or read.
   * `operation` says which; a write that fails with it was not acknowledged.
   *
   * @since 0.1.0
   * @category errors
   */
  JournalError
} from "./internal/outboxJournal.js"

/**
 * A write that is in the journal, waiting for replay: its idempotency `key`, its place
 * `seq` in the journal, and `duplicate` when an entry with this key was already waiting
 * (nothing new was stored).
 *
 * @since 0.1.0
 * @category models
 */
export interface Queued {
  readonly _tag: "Queued"
  readonly key: string
  readonly seq: number
  readonly duplicate: boolean
}

/**
 * A write applied to the database directly.
 *
 * @since 0.1.0
 * @category models
 */
export interface Written {
  readonly _tag: "Written"
  readonly key: string
}

/**
 * What an acknowledged write became: written now, or durably queued.
 *
 * @since 0.1.0
 * @category models
 */
export type WriteResult = Written | Queued

/**
 * A journal entry the database refused during replay (a constraint or syntax error, or a
 * payload that no longer decodes): kept in the journal file, out of the queue.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeadLetter {
  readonly seq: number
  readonly key: string
  /** The payload as stored: the JSON of its encoded form. */
  readonly payload: string
  /** Epoch milliseconds of the `Clock`. */
  readonly enqueuedAt: number
  readonly failedAt: number
  readonly error: string
}

/**
 * A snapshot of an outbox.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metrics {
  /** Entries waiting in the journal. */
  readonly depth: number
  readonly capacity: number
  /** Age of the oldest waiting entry (zero when empty). */
  readonly oldestAge: Duration.Duration
  /** Writes appended to the journal since the outbox was made. */
  readonly queued: number
  /** Writes applied directly, without the journal. */
  readonly written: number
  /** Entries applied by the replay. */
  readonly replayed: number
  /** Writes refused with `OutboxFull`. */
  readonly refused: number
  /** Entries the database refused during replay. */
  readonly deadLettered: number
  /**
   * Writes whose key was found already applied, and so not applied again: a write whose
   * answer was lost (a timeout, a connection cut after the commit) and that was journaled.
   */
  readonly alreadyApplied: number
}

/**
 * Options of one write.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteOptions {
  /** The idempotency key of this write (default: the outbox's `key` function, else random). */
  readonly key?: string | undefined
}

/**
 * An outbox of writes of type `A`, whose `apply` may fail with `E` (besides `SqlError`,
 * which becomes a `DatabaseError`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Outbox<A, E = never> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The journal file. */
  readonly path: string
  readonly capacity: number
  /**
   * Applies the write now when the database is read-write and nothing is waiting,
   * else appends it to the journal. Succeeds only once the write is in the database
   * or on disk (acknowledged). Fails with the database's refusal (`DatabaseError` of class
   * `Fatal`, or `apply`'s own error), `OutboxFull`, or `JournalError`.
   */
  readonly write: (
    payload: A,
    options?: WriteOptions
  ) => Effect.Effect<
    WriteResult,
    OutboxFull | JournalError | DatabaseError | ParseResult.ParseError | E
  >
  /** Appends the write to the journal, whatever the database's state. */
  readonly enqueue: (
    payload: A,
    options?: WriteOptions
  ) => Effect.Effect<Queued, OutboxFull | JournalError | ParseResult.ParseError>
  /** Entries waiting in the journal. */
  readonly depth: Effect.Effect<number>
  readonly metrics: Effect.Effect<Metrics>
  /** Completes when the journal is empty (at once when it is). */
  readonly awaitEmpty: Effect.Effect<void>
  /** The entries the database refused during replay. */
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError>
}

/**
 * Options of an outbox.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A, I = A, E = never> {
  /** Names the outbox in errors, logs, metrics and the processed-keys table (default `"outbox"`). */
  readonly name?: string | undefined
  /**
   * The journal file (SQLite), made when missing. Its directory must exist: an outbox that
   * cannot journal refuses to start (`JournalError`), it never runs without durability.
   */
  readonly path: string
  /** The most entries the journal holds (default 50,000); beyond, writes fail with `OutboxFull`. */
  readonly capacity?: number | undefined
  /** The payload's schema: the journal stores the JSON of its encoded form. */
  readonly schema: Schema.Schema<A, I>
  /**
   * The idempotency key of a payload (an order id, a request id). Without it, each write
   * gets a random key, so a caller who retries a write should pass the same `key`.
   */
  readonly key?: ((payload: A) => string) | undefined
  /**
   * Performs one write with the `SqlClient` in the context. It runs inside a transaction
   * together with the record of its key (see `dedupe`).
   */
  readonly apply: (payload: A, key: string) => Effect.Effect<unknown, E, SqlClient.SqlClient>
  /**
   * `"table"` (default): each applied key is recorded in `dedupeTable` (made when missing)
   * in the same transaction as the write, and a key found there is not applied again:
   * exactly once for any write. `"none"`: `apply` must be idempotent by itself (e.g.
   * `INSERT ... ON CONFLICT (id) DO NOTHING`).
   */
  readonly dedupe?: "table" | "none" | undefined
  /** The processed-keys table (default `"effect_resilience_outbox_applied"`). */
  readonly dedupeTable?: string | undefined
  /**
   * Replay: entries applied per transaction (`batchSize`, 1 to 1000, default 100; at most
   * 10 while the breaker is half-open, so a probe is quick), and the delays between failed
   * attempts (`schedule`, default exponential from 100 millis to 5 seconds; cut short when
   * the breaker closes or half-opens).
   */
  readonly replay?: {
    readonly batchSize?: number | undefined
    readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
  } | undefined
  /** Whether `write` tries the database first (default `true`); `false` journals every write. */
  readonly directWrites?: boolean | undefined
}

/**
 * Makes an outbox over the `ResilientSql` in the context: opens (or makes) its journal,
 * starts its writer and its replay in the scope. Fails with `InvalidOptions` naming the
 * field, or `JournalError` when the journal cannot be opened.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Effect, Schema } from "effect"
 * import * as Outbox from "effect-resilience/Outbox"
 *
 * const Order = Schema.Struct({ id: Schema.String, cents: Schema.Number })
 *
 * const program = Effect.gen(function*() {
 *   const orders = yield* Outbox.make({
 *     name: "orders",
 *     path: "orders.outbox.sqlite",
 *     schema: Order,
 *     key: (order) => order.id,
 *     apply: (order) =>
 *       Effect.flatMap(SqlClient.SqlClient, (sql) =>
 *         sql`INSERT INTO orders (id, cents) VALUES (${order.id}, ${order.cents})`)
 *   })
 *   return yield* orders.write({ id: "o-1", cents: 1999 }) // Written, or Queued while the database is down
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A, I, E = never>(
  options: Options<A, I, E>
) => Effect.Effect<Outbox<A, Exclude<E, SqlError>>, InvalidOptions | JournalError, ResilientSql | Scope.Scope> =
  internal.make

/**
 * `make` as a Layer for a tag of your own (an outbox is generic in its payload).
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Context, Effect, Schema } from "effect"
 * import * as Outbox from "effect-resilience/Outbox"
 *
 * const Order = Schema.Struct({ id: Schema.String })
 * class Orders extends Context.Tag("Orders")<Orders, Outbox.Outbox<typeof Order.Type>>() {}
 *
 * const OrdersLive = Outbox.layer(Orders, {
 *   path: "orders.outbox.sqlite",
 *   schema: Order,
 *   key: (order) => order.id,
 *   apply: (order) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO orders (id) VALUES (${order.id})`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: <Id, A, I, E = never>(
  tag: Context.Tag<Id, Outbox<A, Exclude<E, SqlError>>>,
  options: Options<A, I, E>
) => Layer.Layer<Id, InvalidOptions | JournalError, ResilientSql> = internal.layer

/**
 * The default capacity: 50,000 entries.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCapacity: number = internal.defaultCapacity

/**
 * The metrics of every outbox, tagged `outbox`: the gauges `depth` and `oldestAge`
 * (seconds), and the counters `queued`, `written`, `replayed`, `refused`, `deadLettered`,
 * `alreadyApplied`
 * (`effect_resilience_outbox_*`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics: {
  readonly alreadyApplied: Metric.Metric.Counter<number>
  readonly depth: Metric.Metric.Gauge<number>
  readonly oldestAge: Metric.Metric.Gauge<number>
  readonly queued: Metric.Metric.Counter<number>
  readonly written: Metric.Metric.Counter<number>
  readonly replayed: Metric.Metric.Counter<number>
  readonly refused: Metric.Metric.Counter<number>
  readonly deadLettered: Metric.Metric.Counter<number>
} = internal.metrics
