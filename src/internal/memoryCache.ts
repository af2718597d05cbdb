import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as CacheModule from "../Cache.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { CacheError, ttlMillis } from "./cacheService.js"
import * as options_ from "./options.js"

/** @internal */
export const defaultCapacity = 1000

/** @internal */
export const defaultTtl: Duration.Duration = Duration.minutes(5)

// Expired entries are removed when touched, and by a full sweep at most this often (and
// at most once per default TTL) during writes: O(1) amortized, and memory is reclaimed
// even for keys that are never read again.
const maxSweepInterval = 60_000

interface Entry {
  readonly value: string
  readonly expiresAt: number
}

/** @internal */
export interface ValidatedOptions {
  readonly capacity: number
  readonly ttl: Duration.Duration
}

/** @internal */
export const validate = (
  options: CacheModule.MemoryOptions | undefined
): Either.Either<ValidatedOptions, InvalidOptions> =>
  Either.gen(function*() {
    const given = yield* options_.object("Cache", options, false)
    const capacity = yield* options_.field(
      "Cache",
      "capacity",
      given.capacity,
      options_.integerAtLeast(1),
      defaultCapacity
    )
    const ttl = yield* options_.duration("Cache", "ttl", given.ttl, defaultTtl, { positive: true, finite: false })
    return { capacity, ttl }
  })

/** @internal */
export const make = (
  options?: CacheModule.MemoryOptions
): Effect.Effect<CacheModule.MemoryCache, InvalidOptions> =>
  Effect.map(validate(options), unsafeMake)

/** @internal */
export const unsafeMake = (options: ValidatedOptions): CacheModule.MemoryCache => {
  const { capacity, ttl } = options
  // A Map iterates in insertion order: deleting and re-inserting a key on every use keeps
  // the least recently used entry first, so eviction and promotion are O(1).
  const entries = new Map<string, Entry>()
  const sweepInterval = Math.min(Duration.toMillis(ttl), maxSweepInterval)
  let nextSweepAt = Number.NEGATIVE_INFINITY

  const sweep = (now: number): void => {
    for (const [key, entry] of entries) {
      if (entry.expiresAt <= now) entries.delete(key)
    }
    nextSweepAt = now + sweepInterval
  }

  // Every operation reads the clock and mutates the map in one synchronous step, so no
  // other fiber can observe or interleave with a half-done update.
  const withNow = <A, E>(f: (now: number) => Either.Either<A, E>): Effect.Effect<A, E> =>
    Effect.clockWith((clock) => Effect.suspend(() => f(clock.unsafeCurrentTimeMillis())))

  const get = (key: string): Effect.Effect<Option.Option<string>> =>
    withNow((now) => {
      const entry = entries.get(key)
      if (entry === undefined) return Either.right(Option.none())
      entries.delete(key)
      if (entry.expiresAt <= now) return Either.right(Option.none())
      entries.set(key, entry)
      return Either.right(Option.some(entry.value))
    })

  const getWithTtl = (key: string): Effect.Effect<Option.Option<CacheModule.Entry>> =>
    withNow((now) => {
      const entry = entries.get(key)
      if (entry === undefined) return Either.right(Option.none())
      entries.delete(key)
      if (entry.expiresAt <= now) return Either.right(Option.none())
      entries.set(key, entry)
      const remaining = entry.expiresAt === Number.POSITIVE_INFINITY
        ? Duration.infinity
        : Duration.millis(entry.expiresAt - now)
      return Either.right(Option.some({ value: entry.value, ttl: remaining }))
    })

  const set = (key: string, value: string, setOptions?: CacheModule.SetOptions): Effect.Effect<void, CacheError> =>
    withNow<void, CacheError>((now) => {
      const millis = ttlMillis(key, setOptions?.ttl, ttl)
      if (Either.isLeft(millis)) return Either.left(millis.left)
      if (now >= nextSweepAt) sweep(now)
      entries.delete(key)
      entries.set(key, { value, expiresAt: now + millis.right })
      if (entries.size > capacity) {
        const eldest = entries.keys().next()
        if (eldest.done !== true) entries.delete(eldest.value)
      }
      return Either.void
    })

  const delete_ = (key: string): Effect.Effect<boolean> =>
    withNow((now) => {
      const entry = entries.get(key)
      if (entry === undefined) return Either.right(false)
      entries.delete(key)
      return Either.right(entry.expiresAt > now)
    })

  const invalidate = (prefix: string): Effect.Effect<number> =>
    withNow((now) => {
      let removed = 0
      for (const [key, entry] of entries) {
        if (key.startsWith(prefix)) {
          entries.delete(key)
          if (entry.expiresAt > now) removed++
        }
      }
      return Either.right(removed)
    })

  const size: Effect.Effect<number> = withNow((now) => {
    sweep(now)
    return Either.right(entries.size)
  })

  // Every operation ends in the step that starts it, so it never waits: a wrapper need not
  // race it against a timer.
  return { get, getWithTtl, set, delete: delete_, invalidate, size, defaultTtl: ttl, commandTimeout: Duration.zero }
}
