import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Schema from "effect/Schema"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CacheAside from "../CacheAside.js"
import type { Cache } from "../Cache.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { InvalidOptions } from "../InvalidOptions.js"
import * as Retry from "../Retry.js"
import type * as Sql from "../Sql.js"
import * as Timeout from "../Timeout.js"
import * as HealthRegistry from "./healthRegistry.js"
import * as options_ from "./options.js"
import { DatabaseError, isHealthFailure, isMapped, isSqlError, NotConnected, toDatabaseError } from "./sqlErrors.js"

const MODULE = "ResilientSql"

/** @internal */
export const TypeId: Sql.TypeId = Symbol.for("effect-resilience/ResilientSql") as Sql.TypeId

/** @internal */
export class ResilientSql
  extends Context.Tag("effect-resilience/ResilientSql")<ResilientSql, Sql.ResilientSqlService>()
{}

/** @internal */
export const readOnlyGauge = Metric.gauge("effect_resilience_sql_read_only", {
  description: "1 while the database is in read-only (degraded) mode, else 0"
})

/** @internal */
export const connectedGauge = Metric.gauge("effect_resilience_sql_connected", {
  description: "1 once the database client has connected, else 0"
})

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

/** @internal */
export const defaultBreakerOptions = {
  failureThreshold: 3,
  successThreshold: 2,
  resetTimeout: Duration.seconds(120)
} as const

/** @internal */
export const defaultTimeout: Duration.Duration = Duration.seconds(30)

/** @internal */
export const defaultHealthCheckInterval: Duration.Duration = Duration.seconds(5)

const defaultRetrySchedules = (): { readonly [K in Retry.RetriedClass]: Schedule.Schedule<unknown> } => ({
  Transient: Retry.backoff({ base: "20 millis", max: "1 second", maxRetries: 3 }),
  Degraded: Retry.backoff({ base: "200 millis", max: "2 seconds", maxRetries: 2 }),
  Persistent: Schedule.stop
})

const defaultConnectSchedule = (): Schedule.Schedule<unknown> =>
  Retry.backoff({ base: "100 millis", max: "5 seconds" })

interface Config {
  readonly name: string
  readonly breaker: CircuitBreaker.CircuitBreaker | undefined
  readonly breakerOptions: Omit<CircuitBreaker.CircuitBreaker.Options, "name">
  readonly timeout: Duration.Duration
  readonly retry: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly healthCheck:
    | {
      readonly interval: Duration.Duration
      readonly timeout: Duration.Duration
      readonly query: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>
    }
    | undefined
  readonly connectSchedule: Schedule.Schedule<unknown, unknown>
}

const selectOne = (sql: SqlClient.SqlClient) => sql`SELECT 1`

// The databases whose call is in progress on this fiber (inherited by the fibers it forks).
const activeCalls = globalValue(
  Symbol.for("effect-resilience/Sql/activeCalls"),
  () => FiberRef.unsafeMake<ReadonlySet<object>>(new Set())
)

// A caller's own error, carried through the breaker as a success.
class CallerFailure {
  constructor(readonly error: unknown) {}
}

// Only errors that say the database is unwell are retried: a caller's own error, a query
// the database refused, an open breaker (failing fast is its point) and a client that has
// not connected yet (the connector retries on its own schedule) fail at once.
const retryClass = (error: unknown): Retry.ErrorClass =>
  error instanceof DatabaseError && error.reason !== "CircuitOpen" && !(error.cause instanceof NotConnected)
    ? error.errorClass
    : "Fatal"

