import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck, Layer, Metric, Option, Schema, TestClock } from "effect"
import * as Cache from "../src/Cache.js"

const decodeFailureCount = Effect.map(Metric.value(Cache.decodeFailures), (state) => state.count)

describe("Cache.layerMemory", () => {
  it.effect("evicts the least recently used entry, not the least recently inserted", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ capacity: 3 })
      yield* cache.set("a", "1")
      yield* cache.set("b", "2")
      yield* cache.set("c", "3")
      // reading "a" makes "b" the least recently used
      expect(yield* cache.get("a")).toEqual(Option.some("1"))
      yield* cache.set("d", "4")
      expect(yield* cache.get("b")).toEqual(Option.none())
      expect(yield* cache.get("a")).toEqual(Option.some("1"))
      expect(yield* cache.get("c")).toEqual(Option.some("3"))
      expect(yield* cache.get("d")).toEqual(Option.some("4"))
      expect(yield* cache.size).toBe(3)
    }))

  it.effect("without reads, evicts in insertion order; rewriting a key counts as a use", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ capacity: 2 })
      yield* cache.set("a", "1")
      yield* cache.set("b", "2")
      yield* cache.set("a", "1'")
      yield* cache.set("c", "3")
      expect(yield* cache.get("b")).toEqual(Option.none())
      expect(yield* cache.get("a")).toEqual(Option.some("1'"))
      yield* cache.set("d", "4")
      expect(yield* cache.get("c")).toEqual(Option.none())
      expect(yield* cache.get("a")).toEqual(Option.some("1'"))
    }))

  it.effect("expires entries after the default TTL of 5 minutes on the Clock", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory()
      yield* cache.set("k", "v")
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(5), Duration.millis(1)))
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.size).toBe(0)
    }))

  it.effect("a per-call ttl overrides the default, both shorter and longer", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ ttl: "1 minute" })
      yield* cache.set("short", "s", { ttl: "10 seconds" })
      yield* cache.set("long", "l", { ttl: "1 hour" })
      yield* cache.set("default", "d")
      yield* TestClock.adjust("10 seconds")
      expect(yield* cache.get("short")).toEqual(Option.none())
      expect(yield* cache.get("default")).toEqual(Option.some("d"))
      yield* TestClock.adjust("50 seconds")
      expect(yield* cache.get("default")).toEqual(Option.none())
      expect(yield* cache.get("long")).toEqual(Option.some("l"))
      yield* TestClock.adjust("59 minutes")
      expect(yield* cache.get("long")).toEqual(Option.none())
    }))

  it.effect("reading an entry does not extend its TTL", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ ttl: "1 minute" })
      yield* cache.set("k", "v")
      yield* TestClock.adjust("59 seconds")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      yield* TestClock.adjust("1 second")
      expect(yield* cache.get("k")).toEqual(Option.none())
    }))

  it.effect("expired entries are reclaimed and free their slot", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ capacity: 3, ttl: "1 minute" })
      yield* cache.set("a", "1")
      yield* cache.set("b", "2", { ttl: "10 minutes" })
      yield* cache.set("c", "3")
      yield* TestClock.adjust("2 minutes")
      // the write sweeps "a" and "c", so "b" (least recently used) is not evicted
      yield* cache.set("d", "4")
      yield* cache.set("e", "5")
      expect(yield* cache.get("b")).toEqual(Option.some("2"))
      expect(yield* cache.size).toBe(3)
    }))

  it.effect("delete reports whether a live entry was removed", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ ttl: "1 minute" })
      yield* cache.set("k", "v")
      yield* cache.set("old", "v")
      expect(yield* cache.delete("k")).toBe(true)
      expect(yield* cache.delete("k")).toBe(false)
      expect(yield* cache.get("k")).toEqual(Option.none())
      yield* TestClock.adjust("1 minute")
      expect(yield* cache.delete("old")).toBe(false)
    }))

  it.effect("invalidate removes every key with the prefix and returns the number of live entries removed", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ ttl: "1 minute" })
      yield* cache.set("user:1", "a")
      yield* cache.set("user:2", "b")
      yield* cache.set("user:3", "c", { ttl: "1 second" })
      yield* cache.set("order:1", "d")
      yield* TestClock.adjust("1 second")
      expect(yield* cache.invalidate("user:")).toBe(2)
      expect(yield* cache.get("user:1")).toEqual(Option.none())
      expect(yield* cache.get("order:1")).toEqual(Option.some("d"))
      expect(yield* cache.invalidate("user:")).toBe(0)
      expect(yield* cache.invalidate("")).toBe(1)
      expect(yield* cache.size).toBe(0)
    }))

  it.effect("never holds more than capacity entries under many concurrent writers", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ capacity: 50 })
      yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => i),
        (i) => Effect.zipRight(cache.set(`k${i}`, String(i)), cache.get(`k${i % 7}`)),
        { concurrency: "unbounded" }
      )
      expect(yield* cache.size).toBe(50)
    }))

  it.effect("a set with a non-positive ttl is refused with reason Protocol and stores nothing", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory()
      const error = yield* Effect.flip(cache.set("k", "v", { ttl: -5 }))
      expect(error._tag).toBe("CacheError")
      expect(error.reason).toBe("Protocol")
      expect(error.outcome).toBe("NotApplied")
      expect(error.message).toContain("ttl")
      expect(yield* cache.get("k")).toEqual(Option.none())
    }))

  it.effect("invalid options fail with InvalidOptions naming the field", () =>
    Effect.gen(function*() {
      const capacity = yield* Effect.flip(Cache.makeMemory({ capacity: 0 }))
      expect(capacity._tag).toBe("InvalidOptions")
      expect(capacity.field).toBe("capacity")
      expect(capacity.message).toContain("integer >= 1")
      const ttl = yield* Effect.flip(Cache.makeMemory({ ttl: "soon" as Duration.DurationInput }))
      expect(ttl.field).toBe("ttl")
      const layer = yield* Effect.flip(Effect.provide(Cache.Cache, Cache.layerMemory({ capacity: 1.5 })))
      expect(layer.field).toBe("capacity")
    }))

  it.effect("is provided as the Cache service by layerMemory", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.Cache
      yield* cache.set("k", "v")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
    }).pipe(Effect.provide(Cache.layerMemory())))
})

