/**
 * The examples of docs/fallback.md, type-checked with the project.
 */
import { Context, Data, Effect, ExecutionPlan, type Layer, Schedule } from "effect"
import { CircuitBreaker, Fallback, Retry, Timeout } from "effect-resilience"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class BadRequest extends Data.TaggedError("BadRequest")<{}> {}
class LlmError extends Data.TaggedError("LlmError")<{ readonly status: number }> {}

declare const fetchPrice: Effect.Effect<number, Error>
declare const fromDatabase: (id: string) => Effect.Effect<string, Error>
declare const fromCache: (id: string) => Effect.Effect<string, Error>
declare const ask: (prompt: string) => Effect.Effect<string, Unavailable | BadRequest>
declare const callPrimary: (prompt: string) => Effect.Effect<string, LlmError>
declare const callSecondary: (prompt: string) => Effect.Effect<string, LlmError>
declare const search: (query: string) => Effect.Effect<ReadonlyArray<string>, Error>

export const price: Effect.Effect<number | null, never> = fetchPrice.pipe(Fallback.to(null))

export const withReason = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "db", failureThreshold: 3 })
  return yield* breaker.protect(fromDatabase("42")).pipe(
    Fallback.orElse((reason) =>
      reason instanceof CircuitBreaker.CircuitBreakerOpen
        ? fromCache("42") // the database was not even asked: serve the cache
        : Effect.fail(reason) // it answered with an error: let the caller see it
    )
  )
})

const isUnavailable = (error: Unavailable | BadRequest): error is Unavailable => error._tag === "Unavailable"

export const answerOrApology: Effect.Effect<string, BadRequest> = ask("hello").pipe(
  Fallback.to("Sorry, try again later.", { when: isUnavailable })
)

// An open breaker ends the retries at once: the failover moves on to the next provider.
const retrying = Retry.policy({
  schedules: { Transient: Retry.backoff({ base: "50 millis", maxRetries: 2 }) }
})

export const failover = Effect.gen(function*() {
  const primary = yield* CircuitBreaker.make({ name: "primary", failureThreshold: 3 })
  const secondary = yield* CircuitBreaker.make({ name: "secondary", failureThreshold: 3 })

  const primaryCall = (prompt: string) =>
    callPrimary(prompt).pipe(
      Timeout.timeout("10 seconds", { operation: "primary completion" }),
      CircuitBreaker.protect(primary),
      retrying
    )
  const secondaryCall = (prompt: string) =>
    callSecondary(prompt).pipe(
      Timeout.timeout("10 seconds", { operation: "secondary completion" }),
      CircuitBreaker.protect(secondary),
      retrying
    )

  return (prompt: string) =>
    Effect.gen(function*() {
      const answer = yield* Fallback.firstSuccess([
        { name: "primary", breaker: primary, run: primaryCall(prompt) },
        { name: "secondary", breaker: secondary, run: secondaryCall(prompt) }
      ])
      // answer.value: the completion; answer.provider: "primary" or "secondary";
      // answer.failures: why the providers before it did not answer
      return answer.value
    })
})

export const allFailed = Effect.gen(function*() {
  const complete = yield* failover
  return yield* complete("Hello").pipe(
    Effect.catchTag("AllProvidersFailed", (error) =>
      Effect.logWarning(
        error.failures.map((failure) =>
          failure._tag === "Skipped"
            ? `${failure.provider} skipped for ${failure.rejection.reason}`
            : `${failure.provider} failed: ${failure.error._tag}`
        )
      ).pipe(Effect.as("")))
  )
})

export const madeFailover = Effect.gen(function*() {
  const failover = yield* Fallback.makeFailover([
    {
      name: "primary",
      breaker: { failureThreshold: 3, resetTimeout: "30 seconds" },
      run: (prompt: string, breaker) => callPrimary(prompt).pipe(CircuitBreaker.protect(breaker), retrying)
    },
    {
      name: "secondary",
      run: (prompt: string, breaker) => callSecondary(prompt).pipe(CircuitBreaker.protect(breaker), retrying)
    }
  ])
  const answer = yield* failover.run("Hello")
  // failover.providers: [{ name, breaker }], for metrics and health
  return answer.value
})

export const hedged = search("effect").pipe(Fallback.hedge({ delay: "200 millis", maxAttempts: 3 }))

export const hedgedUnlessBadRequest = ask("hello").pipe(
  Fallback.hedge({ delay: "200 millis", when: (error) => error._tag !== "BadRequest" })
)

class Llm extends Context.Tag("Llm")<Llm, {
  readonly complete: (prompt: string) => Effect.Effect<string, LlmError>
}>() {}

declare const primaryLlm: Layer.Layer<Llm>
declare const localLlm: Layer.Layer<Llm>

export const withPlan: Effect.Effect<string, LlmError | CircuitBreaker.CircuitBreakerOpen> = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ name: "primary-llm", failureThreshold: 3 })
  const plan = ExecutionPlan.make(
    // Two attempts, 100 ms apart, while the breaker lets them through ...
    Fallback.step({ provide: primaryLlm, breaker, attempts: 2, schedule: Schedule.spaced("100 millis") }),
    // ... then the local model.
    Fallback.step({ provide: localLlm })
  )
  return yield* Effect.flatMap(Llm, (llm) => llm.complete("Hello")).pipe(Fallback.withPlan(plan))
}).pipe(Effect.catchTag("InvalidOptions", Effect.die))
