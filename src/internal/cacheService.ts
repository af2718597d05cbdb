import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { CacheService } from "../Cache.js"
import { InvalidOptions } from "../InvalidOptions.js"

/**
 * A failed cache operation.
 *
 * @internal
 */
export class CacheError extends Data.TaggedError("CacheError")<{
  readonly operation: "get" | "set" | "delete" | "invalidate"
  readonly key: string
  readonly reason: "Unavailable" | "Timeout" | "OutOfMemory" | "TooLarge" | "Protocol" | "Unknown"
  readonly outcome: "NotApplied" | "Unknown"
  readonly cause?: unknown
}> {
  override get message(): string {
    const target = this.operation === "invalidate" ? `prefix "${this.key}"` : `key "${this.key}"`
    const outcome = this.outcome === "Unknown" ? "it may have been applied" : "it was not applied"
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `cache ${this.operation} of ${target} failed (${this.reason}), ${outcome}${detail}`
  }
}

/**
 * The `Cache` service tag.
 *
 * @internal
 */
export class Cache extends Context.Tag("effect-resilience/Cache")<Cache, CacheService>() {}

/**
 * Resolves the TTL of one `set` to milliseconds (`Infinity` for no expiry), or the error
 * that refuses it.
 *
 * @internal
 */
export const ttlMillis = (
  key: string,
  ttl: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Either.Either<number, CacheError> => {
  if (ttl === undefined) return Either.right(Duration.toMillis(fallback))
  const decoded = Duration.decodeUnknown(ttl)
  const millis = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : Number.NaN
  if (Number.isNaN(millis) || millis <= 0) {
    return Either.left(
      new CacheError({
        operation: "set",
        key,
        reason: "Protocol",
        outcome: "NotApplied",
        cause: new InvalidOptions({ module: "Cache", field: "ttl", expected: "a positive duration", received: ttl })
      })
    )
  }
  return Either.right(millis)
}