describe("Cache.layerDegraded", () => {
  it.effect("misses on get, succeeds without storing on set, deletes nothing, invalidates 0", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.Cache
      yield* cache.set("k", "v", { ttl: "1 hour" })
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.delete("k")).toBe(false)
      expect(yield* cache.invalidate("")).toBe(0)
    }).pipe(Effect.provide(Cache.layerDegraded)))

  it.effect("swaps for the memory layer without changing the program", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const cache = yield* Cache.Cache
        yield* cache.set("k", "v")
        return yield* cache.get("k")
      })
      expect(yield* Effect.provide(program, Cache.layerMemory())).toEqual(Option.some("v"))
      expect(yield* Effect.provide(program, Cache.layerDegraded)).toEqual(Option.none())
    }))
})

const User = Schema.Struct({ id: Schema.Int, name: Schema.String, since: Schema.DateFromString })

describe("Cache.typed", () => {
  it.effect("stores the JSON of the encoded value and decodes it back", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const users = yield* Cache.typed(User)
      const ada = { id: 1, name: "Ada", since: new Date("2020-01-02T03:04:05.000Z") }
      yield* users.set("user:1", ada)
      expect(yield* raw.get("user:1")).toEqual(
        Option.some(JSON.stringify({ id: 1, name: "Ada", since: "2020-01-02T03:04:05.000Z" }))
      )
      expect(yield* users.get("user:1")).toEqual(Option.some(ada))
      expect(yield* users.get("user:2")).toEqual(Option.none())
      expect(yield* users.delete("user:1")).toBe(true)
      expect(yield* users.get("user:1")).toEqual(Option.none())
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("a payload that does not decode is a miss and increments the decode-failure metric", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const users = yield* Cache.typed(User)
      const before = yield* decodeFailureCount
      yield* raw.set("user:1", JSON.stringify({ id: "one", name: "Ada" }))
      yield* raw.set("user:2", "not json {")
      expect(yield* users.get("user:1")).toEqual(Option.none())
      expect(yield* users.get("user:2")).toEqual(Option.none())
      expect((yield* decodeFailureCount) - before).toBe(2)
      // a good payload is not counted
      yield* users.set("user:3", { id: 3, name: "Grace", since: new Date(0) })
      expect(Option.isSome(yield* users.get("user:3"))).toBe(true)
      expect((yield* decodeFailureCount) - before).toBe(2)
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("a value that does not encode fails set with a ParseError and stores nothing", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const users = yield* Cache.typed(User)
      // the refinement of the schema refuses it
      const error = yield* Effect.flip(users.set("user:1", { id: 1.5, name: "Ada", since: new Date(0) }))
      expect(error._tag).toBe("ParseError")
      expect(yield* raw.get("user:1")).toEqual(Option.none())
      // JSON.stringify refuses it
      const anything = yield* Cache.typed(Schema.Unknown)
      const bigint = yield* Effect.flip(anything.set("n", 1n))
      expect(bigint._tag).toBe("ParseError")
      expect(yield* raw.get("n")).toEqual(Option.none())
    }).pipe(Effect.provide(Cache.layerMemory())))

  it.effect("passes cache errors through", () =>
    Effect.gen(function*() {
      const failing: Cache.CacheService = {
        ...Cache.degraded,
        get: (key) =>
          Effect.fail(new Cache.CacheError({ operation: "get", key, reason: "Unavailable", outcome: "NotApplied" }))
      }
      const users = Cache.makeTyped(failing, User)
      const error = yield* Effect.flip(users.get("user:1"))
      expect(error.reason).toBe("Unavailable")
    }))
})

