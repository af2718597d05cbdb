import * as Persistence from "@effect/experimental/Persistence"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as PrimaryKey from "effect/PrimaryKey"
import * as Schema from "effect/Schema"
import type * as CacheModule from "../Cache.js"
import { Cache } from "./cacheService.js"
import { counter } from "./metric.js"

/** @internal */
export const decodeFailures = counter(
  "effect_resilience_persistence_decode_failures_total",
  "Persisted payloads that were not JSON or did not decode with the request's schema, treated as misses"
)

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
              Metric.increment(decodeFailures).pipe(
                Effect.zipRight(
                  Effect.logWarning("persisted payload is not JSON: treated as a miss").pipe(
                    Effect.annotateLogs({ storeId, key })
                  )
                ),
                Effect.as(Option.none())
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

/**
 * `ResultPersistence` over a `BackingPersistence`, as `Persistence.layerResult`, but a
 * stored result that no longer decodes (written by an older schema) is a miss in `get` as
 * in `getMany`: counted, logged, and removed so that the fresh result replaces it.
 *
 * @internal
 */
export const layerResultOverBacking: Layer.Layer<
  Persistence.ResultPersistence,
  never,
  Persistence.BackingPersistence
> = Layer.effect(
  Persistence.ResultPersistence,
  Effect.map(Persistence.BackingPersistence, (backing) =>
    Persistence.ResultPersistence.of({
      [Persistence.ResultPersistenceTypeId]: Persistence.ResultPersistenceTypeId,
      make: (options) =>
        Effect.map(backing.make(options.storeId), (storage) => {
          const timeToLive = options.timeToLive ?? (() => Duration.infinity)
          const keyOf = (key: Persistence.ResultPersistence.KeyAny) => key[PrimaryKey.symbol]()

          const decode = <R, IE, E, IA, A>(
            key: Persistence.ResultPersistence.Key<R, IE, E, IA, A>,
            stored: Option.Option<unknown>
          ): Effect.Effect<Option.Option<Exit.Exit<A, E>>, never, R> =>
            Option.isNone(stored) ? Effect.succeedNone : Schema.deserializeExit(key, stored.value).pipe(
              Effect.asSome,
              Effect.catchTag("ParseError", (error) =>
                Metric.increment(decodeFailures).pipe(
                  Effect.zipRight(
                    Effect.logWarning("persisted result does not decode: treated as a miss").pipe(
                      Effect.annotateLogs({
                        storeId: options.storeId,
                        key: keyOf(key),
                        error: ParseResult.TreeFormatter.formatErrorSync(error)
                      })
                    )
                  ),
                  // Removed, so that it is not decoded again; a failed removal leaves a miss.
                  Effect.zipRight(Effect.ignore(storage.remove(keyOf(key)))),
                  Effect.as(Option.none())
                ))
            )

          const encode = <R, IE, E, IA, A>(
            method: string,
            key: Persistence.ResultPersistence.Key<R, IE, E, IA, A>,
            value: Exit.Exit<A, E>
          ) =>
            Effect.mapError(
              Schema.serializeExit(key, value),
              (error) => Persistence.PersistenceParseError.make(method, error.issue)
            )

          const ttlOf = (key: Persistence.ResultPersistence.KeyAny, value: Exit.Exit<unknown, unknown>) =>
            Duration.decode(timeToLive(key, value))

          return identity<Persistence.ResultPersistenceStore>({
            get: (key) => Effect.flatMap(storage.get(keyOf(key)), (stored) => decode(key, stored)),
            getMany: (keys) =>
              Effect.flatMap(
                storage.getMany(keys.map(keyOf)),
                (stored) => Effect.forEach(stored, (value, i) => decode(keys[i]!, value))
              ),
            set: (key, value) => {
              const ttl = ttlOf(key, value)
              if (Duration.isZero(ttl)) return Effect.void
              return Effect.flatMap(
                encode("set", key, value),
                (encoded) => storage.set(keyOf(key), encoded, Duration.isFinite(ttl) ? Option.some(ttl) : Option.none())
              )
            },
            setMany: (entries) =>
              Effect.gen(function*() {
                const encoded: Array<readonly [string, unknown, Option.Option<Duration.Duration>]> = []
                for (const [key, value] of entries) {
                  const ttl = ttlOf(key, value)
                  if (Duration.isZero(ttl)) continue
                  const payload = yield* encode("setMany", key, value)
                  encoded.push([keyOf(key), payload, Duration.isFinite(ttl) ? Option.some(ttl) : Option.none()])
                }
                if (encoded.length > 0) yield* storage.setMany(encoded)
              }),
            remove: (key) => storage.remove(keyOf(key)),
            clear: storage.clear
          })
        })
    }))
)

/** @internal */
export const layerResult: Layer.Layer<Persistence.ResultPersistence, never, Cache> = layerResultOverBacking.pipe(
  Layer.provide(layer)
)
