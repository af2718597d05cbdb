import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as CacheModule from "../Cache.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as RC from "../ResilientCache.js"
import { Cache, CacheError } from "./cacheService.js"
import * as options_ from "./options.js"
import { counter } from "./metric.js"

const moduleName = "ResilientCache"

/** @internal */
export class ResilientCache extends Context.Tag("effect-resilience/ResilientCache")<
  ResilientCache,
  RC.ResilientCacheService
>() {}

/** @internal */
export const defaults = {
  name: "cache",
  timeout: Duration.seconds(5),
  failureThreshold: 5,
  successThreshold: 3,
  resetTimeout: Duration.seconds(30)
} as const

/**
 * A `TooLarge` value or a `Protocol` error (a key of another type, a bad TTL) says
 * nothing about the backend's health: they are served by the fallback, but do not count
 * against the breaker.
 *
 * @internal
 */
export const isBackendFailure = (error: CacheError): boolean =>
  error.reason !== "TooLarge" && error.reason !== "Protocol"

// -----------------------------------------------------------------------------
// Metrics
// -----------------------------------------------------------------------------

/** @internal */
export const hits = counter(
  "effect_resilience_cache_hits_total",
  "Cache reads that found a value, by cache and source (primary, memory)"
)

/** @internal */
export const misses = counter("effect_resilience_cache_misses_total", "Cache reads that found no value, by cache")

/** @internal */
export const fallbacks = counter(
  "effect_resilience_cache_fallbacks_total",
  "Cache operations answered by their fallback, by cache, operation and cause"
)

type Operation = CacheError["operation"]
type FallbackCause = RC.FallbackCause

const operations: ReadonlyArray<Operation> = ["get", "set", "delete", "invalidate"]
const fallbackCauses: ReadonlyArray<FallbackCause> = ["CircuitOpen", "Timeout", "Failure", "Defect"]

/** Metrics with their labels bound once per cache: Effect caches metric hooks by label identity. */
const makeMetrics = (name: string) => {
  const cache = MetricLabel.make("cache", name)
  const fallbackBy = {} as Record<Operation, Record<FallbackCause, Metric.Metric.Counter<number>>>
  for (const operation of operations) {
    const byCause = {} as Record<FallbackCause, Metric.Metric.Counter<number>>
    for (const cause of fallbackCauses) {
      byCause[cause] = Metric.taggedWithLabels(fallbacks, [
        cache,
        MetricLabel.make("operation", operation),
        MetricLabel.make("cause", cause)
      ])
    }
    fallbackBy[operation] = byCause
  }
  return {
    primaryHit: Metric.taggedWithLabels(hits, [cache, MetricLabel.make("source", "primary")]),
    memoryHit: Metric.taggedWithLabels(hits, [cache, MetricLabel.make("source", "memory")]),
    miss: Metric.taggedWithLabels(misses, [cache]),
    fallback: fallbackBy
  }
}

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

interface Validated {
  readonly name: string
  readonly timeout: Duration.Duration
  readonly memory: CacheModule.MemoryOptions | undefined
}

const memoryOption = options_.check(
  Schema.Union(
    Schema.Boolean,
    Schema.Struct({ capacity: Schema.optional(Schema.Unknown), ttl: Schema.optional(Schema.Unknown) })
  ),
  "a boolean, or the options of Cache.makeMemory ({ capacity, ttl })"
)

const validate = (options: RC.Options | undefined): Either.Either<Validated, InvalidOptions> =>
  Either.gen(function*() {
    const o = options ?? {}
    const name = yield* options_.field(moduleName, "name", o.name, options_.nonEmptyString, defaults.name)
    const timeout = yield* options_.duration(moduleName, "timeout", o.timeout, defaults.timeout, {
      positive: true,
      finite: false
    })
    const memory = yield* options_.field(moduleName, "memoryFallback", o.memoryFallback, memoryOption, false)
    return {
      name,
      timeout,
      memory: memory === false ? undefined : memory === true ? {} : (o.memoryFallback as CacheModule.MemoryOptions)
    }
  })

const makeBreaker = (
  name: string,
  option: RC.Options["breaker"]
): Effect.Effect<CircuitBreaker.CircuitBreaker, InvalidOptions> => {
  if (CircuitBreaker.isCircuitBreaker(option)) return Effect.succeed(option)
  if (option !== undefined && (typeof option !== "object" || option === null || Array.isArray(option))) {
    return Effect.fail(
      new InvalidOptions({
        module: moduleName,
        field: "breaker",
        expected: "the options of CircuitBreaker.make (without name), or a CircuitBreaker",
        received: option
      })
    )
  }
  // Fields given as `undefined` keep the cache defaults rather than the breaker's own.
  const given = Object.fromEntries(
    Object.entries(option ?? {}).filter(([, value]) => value !== undefined)
  ) as Omit<CircuitBreaker.CircuitBreaker.Options<CacheError>, "name">
  return CircuitBreaker.make<CacheError>({
    failureThreshold: defaults.failureThreshold,
    successThreshold: defaults.successThreshold,
    ...(given.openSchedule === undefined ? { resetTimeout: defaults.resetTimeout } : {}),
    isFailure: isBackendFailure,
    ...given,
    name
  })
}

// -----------------------------------------------------------------------------
// Service
// -----------------------------------------------------------------------------

const isWrite = (operation: Operation) => operation !== "get"

const classify = (cause: Cause.Cause<CacheError | CircuitBreaker.CircuitBreakerOpen>): FallbackCause => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return "Defect"
  const error = failure.value
  if (error._tag === "CircuitBreakerOpen") return "CircuitOpen"
  return error.reason === "Timeout" ? "Timeout" : "Failure"
}

