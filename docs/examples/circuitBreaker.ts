/**
 * The examples of docs/circuit-breaker.md, type-checked with the project.
 */
import { ConfigProvider, Effect, Schedule, Stream } from "effect"
import { CircuitBreaker } from "effect-resilience"

declare const queryRedis: Effect.Effect<string, Error>
declare const pingDatabase: Effect.Effect<void, Error>

export const basic = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "redis", failureThreshold: 5, resetTimeout: "30 seconds" })
  return yield* breaker.protect(queryRedis)
})

export const piped = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({
    name: "redis",
    openSchedule: Schedule.exponential("5 seconds").pipe(Schedule.union(Schedule.spaced("2 minutes")))
  })
  return yield* queryRedis.pipe(CircuitBreaker.protect(breaker))
})

export const rateBased = CircuitBreaker.make({
  name: "payments",
  failureThreshold: Infinity,
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  window: { _tag: "Time", duration: "1 minute", buckets: 6 },
  slowCallDuration: "2 seconds",
  slowCallRateThreshold: 0.8
})

export const fromEnvironment = CircuitBreaker.fromConfig("redis", { successThreshold: 2 }).pipe(
  Effect.withConfigProvider(ConfigProvider.fromEnv())
)

export const subscribed = Effect.scoped(Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "db" })
  const changes = yield* breaker.subscribe
  yield* changes.pipe(
    Stream.runForEach((change) => Effect.log(`${change.from} -> ${change.to} (${change.reason})`)),
    Effect.forkScoped
  )
}))

export const healthChecked = Effect.scoped(Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "db", resetTimeout: "2 minutes" })
  yield* CircuitBreaker.withHealthCheck(breaker, { check: pingDatabase, interval: "30 seconds" })
}))

export const handled = CircuitBreaker.make({ name: "db", failureThreshold: 0 }).pipe(
  Effect.catchTag("InvalidOptions", (error) => Effect.logError(error.message))
)
