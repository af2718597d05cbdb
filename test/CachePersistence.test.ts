import * as PersistedCache from "@effect/experimental/PersistedCache"
import * as Persistence from "@effect/experimental/Persistence"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Metric, Option, PrimaryKey, Ref, Schema, TestClock } from "effect"
import * as Cache from "../src/Cache.js"
import * as CachePersistence from "../src/CachePersistence.js"
import * as Chaos from "../src/Chaos.js"
import * as ResilientCache from "../src/ResilientCache.js"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String }) {}

class GetUser extends Schema.TaggedRequest<GetUser>()("GetUser", {
  failure: Schema.String,
  success: User,
  payload: { id: Schema.Number }
}) {
  [PrimaryKey.symbol]() {
    return `GetUser:${this.id}`
  }
}

/** A PersistedCache whose lookup counts its calls; id 0 is "not found". */
const makeUsers = (lookups: Ref.Ref<number>) =>
  PersistedCache.make({
    storeId: "users",
    lookup: (request: GetUser) =>
      Ref.update(lookups, (n) => n + 1).pipe(
        Effect.zipRight(
          request.id === 0
            ? Effect.fail("not found")
            : Effect.succeed(new User({ id: request.id, name: `user-${request.id}` }))
        )
      ),
    timeToLive: () => "1 minute",
    inMemoryCapacity: 8,
    inMemoryTTL: "1 second"
  })

const MemoryCache = Cache.layerMemory({ capacity: 100, ttl: "1 hour" })
const Stack = CachePersistence.layerResult.pipe(Layer.provideMerge(MemoryCache))

