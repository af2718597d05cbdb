import { KeyValueStore } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../src/Cache.js"
import * as Chaos from "../src/Chaos.js"
import * as KeyValueStoreCache from "../src/Cache/KeyValueStore.js"
import * as CacheTiers from "../src/internal/cacheTiers.js"
import { entryName, indexName } from "../src/internal/keyValueStoreCache.js"
import * as ResilientCache from "../src/ResilientCache.js"

const made: Array<string> = []
const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kv-cache-"))
  made.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

/** The cache on files in `dir`, built for one program (a fresh layer is a restart). */
const onFiles = (dir: string, options?: KeyValueStoreCache.Options) =>
  KeyValueStoreCache.layerFileSystem(dir, options).pipe(Layer.provide(NodeContext.layer))

const withCache = <A, E>(
  dir: string,
  f: (cache: Cache.CacheService) => Effect.Effect<A, E>,
  options?: KeyValueStoreCache.Options
) => Effect.flatMap(Cache.Cache, f).pipe(Effect.provide(onFiles(dir, options)))

const entryFiles = (dir: string): Array<string> => fs.readdirSync(dir).filter((name) => !name.startsWith("index-"))

const corruptCount = (name: string) =>
  Effect.map(Metric.value(KeyValueStoreCache.corruptEntries.pipe(Metric.tagged("cache", name))), (s) => s.count)

