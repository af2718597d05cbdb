import * as Persistence from "@effect/experimental/Persistence"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as CacheModule from "../Cache.js"
import { Cache } from "./cacheService.js"

/** @internal */
export const separator = ":"

/** @internal */
export const makeStore = (cache: CacheModule.CacheService, storeId: string): Persistence.BackingPersistenceStore => {
  const prefix = `${storeId}${separator}`
  const keyOf = (key: string) => `${prefix}${key}`

  const get = (method: string, key: string): Effect.Effect<Option.Option<unknown>, Persistence.PersistenceError> =>
    cache.get(keyOf(key)).pipe(
      Effect.mapError((error) => Persistence.PersistenceBackingError.make(method, error)),
      Effect.flatMap(Option.match({
        onNone: () => Effect.succeedNone,
        onSome: (payload) =>
          Effect.try(() => Option.some(JSON.parse(payload) as unknown)).pipe(
            // A payload that is not JSON was not written by this store: a miss, as in the typed view.
            Effect.catchAll(() =>
              Effect.as(
                Effect.logWarning("persisted payload is not JSON: treated as a miss").pipe(
                  Effect.annotateLogs({ storeId, key })
                ),
                Option.none()
              )
            )
          )
      }))
    )

  const set = (
    method: string,
    key: string,
    value: unknown,
    ttl: Option.Option<Duration.Duration>
  ): Effect.Effect<void, Persistence.PersistenceError> =>
    Effect.try({
      try: () => JSON.stringify(value),
      catch: (error) => Persistence.PersistenceBackingError.make(method, error)
    }).pipe(
      Effect.flatMap((payload) =>
        payload === undefined
          ? Effect.fail(Persistence.PersistenceBackingError.make(method, new TypeError("value is not serializable")))
          : cache.set(keyOf(key), payload, Option.isSome(ttl) ? { ttl: ttl.value } : undefined).pipe(
            Effect.mapError((error) => Persistence.PersistenceBackingError.make(method, error))
          )
      )
    )

  return {
    get: (key) => get("get", key),
    getMany: (keys) => Effect.forEach(keys, (key) => get("getMany", key), { concurrency: "unbounded" }),
    set: (key, value, ttl) => set("set", key, value, ttl),
    setMany: (entries) =>
      Effect.forEach(entries, ([key, value, ttl]) => set("setMany", key, value, ttl), {
        concurrency: "unbounded",
        discard: true
      }),
    remove: (key) =>
      cache.delete(keyOf(key)).pipe(
        Effect.mapError((error) => Persistence.PersistenceBackingError.make("remove", error)),
        Effect.asVoid
      ),
    clear: cache.invalidate(prefix).pipe(
      Effect.mapError((error) => Persistence.PersistenceBackingError.make("clear", error)),
      Effect.asVoid
    )
  }
}

/** @internal */
export const fromCache = (cache: CacheModule.CacheService): Persistence.BackingPersistence =>
  Persistence.BackingPersistence.of({
    [Persistence.BackingPersistenceTypeId]: Persistence.BackingPersistenceTypeId,
    make: (storeId) => Effect.sync(() => makeStore(cache, storeId))
  })

/** @internal */
export const make: Effect.Effect<Persistence.BackingPersistence, never, Cache> = Effect.map(Cache, fromCache)

/** @internal */
export const layer: Layer.Layer<Persistence.BackingPersistence, never, Cache> = Layer.effect(
  Persistence.BackingPersistence,
  make
)

/** @internal */
export const layerResult: Layer.Layer<Persistence.ResultPersistence, never, Cache> = Persistence.layerResult.pipe(
  Layer.provide(layer)
)
