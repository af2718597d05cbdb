import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { globalValue } from "effect/GlobalValue"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as CacheModule from "../Cache.js"
import type * as CacheAside from "../CacheAside.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { Cache } from "./cacheService.js"
import * as options_ from "./options.js"
import { decodeFailures } from "./typedCache.js"
import { counter } from "./metric.js"

const MODULE = "CacheAside"

/** @internal */
export const defaultStaleIfError: Duration.Duration = Duration.hours(1)

/** @internal */
export const metrics = {
  hits: counter("effect_resilience_cache_aside_hits_total", "Reads answered by a fresh cached value"),
  misses: counter("effect_resilience_cache_aside_misses_total", "Reads that found no fresh cached value"),
  loads: counter("effect_resilience_cache_aside_loads_total", "Runs of the loader (one per single-flight group)"),
  loadFailures: counter("effect_resilience_cache_aside_load_failures_total", "Runs of the loader that failed"),
  staleServed: counter(
    "effect_resilience_cache_aside_stale_served_total",
    "Failed loads answered with a stale cached value"
  ),
  cacheErrors: counter(
    "effect_resilience_cache_aside_cache_errors_total",
    "Cache reads and writes that failed and were treated as misses or skipped"
  )
} as const

interface Stored<A> {
  readonly value: A
  readonly storedAt: number
}

interface Config<A, R> {
  readonly ttl: number
  readonly staleIfError: number
  readonly decode: (payload: string) => Effect.Effect<Stored<A>, ParseResult.ParseError, R>
  readonly encode: (stored: Stored<A>) => Effect.Effect<string, ParseResult.ParseError, R>
}

// -----------------------------------------------------------------------------
// single flight
// -----------------------------------------------------------------------------

interface Flight {
  readonly deferred: Deferred.Deferred<unknown, unknown>
  waiters: number
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

// In-flight loads per cache service and key. Weak, so a cache that is dropped takes its
// table with it.
const registry = globalValue(
  Symbol.for("effect-resilience/CacheAside/flights"),
  () => new WeakMap<CacheModule.CacheService, Map<string, Flight>>()
)

const flightsOf = (cache: CacheModule.CacheService): Map<string, Flight> => {
  let flights = registry.get(cache)
  if (flights === undefined) {
    flights = new Map()
    registry.set(cache, flights)
  }
  return flights
}

/**
 * Runs `work` once per key at a time: callers that arrive while it runs await the same
 * exit. The work runs in its own fiber, so an interrupted caller (even the one that
 * started it) does not take it down while others wait; it is interrupted only when every
 * caller has gone.
 *
 * @internal
 */
export const singleFlight = <A, E, R>(
  cache: CacheModule.CacheService,
  key: string,
  work: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      Effect.fiberIdWith((fiberId) =>
        Effect.sync(() => {
          // Look-up, creation and registration in one synchronous step: no other fiber
          // can start a second load for the key in between.
          const flights = flightsOf(cache)
          const existing = flights.get(key)
          if (existing !== undefined) {
            existing.waiters++
            return [existing, false] as const
          }
          const flight: Flight = { deferred: Deferred.unsafeMake(fiberId), waiters: 1, fiber: undefined }
          flights.set(key, flight)
          return [flight, true] as const
        })
      ),
      ([flight, leader]) => {
        const leave = Effect.suspend(() => {
          flight.waiters--
          if (flight.waiters > 0 || flight.fiber === undefined) return Effect.void
          const flights = flightsOf(cache)
          if (flights.get(key) === flight) flights.delete(key)
          return Fiber.interruptFork(flight.fiber)
        })
        const start = leader
          ? Effect.tap(
            // Forked fibers inherit the mask: the load must stay interruptible so that the
            // last caller to leave can stop it.
            Effect.forkDaemon(
              Effect.onExit(Effect.interruptible(work), (exit) =>
                Effect.suspend(() => {
                  const flights = flightsOf(cache)
                  if (flights.get(key) === flight) flights.delete(key)
                  return Deferred.done(flight.deferred as Deferred.Deferred<A, E>, exit)
                }))
            ),
            (fiber) =>
              Effect.sync(() => {
                flight.fiber = fiber as Fiber.RuntimeFiber<unknown, unknown>
              })
          )
          : Effect.void
        return Effect.zipRight(
          start,
          restore(Deferred.await(flight.deferred as Deferred.Deferred<A, E>)).pipe(Effect.onInterrupt(() => leave))
        )
      }
    )
  )