describe("KeyValueStoreCache", () => {
  it.effect("stores values in files and reads them back after a restart", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) => cache.set("user:1", "{\"name\":\"Ada\"}", { ttl: "1 hour" }))
      expect(entryFiles(dir)).toEqual([entryName("user:1")])
      const read = yield* withCache(dir, (cache) => cache.get("user:1"))
      expect(read).toEqual(Option.some("{\"name\":\"Ada\"}"))
      expect(yield* withCache(dir, (cache) => cache.get("user:2"))).toEqual(Option.none())
    }))

  it.effect("an entry keeps its TTL on the clock, across restarts, and an expired one is a miss and is removed", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) => cache.set("session", "s", { ttl: "1 minute" }))
      yield* TestClock.adjust("59 seconds")
      const entry = yield* withCache(dir, (cache) => cache.getWithTtl!("session"))
      expect(Option.map(entry, (e) => [e.value, Duration.toMillis(e.ttl)])).toEqual(Option.some(["s", 1000]))
      yield* TestClock.adjust("1 second")
      expect(yield* withCache(dir, (cache) => cache.get("session"))).toEqual(Option.none())
      expect(entryFiles(dir)).toEqual([])
    }))

  it.effect("a set without a TTL lives the default TTL; Duration.infinity means no expiry", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          expect(cache.defaultTtl).toEqual(Duration.minutes(5))
          yield* cache.set("short", "a")
          yield* cache.set("forever", "b", { ttl: Duration.infinity })
          yield* TestClock.adjust("5 minutes")
          expect(yield* cache.get("short")).toEqual(Option.none())
          expect(yield* cache.get("forever")).toEqual(Option.some("b"))
          const entry = yield* cache.getWithTtl!("forever")
          expect(Option.map(entry, (e) => Duration.isFinite(e.ttl))).toEqual(Option.some(false))
        }))
    }))

  it.effect("keys with slashes, dots, unicode, upper case and any length are distinct files inside the directory", () =>
    Effect.gen(function*() {
      const parent = tempDir()
      const dir = path.join(parent, "cache")
      const keys = [
        "",
        ".",
        "..",
        "../../escape",
        "/etc/passwd",
        "a/b\\c",
        "CON",
        "Key",
        "key",
        "ключ:🔑",
        "%2e%2e",
        "~2e",
        "x".repeat(300),
        "x".repeat(299) + "y",
        "é".repeat(500)
      ]
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* Effect.forEach(keys, (key, i) => cache.set(key, `value ${i}`), { discard: true })
          const read = yield* Effect.forEach(keys, (key) => cache.get(key))
          expect(read).toEqual(keys.map((_, i) => Option.some(`value ${i}`)))
        }))
      // Nothing outside the directory, every name one portable file name.
      expect(fs.readdirSync(parent)).toEqual(["cache"])
      const names = fs.readdirSync(dir)
      expect(entryFiles(dir).length).toBe(keys.length)
      for (const name of names) {
        expect(name).toMatch(/^(k|h|index)-[a-z0-9_~-]*$/)
        expect(name.length).toBeLessThanOrEqual(255)
      }
    }))

  it("entry names are portable file names, and distinct for distinct keys", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.string({ unit: "binary", maxLength: 300 }), FastCheck.string({ maxLength: 300 }), (
        a,
        b
      ) => {
        for (const key of [a, b]) {
          const name = entryName(key)
          expect(name).toMatch(/^[kh]-[a-z0-9_~-]*$/)
          expect(name.length).toBeLessThanOrEqual(255)
        }
        if (a !== b) expect(entryName(a)).not.toBe(entryName(b))
      }),
      { numRuns: 100 }
    )
  })

  it.effect("an entry that does not decode is a miss, counted and removed", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const before = yield* corruptCount("corrupt-test")
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("a", "1")
          yield* cache.set("b", "2")
          fs.writeFileSync(path.join(dir, entryName("a")), "{\"key\":\"a\",\"expi") // truncated
          fs.writeFileSync(path.join(dir, entryName("b")), JSON.stringify({ key: "b", value: 2 })) // another shape
          expect(yield* cache.get("a")).toEqual(Option.none())
          expect(yield* cache.get("b")).toEqual(Option.none())
          expect(yield* cache.delete("a")).toBe(false)
        }), { name: "corrupt-test" })
      expect((yield* corruptCount("corrupt-test")) - before).toBe(2)
      expect(entryFiles(dir)).toEqual([])
    }))

  it.effect("delete answers whether a live entry was removed", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const answers = yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("k", "v", { ttl: "1 second" })
          yield* cache.set("gone", "v", { ttl: "1 second" })
          yield* TestClock.adjust("2 seconds")
          yield* cache.set("k", "v2")
          return [yield* cache.delete("k"), yield* cache.delete("k"), yield* cache.delete("gone")]
        }))
      expect(answers).toEqual([true, false, false])
    }))

  it.effect("invalidate removes every live entry under a prefix, those written before a restart included", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("user:1", "a")
          yield* cache.set("user:2", "b")
          yield* cache.set("user:3", "c", { ttl: "1 second" })
          yield* cache.set("order:1", "d")
        }))
      yield* TestClock.adjust("2 seconds")
      const result = yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          const removed = yield* cache.invalidate("user:")
          return { removed, reads: yield* Effect.forEach(["user:1", "user:2", "order:1"], cache.get) }
        }))
      expect(result).toEqual({ removed: 2, reads: [Option.none(), Option.none(), Option.some("d")] })
      // After another restart too: the index on disk no longer holds them.
      expect(yield* withCache(dir, (cache) => cache.invalidate("user:"))).toBe(0)
      expect(entryFiles(dir)).toEqual([entryName("order:1")])
    }))

  it.effect("expired entries that are never read again are swept from the disk during writes", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("old", "x", { ttl: "1 second" })
          yield* cache.set("renewed", "x", { ttl: "1 second" })
          yield* cache.set("renewed", "y", { ttl: "1 hour" })
          yield* TestClock.adjust("2 minutes")
          yield* cache.set("new", "z")
          expect(yield* cache.get("renewed")).toEqual(Option.some("y"))
        }))
      expect(entryFiles(dir).sort()).toEqual([entryName("new"), entryName("renewed")].sort())
    }))

  it.effect("a directory that cannot be created: the layer builds, operations fail with a typed CacheError", () =>
    Effect.gen(function*() {
      const parent = tempDir()
      const file = path.join(parent, "a-file")
      fs.writeFileSync(file, "not a directory")
      const results = yield* withCache(path.join(file, "sub"), (cache) =>
        Effect.all([
          Effect.either(cache.get("k")),
          Effect.either(cache.set("k", "v")),
          Effect.either(cache.delete("k"))
        ]))
      const failures = results.map((result: Either.Either<unknown, Cache.CacheError>) =>
        Either.isLeft(result) ? [result.left._tag, result.left.operation, result.left.reason] : "succeeded"
      )
      expect(failures).toEqual([
        ["CacheError", "get", "Unavailable"],
        ["CacheError", "set", "Unavailable"],
        ["CacheError", "delete", "Unavailable"]
      ])
    }))

  it.effect("the directory recovers by itself once it can be created", () =>
    Effect.gen(function*() {
      const parent = tempDir()
      const blocker = path.join(parent, "blocker")
      fs.writeFileSync(blocker, "")
      const result = yield* withCache(path.join(blocker, "sub"), (cache) =>
        Effect.gen(function*() {
          const before = yield* Effect.either(cache.set("k", "v"))
          fs.rmSync(blocker)
          yield* cache.set("k", "v")
          return [Either.isLeft(before), yield* cache.get("k")] as const
        }))
      expect(result).toEqual([true, Option.some("v")])
    }))

  it.effect("a directory removed while in use (a cleaner of temporary files) is made again by the next write", () =>
    Effect.gen(function*() {
      const dir = path.join(tempDir(), "cache")
      const result = yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("k", "v")
          fs.rmSync(dir, { recursive: true })
          const gone = yield* cache.get("k")
          yield* cache.set("k", "w")
          return [gone, yield* cache.get("k")]
        }))
      expect(result).toEqual([Option.none(), Option.some("w")])
      expect(entryFiles(dir)).toEqual([entryName("k")])
    }))

  it.effect("a full disk is a typed OutOfMemory failure of set", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      // The entry's file is /dev/full: every write to it fails with ENOSPC, as on a full disk.
      fs.symlinkSync("/dev/full", path.join(dir, entryName("k")))
      const result = yield* withCache(dir, (cache) => Effect.either(cache.set("k", "v")))
      expect(Either.isLeft(result) ? [result.left.reason, result.left.outcome] : "succeeded").toEqual([
        "OutOfMemory",
        "Unknown"
      ])
    }))

  it.effect("a key whose index write failed (full disk) is indexed by its next set, so invalidate finds it", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const shard = path.join(dir, indexName("user:1"))
      const first = yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.delete("other") // loads the index
          // Its shard's file is now /dev/full: every write fails with ENOSPC, as on a full disk.
          fs.symlinkSync("/dev/full", shard)
          const failed = yield* Effect.either(cache.set("user:1", "a"))
          fs.unlinkSync(shard) // the disk has room again
          yield* cache.set("user:1", "b")
          return Either.isLeft(failed) ? failed.left.reason : "succeeded"
        }))
      expect(first).toBe("OutOfMemory")
      // After a restart, only the index on disk knows the key.
      expect(yield* withCache(dir, (cache) => cache.invalidate("user:"))).toBe(1)
      expect(entryFiles(dir)).toEqual([])
    }))

  it.effect("ResilientCache over an unwritable directory absorbs every failure (error channel never)", () =>
    Effect.gen(function*() {
      const parent = tempDir()
      const file = path.join(parent, "a-file")
      fs.writeFileSync(file, "")
      const program = Effect.gen(function*() {
        const cache = yield* ResilientCache.ResilientCache
        const get: Effect.Effect<Option.Option<string>, never> = cache.get("k")
        yield* cache.set("k", "v", { ttl: "1 minute" })
        const read = yield* get
        const deleted = yield* cache.delete("k")
        const removed = yield* cache.invalidate("")
        return { read, deleted, removed, stats: yield* cache.stats }
      })
      const result = yield* program.pipe(
        Effect.provide(ResilientCache.layer({ name: "file-down" }).pipe(Layer.provide(onFiles(path.join(file, "sub")))))
      )
      expect(result).toEqual({
        read: Option.none(),
        deleted: false,
        removed: 0,
        stats: { hits: 0, memoryHits: 0, misses: 1, fallbacks: 4, probeFallbacks: 0 }
      })
    }))

  it.effect("once the index is loaded, a key it lacks is a miss without reading the store", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      const reads: Array<string> = []
      const counted = KeyValueStore.make({
        ...store,
        get: (key) => Effect.zipRight(Effect.sync(() => reads.push(key)), store.get(key))
      })
      const cache = yield* KeyValueStoreCache.fromStore(counted)
      yield* cache.set("present", "v")
      reads.length = 0
      const answers = [yield* cache.get("absent"), yield* cache.delete("absent"), yield* cache.get("present")]
      expect(answers).toEqual([Option.none(), false, Option.some("v")])
      expect(reads).toEqual([entryName("present")])
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("with an index shard that does not decode, every key is still read and deleted from the store", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) => cache.set("k", "v"))
      fs.writeFileSync(path.join(dir, indexName("k")), "[[\"k\",") // truncated
      const answers = yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          yield* cache.set("other", "w") // loads the index
          return [yield* cache.get("k"), yield* cache.delete("k"), yield* cache.get("k")]
        }))
      expect(answers).toEqual([Option.some("v"), true, Option.none()])
    }))

  it.effect("works over any KeyValueStore, e.g. the in-memory one with a prefix", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      const cache = yield* KeyValueStoreCache.fromStore(KeyValueStore.prefix(store, "cache-"))
      yield* cache.set("a/b", "1", { ttl: "1 minute" })
      yield* cache.set("a/c", "2")
      expect(yield* cache.get("a/b")).toEqual(Option.some("1"))
      expect(yield* cache.invalidate("a/")).toBe(2)
      expect(yield* store.size).toBe(0)
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("bad options are InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const badTtl = yield* Effect.flip(KeyValueStoreCache.make({ ttl: -1 })).pipe(
        Effect.provide(KeyValueStore.layerMemory)
      )
      const badDirectory = yield* Effect.flip(Layer.build(onFiles(""))).pipe(Effect.scoped)
      const badName = yield* Effect.flip(Layer.build(onFiles(tempDir(), { name: "" }))).pipe(Effect.scoped)
      expect([badTtl, badDirectory, badName].map((e) => [e._tag, e.field])).toEqual([
        ["InvalidOptions", "ttl"],
        ["InvalidOptions", "directory"],
        ["InvalidOptions", "name"]
      ])
    }))

  it.effect("layerConfig reads the directory from REDIS_FALLBACK_CACHE_DIR, with a documented default", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const fromEnvironment = ConfigProvider.fromMap(new Map([["REDIS_FALLBACK_CACHE_DIR", dir]]))
      yield* Effect.flatMap(Cache.Cache, (cache) => cache.set("k", "v")).pipe(
        Effect.provide(KeyValueStoreCache.layerConfig().pipe(Layer.provide(NodeContext.layer))),
        Effect.withConfigProvider(fromEnvironment)
      )
      expect(entryFiles(dir)).toEqual([entryName("k")])
      const unset = yield* KeyValueStoreCache.configOptions({ ttl: "1 hour" }).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      )
      expect(unset).toEqual({ ttl: "1 hour", directory: KeyValueStoreCache.defaultDirectory })
      expect(KeyValueStoreCache.defaultDirectory).toBe(".cache/effect-resilience")
      const unreadable = yield* Effect.flip(KeyValueStoreCache.configOptions()).pipe(
        Effect.withConfigProvider(ConfigProvider.make({
          load: () => Effect.fail(ConfigError.SourceUnavailable([], "configuration store unreachable", Cause.empty)),
          flattened: ConfigProvider.fromMap(new Map()).flattened
        }))
      )
      expect([unreadable._tag, unreadable.field]).toEqual(["InvalidOptions", "directory (REDIS_FALLBACK_CACHE_DIR)"])
    }))
})

