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
