import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { LazyArg } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as CacheModule from "../Cache.js"
import type * as Chaos from "../Chaos.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { Cache, CacheError } from "./cacheService.js"
import * as options_ from "./options.js"

const MODULE = "Chaos"

// -----------------------------------------------------------------------------
// pure core
// -----------------------------------------------------------------------------

/**
 * A validated outage window, in milliseconds relative to the anchor (the moment the fault
 * was made).
 *
 * @internal
 */
export interface Window {
  readonly start: number
  readonly duration: number
  readonly every: number | undefined
  readonly mode: "fail" | "hang"
}

/**
 * When `now` falls inside one of the window's occurrences, the time that occurrence ends;
 * otherwise `undefined`.
 *
 * @internal
 */
export const windowEnd = (window: Window, anchor: number, now: number): number | undefined => {
  const elapsed = now - anchor - window.start
  if (elapsed < 0) return undefined
  if (window.every === undefined) {
    return elapsed < window.duration ? anchor + window.start + window.duration : undefined
  }
  const intoPeriod = elapsed % window.every
  return intoPeriod < window.duration ? now - intoPeriod + window.duration : undefined
}

/**
 * The first window active at `now`, with the time it ends.
 *
 * @internal
 */
export const activeWindow = (
  windows: ReadonlyArray<Window>,
  anchor: number,
  now: number
): { readonly window: Window; readonly end: number } | undefined => {
  for (const window of windows) {
    const end = windowEnd(window, anchor, now)
    if (end !== undefined) return { window, end }
  }
  return undefined
}

/** @internal */
export interface Latency {
  readonly min: number
  readonly max: number
}

/** @internal */
export const emptyStats: Chaos.Stats = {
  calls: 0,
  failures: 0,
  timeouts: 0,
  delayed: 0,
  totalDelay: Duration.zero,
  outageFailures: 0,
  outageHangs: 0
}

type Counter = "failures" | "timeouts" | "outageFailures" | "outageHangs"

const count = (stats: Ref.Ref<Chaos.Stats>, counter?: Counter): Effect.Effect<void> =>
  Ref.update(stats, (s) => counter === undefined ? { ...s, calls: s.calls + 1 } : {
    ...s,
    calls: s.calls + 1,
    [counter]: s[counter] + 1
  })

const countDelay = (stats: Ref.Ref<Chaos.Stats>, millis: number): Effect.Effect<void> =>
  Ref.update(stats, (s) => ({
    ...s,
    delayed: s.delayed + 1,
    totalDelay: Duration.sum(s.totalDelay, Duration.millis(millis))
  }))

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

const invalid = (field: string, expected: string, received: unknown) =>
  Either.left(new InvalidOptions({ module: MODULE, field, expected, received }))

const probability = (field: string, value: unknown, fallback: number) =>
  options_.field(MODULE, field, value, options_.fraction({ exclusiveMin: false }), fallback)

// Duration clamps a negative number of milliseconds to zero: refuse it before it does.
const nonNegative = (field: string, value: unknown): Either.Either<number, InvalidOptions> =>
  typeof value === "number" && value < 0
    ? invalid(field, "a finite non-negative duration", value)
    : Either.map(
      options_.duration(MODULE, field, value, Duration.zero, { positive: false, finite: true }),
      Duration.toMillis
    )

/** @internal */
export const validateLatency = (
  field: string,
  value: Duration.DurationInput | readonly [Duration.DurationInput, Duration.DurationInput] | undefined
): Either.Either<Latency, InvalidOptions> =>
  Either.gen(function*() {
    if (value === undefined) return { min: 0, max: 0 }
    if (Array.isArray(value)) {
      if (value.length !== 2) return yield* invalid(field, "a duration or a [min, max] pair of durations", value)
      const min = yield* nonNegative(`${field}[0]`, value[0])
      const max = yield* nonNegative(`${field}[1]`, value[1])
      if (max < min) return yield* invalid(field, "a [min, max] pair with min <= max", value)
      return { min, max }
    }
    const fixed = yield* nonNegative(field, value)
    return { min: fixed, max: fixed }
  })