const validate = (input: Sql.Options | undefined): Either.Either<Config, InvalidOptions> =>
  Either.gen(function*() {
    const options = yield* options_.object(MODULE, input, false)
    const name = yield* options_.field(MODULE, "name", options.name, options_.nonEmptyString, "database")
    const timeout = yield* options_.duration(MODULE, "timeout", options.timeout, defaultTimeout, {
      positive: true,
      finite: false
    })
    let breaker: CircuitBreaker.CircuitBreaker | undefined
    let breakerOptions: Omit<CircuitBreaker.CircuitBreaker.Options, "name"> = {
      ...defaultBreakerOptions,
      isFailure: isHealthFailure
    }
    if (options.breaker !== undefined) {
      if (CircuitBreaker.isCircuitBreaker(options.breaker)) {
        breaker = options.breaker
      } else if (typeof options.breaker === "object" && options.breaker !== null) {
        breakerOptions = { ...breakerOptions, ...options.breaker }
      } else {
        return yield* Either.left(
          new InvalidOptions({
            module: MODULE,
            field: "breaker",
            expected: "a CircuitBreaker or CircuitBreaker options",
            received: options.breaker
          })
        )
      }
    }
    let retry: Config["retry"] = (self) => self
    if (options.retry !== false) {
      if (options.retry !== undefined && (typeof options.retry !== "object" || options.retry === null)) {
        return yield* Either.left(
          new InvalidOptions({
            module: MODULE,
            field: "retry",
            expected: "false, or schedules by error class",
            received: options.retry
          })
        )
      }
      const schedules = { ...defaultRetrySchedules(), ...(options.retry ?? {}) }
      try {
        retry = Retry.policy({ classify: retryClass, schedules })
      } catch (error) {
        if (error instanceof InvalidOptions) return yield* Either.left(error)
        throw error
      }
    }
    let healthCheck: Config["healthCheck"]
    if (options.healthCheck !== false) {
      const given = options.healthCheck ?? {}
      const interval = yield* options_.duration(
        MODULE,
        "healthCheck.interval",
        given.interval,
        defaultHealthCheckInterval
      )
      const checkTimeout = yield* options_.duration(
        MODULE,
        "healthCheck.timeout",
        given.timeout,
        Duration.min(timeout, Duration.seconds(5))
      )
      if (given.query !== undefined && typeof given.query !== "function") {
        return yield* Either.left(
          new InvalidOptions({
            module: MODULE,
            field: "healthCheck.query",
            expected: "a function from the client to an effect",
            received: given.query
          })
        )
      }
      healthCheck = { interval, timeout: checkTimeout, query: given.query ?? selectOne }
    }
    return {
      name,
      breaker,
      breakerOptions,
      timeout,
      retry,
      healthCheck,
      connectSchedule: options.connectSchedule ?? defaultConnectSchedule()
    }
  })

// -----------------------------------------------------------------------------
// the service
// -----------------------------------------------------------------------------

interface ClientSource {
  /** The client, or `NotConnected` while there is none. */
  readonly get: Effect.Effect<SqlClient.SqlClient, NotConnected>
  readonly connected: Effect.Effect<boolean>
}