/** The file cache in `dir` as a value, for the scope of the test. */
const fileCache = (dir: string) =>
  Effect.flatMap(Layer.build(onFiles(dir)), (context) => Effect.succeed(Context.get(context, Cache.Cache)))

/** `cache` with its `set`s counted, to see which writes reach it. */
const countingSets = (cache: Cache.CacheService) => {
  const sets: Array<string> = []
  const counted: Cache.CacheService = {
    ...cache,
    set: (key, value, options) => Effect.zipRight(Effect.sync(() => sets.push(key)), cache.set(key, value, options))
  }
  return { counted, sets }
}

describe("memory in front of a file tier", () => {
  it.scoped("a hit in the file tier is copied into memory with its remaining TTL", () =>
    Effect.gen(function*() {
      const file = yield* fileCache(tempDir())
      const memory = yield* Cache.makeMemory()
      const tiers = CacheTiers.make(memory, file, Duration.seconds(5))
      yield* file.set("k", "v", { ttl: "1 minute" })
      yield* TestClock.adjust("20 seconds")
      expect(yield* tiers.get("k")).toEqual(Option.some("v"))
      const copy = yield* memory.getWithTtl!("k")
      expect(Option.map(copy, (entry) => Duration.toMillis(entry.ttl))).toEqual(Option.some(40_000))
      yield* TestClock.adjust("40 seconds")
      expect([yield* memory.get("k"), yield* tiers.get("k")]).toEqual([Option.none(), Option.none()])
    }))

  it.scoped("writes reach both tiers, but a value memory already holds is not written to the files again", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = countingSets(yield* fileCache(dir))
      const memory = yield* Cache.makeMemory()
      const tiers = CacheTiers.make(memory, file.counted, Duration.seconds(5))
      yield* tiers.set("k", "v", { ttl: "1 minute" })
      yield* TestClock.adjust("10 seconds")
      yield* tiers.set("k", "v", { ttl: "50 seconds" }) // a copy of the same entry
      yield* tiers.set("k", "v", { ttl: "1 minute" }) // a longer life: written
      yield* tiers.set("k", "w", { ttl: "1 minute" }) // a new value: written
      expect(file.sets).toEqual(["k", "k", "k"])
      expect(yield* file.counted.get("k")).toEqual(Option.some("w"))
      expect(yield* tiers.delete("k")).toBe(true)
      expect([yield* memory.get("k"), yield* file.counted.get("k")]).toEqual([Option.none(), Option.none()])
    }))

  it.scoped("a broken file tier is a miss and a write that did not happen, never a failure", () =>
    Effect.gen(function*() {
      const blocker = path.join(tempDir(), "a-file")
      fs.writeFileSync(blocker, "")
      const file = yield* fileCache(path.join(blocker, "sub"))
      const memory = yield* Cache.makeMemory()
      const tiers = CacheTiers.make(memory, file, Duration.seconds(5))
      yield* tiers.set("k", "v")
      const read: Effect.Effect<Option.Option<string>, never> = tiers.get("k")
      expect(yield* read).toEqual(Option.some("v")) // from memory
      expect(yield* tiers.get("other")).toEqual(Option.none())
      expect(yield* tiers.invalidate("")).toBe(1)
    }))

  it.effect("a file tier that hangs costs a miss after the timeout", () =>
    Effect.gen(function*() {
      const memory = yield* Cache.makeMemory()
      const hanging: Cache.CacheService = { ...Cache.degraded, get: () => Effect.never }
      const tiers = CacheTiers.make(memory, hanging, Duration.seconds(1))
      const fiber = yield* Effect.fork(tiers.get("k"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toEqual(Option.none())
    }))
})

