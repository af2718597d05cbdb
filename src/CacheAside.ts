/**
 * Read-through caching over the `Cache` service, with single-flight loads and
 * stale-if-error.
 *
 * A read returns the cached value while it is fresh (younger than `ttl`). Otherwise it
 * runs `load` (once per key, however many callers miss at the same time), stores the
 * result with its write time, and returns it. When `load` fails and the cached copy is
 * stale by less than `staleIfError`, that copy is returned, marked stale, with a warning.
 * Cache failures never fail a read: a failed cache read is a miss, a failed cache write
 * is skipped.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as Schema from "effect/Schema"
import type { Cache } from "./Cache.js"
import * as internal from "./internal/cacheAside.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * The answer of a read.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result<A> {
  readonly value: A
  /** `true` when `load` failed and this is a cached copy older than `ttl`. */
  readonly stale: boolean
  /** Time since the value was loaded (zero for a value loaded by this read). */
  readonly age: Duration.Duration
  /** Where the value came from: a fresh cached copy, `load`, or a stale cached copy. */
  readonly source: "Cache" | "Load" | "Stale"
}

/**
 * Options of a read-through cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A = string, I = string, R = never> {
  /** How long a stored value is served without calling `load`. Required. */
  readonly ttl: Duration.DurationInput
  /**
   * How long past its `ttl` a stored value may still answer a failed `load`, marked stale
   * (default 1 hour; 0 disables). Entries are kept in the cache for `ttl + staleIfError`.
   */
  readonly staleIfError?: Duration.DurationInput | undefined
  /**
   * The schema of the values; they are stored as JSON of their encoded form. Without it,
   * values are strings. A stored payload that does not decode is a miss.
   */
  readonly schema?: Schema.Schema<A, I, R> | undefined
}

/**
 * A read-through cache with validated options.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheAside<A, R = never> {
  /**
   * The value under `key`: cached and fresh, else loaded by `load` (single-flight) and
   * stored, else (when `load` fails) a stale cached copy within `staleIfError`; otherwise
   * the failure of `load`.
   */
  readonly get: <E, R2>(key: string, load: Effect.Effect<A, E, R2>) => Effect.Effect<Result<A>, E, R | R2 | Cache>
}

/**
 * Makes a read-through cache; the options are validated once (`InvalidOptions` names the
 * field). Single-flight groups concurrent misses of one key on one `Cache` service, so
 * provide the `Cache` layer once (not per read).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cache, CacheAside } from "effect-resilience"
 *
 * const Price = Schema.Struct({ sku: Schema.String, cents: Schema.Number })
 * const fetchPrice = (sku: string) => Effect.succeed({ sku, cents: 1999 })
 *
 * const program = Effect.gen(function*() {
 *   const prices = yield* CacheAside.make({ ttl: "1 minute", staleIfError: "1 hour", schema: Price })
 *   const result = yield* prices.get("price:abc", fetchPrice("abc"))
 *   return result.value.cents
 * }).pipe(Effect.provide(Cache.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <A, I, R>(
    options: Options<A, I, R> & { readonly schema: Schema.Schema<A, I, R> }
  ): Effect.Effect<CacheAside<A, R>, InvalidOptions>
  (options: Options<string, string, never>): Effect.Effect<CacheAside<string>, InvalidOptions>
} = internal.make

/**
 * One read-through: `make(options)` then `get(key, load)`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cache, CacheAside } from "effect-resilience"
 *
 * const render = Effect.succeed("<html>...</html>")
 *
 * const program = CacheAside.get("page:/home", render, { ttl: "30 seconds" }).pipe(
 *   Effect.map((result) => result.stale ? `${result.value} (stale)` : result.value),
 *   Effect.provide(Cache.layerMemory())
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const get: {
  <A, I, RS, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    options: Options<A, I, RS> & { readonly schema: Schema.Schema<A, I, RS> }
  ): Effect.Effect<Result<A>, E | InvalidOptions, R | RS | Cache>
  <E, R>(
    key: string,
    load: Effect.Effect<string, E, R>,
    options: Options<string, string, never>
  ): Effect.Effect<Result<string>, E | InvalidOptions, R | Cache>
} = internal.get

/**
 * The counters of every read-through cache: `hits`, `misses`, `loads`, `loadFailures`,
 * `staleServed` and `cacheErrors` (`effect_resilience_cache_aside_*_total`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics: {
  readonly hits: Metric.Metric.Counter<number>
  readonly misses: Metric.Metric.Counter<number>
  readonly loads: Metric.Metric.Counter<number>
  readonly loadFailures: Metric.Metric.Counter<number>
  readonly staleServed: Metric.Metric.Counter<number>
  readonly cacheErrors: Metric.Metric.Counter<number>
} = internal.metrics