const build = (
  config: Config,
  source: ClientSource
): Effect.Effect<Sql.ResilientSqlService, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const breaker = config.breaker ?? (yield* CircuitBreaker.make({ ...config.breakerOptions, name: config.name }))
    const database = config.name
    const identity = {}
    const toError = (error: unknown) => toDatabaseError(database, error)
    // Disconnected: a query stuck behind a lock is cancelled (and its transaction rolled
    // back) in the background, which needs the very connections that are stuck; the caller
    // gets its timeout on time, with outcome `Unknown`.
    const limit = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Timeout.timeout(Effect.disconnect(self), config.timeout, { operation: `${database} query` })

    // `@effect/sql` turns a failed COMMIT or ROLLBACK into a defect (`orDie`): a connection
    // lost at that moment is an outage like any other (whose commit may have happened).
    const withClient = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.flatMap(source.get, (client) => Effect.provideService(self, SqlClient.SqlClient, client)).pipe(
        Effect.catchAllDefect((defect) => (isSqlError(defect) ? Effect.fail(defect as SqlError) : Effect.die(defect)))
      )

    // The caller's own error inside a call: the database answered, so the breaker records
    // a success, and the error is given back to the caller unchanged after the breaker.
    const guarded = <A, E, R>(self: Effect.Effect<A, E, R>, active: ReadonlySet<object>) =>
      breaker.protect(
        Effect.locally(
          limit(withClient(self)).pipe(
            Effect.catchAll((error) =>
              isMapped(error) ? Effect.fail(error) : Effect.succeed(new CallerFailure(error) as unknown as A)
            )
          ),
          activeCalls,
          new Set(active).add(identity)
        )
      ).pipe(
        Effect.mapError(toError),
        Effect.flatMap((value) =>
          value instanceof CallerFailure ? Effect.fail(value.error as E) : Effect.succeed(value)
        )
      )

    // A query nested in a call of this database on the same fiber (a `Sql.query` inside a
    // reader's loader) is part of that call: no second breaker call, which in HalfOpen
    // would be refused the permit the outer call holds, no second timeout, no retries.
    const nested = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.mapError(withClient(self), (error) => (isMapped(error) ? toError(error) : error))

    const protect = <A, E, R>(
      self: Effect.Effect<A, E, R>
    ): Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>> =>
      Effect.flatMap(
        FiberRef.get(activeCalls),
        (active) => (active.has(identity) ? nested(self) : guarded(self, active))
      ) as any

    const resilient = <A, E, R>(
      self: Effect.Effect<A, E, R>
    ): Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>> =>
      Effect.flatMap(
        FiberRef.get(activeCalls),
        (active) => (active.has(identity) ? nested(self) : config.retry(guarded(self, active)))
      ) as any

    const healthQuery = config.healthCheck?.query ?? selectOne
    const checkTimeout = config.healthCheck?.timeout ?? Duration.min(config.timeout, Duration.seconds(5))
    const healthCheck: Effect.Effect<void, DatabaseError> = source.get.pipe(
      Effect.flatMap((client) => healthQuery(client)),
      Effect.disconnect,
      Timeout.timeout(checkTimeout, { operation: `${database} health check` }),
      Effect.asVoid,
      Effect.mapError(toError)
    )

    // At a health registry's Emergency the whole system is read-only, and so is this database.
    const emergency = yield* HealthRegistry.readOnlyIfPresent
    const mode: Effect.Effect<Sql.Mode> = Effect.zipWith(
      Effect.zip(breaker.state, emergency),
      source.connected,
      ([state, readOnly], connected) =>
        !connected || readOnly || state === "Open" || state === "ForcedOpen" ? "ReadOnly" : "ReadWrite"
    )

    const service: Sql.ResilientSqlService = {
      [TypeId]: TypeId,
      name: database,
      breaker,
      client: Effect.mapError(source.get, toError),
      connected: source.connected,
      mode,
      resilient,
      protect,
      query: (f) => resilient(Effect.flatMap(SqlClient.SqlClient, f)),
      transaction: (self) => resilient(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(self))),
      healthCheck
    }

    const tags = (metric: Metric.Metric.Gauge<number>) => Metric.tagged(metric, "database", database)
    const readOnly = tags(readOnlyGauge)
    const publishMode = Effect.flatMap(mode, (now) => Metric.set(readOnly, now === "ReadOnly" ? 1 : 0))
    yield* publishMode

    // Degraded mode is announced once per transition, not once per call.
    const changes = yield* breaker.subscribe
    yield* changes.pipe(
      Stream.runForEach((change) => {
        const log = change.to === "Open" || change.to === "ForcedOpen"
          ? Effect.logWarning(
            `database "${database}" is read-only: reads are served from the cache, writes go to the outbox`
          )
          : change.to === "Closed" && (change.from === "HalfOpen" || change.from === "ForcedOpen")
          ? Effect.logInfo(`database "${database}" is read-write again`)
          : Effect.void
        return Effect.zipRight(log.pipe(Effect.annotateLogs({ reason: change.reason })), publishMode)
      }),
      Effect.forkScoped
    )

    if (config.healthCheck !== undefined) {
      yield* CircuitBreaker.withHealthCheck(breaker, { check: healthCheck, interval: config.healthCheck.interval })
    }
    yield* HealthRegistry.registerIfPresent(database, HealthRegistry.databaseSource(service))
    return service
  })

const clientInContext: Effect.Effect<ClientSource, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (client) => ({ get: Effect.succeed(client), connected: Effect.succeed(true) })
)

/** @internal */
export const make = (
  options?: Sql.Options
): Effect.Effect<Sql.ResilientSqlService, InvalidOptions, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const source = yield* clientInContext
    yield* Metric.set(Metric.tagged(connectedGauge, "database", config.name), 1)
    return yield* build(config, source)
  })

/** @internal */
export const layer = (options?: Sql.Options): Layer.Layer<ResilientSql, InvalidOptions, SqlClient.SqlClient> =>
  Layer.scoped(ResilientSql, make(options))

// The Cause of a failed build as one value for `NotConnected.lastError`.
const causeValue = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))