describe("CacheError", () => {
  it("names the operation, key, reason and outcome in its message", () => {
    const error = new Cache.CacheError({ operation: "set", key: "user:1", reason: "Timeout", outcome: "Unknown" })
    expect(error.message).toBe("cache set of key \"user:1\" failed (Timeout), it may have been applied")
    const invalidate = new Cache.CacheError({
      operation: "invalidate",
      key: "user:",
      reason: "Unavailable",
      outcome: "NotApplied",
      cause: new Error("connect ECONNREFUSED")
    })
    expect(invalidate.message).toBe(
      "cache invalidate of prefix \"user:\" failed (Unavailable), it was not applied: connect ECONNREFUSED"
    )
  })

  it.effect("is a typed failure that catchTag can handle", () =>
    Effect.gen(function*() {
      const result = yield* Effect.fail(
        new Cache.CacheError({ operation: "get", key: "k", reason: "Unavailable", outcome: "NotApplied" })
      ).pipe(Effect.catchTag("CacheError", (e) => Effect.succeed(e.reason)), Effect.either)
      expect(result).toEqual(Either.right("Unavailable"))
    }))
})

describe("layers compose", () => {
  it.effect("a layer built once shares state across reads", () =>
    Effect.gen(function*() {
      const layer = Layer.fresh(Cache.layerMemory({ capacity: 10 }))
      const value = yield* Effect.gen(function*() {
        yield* Effect.flatMap(Cache.Cache, (cache) => cache.set("k", "v"))
        return yield* Effect.flatMap(Cache.Cache, (cache) => cache.get("k"))
      }).pipe(Effect.provide(layer))
      expect(value).toEqual(Option.some("v"))
    }))
})

// -----------------------------------------------------------------------------
// model-based properties
// -----------------------------------------------------------------------------

type Op =
  | { readonly _tag: "Set"; readonly key: string; readonly value: string; readonly ttl: number | undefined }
  | { readonly _tag: "Get"; readonly key: string }
  | { readonly _tag: "Delete"; readonly key: string }
  | { readonly _tag: "Invalidate"; readonly prefix: string }
  | { readonly _tag: "Advance"; readonly millis: number }

