import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as Outbox from "../Outbox.js"
import * as Retry from "../Retry.js"
import * as HealthRegistry from "./healthRegistry.js"
import * as options_ from "./options.js"
import * as Journal from "./outboxJournal.js"
import { ResilientSql } from "./sql.js"
import { DatabaseError } from "./sqlErrors.js"
import { counter } from "./metric.js"

const MODULE = "Outbox"

/** @internal */
export const TypeId: Outbox.TypeId = Symbol.for("effect-resilience/Outbox") as Outbox.TypeId

/** @internal */
export const defaultCapacity = 50_000

const PROBE_BATCH = 10

/** @internal */
export const defaultDedupeTable = "effect_resilience_outbox_applied"

/**
 * The write refused because the outbox holds `capacity` entries.
 *
 * @internal
 */
export class OutboxFull extends Data.TaggedError("OutboxFull")<{
  readonly outbox: string
  readonly capacity: number
  readonly key: string
}> {
  override get message(): string {
    return `outbox "${this.outbox}" is full (${this.capacity} entries): write "${this.key}" refused`
  }
}

/** @internal */
export const metrics = {
  depth: Metric.gauge("effect_resilience_outbox_depth", { description: "Entries waiting in the outbox" }),
  oldestAge: Metric.gauge("effect_resilience_outbox_oldest_age_seconds", {
    description: "Age of the oldest waiting entry, in seconds (0 when empty), as of the last change or read"
  }),
  queued: counter("effect_resilience_outbox_queued_total", "Writes appended to the outbox's journal"),
  written: counter(
    "effect_resilience_outbox_written_total",
    "Writes applied to the database directly, without the journal"
  ),
  replayed: counter("effect_resilience_outbox_replayed_total", "Journal entries applied to the database by the replay"),
  refused: counter("effect_resilience_outbox_refused_total", "Writes refused because the outbox was full"),
  alreadyApplied: counter(
    "effect_resilience_outbox_already_applied_total",
    "Entries found already applied (their key recorded) and not applied again"
  ),
  deadLettered: counter(
    "effect_resilience_outbox_dead_lettered_total",
    "Journal entries the database refused (constraint, syntax), kept as dead letters"
  )
} as const

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