/** @internal */
export const validateWindow = (
  field: string,
  value: Chaos.OutageWindow | undefined
): Either.Either<Window, InvalidOptions> =>
  Either.gen(function*() {
    if (value === undefined || value === null || typeof value !== "object") {
      return yield* invalid(field, "an object with start and duration", value)
    }
    const start = yield* nonNegative(`${field}.start`, value.start)
    if (value.duration === undefined) return yield* invalid(`${field}.duration`, "a positive duration", undefined)
    const duration = Duration.toMillis(
      yield* options_.duration(MODULE, `${field}.duration`, value.duration, Duration.zero, {
        positive: true,
        finite: false
      })
    )
    const every = value.every === undefined ? undefined : Duration.toMillis(
      yield* options_.duration(MODULE, `${field}.every`, value.every, Duration.zero)
    )
    if (every !== undefined && every <= duration) {
      return yield* invalid(`${field}.every`, "a period longer than the window's duration", value.every)
    }
    const mode = value.mode ?? "fail"
    if (mode !== "fail" && mode !== "hang") return yield* invalid(`${field}.mode`, "\"fail\" or \"hang\"", mode)
    return { start, duration, every, mode }
  })

const generator = (seed: string | number | undefined): Effect.Effect<Random.Random> =>
  seed === undefined ? Effect.random : Effect.succeed(Random.make(seed))

const validateSeed = (seed: unknown): Either.Either<string | number | undefined, InvalidOptions> =>
  seed === undefined || typeof seed === "string" || (typeof seed === "number" && Number.isFinite(seed))
    ? Either.right(seed as string | number | undefined)
    : invalid("seed", "a finite number or a string", seed)

// -----------------------------------------------------------------------------
// general combinators
// -----------------------------------------------------------------------------

const makeFault = <E>(
  wrap: <A, E1, R>(self: Effect.Effect<A, E1, R>) => Effect.Effect<A, E | E1, R>,
  stats: Ref.Ref<Chaos.Stats>
): Chaos.Fault<E> => Object.assign(wrap, { stats: Ref.get(stats) })

/** @internal */
export const fail = <E>(input: Chaos.FailOptions<E>): Effect.Effect<Chaos.Fault<E>, InvalidOptions> =>
  Effect.gen(function*() {
    const options = yield* options_.object(MODULE, input, true)
    const rate = yield* probability("probability", options.probability, Number.NaN)
    if (Number.isNaN(rate)) return yield* invalid("probability", "a number in [0, 1]", undefined)
    if (typeof options.error !== "function") {
      return yield* invalid("error", "a function returning the error", options.error)
    }
    const seed = yield* validateSeed(options.seed)
    const random = yield* generator(seed)
    const stats = yield* Ref.make(emptyStats)
    const error = options.error
    return makeFault<E>(
      <A, E1, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E | E1, R> =>
        Effect.flatMap(random.next, (r): Effect.Effect<A, E | E1, R> =>
          r < rate
            ? Effect.zipRight(count(stats, "failures"), Effect.failSync(error))
            : Effect.zipRight(count(stats), self)),
      stats
    )
  })

/** @internal */
export const delay = (input: Chaos.DelayOptions): Effect.Effect<Chaos.Fault<never>, InvalidOptions> =>
  Effect.gen(function*() {
    const options = yield* options_.object(MODULE, input, true)
    if (options.latency === undefined) return yield* invalid("latency", "a duration or a [min, max] pair", undefined)
    const latency = yield* validateLatency("latency", options.latency)
    const rate = yield* probability("probability", options.probability, 1)
    const seed = yield* validateSeed(options.seed)
    const random = yield* generator(seed)
    const stats = yield* Ref.make(emptyStats)
    const draw = drawLatency(random, latency)
    return makeFault<never>(
      (self) =>
        Effect.gen(function*() {
          const hit = rate >= 1 || (yield* random.next) < rate
          yield* count(stats)
          if (hit) {
            const millis = yield* draw
            yield* countDelay(stats, millis)
            if (millis > 0) yield* Effect.sleep(Duration.millis(millis))
          }
          return yield* self
        }),
      stats
    )
  })