describe("CachePersistence", () => {
  it.scoped("PersistedCache stores results in the Cache and a new instance reads them without a lookup", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const raw = yield* Cache.Cache
      const first = yield* makeUsers(lookups)
      expect(yield* first.get(new GetUser({ id: 1 }))).toEqual(new User({ id: 1, name: "user-1" }))
      expect(yield* Ref.get(lookups)).toBe(1)
      // stored under "<storeId>:<primary key>", as JSON
      const payload = yield* raw.get("users:GetUser:1")
      expect(Option.isSome(payload)).toBe(true)
      expect(JSON.parse(Option.getOrThrow(payload))).toMatchObject({
        _tag: "Success",
        value: { id: 1, name: "user-1" }
      })

      // a second instance has an empty in-memory layer: the value comes from the Cache
      const second = yield* makeUsers(lookups)
      expect(yield* second.get(new GetUser({ id: 1 }))).toEqual(new User({ id: 1, name: "user-1" }))
      expect(yield* Ref.get(lookups)).toBe(1)
    }).pipe(Effect.provide(Stack)))

  it.scoped("failures are persisted too", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const first = yield* makeUsers(lookups)
      expect(yield* Effect.exit(first.get(new GetUser({ id: 0 })))).toEqual(Exit.fail("not found"))
      const second = yield* makeUsers(lookups)
      expect(yield* Effect.exit(second.get(new GetUser({ id: 0 })))).toEqual(Exit.fail("not found"))
      expect(yield* Ref.get(lookups)).toBe(1)
    }).pipe(Effect.provide(Stack)))

  it.scoped("entries expire with the TTL that PersistedCache asks for, on the Clock", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const raw = yield* Cache.Cache
      yield* Effect.flatMap(makeUsers(lookups), (users) => users.get(new GetUser({ id: 2 })))
      yield* TestClock.adjust("59 seconds")
      expect(Option.isSome(yield* raw.get("users:GetUser:2"))).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* raw.get("users:GetUser:2")).toEqual(Option.none())
      yield* Effect.flatMap(makeUsers(lookups), (users) => users.get(new GetUser({ id: 2 })))
      expect(yield* Ref.get(lookups)).toBe(2)
    }).pipe(Effect.provide(Stack)))

  it.scoped("invalidate removes the entry from the Cache", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const raw = yield* Cache.Cache
      const users = yield* makeUsers(lookups)
      yield* users.get(new GetUser({ id: 3 }))
      yield* users.invalidate(new GetUser({ id: 3 }))
      expect(yield* raw.get("users:GetUser:3")).toEqual(Option.none())
      yield* users.get(new GetUser({ id: 3 }))
      expect(yield* Ref.get(lookups)).toBe(2)
    }).pipe(Effect.provide(Stack)))

  it.scoped("a store's clear removes its own keys only; getMany, setMany and remove work by key", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const backing = yield* Persistence.BackingPersistence
      const a = yield* backing.make("a")
      const ab = yield* backing.make("ab")
      yield* a.setMany([["1", { n: 1 }, Option.none()], ["2", [2], Option.none()]])
      yield* ab.set("1", "other store", Option.none())
      expect(yield* a.getMany(["1", "2", "3"])).toEqual([Option.some({ n: 1 }), Option.some([2]), Option.none()])
      yield* a.remove("2")
      expect(yield* a.get("2")).toEqual(Option.none())
      yield* a.clear
      expect(yield* a.get("1")).toEqual(Option.none())
      expect(yield* ab.get("1")).toEqual(Option.some("other store"))
      // a payload that is not JSON is a miss
      yield* raw.set("a:bad", "{not json")
      expect(yield* a.get("bad")).toEqual(Option.none())
    }).pipe(Effect.provide(CachePersistence.layer.pipe(Layer.provideMerge(MemoryCache)))))

  it.scoped("a cache failure is a PersistenceBackingError carrying the CacheError", () =>
    Effect.gen(function*() {
      const down: Cache.CacheService = {
        get: (key) =>
          Effect.fail(new Cache.CacheError({ operation: "get", key, reason: "Unavailable", outcome: "NotApplied" })),
        set: (key) =>
          Effect.fail(new Cache.CacheError({ operation: "set", key, reason: "Timeout", outcome: "Unknown" })),
        delete: () => Effect.succeed(false),
        invalidate: () => Effect.succeed(0)
      }
      const store = yield* CachePersistence.fromCache(down).make("s")
      const read = yield* Effect.flip(store.get("k"))
      expect(read).toMatchObject({ reason: "BackingError", method: "get" })
      expect((read as Persistence.PersistenceBackingError).cause).toMatchObject({ _tag: "CacheError", key: "s:k" })
      const write = yield* Effect.flip(store.set("k", 1, Option.none()))
      expect((write as Persistence.PersistenceBackingError).cause).toMatchObject({
        reason: "Timeout",
        outcome: "Unknown"
      })
    }))

  it.scoped("an old payload that no longer decodes is a counted miss over a resilient cache, in get and getMany", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const raw = yield* Cache.Cache
      // Written by an older version: the user's id was a string then.
      const old = JSON.stringify({ _tag: "Success", value: { id: "five", name: "user-5" } })
      yield* raw.set("users:GetUser:5", old)
      yield* raw.set("users:GetUser:6", old)
      const before = (yield* Metric.value(CachePersistence.decodeFailures)).count

      const users = yield* makeUsers(lookups)
      expect(yield* users.get(new GetUser({ id: 5 }))).toEqual(new User({ id: 5, name: "user-5" }))
      expect(yield* Ref.get(lookups)).toBe(1)
      // The bad payload was replaced by the fresh value.
      expect(JSON.parse(Option.getOrThrow(yield* raw.get("users:GetUser:5")))).toMatchObject({
        value: { id: 5 }
      })

      const store = yield* (yield* Persistence.ResultPersistence).make({ storeId: "users" })
      expect(yield* store.get(new GetUser({ id: 6 }))).toEqual(Option.none())
      yield* raw.set("users:GetUser:6", old)
      expect(yield* store.getMany([new GetUser({ id: 6 }), new GetUser({ id: 5 })])).toEqual([
        Option.none(),
        Option.some(Exit.succeed(new User({ id: 5, name: "user-5" })))
      ])
      // Each bad payload is removed, so it is not decoded again.
      expect(yield* raw.get("users:GetUser:6")).toEqual(Option.none())
      expect((yield* Metric.value(CachePersistence.decodeFailures)).count - before).toBe(3)
    }).pipe(
      Effect.provide(
        CachePersistence.layerResult.pipe(
          Layer.provideMerge(ResilientCache.layer({ name: "persisted" })),
          Layer.provide(MemoryCache)
        )
      )
    ))

  it.scoped("a payload that is not JSON is a counted miss too", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const store = yield* (yield* Persistence.BackingPersistence).make("s")
      const before = (yield* Metric.value(CachePersistence.decodeFailures)).count
      yield* raw.set("s:bad", "{not json")
      expect(yield* store.get("bad")).toEqual(Option.none())
      expect(yield* store.getMany(["bad", "absent"])).toEqual([Option.none(), Option.none()])
      expect((yield* Metric.value(CachePersistence.decodeFailures)).count - before).toBe(2)
    }).pipe(Effect.provide(CachePersistence.layer.pipe(Layer.provideMerge(MemoryCache)))))

  it.scoped("over a resilient cache that is down, PersistedCache answers from its lookup and never fails", () =>
    Effect.gen(function*() {
      const lookups = yield* Ref.make(0)
      const users = yield* makeUsers(lookups)
      for (let i = 0; i < 10; i++) {
        expect(yield* Effect.exit(users.get(new GetUser({ id: 100 + i })))).toEqual(
          Exit.succeed(new User({ id: 100 + i, name: `user-${100 + i}` }))
        )
      }
      expect(yield* Ref.get(lookups)).toBe(10)
      const store = yield* (yield* Persistence.ResultPersistence).make({ storeId: "users" })
      expect(yield* Effect.exit(store.getMany([new GetUser({ id: 100 })]))).toEqual(Exit.succeed([Option.none()]))
      expect(yield* Effect.exit(store.clear)).toEqual(Exit.void)
    }).pipe(
      Effect.provide(
        CachePersistence.layerResult.pipe(
          Layer.provide(ResilientCache.layer({ name: "persisted-down" })),
          Layer.provide(Chaos.layerCache({ outages: [{ start: 0, duration: "1 hour" }] })),
          Layer.provide(MemoryCache)
        )
      )
    ))

  it.scoped("a zero timeToLive stores nothing; an infinite one gets the cache's default TTL, in set and setMany", () =>
    Effect.gen(function*() {
      const raw = yield* Cache.Cache
      const persistence = yield* Persistence.ResultPersistence
      const ttlOf = (request: Persistence.ResultPersistence.KeyAny) =>
        (request as GetUser).id === 0 ? Duration.zero : (request as GetUser).id === 1 ? Duration.infinity : "1 minute"
      const store = yield* persistence.make({ storeId: "ttl", timeToLive: ttlOf })
      const user = (id: number) => Exit.succeed(new User({ id, name: `user-${id}` }))
      yield* store.set(new GetUser({ id: 0 }), user(0))
      yield* store.set(new GetUser({ id: 1 }), user(1))
      yield* store.setMany([[new GetUser({ id: 10 }), user(10)], [new GetUser({ id: 0 }), user(0)]])
      expect(yield* raw.get("ttl:GetUser:0")).toEqual(Option.none())
      expect(Option.isSome(yield* raw.get("ttl:GetUser:1"))).toBe(true)
      expect(yield* store.get(new GetUser({ id: 10 }))).toEqual(Option.some(user(10)))
      yield* TestClock.adjust("1 minute")
      expect(yield* store.get(new GetUser({ id: 10 }))).toEqual(Option.none())
      // The memory cache's default TTL is 1 hour.
      expect(yield* store.get(new GetUser({ id: 1 }))).toEqual(Option.some(user(1)))
      yield* TestClock.adjust("59 minutes")
      expect(yield* store.get(new GetUser({ id: 1 }))).toEqual(Option.none())
    }).pipe(Effect.provide(Stack)))
})