/** @internal */
export const fromCache = (
  primary: CacheModule.CacheService,
  options?: RC.Options
): Effect.Effect<RC.ResilientCacheService, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const validated = yield* validate(options)
    const { name, timeout } = validated
    const breaker = yield* makeBreaker(name, options?.breaker)
    const memory = validated.memory === undefined
      ? undefined
      : yield* CacheModule.makeMemory(validated.memory)
    const metrics = makeMetrics(name)
    const bounded = Duration.isFinite(timeout)

    const counters = { hits: 0, memoryHits: 0, misses: 0, fallbacks: 0 }

    // Breaker transitions are the moments an operator wants to see: log them.
    yield* breaker.changes.pipe(
      Stream.runForEach((change) => {
        const message = `cache "${name}" breaker ${change.from} -> ${change.to} (${change.reason})`
        return change.to === "Closed" || change.to === "ForcedClosed"
          ? Effect.logInfo(message)
          : Effect.logWarning(message)
      }),
      Effect.forkScoped
    )

    /**
     * Runs one operation of the primary cache through the breaker, bounded by `timeout`;
     * any failure, rejection or defect is answered by `fallback`. Interruption of the
     * caller is not swallowed.
     */
    const guarded = <A>(
      operation: Operation,
      key: string,
      run: Effect.Effect<A, CacheError>,
      fallback: Effect.Effect<A>
    ): Effect.Effect<A> => {
      const timed = bounded
        ? Effect.timeoutFail(run, {
          duration: timeout,
          onTimeout: () =>
            new CacheError({
              operation,
              key,
              reason: "Timeout",
              outcome: isWrite(operation) ? "Unknown" : "NotApplied",
              cause: new Cause.TimeoutException(`no reply within ${Duration.format(timeout)}`)
            })
        })
        : run
      return breaker.protect(timed).pipe(
        Effect.catchAllCause((cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
          counters.fallbacks++
          return Metric.increment(metrics.fallback[operation][classify(cause)]).pipe(Effect.zipRight(fallback))
        })
      )
    }

    const countHit = (source: "primary" | "memory") =>
      Effect.suspend(() => {
        counters.hits++
        if (source === "memory") counters.memoryHits++
        return Metric.increment(source === "memory" ? metrics.memoryHit : metrics.primaryHit)
      })

    const countMiss = Effect.suspend(() => {
      counters.misses++
      return Metric.increment(metrics.miss)
    })

    // The memory cache never fails but for a `set` with a TTL that is not positive, which
    // the primary refuses too: its failures are not the caller's concern.
    const fromMemory = (key: string): Effect.Effect<Option.Option<string>> =>
      memory === undefined ? Effect.succeedNone : Effect.orElseSucceed(memory.get(key), Option.none)

    const toMemory = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void> =>
      memory === undefined ? Effect.void : Effect.ignore(memory.set(key, value, setOptions))

    const dropFromMemory = (key: string): Effect.Effect<void> =>
      memory === undefined ? Effect.void : Effect.ignore(memory.delete(key))

    const get = (key: string): Effect.Effect<Option.Option<string>> =>
      guarded<readonly [Option.Option<string>, "primary" | "memory"]>(
        "get",
        key,
        primary.get(key).pipe(
          // Keep the memory copy in step with the primary: a value read is refreshed, a
          // value gone from the primary is gone from memory too.
          Effect.tap((value) =>
            Option.isSome(value) ? toMemory(key, value.value) : dropFromMemory(key)
          ),
          Effect.map((value) => [value, "primary"] as const)
        ),
        Effect.map(fromMemory(key), (value) => [value, "memory"] as const)
      ).pipe(
        Effect.tap(([value, source]) => Option.isSome(value) ? countHit(source) : countMiss),
        Effect.map(([value]) => value)
      )

    const set = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void> =>
      Effect.zipRight(
        toMemory(key, value, setOptions),
        guarded("set", key, primary.set(key, value, setOptions), Effect.void)
      )

    const delete_ = (key: string): Effect.Effect<boolean> =>
      Effect.zipRight(
        dropFromMemory(key),
        guarded("delete", key, primary.delete(key), Effect.succeed(false))
      )

    const invalidate = (prefix: string): Effect.Effect<number> =>
      Effect.zipRight(
        memory === undefined ? Effect.void : Effect.ignore(memory.invalidate(prefix)),
        guarded("invalidate", prefix, primary.invalidate(prefix), Effect.succeed(0))
      )

    const degraded: Effect.Effect<boolean> = Effect.map(
      breaker.state,
      (state) => state !== "Closed" && state !== "ForcedClosed"
    )

    const stats: Effect.Effect<RC.Stats> = Effect.sync(() => ({ ...counters }))

    return { name, get, set, delete: delete_, invalidate, degraded, breaker, stats }
  })

/** @internal */
export const make = (
  options?: RC.Options
): Effect.Effect<RC.ResilientCacheService, InvalidOptions, Cache | Scope.Scope> =>
  Effect.flatMap(Cache, (primary) => fromCache(primary, options))

/** @internal */
export const asCache = (service: RC.ResilientCacheService): CacheModule.CacheService => ({
  get: service.get,
  set: service.set,
  delete: service.delete,
  invalidate: service.invalidate
})

/** @internal */
export const layer = (options?: RC.Options): Layer.Layer<ResilientCache | Cache, InvalidOptions, Cache> =>
  Layer.scopedContext(
    Effect.map(make(options), (service) =>
      Context.make(ResilientCache, service).pipe(Context.add(Cache, asCache(service))))
  )