const drawLatency = (random: Random.Random, latency: Latency): Effect.Effect<number> =>
  latency.max === latency.min
    ? Effect.succeed(latency.min)
    // whole milliseconds: the clocks count in them
    : Effect.map(random.next, (r) => Math.round(latency.min + r * (latency.max - latency.min)))

/** @internal */
export const outage: {
  (options: Chaos.OutageOptions.Hang): Effect.Effect<Chaos.Fault<never>, InvalidOptions>
  <E>(options: Chaos.OutageOptions.Fail<E>): Effect.Effect<Chaos.Fault<E>, InvalidOptions>
} = <E>(
  input: Chaos.OutageOptions.Fail<E> | Chaos.OutageOptions.Hang
): Effect.Effect<Chaos.Fault<E>, InvalidOptions> =>
  Effect.gen(function*() {
    const options = yield* options_.object(MODULE, input, true)
    const window = yield* validateWindow("outage", options)
    const error: LazyArg<E> | undefined = "error" in options ? options.error : undefined
    if (window.mode === "fail" && typeof error !== "function") {
      return yield* invalid("error", "a function returning the error (or mode: \"hang\")", error)
    }
    const anchor = yield* Clock.currentTimeMillis
    const stats = yield* Ref.make(emptyStats)
    return makeFault<E>(
      <A, E1, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E | E1, R> =>
        Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | E1, R> => {
          const end = windowEnd(window, anchor, now)
          if (end === undefined) return Effect.zipRight(count(stats), self)
          if (window.mode === "hang") {
            return count(stats, "outageHangs").pipe(
              Effect.zipRight(Effect.sleep(Duration.millis(end - now))),
              Effect.zipRight(self)
            )
          }
          return Effect.zipRight(count(stats, "outageFailures"), Effect.failSync(error!))
        }),
      stats
    )
  })

// -----------------------------------------------------------------------------
// cache
// -----------------------------------------------------------------------------

/** @internal */
export class CacheChaos
  extends Context.Tag("effect-resilience/Chaos/CacheChaos")<CacheChaos, Chaos.CacheChaosService>()
{}

interface FaultConfig {
  readonly failureRate: number
  readonly timeoutRate: number
  readonly timeout: number
  readonly latency: Latency
  readonly outages: ReadonlyArray<Window>
  readonly seed: string | number | undefined
}

const validateFaults = (
  input: Chaos.CacheOptions | Chaos.SqlOptions
): Either.Either<FaultConfig, InvalidOptions> =>
  Either.gen(function*() {
    const options = yield* options_.object(MODULE, input, true)
    const failureRate = yield* probability("failureRate", options.failureRate, 0)
    const timeoutRate = yield* probability("timeoutRate", options.timeoutRate, 0)
    if (failureRate + timeoutRate > 1) {
      return yield* invalid("failureRate, timeoutRate", "rates whose sum is at most 1", failureRate + timeoutRate)
    }
    const timeout = Duration.toMillis(
      yield* options_.duration(MODULE, "timeout", options.timeout, Duration.seconds(1), {
        positive: false,
        finite: true
      })
    )
    const latency = yield* validateLatency("latency", options.latency)
    if (options.outages !== undefined && !Array.isArray(options.outages)) {
      return yield* invalid("outages", "an array of windows", options.outages)
    }
    const outages: Array<Window> = []
    for (const [i, window] of (options.outages ?? []).entries()) {
      outages.push(yield* validateWindow(`outages[${i}]`, window))
    }
    const seed = yield* validateSeed(options.seed)
    return { failureRate, timeoutRate, timeout, latency, outages, seed }
  })

/**
 * What an injector does to one call: fails it at once (`unavailable`), fails it after the
 * timeout (`timeout`, after running it first when `lands` says the reply alone was lost),
 * holds it through a hang window, delays it, or lets it through.
 */
interface Injected<E> {
  readonly unavailable: () => E
  readonly timeout: (landed: boolean) => E
}

