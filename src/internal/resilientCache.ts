import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
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
import * as CacheTiers from "./cacheTiers.js"
import { Cache, CacheError } from "./cacheService.js"
import * as HealthCacheCheck from "./healthCacheCheck.js"
import * as HealthRegistry from "./healthRegistry.js"
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
  resetTimeout: Duration.seconds(30),
  // Long enough for a healthy cache on the same host or rack to answer its probe's caller,
  // short enough that the caller of a probe of a frozen cache stays within a p99 of 2 ms.
  probePatience: Duration.millis(1)
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
const fallbackCauses: ReadonlyArray<FallbackCause> = ["CircuitOpen", "ProbePending", "Timeout", "Failure", "Defect"]

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
  readonly probePatience: Duration.Duration
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
    const o = yield* options_.object(moduleName, options, false)
    const name = yield* options_.field(moduleName, "name", o.name, options_.nonEmptyString, defaults.name)
    const timeout = yield* options_.duration(moduleName, "timeout", o.timeout, defaults.timeout, {
      positive: true,
      finite: false
    })
    const probePatience = yield* options_.duration(
      moduleName,
      "probePatience",
      o.probePatience,
      defaults.probePatience,
      { positive: false, finite: false }
    )
    const memory = yield* options_.field(moduleName, "memoryFallback", o.memoryFallback, memoryOption, false)
    return {
      name,
      timeout,
      probePatience,
      memory: memory === false ? undefined : memory === true ? {} : (o.memoryFallback as CacheModule.MemoryOptions)
    }
  })

const makeBreaker = (
  name: string,
  option: RC.Options["breaker"],
  probePatience: Duration.Duration
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
    // Infinite patience is the breaker's own default: the probe's caller waits for it.
    ...(Duration.isFinite(probePatience) ? { probePatience } : {}),
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
  if (error._tag === "CircuitBreakerOpen") return error.reason === "ProbePending" ? "ProbePending" : "CircuitOpen"
  return error.reason === "Timeout" ? "Timeout" : "Failure"
}

/** Counts one update of `metric` with the fiber's ambient metric tags, and answers `value`. */
const countThen = <A>(metric: Metric.Metric.Counter<number>, value: A): Effect.Effect<A> =>
  Effect.withFiberRuntime((fiber) => {
    metric.unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
    return Effect.succeed(value)
  })

const HEALTH_KEY = "effect-resilience:health"

