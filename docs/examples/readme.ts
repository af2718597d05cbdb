/**
 * The examples of README.md, type-checked with the project.
 */
import { Effect, Layer } from "effect"
import { Cache, CircuitBreaker, Fallback, ResilientCache, Retry, Timeout } from "effect-resilience"
import * as RedisCache from "effect-resilience/Cache/Redis"

declare const fetchStock: (sku: string) => Effect.Effect<number, Error>

export const taste = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "inventory", failureThreshold: 5, resetTimeout: "30 seconds" })
  const stock = (sku: string) =>
    fetchStock(sku).pipe(
      Timeout.timeout("2 seconds", { operation: "GET /stock" }), // bounds each attempt
      CircuitBreaker.protect(breaker), // fails fast while the dependency is down
      Retry.policy(), // retries by error class; stops on an open breaker
      Fallback.to(0) // a last answer
    )
  return yield* stock("sku-1")
})

export const program = Effect.gen(function*() {
  const cache = yield* ResilientCache.ResilientCache
  yield* cache.set("greeting", "hello") // Effect<void, never>
  return yield* cache.get("greeting") // Effect<Option<string>, never>
})

export const production = ResilientCache.layer({ memoryFallback: true }).pipe(Layer.provide(RedisCache.layerConfig()))
export const local = ResilientCache.layer().pipe(Layer.provide(Cache.layerMemory()))

export const runLocal = program.pipe(Effect.provide(local))