const makeInjector = (config: FaultConfig) =>
  Effect.gen(function*() {
    const random = yield* generator(config.seed)
    const anchor = yield* Clock.currentTimeMillis
    const stats = yield* Ref.make(emptyStats)
    const drawDelay = drawLatency(random, config.latency)
    const inject = <A, E, R, F>(
      run: Effect.Effect<A, E, R>,
      errors: Injected<F>,
      // Whether a timed-out call may have been applied (a write whose reply was lost).
      mayLand: boolean
    ): Effect.Effect<A, E | F, R> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const active = activeWindow(config.outages, anchor, now)
        if (active !== undefined) {
          if (active.window.mode === "fail") {
            yield* count(stats, "outageFailures")
            return yield* Effect.fail(errors.unavailable())
          }
          // A frozen server: the call waits for the window to end, then runs.
          yield* count(stats, "outageHangs")
          yield* Effect.sleep(Duration.millis(active.end - now))
          return yield* run
        }
        // A fixed number of draws per call keeps the fault sequence a function of the seed.
        const r = config.failureRate > 0 || config.timeoutRate > 0 ? yield* random.next : 1
        if (r < config.failureRate) {
          yield* count(stats, "failures")
          return yield* Effect.fail(errors.unavailable())
        }
        if (r < config.failureRate + config.timeoutRate) {
          yield* count(stats, "timeouts")
          if (config.timeout > 0) yield* Effect.sleep(Duration.millis(config.timeout))
          if (!mayLand) return yield* Effect.fail(errors.timeout(false))
          // The reply was lost, not necessarily the command: half the timed-out writes land.
          const landed = (yield* random.next) < 0.5
          if (landed) yield* Effect.ignore(run)
          return yield* Effect.fail(errors.timeout(true))
        }
        yield* count(stats)
        const millis = yield* drawDelay
        if (millis > 0) {
          yield* countDelay(stats, millis)
          yield* Effect.sleep(Duration.millis(millis))
        }
        return yield* run
      })
    const handle = {
      stats: Ref.get(stats),
      outageActive: Effect.map(
        Clock.currentTimeMillis,
        (now) => activeWindow(config.outages, anchor, now) !== undefined
      )
    }
    return { inject, handle }
  })

const isWrite = (operation: CacheError["operation"]) => operation !== "get"

/** @internal */
export const makeCache = (
  cache: CacheModule.CacheService,
  options: Chaos.CacheOptions
): Effect.Effect<readonly [CacheModule.CacheService, Chaos.CacheChaosService], InvalidOptions> =>
  Effect.gen(function*() {
    const config = yield* validateFaults(options)
    const { handle, inject: injectAny } = yield* makeInjector(config)
    const inject = <A>(
      operation: CacheError["operation"],
      key: string,
      run: Effect.Effect<A, CacheError>
    ): Effect.Effect<A, CacheError> =>
      injectAny(run, {
        unavailable: () => new CacheError({ operation, key, reason: "Unavailable", outcome: "NotApplied" }),
        timeout: (mayHaveLanded) =>
          new CacheError({ operation, key, reason: "Timeout", outcome: mayHaveLanded ? "Unknown" : "NotApplied" })
      }, isWrite(operation))

    const service: CacheModule.CacheService = {
      get: (key) => inject("get", key, Effect.suspend(() => cache.get(key))),
      getWithTtl: cache.getWithTtl && ((key) => inject("get", key, Effect.suspend(() => cache.getWithTtl!(key)))),
      defaultTtl: cache.defaultTtl,
      set: (key, value, setOptions) => inject("set", key, Effect.suspend(() => cache.set(key, value, setOptions))),
      delete: (key) => inject("delete", key, Effect.suspend(() => cache.delete(key))),
      invalidate: (prefix) => inject("invalidate", prefix, Effect.suspend(() => cache.invalidate(prefix)))
    }
    return [service, handle] as const
  })

/** @internal */
export const layerCache = (
  options: Chaos.CacheOptions
): Layer.Layer<Cache | CacheChaos, InvalidOptions, Cache> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const [service, chaos] = yield* makeCache(yield* Cache, options)
      return Context.make(Cache, service).pipe(Context.add(CacheChaos, chaos))
    })
  )

// -----------------------------------------------------------------------------
// SQL
// -----------------------------------------------------------------------------