/** @internal */
export const fromCache = (
  primary: CacheModule.CacheService,
  options?: RC.Options
): Effect.Effect<RC.ResilientCacheService, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const validated = yield* validate(options)
    const { name, timeout } = validated
    const breaker = yield* makeBreaker(name, options?.breaker, validated.probePatience)
    // With a health registry in the context: registered, its check the backend's PING when it
    // has one, else a read of the cache itself. Without a registry, the PING runs on its own.
    yield* HealthRegistry.registerIfPresent(
      name,
      HealthRegistry.cacheSource({ breaker }, primary.ping ?? primary.get(HEALTH_KEY))
    )
    if (primary.ping !== undefined) yield* HealthCacheCheck.pingWithoutRegistry(name, primary.ping, breaker)
    const memoryOnly = validated.memory === undefined
      ? undefined
      : yield* CacheModule.makeMemory(validated.memory)
    // A second fallback tier (files) goes behind memory: the two answer as one fallback.
    const tier = yield* CacheTiers.resolve(moduleName, "fallbackCache", options?.fallbackCache)
    const memory: CacheModule.CacheService | undefined = tier === undefined
      ? memoryOnly
      : CacheTiers.make(memoryOnly ?? CacheModule.degraded, tier, timeout)
    const metrics = makeMetrics(name)
    const bounded = Duration.isFinite(timeout)
    // A backend that bounds every single-key command itself (Redis' commandTimeout) within
    // `timeout` needs no race against a timer of ours: that race forks two fibers per call.
    const boundedByBackend = primary.commandTimeout !== undefined &&
      Duration.lessThanOrEqualTo(primary.commandTimeout, timeout)

    const counters = { hits: 0, memoryHits: 0, misses: 0, fallbacks: 0, probeFallbacks: 0 }

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

    const timed = <A>(operation: Operation, key: string, run: Effect.Effect<A, CacheError>) =>
      !bounded || (boundedByBackend && operation !== "invalidate")
        ? run
        : Effect.timeoutFail(run, {
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

    /**
     * Runs one operation of the primary cache through the breaker, bounded by `timeout`;
     * its value goes to `onSuccess`, and any failure, rejection or defect is answered by
     * `fallback`. Interruption of the caller is not swallowed.
     */
    const guarded = <A, B>(
      operation: Operation,
      key: string,
      run: Effect.Effect<A, CacheError>,
      onSuccess: (value: A) => Effect.Effect<B>,
      fallback: Effect.Effect<B>
    ): Effect.Effect<B> =>
      Effect.matchCauseEffect(breaker.protect(timed(operation, key, run)), {
        onFailure: (cause) => {
          if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
          counters.fallbacks++
          const reason = classify(cause)
          if (reason === "ProbePending") counters.probeFallbacks++
          return Effect.zipRight(countThen(metrics.fallback[operation][reason], undefined), fallback)
        },
        onSuccess
      })

    const answered = <A>(value: A): Effect.Effect<A> => Effect.succeed(value)

    const countRead = (source: "primary" | "memory") =>
    (value: Option.Option<string>): Effect.Effect<Option.Option<string>> => {
      if (Option.isNone(value)) {
        counters.misses++
        return countThen(metrics.miss, value)
      }
      counters.hits++
      if (source === "memory") {
        counters.memoryHits++
        return countThen(metrics.memoryHit, value)
      }
      return countThen(metrics.primaryHit, value)
    }
    const countPrimaryRead = countRead("primary")
    const countMemoryRead = countRead("memory")

    if (memory === undefined) {
      const missed = Effect.suspend(() => countPrimaryRead(Option.none()))
      const getPlain = (key: string): Effect.Effect<Option.Option<string>> =>
        guarded("get", key, primary.get(key), countPrimaryRead, missed)
      return {
        name,
        get: getPlain,
        set: (key, value, setOptions) =>
          guarded("set", key, primary.set(key, value, setOptions), answered, Effect.void),
        delete: (key) => guarded("delete", key, primary.delete(key), answered, Effect.succeed(false)),
        invalidate: (prefix) => guarded("invalidate", prefix, primary.invalidate(prefix), answered, Effect.succeed(0)),
        degraded: degradedOf(breaker),
        breaker,
        stats: Effect.sync(() => ({ ...counters }))
      }
    }

    // The memory copy. It never fails but for a `set` with a TTL that is not positive,
    // which the primary refuses too: its failures are not the caller's concern. A copy of an
    // entry keeps the entry's remaining TTL, so the fallback never serves an expired entry.
    const fromMemory = (key: string): Effect.Effect<Option.Option<string>> =>
      Effect.orElseSucceed(memory.get(key), Option.none)

    const dropFromMemory = (key: string): Effect.Effect<void> => Effect.ignore(memory.delete(key))

    const copyToMemory = (key: string, value: string, ttl: Duration.DurationInput | undefined) =>
      Effect.ignore(memory.set(key, value, ttl === undefined ? undefined : { ttl }))

    // Keep the memory copy in step with the primary: a value read is copied with its
    // remaining TTL, a value gone from the primary is gone from memory too.
    const getWithTtl = primary.getWithTtl
    const readPrimary = (key: string): Effect.Effect<Option.Option<string>, CacheError> =>
      getWithTtl !== undefined
        ? Effect.flatMap(getWithTtl(key), (entry) =>
          Option.isNone(entry) || !Duration.greaterThan(entry.value.ttl, Duration.zero)
            ? Effect.as(dropFromMemory(key), Option.none())
            : Effect.as(copyToMemory(key, entry.value.value, entry.value.ttl), Option.some(entry.value.value)))
        // A backend that cannot tell a value's remaining TTL: a read copies nothing, and a
        // copy that no longer matches the primary is dropped rather than served later.
        : Effect.tap(primary.get(key), (value) =>
          Effect.flatMap(fromMemory(key), (copy) =>
            Option.isSome(copy) && (Option.isNone(value) || copy.value !== value.value)
              ? dropFromMemory(key)
              : Effect.void))

    // A `set` without a TTL lives the primary's default TTL there: so does its copy.
    const copyTtl = (setOptions: CacheModule.SetOptions | undefined): Duration.DurationInput | undefined =>
      setOptions?.ttl ?? primary.defaultTtl

    const get = (key: string): Effect.Effect<Option.Option<string>> =>
      guarded("get", key, readPrimary(key), countPrimaryRead, Effect.flatMap(fromMemory(key), countMemoryRead))

    const set = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void> =>
      Effect.zipRight(
        copyToMemory(key, value, copyTtl(setOptions)),
        guarded("set", key, primary.set(key, value, setOptions), answered, Effect.void)
      )

    const delete_ = (key: string): Effect.Effect<boolean> =>
      Effect.zipRight(
        dropFromMemory(key),
        guarded("delete", key, primary.delete(key), answered, Effect.succeed(false))
      )

    const invalidate = (prefix: string): Effect.Effect<number> =>
      Effect.zipRight(
        Effect.ignore(memory.invalidate(prefix)),
        guarded("invalidate", prefix, primary.invalidate(prefix), answered, Effect.succeed(0))
      )

    return {
      name,
      get,
      set,
      delete: delete_,
      invalidate,
      degraded: degradedOf(breaker),
      breaker,
      stats: Effect.sync(() => ({ ...counters }))
    }
  })

const degradedOf = (breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<boolean> =>
  Effect.map(breaker.state, (state) => state !== "Closed" && state !== "ForcedClosed")

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
