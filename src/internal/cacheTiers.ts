import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as CacheModule from "../Cache.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { Cache } from "./cacheService.js"

/**
 * A cache whose operations never fail.
 *
 * @internal
 */
export interface Tiers extends CacheModule.CacheService {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>>
  readonly getWithTtl: (key: string) => Effect.Effect<Option.Option<CacheModule.Entry>>
  readonly set: (key: string, value: string, options?: CacheModule.SetOptions) => Effect.Effect<void>
  readonly delete: (key: string) => Effect.Effect<boolean>
  readonly invalidate: (prefix: string) => Effect.Effect<number>
}

/**
 * Two caches as one fallback that never fails: `first` (memory) in front of `second` (a file
 * tier, typically). Reads try `first`, then `second`, whose hit is copied into `first` with
 * its remaining TTL; writes go to both, a copy keeping the TTL it is given. `second` is
 * bounded by `timeout` and its failures are misses, so a slow or broken tier costs a
 * fallback, never an answer. A write that `first` already holds, same value and at least
 * the same TTL (less a second), is not written to `second` again: copying every primary
 * read would otherwise cost a file write per hit.
 *
 * @internal
 */
export const make = (
  first: CacheModule.CacheService,
  second: CacheModule.CacheService,
  timeout: Duration.Duration
): Tiers => {
  const bounded = Duration.isFinite(timeout)
  const guard = <A>(effect: Effect.Effect<A, unknown>, orElse: A): Effect.Effect<A> => {
    const absorbed = Effect.orElseSucceed(effect, () => orElse)
    return bounded
      ? Effect.timeoutTo(absorbed, { duration: timeout, onTimeout: () => orElse, onSuccess: (a) => a })
      : absorbed
  }
  const firstGuard = <A>(effect: Effect.Effect<A, unknown>, orElse: A): Effect.Effect<A> =>
    Effect.orElseSucceed(effect, () => orElse)

  const copyIntoFirst = (key: string, entry: CacheModule.Entry): Effect.Effect<void> =>
    Duration.greaterThan(entry.ttl, Duration.zero)
      ? Effect.ignore(first.set(key, entry.value, { ttl: entry.ttl }))
      : Effect.void

  const readSecond = (key: string): Effect.Effect<Option.Option<CacheModule.Entry>> => {
    const getWithTtl = second.getWithTtl
    return getWithTtl !== undefined
      ? guard(getWithTtl(key), Option.none())
      // A tier that cannot tell the remaining TTL is served, not copied: the copy could
      // outlive the entry.
      : Effect.map(guard(second.get(key), Option.none()), Option.map((value) => ({ value, ttl: Duration.zero })))
  }

  const getWithTtl = (key: string): Effect.Effect<Option.Option<CacheModule.Entry>> => {
    const fromFirst = first.getWithTtl !== undefined
      ? firstGuard(first.getWithTtl(key), Option.none())
      : Effect.map(
        firstGuard(first.get(key), Option.none()),
        Option.map((value) => ({ value, ttl: Duration.zero }))
      )
    return Effect.flatMap(fromFirst, (entry) =>
      Option.isSome(entry)
        ? Effect.succeed(entry)
        : Effect.tap(readSecond(key), (found) =>
          Option.isSome(found) ? copyIntoFirst(key, found.value) : Effect.void))
  }

  const get = (key: string): Effect.Effect<Option.Option<string>> =>
    Effect.map(getWithTtl(key), Option.map((entry) => entry.value))

  const oneSecond = Duration.seconds(1)
  const alreadyHeld = (
    key: string,
    value: string,
    ttl: Duration.DurationInput | undefined
  ): Effect.Effect<boolean> => {
    const firstWithTtl = first.getWithTtl
    if (firstWithTtl === undefined || ttl === undefined) return Effect.succeed(false)
    const wanted = Duration.decodeUnknown(ttl)
    if (Option.isNone(wanted)) return Effect.succeed(false)
    return Effect.map(firstGuard(firstWithTtl(key), Option.none()), (held) =>
      Option.isSome(held) && held.value.value === value &&
      Duration.greaterThanOrEqualTo(Duration.sum(held.value.ttl, oneSecond), wanted.value))
  }

  const set = (key: string, value: string, options?: CacheModule.SetOptions): Effect.Effect<void> =>
    Effect.flatMap(alreadyHeld(key, value, options?.ttl), (held) =>
      Effect.zipRight(
        Effect.ignore(first.set(key, value, options)),
        held ? Effect.void : Effect.asVoid(guard(second.set(key, value, options), undefined))
      ))

  const delete_ = (key: string): Effect.Effect<boolean> =>
    Effect.zipWith(
      firstGuard(first.delete(key), false),
      guard(second.delete(key), false),
      (a, b) => a || b
    )

  const invalidate = (prefix: string): Effect.Effect<number> =>
    Effect.zipWith(
      firstGuard(first.invalidate(prefix), 0),
      guard(second.invalidate(prefix), 0),
      (a, b) => Math.max(a, b)
    )

  return { get, getWithTtl, set, delete: delete_, invalidate }
}

const isCacheService = (value: unknown): value is CacheModule.CacheService =>
  typeof value === "object" && value !== null &&
  ["get", "set", "delete", "invalidate"].every((name) => typeof (value as Record<string, unknown>)[name] === "function")

/**
 * The cache an option names: a `Cache` service as given, or a Layer providing one, built in
 * the scope (its resources released with it). Anything else is `InvalidOptions`.
 *
 * @internal
 */
export const resolve = (
  module: string,
  field: string,
  option: CacheModule.CacheService | Layer.Layer<Cache, InvalidOptions> | undefined
): Effect.Effect<CacheModule.CacheService | undefined, InvalidOptions, Scope.Scope> => {
  if (option === undefined) return Effect.succeed(undefined)
  if (Layer.isLayer(option)) {
    const layer = option as Layer.Layer<Cache, InvalidOptions>
    return Effect.map(Layer.build(layer), (context) => Context.get(context, Cache))
  }
  if (isCacheService(option)) return Effect.succeed(option)
  return Effect.fail(
    new InvalidOptions({ module, field, expected: "a Cache service, or a Layer that provides Cache", received: option })
  )
}
