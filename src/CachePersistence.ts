/**
 * A `BackingPersistence` (from `@effect/experimental/Persistence`) over the `Cache`
 * service, so that `PersistedCache` and the other persistence-based tools run on any cache
 * stack: memory, Redis, or a resilient cache that never fails.
 *
 * Each store's keys are `"<storeId>:<key>"` in the cache, values are JSON, and `clear`
 * invalidates the prefix `"<storeId>:"`. An entry persisted without a TTL gets the
 * cache's default TTL: cache entries always expire. A payload that is not JSON, or a result
 * that no longer decodes (written by an older schema), is a miss, counted by
 * `decodeFailures`. A cache failure is a `PersistenceBackingError` carrying the
 * `CacheError` as its cause; over `ResilientCache` there is none.
 *
 * Import it from its subpath, `effect-resilience/CachePersistence` (it needs
 * `@effect/experimental`); the core entry point does not export it.
 *
 * @since 0.1.0
 */
import type * as Persistence from "@effect/experimental/Persistence"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type { Cache, CacheService } from "./Cache.js"
import * as internal from "./internal/cachePersistence.js"

/**
 * A `BackingPersistence` over a given cache service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCache: (cache: CacheService) => Persistence.BackingPersistence = internal.fromCache

/**
 * A `BackingPersistence` over the `Cache` in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Persistence.BackingPersistence, never, Cache> = internal.make

/**
 * Provides `BackingPersistence` from the `Cache` in the context.
 *
 * @example
 * ```ts
 * import { Persistence } from "@effect/experimental"
 * import { Layer } from "effect"
 * import { Cache } from "effect-resilience"
 * import * as CachePersistence from "effect-resilience/CachePersistence"
 *
 * // ResultPersistence (for PersistedCache) stored in the memory cache
 * const PersistenceLive = Persistence.layerResult.pipe(
 *   Layer.provide(CachePersistence.layer),
 *   Layer.provide(Cache.layerMemory({ capacity: 10_000, ttl: "1 hour" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Persistence.BackingPersistence, never, Cache> = internal.layer

/**
 * Provides `ResultPersistence` (what `PersistedCache.make` needs) from the `Cache` in the
 * context. A stored result that no longer decodes is a miss in `get` as in `getMany`
 * (counted by `decodeFailures`, logged, and removed), never a `PersistenceError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerResult: Layer.Layer<Persistence.ResultPersistence, never, Cache> = internal.layerResult

/**
 * Counts the persisted payloads read as misses because they were not JSON or no longer
 * decode with the request's schema (`effect_resilience_persistence_decode_failures_total`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const decodeFailures: Metric.Metric.Counter<number> = internal.decodeFailures
