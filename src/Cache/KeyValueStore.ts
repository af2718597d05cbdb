/**
 * The `Cache` service over `@effect/platform`'s `KeyValueStore`: its file-system store (a
 * cache that survives a restart, and the file tier behind memory when Redis is down), or
 * any other store. `@effect/platform` is a peer dependency of this subpath only.
 *
 * Every entry keeps its TTL: its expiry is stored with its value, on the Effect `Clock`,
 * and an expired entry is a miss, removed when read (a key never read again goes in a
 * periodic sweep during writes). Any string is a key: keys are encoded into file names of
 * `[a-z0-9_~-]` (long ones shortened with a hash), so no key is a path, escapes the
 * directory or collides with another on a case-insensitive file system. An entry that does
 * not decode (a truncated or foreign file) is a miss, logged and counted by
 * `corruptEntries`, never a failure. The store's failures are `CacheError`s, as any
 * backend's: `Unavailable` (a directory that cannot be created, read or written),
 * `OutOfMemory` (a full disk), `Timeout`, `Unknown`; `ResilientCache` turns them into
 * fallbacks.
 *
 * A store cannot list its keys, so the cache keeps an index of its keys in the store
 * itself (entries named `index-0` ... `index-f`) for `invalidate` and the sweep: give the
 * cache a directory (or a store prefix) of its own, used by one process at a time.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as Path from "@effect/platform/Path"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type { Cache, CacheService } from "../Cache.js"
import * as internal from "../internal/keyValueStoreCache.js"
import type { InvalidOptions } from "../InvalidOptions.js"

/**
 * The options of `make`, `layer` and `layerFileSystem`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Names the cache in logs and metrics (default `"file"`). */
  readonly name?: string | undefined
  /** The TTL of a `set` that gives none (default 5 minutes; `Duration.infinity` for none). */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * The options of `layerConfig`: those of `layerFileSystem`, with its directory.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileSystemOptions extends Options {
  /** The directory of the entries (default `defaultDirectory`). */
  readonly directory?: string | undefined
}

/**
 * The directory `layerConfig` uses when `REDIS_FALLBACK_CACHE_DIR` is not set and its
 * defaults give none: `.cache/effect-resilience`, relative to the working directory.
 *
 * @since 0.1.0
 * @category config
 */
export const defaultDirectory: string = internal.defaults.directory

/**
 * Makes a cache over a given store. Fails with `InvalidOptions` naming the field.
 *
 * @example
 * ```ts
 * import { KeyValueStore } from "@effect/platform"
 * import { Effect } from "effect"
 * import * as KeyValueStoreCache from "effect-resilience/Cache/KeyValueStore"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* KeyValueStore.KeyValueStore
 *   const cache = yield* KeyValueStoreCache.fromStore(KeyValueStore.prefix(store, "cache-"), { ttl: "1 hour" })
 *   yield* cache.set("user:1", "{}")
 *   return yield* cache.get("user:1")
 * }).pipe(Effect.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStore: (
  store: KeyValueStore.KeyValueStore,
  options?: Options
) => Effect.Effect<CacheService, InvalidOptions> = internal.fromStore

/**
 * Makes a cache over the `KeyValueStore` in the context. See `fromStore`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<CacheService, InvalidOptions, KeyValueStore.KeyValueStore> = internal.make

/**
 * Provides `Cache` over the `KeyValueStore` in the context. Defaults: name `"file"`, TTL
 * 5 minutes.
 *
 * @example
 * ```ts
 * import { KeyValueStore } from "@effect/platform"
 * import { Layer } from "effect"
 * import * as KeyValueStoreCache from "effect-resilience/Cache/KeyValueStore"
 *
 * const CacheLive = KeyValueStoreCache.layer({ ttl: "10 minutes" }).pipe(Layer.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<Cache, InvalidOptions, KeyValueStore.KeyValueStore> =
  internal.layer

/**
 * Provides `Cache` on files in `directory` (created when missing), through
 * `@effect/platform`'s file-system store: one file per entry. A directory that cannot be
 * created or written does not fail the layer: its operations fail with `CacheError`
 * (`Unavailable`) until it can (a directory removed while in use is made again by the next
 * write), so a `ResilientCache` over it falls back and recovers by itself. An empty
 * `directory` fails with `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { Cache, ResilientCache } from "effect-resilience"
 * import * as KeyValueStoreCache from "effect-resilience/Cache/KeyValueStore"
 *
 * const CacheLive = ResilientCache.layer({ name: "file" }).pipe(
 *   Layer.provide(KeyValueStoreCache.layerFileSystem("/var/cache/app", { ttl: "1 hour" })),
 *   Layer.provide(NodeContext.layer)
 * )
 *
 * const program = Effect.flatMap(Cache.Cache, (cache) => cache.get("user:1")).pipe(Effect.provide(CacheLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileSystem: (
  directory: string,
  options?: Options
) => Layer.Layer<Cache, InvalidOptions, FileSystem.FileSystem | Path.Path> = internal.layerFileSystem

/**
 * The options `layerConfig` runs with: `defaults`, with the directory from
 * `REDIS_FALLBACK_CACHE_DIR` over them when it is set (else `defaults.directory`, else
 * `defaultDirectory`). A variable the `ConfigProvider` cannot read fails with
 * `InvalidOptions` naming it.
 *
 * @since 0.1.0
 * @category config
 */
export const configOptions: (
  defaults?: FileSystemOptions
) => Effect.Effect<FileSystemOptions, InvalidOptions> = internal.configOptions

/**
 * `layerFileSystem` in the directory named by `REDIS_FALLBACK_CACHE_DIR` (default
 * `.cache/effect-resilience`, relative to the working directory; see `configOptions`).
 *
 * @example
 * ```ts
 * import { NodeContext } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import * as KeyValueStoreCache from "effect-resilience/Cache/KeyValueStore"
 *
 * // REDIS_FALLBACK_CACHE_DIR=/var/cache/app
 * const CacheLive = KeyValueStoreCache.layerConfig({ ttl: "1 hour" }).pipe(Layer.provide(NodeContext.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  defaults?: FileSystemOptions
) => Layer.Layer<Cache, InvalidOptions, FileSystem.FileSystem | Path.Path> = internal.layerConfig

/**
 * Counts entries (and index shards) that could not be decoded and were served as misses,
 * tagged with `cache` (the cache's name).
 *
 * @since 0.1.0
 * @category metrics
 */
export const corruptEntries: Metric.Metric.Counter<number> = internal.corruptEntries
