import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as Path from "@effect/platform/Path"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as CacheModule from "../Cache.js"
import type * as KeyValueStoreCache from "../Cache/KeyValueStore.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { Cache, CacheError, ttlMillis } from "./cacheService.js"
import { counter } from "./metric.js"
import * as options_ from "./options.js"

const moduleName = "KeyValueStoreCache"

/** @internal */
export const defaults = {
  name: "file",
  ttl: Duration.minutes(5),
  directory: ".cache/effect-resilience"
} as const

/** @internal */
export const directoryVariable = "REDIS_FALLBACK_CACHE_DIR"

/** @internal */
export const corruptEntries = counter(
  "effect_resilience_cache_corrupt_entries_total",
  "Entries read from a key-value store that could not be decoded and were served as misses"
)

// -----------------------------------------------------------------------------
// Names in the store
// -----------------------------------------------------------------------------

// Names are made of [a-z0-9_~-] only: no separator, no dot, no upper case, so a name is one
// file on any file system (case-insensitive ones included), never a path, and the file
// store's own percent-encoding leaves it unchanged.
const encoder = new TextEncoder()
const maxEncodedLength = 200
const readablePartLength = 160

const isKept = (byte: number): boolean =>
  (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x5f

const fnv1a = (text: string, seed: number): number => {
  let hash = seed
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

const hex32 = (n: number): string => n.toString(16).padStart(8, "0")

/**
 * The name under which `key` is stored: `k-` and the key with every byte outside
 * [a-z0-9_-] written `~hh`, or, when that is too long for a file name, `h-`, its first part
 * and a 64-bit hash. The entry holds its key, so two keys sharing a hashed name are told
 * apart on read (the other one is a miss).
 *
 * @internal
 */
export const entryName = (key: string): string => {
  let encoded = ""
  for (const byte of encoder.encode(key)) {
    encoded += isKept(byte) ? String.fromCharCode(byte) : `~${byte.toString(16).padStart(2, "0")}`
  }
  return encoded.length <= maxEncodedLength
    ? `k-${encoded}`
    : `h-${encoded.slice(0, readablePartLength)}-${hex32(fnv1a(key, 0x811c9dc5))}${hex32(fnv1a(key, 0x9e3779b9))}`
}

// The index of keys (a store cannot list its keys) lives in shards, so that adding a key
// rewrites a sixteenth of it. Shard names cannot collide with entry names.
const shardCount = 16
const shardOf = (key: string): number => fnv1a(key, 0x811c9dc5) & (shardCount - 1)
const shardName = (shard: number): string => `index-${shard.toString(16)}`

/**
 * The name of the index shard that holds `key`.
 *
 * @internal
 */
export const indexName = (key: string): string => shardName(shardOf(key))

const StoredEntry = Schema.parseJson(
  Schema.Struct({ key: Schema.String, expiresAt: Schema.NullOr(Schema.Number), value: Schema.String })
)
const decodeEntry = Schema.decodeUnknownEither(StoredEntry)

const StoredShard = Schema.parseJson(Schema.Array(Schema.Tuple(Schema.String, Schema.NullOr(Schema.Number))))
const decodeShard = Schema.decodeUnknownEither(StoredShard)

const toStored = (expiresAt: number): number | null => (expiresAt === Number.POSITIVE_INFINITY ? null : expiresAt)
const fromStored = (expiresAt: number | null): number => (expiresAt === null ? Number.POSITIVE_INFINITY : expiresAt)

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

const isNoSpace = (error: PlatformError.SystemError): boolean => {
  const code = (error.cause as { readonly code?: unknown } | undefined)?.code
  return code === "ENOSPC" || code === "EDQUOT"
}

/**
 * A failure of the store as the `CacheError` every backend fails with. A full disk is
 * `OutOfMemory` (the store has no room), a store that cannot be reached or written is
 * `Unavailable`; a write that failed may have been applied in part (`outcome: "Unknown"`).
 *
 * @internal
 */
export const toCacheError =
  (operation: CacheError["operation"], key: string) => (error: PlatformError.PlatformError): CacheError => {
    if (error._tag === "BadArgument") {
      return new CacheError({ operation, key, reason: "Protocol", outcome: "NotApplied", cause: error })
    }
    const reason = error.reason === "TimedOut"
      ? "Timeout"
      : isNoSpace(error)
      ? "OutOfMemory"
      : error.reason === "Unknown"
      ? "Unknown"
      : "Unavailable"
    const outcome = operation === "get" ? "NotApplied" : "Unknown"
    return new CacheError({ operation, key, reason, outcome, cause: error })
  }

const isNotFound = (error: PlatformError.PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "NotFound"

/** Runs `acquire` until it succeeds once, then answers its value; one attempt at a time. */
const memoizeSuccess = <A, E>(acquire: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  let value: Option.Option<A> = Option.none()
  const lock = Effect.unsafeMakeSemaphore(1)
  const locked = lock.withPermits(1)(
    Effect.suspend(() =>
      Option.isSome(value) ? Effect.succeed(value.value) : Effect.map(acquire, (a) => {
        value = Option.some(a)
        return a
      })
    )
  )
  return Effect.suspend(() => (Option.isSome(value) ? Effect.succeed(value.value) : locked))
}

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

interface Validated {
  readonly name: string
  readonly ttl: Duration.Duration
}

const validate = (options: KeyValueStoreCache.Options | undefined): Either.Either<Validated, InvalidOptions> =>
  Either.gen(function*() {
    const name = yield* options_.field(moduleName, "name", options?.name, options_.nonEmptyString, defaults.name)
    const ttl = yield* options_.duration(moduleName, "ttl", options?.ttl, defaults.ttl, {
      positive: true,
      finite: false
    })
    return { name, ttl }
  })

// -----------------------------------------------------------------------------
// Service
// -----------------------------------------------------------------------------

interface Live {
  readonly value: string
  readonly expiresAt: number
}

// Expired entries are removed when read, and by a sweep of the index at most this often
// during writes, a bounded number per sweep, so a key never read again still goes away.
const maxSweepInterval = 60_000
const maxSweptPerRound = 100

/** @internal */
export const fromStore = (
  store: KeyValueStore.KeyValueStore,
  options?: KeyValueStoreCache.Options
): Effect.Effect<CacheModule.CacheService, InvalidOptions> =>
  Effect.map(validate(options), ({ name, ttl }) => {
    const corrupt = corruptEntries.pipe(Metric.tagged("cache", name))
    const annotations = { cache: name }
    const sweepInterval = Math.min(Duration.toMillis(ttl), maxSweepInterval)
    let nextSweepAt = Number.NEGATIVE_INFINITY

    const removeQuietly = (storeKey: string): Effect.Effect<void, PlatformError.PlatformError> =>
      Effect.catchIf(store.remove(storeKey), isNotFound, () => Effect.void)

    const warnCorrupt = (what: string, detail: string): Effect.Effect<void> =>
      Metric.increment(corrupt).pipe(
        Effect.zipRight(Effect.logWarning(`${what} is unreadable and served as a miss: ${detail}`)),
        Effect.annotateLogs(annotations)
      )

    // The index: per shard, each key with a time by which it may have expired (a hint: a
    // later `set` may have made it live longer; the sweep reads the entry before removing).
    // Loaded once, on first need, and kept in step by this process.
    const locks = Array.from({ length: shardCount }, () => Effect.unsafeMakeSemaphore(1))
    // Once loaded whole, the index holds every stored key (a key is indexed before its entry
    // is written, and dropped after it is removed): a key it lacks is a miss without a read.
    let loaded: ReadonlyArray<Map<string, number>> | undefined
    let complete = true
    const knownAbsent = (key: string): boolean =>
      loaded !== undefined && complete && !loaded[shardOf(key)]!.has(key)
    const loadShard = (shard: number): Effect.Effect<Map<string, number>, PlatformError.PlatformError> =>
      Effect.flatMap(store.get(shardName(shard)), (text) => {
        if (Option.isNone(text)) return Effect.succeed(new Map<string, number>())
        const decoded = decodeShard(text.value)
        if (Either.isLeft(decoded)) {
          complete = false
          return Effect.as(warnCorrupt(`index ${shardName(shard)}`, decoded.left.message), new Map<string, number>())
        }
        return Effect.succeed(new Map(decoded.right.map(([key, expiresAt]) => [key, fromStored(expiresAt)])))
      })
    const index = memoizeSuccess(
      Effect.map(
        Effect.forEach(Array.from({ length: shardCount }, (_, shard) => shard), loadShard, { concurrency: 4 }),
        (shards) => (loaded = shards)
      )
    )
    // Shards whose last write failed: written again by the next `set` in them, so that a key
    // added while the disk was full is indexed before its entry is written.
    const unsaved = new Set<number>()
    const persistShard = (shards: ReadonlyArray<Map<string, number>>, shard: number) =>
      locks[shard]!.withPermits(1)(
        Effect.suspend(() => {
          const entries = shards[shard]!
          const write = entries.size === 0
            ? removeQuietly(shardName(shard))
            : store.set(
              shardName(shard),
              JSON.stringify(Array.from(entries, ([key, expiresAt]) => [key, toStored(expiresAt)]))
            )
          return Effect.onExit(write, (exit) => Effect.sync(() => {
            if (exit._tag === "Success") unsaved.delete(shard)
            else unsaved.add(shard)
          }))
        })
      )

    /** Reads the entry under `key`: a miss when absent, expired (then removed), of another key or unreadable. */
    const read = (key: string): Effect.Effect<Option.Option<Live>, PlatformError.PlatformError> =>
      Effect.gen(function*() {
        if (knownAbsent(key)) return Option.none()
        const storeKey = entryName(key)
        const text = yield* store.get(storeKey)
        if (Option.isNone(text)) return Option.none()
        const decoded = decodeEntry(text.value)
        if (Either.isLeft(decoded)) {
          yield* warnCorrupt(`the entry of "${key}"`, decoded.left.message)
          // An entry nobody can read is of no use: remove it (the next `set` would overwrite it).
          yield* Effect.ignore(removeQuietly(storeKey))
          return Option.none()
        }
        const entry = decoded.right
        if (entry.key !== key) return Option.none()
        const expiresAt = fromStored(entry.expiresAt)
        const now = yield* Clock.currentTimeMillis
        if (expiresAt <= now) {
          yield* Effect.ignore(removeQuietly(storeKey))
          return Option.none()
        }
        return Option.some({ value: entry.value, expiresAt })
      })

    const get = (key: string): Effect.Effect<Option.Option<string>, CacheError> =>
      Effect.map(Effect.mapError(read(key), toCacheError("get", key)), Option.map((entry) => entry.value))

    const getWithTtl = (key: string): Effect.Effect<Option.Option<CacheModule.Entry>, CacheError> =>
      Effect.flatMap(Effect.mapError(read(key), toCacheError("get", key)), (entry) =>
        Option.isNone(entry)
          ? Effect.succeedNone
          : Effect.map(Clock.currentTimeMillis, (now) =>
            Option.some({
              value: entry.value.value,
              ttl: entry.value.expiresAt === Number.POSITIVE_INFINITY
                ? Duration.infinity
                : Duration.millis(entry.value.expiresAt - now)
            })))

    /** Removes up to `maxSweptPerRound` entries whose expiry hint has passed and that are indeed expired. */
    const sweep = (shards: ReadonlyArray<Map<string, number>>, now: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const candidates: Array<string> = []
        for (const entries of shards) {
          for (const [key, expiresAt] of entries) {
            if (expiresAt <= now) candidates.push(key)
            if (candidates.length >= maxSweptPerRound) break
          }
          if (candidates.length >= maxSweptPerRound) break
        }
        if (candidates.length === 0) return
        const touched = new Set<number>()
        yield* Effect.forEach(candidates, (key) =>
          Effect.gen(function*() {
            const storeKey = entryName(key)
            const text = yield* store.get(storeKey)
            const decoded = Option.isSome(text) ? decodeEntry(text.value) : undefined
            const shard = shards[shardOf(key)]!
            if (decoded !== undefined && Either.isRight(decoded) && decoded.right.key === key) {
              const expiresAt = fromStored(decoded.right.expiresAt)
              if (expiresAt > now) {
                shard.set(key, expiresAt)
                touched.add(shardOf(key))
                return
              }
            }
            yield* removeQuietly(storeKey)
            shard.delete(key)
            touched.add(shardOf(key))
          }).pipe(Effect.ignore), { concurrency: 4, discard: true })
        yield* Effect.forEach(touched, (shard) => Effect.ignore(persistShard(shards, shard)), { discard: true })
      })

    const set = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void, CacheError> =>
      Effect.gen(function*() {
        const millis = ttlMillis(key, setOptions?.ttl, ttl)
        if (Either.isLeft(millis)) return yield* Effect.fail(millis.left)
        const failed = toCacheError("set", key)
        const shards = yield* Effect.mapError(index, failed)
        const now = yield* Clock.currentTimeMillis
        const expiresAt = now + millis.right
        // The key goes into the index before its entry is written: whatever is stored is
        // indexed, so `invalidate` and the sweep find it.
        const shard = shardOf(key)
        const hint = shards[shard]!.get(key)
        if (hint === undefined || hint < expiresAt) {
          shards[shard]!.set(key, expiresAt)
        }
        if (hint === undefined || unsaved.has(shard)) yield* Effect.mapError(persistShard(shards, shard), failed)
        const entry = JSON.stringify({ key, expiresAt: toStored(expiresAt), value })
        yield* Effect.mapError(store.set(entryName(key), entry), failed)
        if (now >= nextSweepAt) {
          nextSweepAt = now + sweepInterval
          yield* sweep(shards, now)
        }
      })

    const delete_ = (key: string): Effect.Effect<boolean, CacheError> =>
      Effect.gen(function*() {
        const failed = toCacheError("delete", key)
        const shards = yield* Effect.option(index)
        if (knownAbsent(key)) return false
        const live = yield* Effect.mapError(read(key), failed)
        yield* Effect.mapError(removeQuietly(entryName(key)), failed)
        if (Option.isSome(shards) && shards.value[shardOf(key)]!.delete(key)) {
          // A stale index entry is harmless (the sweep drops it): no need to fail for it.
          yield* Effect.ignore(persistShard(shards.value, shardOf(key)))
        }
        return Option.isSome(live)
      })

    const invalidate = (prefix: string): Effect.Effect<number, CacheError> =>
      Effect.gen(function*() {
        const failed = toCacheError("invalidate", prefix)
        const shards = yield* Effect.mapError(index, failed)
        const keys = shards.flatMap((entries) => Array.from(entries.keys()).filter((key) => key.startsWith(prefix)))
        const removed = yield* Effect.forEach(keys, (key) =>
          Effect.gen(function*() {
            const live = yield* Effect.mapError(read(key), failed)
            yield* Effect.mapError(removeQuietly(entryName(key)), failed)
            shards[shardOf(key)]!.delete(key)
            return Option.isSome(live) ? 1 : 0
          }), { concurrency: 8 })
        const touched = new Set(keys.map(shardOf))
        yield* Effect.forEach(touched, (shard) => Effect.mapError(persistShard(shards, shard), failed), {
          discard: true
        })
        return removed.reduce((sum: number, n) => sum + n, 0)
      })

    return { get, getWithTtl, set, delete: delete_, invalidate, defaultTtl: ttl }
  })

/** @internal */
export const make = (
  options?: KeyValueStoreCache.Options
): Effect.Effect<CacheModule.CacheService, InvalidOptions, KeyValueStore.KeyValueStore> =>
  Effect.flatMap(KeyValueStore.KeyValueStore, (store) => fromStore(store, options))

/** @internal */
export const layer = (
  options?: KeyValueStoreCache.Options
): Layer.Layer<Cache, InvalidOptions, KeyValueStore.KeyValueStore> => Layer.effect(Cache, make(options))

const directoryOption = options_.check(Schema.NonEmptyTrimmedString, "a non-empty path")

/**
 * The file store of `@effect/platform` in `directory`, opened again by each operation
 * until it opens once: a directory that cannot be created or written now makes the
 * operations fail (and a resilient cache fall back), not the layer.
 *
 * @internal
 */
export const fileSystemStore = (
  directory: string
): Effect.Effect<KeyValueStore.KeyValueStore, InvalidOptions, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const checked = yield* options_.field(moduleName, "directory", directory, directoryOption, undefined)
    const context = yield* Effect.context<FileSystem.FileSystem | Path.Path>()
    const fileSystem = yield* FileSystem.FileSystem
    const open = memoizeSuccess(
      KeyValueStore.KeyValueStore.pipe(
        Effect.provide(KeyValueStore.layerFileSystem(checked!)),
        Effect.provide(context)
      )
    )
    const first = yield* Effect.either(open)
    if (Either.isLeft(first)) {
      yield* Effect.logWarning(
        `cache directory cannot be opened; operations fail until it can: ${first.left.message}`
      ).pipe(Effect.annotateLogs({ directory: checked! }))
    }
    const via = <A>(f: (store: KeyValueStore.KeyValueStore) => Effect.Effect<A, PlatformError.PlatformError>) =>
      Effect.flatMap(open, f)
    return KeyValueStore.make({
      get: (key) => via((store) => store.get(key)),
      getUint8Array: (key) => via((store) => store.getUint8Array(key)),
      set: (key, value) =>
        via((store) =>
          Effect.catchIf(store.set(key, value), isNotFound, () =>
            // The directory went away (a cleaner of temporary files): make it again, once.
            Effect.zipRight(fileSystem.makeDirectory(checked!, { recursive: true }), store.set(key, value)))
        ),
      remove: (key) => via((store) => store.remove(key)),
      clear: via((store) => store.clear),
      size: via((store) => store.size)
    })
  })

