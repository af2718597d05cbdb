/**
 * effect-resilience: circuit breakers, retries, fallbacks, bulkheads, resilient caches and
 * durable outboxes for Effect applications.
 *
 * @since 0.1.0
 */

/**
 * A circuit breaker whose state lives in an Effect `Ref`.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * The typed error of invalid constructor options.
 *
 * @since 0.1.0
 */
export { InvalidOptions } from "./InvalidOptions.js"

/**
 * The `Cache` service, its embedded memory layer, the degraded no-op layer and a typed
 * view through a `Schema`. The Redis layer lives on `effect-resilience/Cache/Redis`.
 *
 * @since 0.1.0
 */
export * as Cache from "./Cache.js"

/**
 * A cache whose methods cannot fail: a breaker, a timeout and a fallback per operation
 * over any `Cache`.
 *
 * @since 0.1.0
 */
export * as ResilientCache from "./ResilientCache.js"

/**
 * Read-through caching with single-flight and stale-if-error.
 *
 * @since 0.1.0
 */
export * as CacheAside from "./CacheAside.js"

/**
 * Fault injection (failures, latency, outages) for tests and demos, deterministic from a
 * seed and the `Clock`.
 *
 * @since 0.1.0
 */
export * as Chaos from "./Chaos.js"

/**
 * Retries as `Schedule`s: backoff with jitter, error classes, Retry-After, retry budgets.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.js"

/**
 * A per-operation timeout that interrupts the operation and fails with a typed error.
 *
 * @since 0.1.0
 */
export * as Timeout from "./Timeout.js"

/**
 * Bounded concurrency with a bounded FIFO queue.
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * Rate limiting on Effect's own `RateLimiter`, plus a rejecting mode.
 *
 * @since 0.1.0
 */
export * as RateLimit from "./RateLimit.js"

/**
 * Fallback values and effects, failover across providers, hedging, and breaker-aware
 * `ExecutionPlan` steps.
 *
 * @since 0.1.0
 */
export * as Fallback from "./Fallback.js"

/**
 * A registry of dependencies, the system's health and service levels computed from them,
 * and background checks that recover open breakers.
 *
 * @since 0.1.0
 */
export * as Health from "./Health.js"