/** @internal */
export const inFlight = (cache: CacheModule.CacheService): number => registry.get(cache)?.size ?? 0

// -----------------------------------------------------------------------------
// read-through
// -----------------------------------------------------------------------------

const validate = <A, R>(
  options: CacheAside.Options<A, any, R> | CacheAside.Options<string, string, never>
): Either.Either<Config<A, R>, InvalidOptions> =>
  Either.gen(function*() {
    if (options === undefined || options === null || typeof options !== "object") {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "options", expected: "an object with ttl", received: options })
      )
    }
    if (options.ttl === undefined) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "ttl",
          expected: "a finite positive duration",
          received: undefined
        })
      )
    }
    const ttl = yield* options_.duration(MODULE, "ttl", options.ttl, Duration.zero)
    const staleIfError = yield* options_.duration(MODULE, "staleIfError", options.staleIfError, defaultStaleIfError, {
      positive: false,
      finite: true
    })
    const schema = options.schema ?? Schema.String
    if (!Schema.isSchema(schema)) {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "schema", expected: "a Schema", received: schema })
      )
    }
    const envelope = Schema.parseJson(
      Schema.Struct({ storedAt: Schema.Number, value: schema as Schema.Schema<A, any, R> })
    )
    return {
      ttl: Duration.toMillis(ttl),
      staleIfError: Duration.toMillis(staleIfError),
      decode: Schema.decode(envelope),
      encode: Schema.encode(envelope)
    }
  })

const read = <A, R>(
  cache: CacheModule.CacheService,
  config: Config<A, R>,
  key: string
): Effect.Effect<Option.Option<Stored<A>>, never, R> =>
  cache.get(key).pipe(
    Effect.catchAll((error) =>
      Metric.increment(metrics.cacheErrors).pipe(
        // Debug, not Warning: during an outage every read would log; the metric counts them.
        Effect.zipRight(Effect.logDebug("cache read failed: treated as a miss", error)),
        Effect.annotateLogs({ key }),
        Effect.as(Option.none<string>())
      )
    ),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (payload) =>
        config.decode(payload).pipe(
          Effect.asSome,
          Effect.catchTag("ParseError", (error) =>
            Metric.increment(decodeFailures).pipe(
              Effect.zipRight(Effect.logWarning("cached payload does not decode: treated as a miss")),
              Effect.annotateLogs({ key, error: ParseResult.TreeFormatter.formatErrorSync(error) }),
              Effect.as(Option.none<Stored<A>>())
            ))
        )
    }))
  )

const write = <A, R>(
  cache: CacheModule.CacheService,
  config: Config<A, R>,
  key: string,
  stored: Stored<A>
): Effect.Effect<void, never, R> =>
  config.encode(stored).pipe(
    Effect.flatMap((payload) =>
      cache.set(key, payload, { ttl: Duration.millis(config.ttl + config.staleIfError) }).pipe(
        Effect.catchAll((error) =>
          Metric.increment(metrics.cacheErrors).pipe(
            Effect.zipRight(Effect.logDebug("cache write failed: the loaded value is not cached", error))
          )
        )
      )
    ),
    Effect.catchTag("ParseError", (error) =>
      Effect.logWarning("loaded value does not encode with the schema: not cached").pipe(
        Effect.annotateLogs({ error: ParseResult.TreeFormatter.formatErrorSync(error) })
      )),
    Effect.annotateLogs({ key })
  )