/** @internal */
export const layerFileSystem = (
  directory: string,
  options?: KeyValueStoreCache.Options
): Layer.Layer<Cache, InvalidOptions, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    Cache,
    Effect.flatMap(
      // Options first: a bad option is refused before anything touches the disk.
      Effect.zipRight(validate(options), fileSystemStore(directory)),
      (store) => fromStore(store, options)
    )
  )

/** @internal */
export const configOptions = (
  defaultOptions?: KeyValueStoreCache.FileSystemOptions
): Effect.Effect<KeyValueStoreCache.FileSystemOptions, InvalidOptions> =>
  Effect.map(
    // A variable that is set but cannot be read is refused naming it, as a bad option.
    Effect.mapError(Config.option(Config.string(directoryVariable)), (error) =>
      new InvalidOptions({
        module: moduleName,
        field: `directory (${directoryVariable})`,
        expected: "a path",
        received: error.message
      })),
    (directory) => ({
      ...defaultOptions,
      directory: Option.isSome(directory) && directory.value.trim() !== ""
        ? directory.value
        : defaultOptions?.directory ?? defaults.directory
    })
  )

/** @internal */
export const layerConfig = (
  defaultOptions?: KeyValueStoreCache.FileSystemOptions
): Layer.Layer<Cache, InvalidOptions, FileSystem.FileSystem | Path.Path> =>
  Layer.unwrapEffect(
    Effect.map(configOptions(defaultOptions), ({ directory, ...options }) =>
      layerFileSystem(directory ?? defaults.directory, options))
  )