describe("ResilientCache with a file tier after memory", () => {
  /** A primary cache that is down: every call fails with `Unavailable`. */
  const primaryDown = Chaos.layerCache({ failureRate: 1 }).pipe(Layer.provide(Cache.layerMemory()))

  it.effect("after a restart with the primary down, reads are answered from the files, with their TTL", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const options = { name: "tiered", memoryFallback: true, fallbackCache: onFiles(dir) }
      // First run: the primary is up; a set is copied to memory and to the files.
      yield* Effect.flatMap(ResilientCache.ResilientCache, (cache) => cache.set("k", "v", { ttl: "1 minute" })).pipe(
        Effect.provide(ResilientCache.layer(options).pipe(Layer.provide(Cache.layerMemory())))
      )
      yield* TestClock.adjust("20 seconds")
      // Second run: memory is empty and the primary is down.
      const reads = yield* Effect.gen(function*() {
        const cache = yield* ResilientCache.ResilientCache
        const first: Effect.Effect<Option.Option<string>, never> = cache.get("k")
        const hit = yield* first
        yield* TestClock.adjust("39 seconds")
        const stillLive = yield* cache.get("k")
        yield* TestClock.adjust("1 second")
        const expired = yield* cache.get("k")
        return { hit, stillLive, expired, stats: yield* cache.stats }
      }).pipe(Effect.provide(ResilientCache.layer(options).pipe(Layer.provide(primaryDown))))
      expect(reads).toEqual({
        hit: Option.some("v"),
        stillLive: Option.some("v"),
        expired: Option.none(),
        stats: { hits: 2, memoryHits: 2, misses: 1, fallbacks: 3, probeFallbacks: 0 }
      })
    }))

  it.effect("a value read from the primary is copied to the files with its remaining TTL", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const copy = yield* Effect.gen(function*() {
        const primary = yield* Cache.Cache
        yield* primary.set("k", "v", { ttl: "1 minute" })
        yield* TestClock.adjust("15 seconds")
        const cache = yield* ResilientCache.fromCache(primary, { fallbackCache: onFiles(dir) })
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        return yield* withCache(dir, (files) => files.getWithTtl!("k"))
      }).pipe(Effect.scoped, Effect.provide(Cache.layerMemory()))
      expect(Option.map(copy, (entry) => [entry.value, Duration.toMillis(entry.ttl)])).toEqual(
        Option.some(["v", 45_000])
      )
    }))

  it.effect("a file tier that cannot be written never reaches the caller", () =>
    Effect.gen(function*() {
      const blocker = path.join(tempDir(), "a-file")
      fs.writeFileSync(blocker, "")
      const options = { memoryFallback: true, fallbackCache: onFiles(path.join(blocker, "sub")) }
      const result = yield* Effect.gen(function*() {
        const cache = yield* ResilientCache.ResilientCache
        yield* cache.set("k", "v")
        return [yield* cache.get("k"), yield* cache.get("other"), yield* cache.delete("k")]
      }).pipe(Effect.provide(ResilientCache.layer(options).pipe(Layer.provide(primaryDown))))
      expect(result).toEqual([Option.some("v"), Option.none(), false])
    }))

  it.effect("a fallbackCache that is not a cache is InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ResilientCache.fromCache(Cache.degraded, { fallbackCache: { get: 1 } as unknown as Cache.CacheService })
      ).pipe(Effect.scoped)
      expect([error._tag, error.field]).toEqual(["InvalidOptions", "fallbackCache"])
    }))
})