// `@effect/sql` is known here by its service key and its error's tag only: the core entry
// point loads `effect` alone, and a user of `layerSql` has `@effect/sql` anyway.
const SqlClientTag = Context.GenericTag<SqlClient.SqlClient>("@effect/sql/SqlClient")

const SqlErrorTypeId = Symbol.for("@effect/sql/SqlError")

/**
 * An injected failure of a statement, tagged `"SqlError"` like the driver's own, with
 * `cause` carrying the code a real driver gives (`ECONNREFUSED`, `57014`).
 *
 * @internal
 */
export class InjectedSqlError extends Data.TaggedError("SqlError")<{
  readonly cause: unknown
  readonly message: string
}> {
  readonly [SqlErrorTypeId] = SqlErrorTypeId
}

/** @internal */
export class SqlChaos extends Context.Tag("effect-resilience/Chaos/SqlChaos")<SqlChaos, Chaos.SqlChaosService>() {}

const refused = (): InjectedSqlError =>
  new InjectedSqlError({
    cause: Object.assign(new Error("connect ECONNREFUSED (injected by Chaos.layerSql)"), { code: "ECONNREFUSED" }),
    message: "Failed to execute statement"
  })

const cancelled = (): InjectedSqlError =>
  new InjectedSqlError({
    cause: Object.assign(new Error("canceling statement due to statement timeout (injected by Chaos.layerSql)"), {
      code: "57014"
    }),
    message: "Failed to execute statement"
  })

const sqlErrors: Injected<InjectedSqlError> = { unavailable: refused, timeout: cancelled }

type Inject = <A, E, R>(run: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InjectedSqlError, R>

// A statement behind the fault: the same object for everything but running it (`commit`,
// and the `raw`, `values`, `unprepared`, `withoutTransform` and `stream` variants), so it
// still compiles, nests in other statements and pipes like the original.
const wrapStatement = (statement: object, inject: Inject): object =>
  new Proxy(statement, {
    get(target, property, receiver) {
      switch (property) {
        case "commit":
          return () => inject((target as { commit(): Effect.Effect<unknown, unknown> }).commit())
        case "raw":
        case "values":
        case "unprepared":
        case "withoutTransform":
          return inject(Reflect.get(target, property) as Effect.Effect<unknown, unknown>)
        case "stream":
          return Stream.unwrap(inject(Effect.succeed(Reflect.get(target, property) as Stream.Stream<unknown, unknown>)))
      }
      return Reflect.get(target, property, receiver)
    }
  })

const wrapClient = (client: SqlClient.SqlClient, inject: Inject): SqlClient.SqlClient => {
  const statementOr = (value: unknown) =>
    typeof value === "object" && value !== null && Effect.isEffect(value) ? wrapStatement(value, inject) : value
  const wrapped: SqlClient.SqlClient = new Proxy(client, {
    apply(target, thisArg, args) {
      return statementOr(Reflect.apply(target, thisArg, args))
    },
    get(target, property) {
      switch (property) {
        case "unsafe":
          return (sql: string, params?: ReadonlyArray<unknown>) => statementOr(target.unsafe(sql, params))
        case "safe":
          return wrapped
        case "withoutTransforms":
          return () => wrapClient(target.withoutTransforms(), inject)
        case "reserve":
          return inject(target.reserve)
      }
      return Reflect.get(target, property, target)
    }
  })
  return wrapped
}

/** @internal */
export const makeSql = (
  client: SqlClient.SqlClient,
  options: Chaos.SqlOptions
): Effect.Effect<readonly [SqlClient.SqlClient, Chaos.SqlChaosService], InvalidOptions> =>
  Effect.gen(function*() {
    const config = yield* validateFaults(options)
    const { handle, inject } = yield* makeInjector(config)
    return [wrapClient(client, (run) => inject(run, sqlErrors, true)), handle] as const
  })

/** @internal */
export const layerSql = (
  options: Chaos.SqlOptions
): Layer.Layer<SqlClient.SqlClient | SqlChaos, InvalidOptions, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const [client, chaos] = yield* makeSql(yield* SqlClientTag, options)
      return Context.make(SqlClientTag, client).pipe(Context.add(SqlChaos, chaos))
    })
  )