const keyArb = FastCheck.constantFrom("a:1", "a:2", "b:1", "b:2", "c:1", "c:2")
const opArb = (withTime: boolean): FastCheck.Arbitrary<Op> =>
  FastCheck.oneof(
    {
      weight: 4,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Set" as const),
        key: keyArb,
        value: FastCheck.string({ maxLength: 3 }),
        ttl: withTime
          ? FastCheck.option(FastCheck.integer({ min: 1, max: 3000 }), { nil: undefined })
          : FastCheck.constant(undefined)
      })
    },
    { weight: 4, arbitrary: FastCheck.record({ _tag: FastCheck.constant("Get" as const), key: keyArb }) },
    { weight: 1, arbitrary: FastCheck.record({ _tag: FastCheck.constant("Delete" as const), key: keyArb }) },
    {
      weight: 1,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Invalidate" as const),
        prefix: FastCheck.constantFrom("a:", "b:", "c:2", "")
      })
    },
    {
      weight: withTime ? 1 : 0,
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("Advance" as const),
        millis: FastCheck.integer({ min: 1, max: 2000 })
      })
    }
  )

/** The reference: entries in least-recently-used-first order, each with its expiry. */
class Model {
  entries: Array<{ key: string; value: string; expiresAt: number }> = []
  now = 0
  constructor(readonly capacity: number, readonly ttl: number) {}
  live() {
    this.entries = this.entries.filter((e) => e.expiresAt > this.now)
  }
  apply(op: Op): unknown {
    switch (op._tag) {
      case "Set": {
        this.live()
        this.entries = this.entries.filter((e) => e.key !== op.key)
        this.entries.push({ key: op.key, value: op.value, expiresAt: this.now + (op.ttl ?? this.ttl) })
        if (this.entries.length > this.capacity) this.entries.shift()
        return undefined
      }
      case "Get": {
        this.live()
        const entry = this.entries.find((e) => e.key === op.key)
        if (entry === undefined) return Option.none()
        this.entries = [...this.entries.filter((e) => e !== entry), entry]
        return Option.some(entry.value)
      }
      case "Delete": {
        this.live()
        const before = this.entries.length
        this.entries = this.entries.filter((e) => e.key !== op.key)
        return before !== this.entries.length
      }
      case "Invalidate": {
        this.live()
        const before = this.entries.length
        this.entries = this.entries.filter((e) => !e.key.startsWith(op.prefix))
        return before - this.entries.length
      }
      case "Advance": {
        this.now += op.millis
        return undefined
      }
    }
  }
}

const run = (cache: Cache.MemoryCache, op: Op): Effect.Effect<unknown, Cache.CacheError> => {
  switch (op._tag) {
    case "Set":
      return cache.set(op.key, op.value, op.ttl === undefined ? undefined : { ttl: op.ttl })
    case "Get":
      return cache.get(op.key)
    case "Delete":
      return cache.delete(op.key)
    case "Invalidate":
      return cache.invalidate(op.prefix)
    case "Advance":
      return Effect.asVoid(TestClock.adjust(op.millis))
  }
}

describe("Cache.layerMemory model", () => {
  it.effect.prop(
    "without expiry, behaves exactly as an LRU of its capacity",
    [FastCheck.integer({ min: 1, max: 4 }), FastCheck.array(opArb(false), { minLength: 10, maxLength: 60, size: "max" })],
    ([capacity, ops]) =>
      Effect.gen(function*() {
        const cache = yield* Cache.makeMemory({ capacity })
        const model = new Model(capacity, Number.POSITIVE_INFINITY)
        for (const op of ops) {
          expect(yield* run(cache, op)).toEqual(model.apply(op))
          expect(yield* cache.size).toBe(model.entries.length)
        }
      }),
    { fastCheck: { numRuns: 100 } }
  )

  it.effect.prop(
    "with room for every key, expires entries exactly at their TTL",
    [FastCheck.array(opArb(true), { minLength: 10, maxLength: 40, size: "max" })],
    ([ops]) =>
      Effect.gen(function*() {
        const cache = yield* Cache.makeMemory({ capacity: 6, ttl: 1000 })
        const model = new Model(6, 1000)
        for (const op of ops) {
          expect(yield* run(cache, op)).toEqual(model.apply(op))
        }
        model.live()
        expect(yield* cache.size).toBe(model.entries.length)
      }),
    { fastCheck: { numRuns: 40 } }
  )
})
