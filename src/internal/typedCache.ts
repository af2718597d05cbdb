import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as CacheModule from "../Cache.js"
import { Cache } from "./cacheService.js"
import { counter } from "./metric.js"

/** @internal */
export const decodeFailures = counter(
  "effect_resilience_cache_decode_failures_total",
  "Cached payloads that did not decode with the typed view's schema and were treated as misses"
)

/** @internal */
export const makeTyped = <A, I, R>(
  cache: CacheModule.CacheService,
  schema: Schema.Schema<A, I, R>
): CacheModule.TypedCache<A, R> => {
  const json = Schema.parseJson(schema)
  const decode = Schema.decode(json)
  const encode = Schema.encode(json)
  return {
    get: (key) =>
      Effect.flatMap(cache.get(key), (payload) => {
        if (Option.isNone(payload)) return Effect.succeedNone
        return decode(payload.value).pipe(
          Effect.asSome,
          Effect.catchTag("ParseError", (error) =>
            Metric.increment(decodeFailures).pipe(
              Effect.zipRight(
                Effect.logWarning("cached payload does not decode: treated as a miss").pipe(
                  Effect.annotateLogs({ key, error: ParseResult.TreeFormatter.formatErrorSync(error) })
                )
              ),
              Effect.as(Option.none<A>())
            ))
        )
      }),
    set: (key, value, options) => Effect.flatMap(encode(value), (payload) => cache.set(key, payload, options)),
    delete: (key) => cache.delete(key),
    invalidate: (prefix) => cache.invalidate(prefix)
  }
}

/** @internal */
export const typed = <A, I, R>(
  schema: Schema.Schema<A, I, R>
): Effect.Effect<CacheModule.TypedCache<A, R>, never, Cache> => Effect.map(Cache, (cache) => makeTyped(cache, schema))