/** @internal */
export const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** @internal */
export const makeConnecting = <E, R>(
  client: Layer.Layer<SqlClient.SqlClient, E, R>,
  options?: Sql.Options
): Effect.Effect<Sql.ResilientSqlService, InvalidOptions, R | Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validate(options)
    const scope = yield* Effect.scope
    const current = yield* Ref.make<Option.Option<SqlClient.SqlClient>>(Option.none())
    const lastError = yield* Ref.make<unknown>(undefined)
    const connectedMetric = Metric.tagged(connectedGauge, "database", config.name)
    yield* Metric.set(connectedMetric, 0)

    // One attempt: build the client's layer in a scope of its own, closed again when the
    // build fails (a driver that throws, such as a database file that cannot be opened, is
    // a failure like any other here).
    const attempt = Effect.gen(function*() {
      const attemptScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const exit = yield* Effect.exit(
        Layer.buildWithScope(client, attemptScope).pipe(Effect.catchAllDefect((defect) => Effect.fail(defect)))
      )
      if (Exit.isFailure(exit)) {
        yield* Scope.close(attemptScope, exit)
        const error = causeValue(exit.cause)
        yield* Ref.set(lastError, error)
        return yield* Effect.fail(error)
      }
      yield* Ref.set(current, Option.some(Context.get(exit.value, SqlClient.SqlClient)))
      yield* Ref.set(lastError, undefined)
      yield* Metric.set(connectedMetric, 1)
    })

    const source: ClientSource = {
      get: Effect.flatMap(Ref.get(current), (option) =>
        Option.isSome(option)
          ? Effect.succeed(option.value)
          : Effect.flatMap(Ref.get(lastError), (error) => Effect.fail(new NotConnected({ lastError: error })))),
      connected: Effect.map(Ref.get(current), Option.isSome)
    }

    // Connect now when the database is there, so the first queries find a client; else
    // start degraded and keep trying in the background.
    const first = yield* Effect.exit(attempt)
    if (Exit.isFailure(first)) {
      // Settings that can never work are not an outage: no degraded start, no retries.
      const reason = causeValue(first.cause)
      if (reason instanceof InvalidOptions) return yield* Effect.fail(reason)
      // One line: a stack trace inside a logfmt field is unreadable.
      yield* Effect.logWarning(
        `database "${config.name}" is not reachable: starting read-only, connecting in the background`
      ).pipe(Effect.annotateLogs({ error: oneLine(toDatabaseError(config.name, causeValue(first.cause)).message) }))
      yield* attempt.pipe(
        Effect.retry(config.connectSchedule),
        Effect.zipRight(Effect.logInfo(`database "${config.name}" connected`)),
        Effect.forkScoped
      )
    }
    return yield* build(config, source)
  })

/** @internal */
export const layerConnecting = <E, R>(
  client: Layer.Layer<SqlClient.SqlClient, E, R>,
  options?: Sql.Options
): Layer.Layer<ResilientSql, InvalidOptions, R> => Layer.scoped(ResilientSql, makeConnecting(client, options))

// -----------------------------------------------------------------------------
// pipeable helpers over the service in the context
// -----------------------------------------------------------------------------

/** @internal */
export const resilient = <A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient> | ResilientSql> =>
  Effect.flatMap(ResilientSql, (db) => db.resilient(self))

/** @internal */
export const query = <A, E, R>(
  f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient> | ResilientSql> =>
  Effect.flatMap(ResilientSql, (db) => db.query(f))

/** @internal */
export const withResilience = dual<
  (
    db: Sql.ResilientSqlService
  ) => <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    db: Sql.ResilientSqlService
  ) => Effect.Effect<A, Exclude<E, SqlError> | DatabaseError, Exclude<R, SqlClient.SqlClient>>
>(2, (self, db) => db.resilient(self))

// -----------------------------------------------------------------------------
// degraded reads
// -----------------------------------------------------------------------------

/** @internal */
export const reader: {
  <A, I, RS>(
    options: CacheAside.Options<A, I, RS> & { readonly schema: Schema.Schema<A, I, RS> }
  ): Effect.Effect<Sql.Reader<A, RS>, InvalidOptions, ResilientSql>
  (options: CacheAside.Options<string, string, never>): Effect.Effect<Sql.Reader<string>, InvalidOptions, ResilientSql>
} = <A, RS>(options: CacheAside.Options<A, any, RS>): Effect.Effect<Sql.Reader<A, RS>, InvalidOptions, ResilientSql> =>
  Effect.gen(function*() {
    const db = yield* ResilientSql
    const aside = (yield* CacheAside.make(options as any)) as unknown as CacheAside.CacheAside<A, RS>
    return {
      // A caller's own error is an answer of the database (the row is gone, say), not an
      // outage: it reaches the caller as it is, never replaced by a stale copy. It crosses
      // the cache-aside as a defect (which never serves stale) and is unwrapped after it.
      get: <E, R>(key: string, load: Effect.Effect<A, E, R>) =>
        aside.get(
          key,
          Effect.catchAll(db.resilient(load), (error) =>
            error instanceof DatabaseError ? Effect.fail(error) : Effect.die(new CallerFailure(error)))
        ).pipe(
          Effect.catchSomeDefect((defect) =>
            defect instanceof CallerFailure ? Option.some(Effect.fail(defect.error)) : Option.none()
          )
        ) as Effect.Effect<
          CacheAside.Result<A>,
          Exclude<E, SqlError> | DatabaseError,
          Exclude<R, SqlClient.SqlClient> | RS | Cache
        >
    }
  })