interface Config<A, I, E> {
  readonly name: string
  readonly path: string
  readonly capacity: number
  readonly schema: Schema.Schema<A, I>
  readonly key: ((payload: A) => string) | undefined
  readonly apply: (payload: A, key: string) => Effect.Effect<unknown, E, SqlClient.SqlClient>
  readonly dedupeTable: string | undefined
  readonly batchSize: number
  readonly replaySchedule: Schedule.Schedule<unknown, unknown>
  readonly directWrites: boolean
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

const invalid = (field: string, expected: string, received: unknown) =>
  Either.left(new InvalidOptions({ module: MODULE, field, expected, received }))

const validate = <A, I, E>(options: Outbox.Options<A, I, E>): Either.Either<Config<A, I, E>, InvalidOptions> =>
  Either.gen(function*() {
    if (typeof options !== "object" || options === null) {
      return yield* invalid("options", "an object", options)
    }
    const name = yield* options_.field(MODULE, "name", options.name, options_.nonEmptyString, "outbox")
    const path = yield* options_.field(MODULE, "path", options.path, options_.nonEmptyString, undefined)
    if (path === undefined) return yield* invalid("path", "the path of the journal file", options.path)
    const capacity = yield* options_.field(
      MODULE,
      "capacity",
      options.capacity,
      options_.integerAtLeast(1),
      defaultCapacity
    )
    if (!Schema.isSchema(options.schema)) return yield* invalid("schema", "a Schema", options.schema)
    if (typeof options.apply !== "function") {
      return yield* invalid("apply", "a function (payload, key) => Effect", options.apply)
    }
    if (options.key !== undefined && typeof options.key !== "function") {
      return yield* invalid("key", "a function (payload) => string", options.key)
    }
    const dedupe = options.dedupe ?? "table"
    if (dedupe !== "table" && dedupe !== "none") return yield* invalid("dedupe", "\"table\" or \"none\"", dedupe)
    const table = options.dedupeTable ?? defaultDedupeTable
    if (typeof table !== "string" || !IDENTIFIER.test(table)) {
      return yield* invalid("dedupeTable", "an SQL identifier (letters, digits, _)", options.dedupeTable)
    }
    const batchSize = yield* options_.field(
      MODULE,
      "replay.batchSize",
      options.replay?.batchSize,
      options_.check(Schema.Int.pipe(Schema.between(1, 1000)), "an integer in [1, 1000]"),
      100
    )
    const directWrites = options.directWrites ?? true
    if (typeof directWrites !== "boolean") return yield* invalid("directWrites", "a boolean", directWrites)
    return {
      name,
      path,
      capacity,
      schema: options.schema,
      key: options.key,
      apply: options.apply,
      dedupeTable: dedupe === "table" ? table : undefined,
      batchSize,
      replaySchedule: options.replay?.schedule ?? Retry.backoff({ base: "100 millis", max: "5 seconds" }),
      directWrites
    }
  })

// -----------------------------------------------------------------------------
// the outbox
// -----------------------------------------------------------------------------

interface Request {
  readonly key: string
  readonly payload: string
  readonly deferred: Deferred.Deferred<Outbox.Queued, OutboxFull | Journal.JournalError>
}

interface Counters {
  readonly alreadyApplied: number
  readonly queued: number
  readonly written: number
  readonly replayed: number
  readonly refused: number
  readonly deadLettered: number
}

// A key of 128 random bits from the `Random` service.
const randomKey: Effect.Effect<string> = Effect.map(
  Effect.all([0, 1, 2, 3].map(() => Random.nextIntBetween(0, 0x1_0000_0000))),
  (words) => words.map((word) => word.toString(16).padStart(8, "0")).join("")
)

const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "message" in error) {
    return String((error as { readonly message: unknown }).message)
  }
  return String(error)
}

// For logs, one line: a multi-line message inside a logfmt field is unreadable.
const oneLine = (error: unknown): string => describe(error).replace(/\s*\n\s*/g, " ").trim()

// A failure the database gave as an answer (constraint, syntax) or `apply`'s own error:
// trying again cannot help. Anything else (unreachable, busy, timeout, out of resources,
// read-only, an open breaker) is worth another try later: the journal keeps the write.
const isRefusal = (error: unknown): boolean =>
  !(error instanceof DatabaseError) || error.reason === "Constraint" || error.reason === "Syntax"

/** @internal */
export const make = <A, I, E>(
  options: Outbox.Options<A, I, E>
): Effect.Effect<
  Outbox.Outbox<A, Exclude<E, SqlError>>,
  InvalidOptions | Journal.JournalError,
  ResilientSql | Scope.Scope
> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const db = yield* ResilientSql
    const journal = yield* Journal.open(config.name, config.path)
    const tag = <M extends Metric.Metric<any, any, any>>(metric: M): M =>
      Metric.tagged(metric, "outbox", config.name) as M
    const m = {
      alreadyApplied: tag(metrics.alreadyApplied),
      depth: tag(metrics.depth),
      oldestAge: tag(metrics.oldestAge),
      queued: tag(metrics.queued),
      written: tag(metrics.written),
      replayed: tag(metrics.replayed),
      refused: tag(metrics.refused),
      deadLettered: tag(metrics.deadLettered)
    }
    const json = Schema.parseJson(config.schema)
    const encode = Schema.encode(json)
    const decode = Schema.decode(json)

    const depth = yield* SubscriptionRef.make(yield* journal.count)
    const oldest = yield* Ref.make(yield* journal.oldest)
    const counters = yield* Ref.make<Counters>({
      alreadyApplied: 0,
      queued: 0,
      written: 0,
      replayed: 0,
      refused: 0,
      deadLettered: 0
    })
    const count = (field: keyof Counters, n: number) =>
      Effect.zipRight(
        Ref.update(counters, (c) => ({ ...c, [field]: c[field] + n })),
        Metric.incrementBy(m[field], n)
      )
    // Enqueues accepted but not yet in the journal: a direct write must not overtake them.
    const appending = yield* Ref.make(0)
    const requests = yield* Queue.unbounded<Request>()
    // Once the outbox is closed nothing is offered to the writer any more (it is gone):
    // the flag is read and the request offered under one permit, so none slips in after
    // the last drain.
    const closed = yield* Ref.make(false)
    const gate = yield* Effect.makeSemaphore(1)
    const closedError = () =>
      new Journal.JournalError({
        outbox: config.name,
        path: config.path,
        operation: "closed",
        cause: "the outbox was closed"
      })
    const enqueued = yield* Queue.sliding<void>(1)
    const recovered = yield* Queue.sliding<void>(1)

    const publishGauges = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const n = yield* SubscriptionRef.get(depth)
      const first = yield* Ref.get(oldest)
      yield* Metric.set(m.depth, n)
      yield* Metric.set(m.oldestAge, Option.isSome(first) ? Math.max(0, now - first.value) / 1000 : 0)
    })
    yield* publishGauges

    // -------------------------------------------------------------------------
    // the journal writer: group commit, one transaction (one fsync) per batch
    // -------------------------------------------------------------------------

    // Once a batch is taken, it is written and answered whatever happens: a writer
    // interrupted in between would leave its callers waiting forever.
    const writeBatch = (batch: Iterable<Request>) => Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const room = config.capacity - (yield* SubscriptionRef.get(depth))
      const entries = Array.from(batch, (request) => ({ key: request.key, payload: request.payload }))
      const appended = yield* Effect.either(journal.append(entries, now, room))
      if (Either.isLeft(appended)) {
        for (const request of batch) yield* Deferred.fail(request.deferred, appended.left)
        return
      }
      const added = appended.right.filter((result) => result._tag === "Queued" && !result.duplicate).length
      if (added > 0) {
        yield* SubscriptionRef.update(depth, (n) => n + added)
        yield* Ref.update(oldest, (first) => (Option.isSome(first) ? first : Option.some(now)))
        yield* count("queued", added)
        yield* publishGauges
      }
      let refused = 0
      let index = 0
      for (const request of batch) {
        const result = appended.right[index++]!
        if (result._tag === "Queued") {
          yield* Deferred.succeed(request.deferred, {
            _tag: "Queued" as const,
            key: request.key,
            seq: result.seq,
            duplicate: result.duplicate
          })
        } else {
          refused++
          yield* Deferred.fail(
            request.deferred,
            new OutboxFull({ outbox: config.name, capacity: config.capacity, key: request.key })
          )
        }
      }
      if (refused > 0) {
        yield* count("refused", refused)
        yield* Effect.logWarning(`outbox "${config.name}" is full: ${refused} write(s) refused`)
      }
      if (added > 0) yield* Queue.offer(enqueued, undefined)
    })
    // Only the wait for a batch is interruptible: a batch taken is a batch answered.
    yield* Effect.forkScoped(Effect.forever(
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(Queue.takeBetween(requests, 1, 1024)), (batch) => writeBatch(batch))
      )
    ))
    // Whatever is still waiting when the outbox closes fails: it was not written. Later
    // writes fail at once.
    yield* Effect.addFinalizer(() =>
      gate.withPermits(1)(Ref.set(closed, true)).pipe(
        Effect.zipRight(Queue.takeAll(requests)),
        Effect.flatMap((left) =>
          Effect.forEach(left, (request) => Deferred.fail(request.deferred, closedError()), { discard: true })
        )
      )
    )

    const append = (key: string, payload: A): Effect.Effect<
      Outbox.Queued,
      OutboxFull | Journal.JournalError | ParseResult.ParseError
    > =>
      Effect.flatMap(encode(payload), (encoded) =>
        Effect.acquireUseRelease(
          Ref.update(appending, (n) => n + 1),
          () =>
            Effect.flatMap(
              Deferred.make<Outbox.Queued, OutboxFull | Journal.JournalError>(),
              (deferred) =>
                Effect.zipRight(
                  gate.withPermits(1)(
                    Effect.flatMap(Ref.get(closed), (isClosed) =>
                      isClosed
                        ? Effect.fail(closedError())
                        : Queue.offer(requests, { key, payload: encoded, deferred } satisfies Request))
                  ),
                  Deferred.await(deferred)
                )
            ),
          () => Ref.update(appending, (n) => n - 1)
        ))

    const keyOf = (payload: A, given: string | undefined): Effect.Effect<string> => {
      if (given !== undefined) return Effect.succeed(given)
      if (config.key !== undefined) return Effect.sync(() => config.key!(payload))
      return randomKey
    }

    // -------------------------------------------------------------------------
    // applying writes: exactly once, through the processed-keys table
    // -------------------------------------------------------------------------

    const tableReady = yield* Ref.make(config.dedupeTable === undefined)
    const tableLock = yield* Effect.makeSemaphore(1)
    const createTable = (sql: SqlClient.SqlClient, table: string) =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
        outbox TEXT NOT NULL,
        key TEXT NOT NULL,
        applied_at BIGINT NOT NULL,
        PRIMARY KEY (outbox, key)
      )`.pipe(
        // Another process made it at the same moment (PostgreSQL's catalog race).
        Effect.catchIf(
          (error) => {
            const code = (error.cause as { readonly code?: unknown } | undefined)?.code
            return code === "23505" || code === "42P07"
          },
          () => Effect.void
        )
      )
    const ensureTable = (sql: SqlClient.SqlClient) =>
      Effect.flatMap(Ref.get(tableReady), (ready) =>
        ready || config.dedupeTable === undefined
          ? Effect.void
          : tableLock.withPermits(1)(
            Effect.flatMap(Ref.get(tableReady), (again) =>
              again
                ? Effect.void
                : Effect.zipRight(createTable(sql, config.dedupeTable!), Ref.set(tableReady, true)))
          ))

    // Records the keys of the batch in the processed-keys table, in one statement, and
    // applies, in order, the entries whose key was not there: a key already recorded was
    // applied before (a replay after a write whose answer was lost). The number skipped.
    const applyEntries = (
      sql: SqlClient.SqlClient,
      now: number,
      entries: ReadonlyArray<{ readonly key: string; readonly payload: A }>
    ): Effect.Effect<number, E | SqlError, SqlClient.SqlClient> => {
      const table = config.dedupeTable
      if (table === undefined) {
        return Effect.as(
          Effect.forEach(entries, (entry) => config.apply(entry.payload, entry.key), { discard: true }),
          0
        )
      }
      const records = entries.map((entry) => ({ outbox: config.name, key: entry.key, applied_at: now }))
      return Effect.flatMap(
        sql<{ readonly key: string }>`INSERT INTO ${sql(table)} ${sql.insert(records)}
          ON CONFLICT DO NOTHING
          RETURNING key`,
        (inserted) => {
          const fresh = new Set(inserted.map((row) => row.key))
          return Effect.as(
            Effect.forEach(
              entries,
              (entry) => (fresh.has(entry.key) ? config.apply(entry.payload, entry.key) : Effect.void),
              { discard: true }
            ),
            entries.length - fresh.size
          )
        }
      )
    }

    // One transaction for the whole batch: either every entry is applied (or known to be)
    // with its key recorded, or none is.
    const applyAll = (
      entries: ReadonlyArray<{ readonly key: string; readonly payload: A }>
    ): Effect.Effect<void, Exclude<E, SqlError> | DatabaseError> =>
      (db.protect(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.zipRight(
            ensureTable(sql),
            Effect.flatMap(Clock.currentTimeMillis, (now) => sql.withTransaction(applyEntries(sql, now, entries)))
          ))
      ) as Effect.Effect<number, Exclude<E, SqlError> | DatabaseError>).pipe(
        Effect.flatMap((skipped) => (skipped === 0 ? Effect.void : count("alreadyApplied", skipped)))
      )

    // -------------------------------------------------------------------------
    // writes
    // -------------------------------------------------------------------------

    const enqueue: Outbox.Outbox<A, Exclude<E, SqlError>>["enqueue"] = (payload, writeOptions) =>
      Effect.flatMap(keyOf(payload, writeOptions?.key), (key) => append(key, payload))

    const write: Outbox.Outbox<A, Exclude<E, SqlError>>["write"] = (payload, writeOptions) =>
      Effect.gen(function*() {
        if (yield* Ref.get(closed)) return yield* Effect.fail(closedError())
        const key = yield* keyOf(payload, writeOptions?.key)
        const waiting = (yield* SubscriptionRef.get(depth)) + (yield* Ref.get(appending))
        if (!config.directWrites || waiting > 0 || (yield* db.mode) === "ReadOnly") {
          return yield* append(key, payload)
        }
        const direct = yield* Effect.either(applyAll([{ key, payload }]))
        if (Either.isRight(direct)) {
          yield* count("written", 1)
          return { _tag: "Written", key } as const
        }
        // The database refused it: the caller learns why. Otherwise it may not have been
        // applied (or, after a timeout, may have been): the journal makes sure, once.
        if (isRefusal(direct.left)) return yield* Effect.fail(direct.left)
        return yield* append(key, payload)
      })

    // -------------------------------------------------------------------------
    // replay
    // -------------------------------------------------------------------------

    const removed = (n: number, field: "replayed" | "deadLettered") =>
      Effect.gen(function*() {
        yield* SubscriptionRef.update(depth, (d) => Math.max(0, d - n))
        yield* Ref.set(oldest, yield* journal.oldest)
        yield* count(field, n)
        yield* publishGauges
      })

    const deadLetter = (row: Journal.Row, error: unknown) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* journal.deadLetter(row, now, describe(error))
        yield* removed(1, "deadLettered")
        yield* Effect.logError(
          `outbox "${config.name}": the database refused entry "${row.key}": kept as a dead letter`
        )
          .pipe(Effect.annotateLogs({ error: oneLine(error) }))
      })

    interface Decoded {
      readonly row: Journal.Row
      readonly key: string
      readonly payload: A
    }

    // Decodes the rows; one that no longer decodes can never be applied: a dead letter.
    const decodeRows = (rows: ReadonlyArray<Journal.Row>) =>
      Effect.gen(function*() {
        const decoded: Array<Decoded> = []
        for (const row of rows) {
          const payload = yield* Effect.either(decode(row.payload))
          if (Either.isLeft(payload)) {
            yield* deadLetter(row, payload.left)
            // Later rows wait for the next round: order is kept.
            break
          }
          decoded.push({ row, key: row.key, payload: payload.right })
        }
        return decoded
      })

    type Step = "Idle" | "Progress" | "Backoff"

    // Applies rows one at a time, to find the one the database refuses.
    const isolate = (entries: ReadonlyArray<Decoded>) =>
      Effect.gen(function*() {
        for (const entry of entries) {
          const result = yield* Effect.either(applyAll([entry]))
          if (Either.isRight(result)) {
            yield* journal.remove([entry.row.seq])
            yield* removed(1, "replayed")
          } else if (isRefusal(result.left)) {
            yield* deadLetter(entry.row, result.left)
          } else {
            return "Backoff" as Step
          }
        }
        return "Progress" as Step
      })

    const step: Effect.Effect<Step, Journal.JournalError> = Effect.gen(function*() {
      if ((yield* SubscriptionRef.get(depth)) === 0) return "Idle"
      // Nothing to try while the breaker turns every call away, or while the database is
      // read-only (a health registry's Emergency).
      if (!(yield* db.breaker.isCallPermitted) || (yield* db.mode) === "ReadOnly") return "Backoff"
      // A probe of a half-open breaker is small and quick; full batches once it is closed.
      const size = (yield* db.breaker.state) === "HalfOpen" ? Math.min(config.batchSize, PROBE_BATCH) : config.batchSize
      const rows = yield* journal.read(size)
      if (rows.length === 0) {
        yield* SubscriptionRef.set(depth, yield* journal.count)
        return "Idle"
      }
      const entries = yield* decodeRows(rows)
      if (entries.length === 0) return "Progress"
      const result = yield* Effect.either(applyAll(entries))
      if (Either.isRight(result)) {
        yield* journal.remove(entries.map((entry) => entry.row.seq))
        yield* removed(entries.length, "replayed")
        return "Progress"
      }
      if (isRefusal(result.left)) {
        if (entries.length === 1) {
          yield* deadLetter(entries[0]!.row, result.left)
          return "Progress"
        }
        return yield* isolate(entries)
      }
      yield* Effect.logDebug(`outbox "${config.name}": replay failed, backing off`).pipe(
        Effect.annotateLogs({ error: oneLine(result.left) })
      )
      return "Backoff"
    })

    const replayLoop = Effect.gen(function*() {
      const driver = yield* Schedule.driver(config.replaySchedule)
      // The next delay of the schedule (started over when it ends), cut short when the
      // breaker lets calls through again.
      const backoff = Effect.race(
        Effect.catchAll(driver.next(undefined), () => driver.reset),
        Queue.take(recovered)
      )
      while (true) {
        const outcome = yield* step.pipe(
          Effect.catchAll((error) =>
            Effect.as(
              Effect.logWarning(`outbox "${config.name}": journal error during replay`).pipe(
                Effect.annotateLogs({ error: oneLine(error) })
              ),
              "Backoff" as Step
            )
          )
        )
        if (outcome === "Idle") {
          yield* driver.reset
          yield* Queue.take(enqueued)
        } else if (outcome === "Progress") {
          yield* driver.reset
        } else {
          yield* backoff
        }
      }
    })

    const changes = yield* db.breaker.subscribe
    yield* changes.pipe(
      Stream.filter((change) => change.to !== "Open" && change.to !== "ForcedOpen"),
      Stream.runForEach(() => Queue.offer(recovered, undefined)),
      Effect.forkScoped
    )
    yield* Effect.forkScoped(replayLoop)

    const metricsNow: Effect.Effect<Outbox.Metrics> = Effect.gen(function*() {
      yield* publishGauges
      const now = yield* Clock.currentTimeMillis
      const c = yield* Ref.get(counters)
      const first = yield* Ref.get(oldest)
      return {
        depth: yield* SubscriptionRef.get(depth),
        capacity: config.capacity,
        oldestAge: Option.isSome(first) ? Duration.millis(Math.max(0, now - first.value)) : Duration.zero,
        ...c
      }
    })

    const outbox: Outbox.Outbox<A, Exclude<E, SqlError>> = {
      [TypeId]: TypeId,
      name: config.name,
      path: config.path,
      capacity: config.capacity,
      write,
      enqueue,
      depth: SubscriptionRef.get(depth),
      metrics: metricsNow,
      awaitEmpty: depth.changes.pipe(Stream.takeUntil((n) => n === 0), Stream.runDrain),
      deadLetters: Effect.map(journal.deadLetters, (rows) =>
        rows.map((row): Outbox.DeadLetter => ({
          seq: row.seq,
          key: row.key,
          payload: row.payload,
          enqueuedAt: row.enqueuedAt,
          failedAt: row.failedAt,
          error: row.error
        })))
    }
    yield* HealthRegistry.registerIfPresent(config.name, HealthRegistry.outboxSource(outbox))
    return outbox
  })

/** @internal */
export const layer = <Id, A, I, E>(
  tag: Context.Tag<Id, Outbox.Outbox<A, Exclude<E, SqlError>>>,
  options: Outbox.Options<A, I, E>
): Layer.Layer<Id, InvalidOptions | Journal.JournalError, ResilientSql> => Layer.scoped(tag, make(options))
