import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type { CacheService } from "../Cache.js"

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