const loadThrough = <A, RS, E, R>(
  cache: CacheModule.CacheService,
  config: Config<A, RS>,
  key: string,
  load: Effect.Effect<A, E, R>,
  previous: Option.Option<Stored<A>>
): Effect.Effect<CacheAside.Result<A>, E, R | RS> =>
  Effect.zipRight(
    Metric.increment(metrics.loads),
    Effect.flatMap(Effect.exit(load), (exit) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<CacheAside.Result<A>, E, R | RS> => {
        if (Exit.isSuccess(exit)) {
          return Effect.as(write(cache, config, key, { value: exit.value, storedAt: now }), {
            value: exit.value,
            stale: false,
            age: Duration.zero,
            source: "Load" as const
          })
        }
        const failed = Metric.increment(metrics.loadFailures)
        const age = Option.isSome(previous) ? Math.max(0, now - previous.value.storedAt) : Number.POSITIVE_INFINITY
        // Stale-if-error: a copy whose staleness (age beyond ttl) is under staleIfError
        // answers a failed load; defects and interruptions are not load errors.
        if (
          Option.isNone(previous) || Option.isNone(Cause.failureOption(exit.cause)) ||
          age >= config.ttl + config.staleIfError
        ) {
          return Effect.zipRight(failed, Effect.failCause(exit.cause))
        }
        const result: CacheAside.Result<A> = {
          value: previous.value.value,
          stale: true,
          age: Duration.millis(age),
          source: "Stale"
        }
        return failed.pipe(
          Effect.zipRight(Metric.increment(metrics.staleServed)),
          Effect.zipRight(
            Effect.logWarning("load failed: serving a stale cached value", exit.cause).pipe(
              Effect.annotateLogs({ key, age: Duration.format(result.age) })
            )
          ),
          Effect.as(result)
        )
      }))
  )

/** @internal */
export const make: {
  <A, I, R>(
    options: CacheAside.Options<A, I, R> & { readonly schema: Schema.Schema<A, I, R> }
  ): Effect.Effect<CacheAside.CacheAside<A, R>, InvalidOptions>
  (options: CacheAside.Options<string, string, never>): Effect.Effect<CacheAside.CacheAside<string>, InvalidOptions>
} = <A, R>(
  options: CacheAside.Options<A, any, R> | CacheAside.Options<string, string, never>
): Effect.Effect<CacheAside.CacheAside<A, R>, InvalidOptions> =>
  Effect.map(validate<A, R>(options), (config): CacheAside.CacheAside<A, R> => ({
    get: <E, R2>(key: string, load: Effect.Effect<A, E, R2>) =>
      Effect.gen(function*() {
        const cache = yield* Cache
        const stored = yield* read(cache, config, key)
        if (Option.isSome(stored)) {
          const now = yield* Clock.currentTimeMillis
          const age = Math.max(0, now - stored.value.storedAt)
          if (age < config.ttl) {
            yield* Metric.increment(metrics.hits)
            return { value: stored.value.value, stale: false, age: Duration.millis(age), source: "Cache" as const }
          }
        }
        yield* Metric.increment(metrics.misses)
        return yield* singleFlight(cache, key, loadThrough(cache, config, key, load, stored))
      })
  }))

/** @internal */
export const get: {
  <A, I, RS, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    options: CacheAside.Options<A, I, RS> & { readonly schema: Schema.Schema<A, I, RS> }
  ): Effect.Effect<CacheAside.Result<A>, E | InvalidOptions, R | RS | Cache>
  <E, R>(
    key: string,
    load: Effect.Effect<string, E, R>,
    options: CacheAside.Options<string, string, never>
  ): Effect.Effect<CacheAside.Result<string>, E | InvalidOptions, R | Cache>
} = <A, E, R>(
  key: string,
  load: Effect.Effect<A, E, R>,
  options: CacheAside.Options<A, any, any>
): Effect.Effect<CacheAside.Result<A>, E | InvalidOptions, any> =>
  Effect.flatMap(make(options as CacheAside.Options<A, any, any> & { schema: Schema.Schema<A, any, any> }), (aside) =>
    aside.get(key, load))
