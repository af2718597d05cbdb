/**
 * The examples of docs/policies.md, type-checked with the project.
 */
import { Data, Effect, Option, Schedule } from "effect"
import { Bulkhead, CircuitBreaker, Fallback, RateLimit, Retry, Timeout } from "effect-resilience"

class HttpError extends Data.TaggedError("HttpError")<{
  readonly status: number
  readonly headers: Record<string, string>
}> {}

declare const fetchUser: (id: string) => Effect.Effect<{ readonly name: string }, HttpError>
declare const fetchStock: (sku: string) => Effect.Effect<number, HttpError>
declare const renderReport: Effect.Effect<Uint8Array, Error>
declare const callLlm: (prompt: string) => Effect.Effect<string, HttpError>

// --- Retry.backoff -----------------------------------------------------------

export const backoff = fetchUser("42").pipe(
  Effect.retry(Retry.backoff({ base: "200 millis", factor: 2, max: "5 seconds", jitter: "full", maxRetries: 5 }))
)

export const backoffBounded = fetchUser("42").pipe(
  Effect.retry(Retry.backoff({ base: "1 second", jitter: "decorrelated", maxElapsed: "30 seconds" }))
)

// --- Retry.classify / classifyWith -------------------------------------------

export const classes = [
  Retry.classify({ status: 503 }), // "Transient"
  Retry.classify({ status: 429 }), // "Degraded"
  Retry.classify({ status: 404 }), // "Fatal"
  Retry.classify(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })) // "Transient"
]

class QuotaExhausted extends Data.TaggedError("QuotaExhausted")<{}> {}

export const classifier = Retry.classifyWith((error: unknown) =>
  error instanceof QuotaExhausted ? Option.some("Persistent" as const) : Option.none()
)

// --- Retry.policy --------------------------------------------------------------

export const byClass = Retry.policy()(fetchUser("42"))

export const tuned = fetchUser("42").pipe(
  Retry.policy({
    classify: classifier,
    schedules: {
      Transient: Schedule.recurs(2),
      Degraded: Retry.backoff({ base: "500 millis", max: "10 seconds", maxRetries: 4 }),
      Persistent: Schedule.stop
    },
    maxRetryAfter: "30 seconds"
  })
)

// --- Retry.budget ----------------------------------------------------------------

export const budgeted = Effect.gen(function*() {
  // One budget per dependency, shared by every caller of it.
  const budget = yield* Retry.budget({ name: "users-api", ratio: 0.1, minPerSecond: 5 })
  const retrying = Retry.policy({ budget })
  return yield* Effect.forEach(["1", "2", "3"], (id) => retrying(fetchUser(id)), { concurrency: 3 })
})

export const budgetedSchedule = Effect.gen(function*() {
  const budget = yield* Retry.budget({ name: "stock" })
  return yield* fetchStock("sku-1").pipe(Retry.withBudget({ budget, schedule: Retry.backoff({ maxRetries: 3 }) }))
})

// --- Timeout ---------------------------------------------------------------------

export const timed = fetchUser("42").pipe(Timeout.timeout("2 seconds", { operation: "GET /users/42" }))

export const timedHandled = timed.pipe(
  Effect.catchTag("TimeoutError", (error) => Effect.logWarning(error.message))
)

// --- Bulkhead --------------------------------------------------------------------

export const bulkheaded = Effect.gen(function*() {
  const reports = yield* Bulkhead.make({ name: "reports", maxConcurrent: 4, maxQueue: 16 })
  const render = renderReport.pipe(
    reports.run,
    Effect.catchTag("BulkheadFull", () => Effect.fail(new Error("busy, try again later")))
  )
  const stats = yield* reports.stats
  return { render, stats }
})

// --- RateLimit -------------------------------------------------------------------

export const rejecting = Effect.gen(function*() {
  const limiter = yield* RateLimit.make({ name: "llm", limit: 60, interval: "1 minute", mode: "reject" })
  return yield* callLlm("hello").pipe(
    RateLimit.run(limiter),
    Effect.catchTag("RateLimitExceeded", (error) => Effect.succeed(`retry in ${error.retryAfter}`))
  )
})

export const waiting = Effect.scoped(Effect.gen(function*() {
  const limiter = yield* RateLimit.make({ limit: 10, interval: "1 second" })
  return yield* Effect.forEach(["a", "b", "c"], (prompt) => limiter(callLlm(prompt)), { concurrency: "unbounded" })
}))

// --- Composition -------------------------------------------------------------------

export const composed = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "inventory", failureThreshold: 5, resetTimeout: "30 seconds" })
  const bulkhead = yield* Bulkhead.make({ name: "inventory", maxConcurrent: 20, maxQueue: 50 })
  const budget = yield* Retry.budget({ name: "inventory" })
  const retrying = Retry.policy({ budget, maxRetryAfter: "10 seconds" })

  return (sku: string) =>
    fetchStock(sku).pipe(
      Timeout.timeout("2 seconds", { operation: "GET /stock" }), // 1. bounds each attempt
      Bulkhead.run(bulkhead), // 2. bounds concurrent attempts
      CircuitBreaker.protect(breaker), // 3. counts failures and timeouts, fails fast when open
      retrying, // 4. retries by class, within the budget; an open breaker ends the retries
      Timeout.timeout("10 seconds", { operation: "GET /stock, retries included" }), // 4b. optional total deadline
      Fallback.to(0) // 5. fallback: a last answer (see Fallback)
    )
})
