/**
 * The resilient client of the LLM providers. Each provider call is, from the outside in:
 *
 *   retry by error class (Retry.policy) → breaker.protect → timeout per attempt → HTTP call
 *
 * and a request fails over across the providers in order (`Fallback.makeFailover`, which
 * makes one breaker per provider): a provider whose breaker is open is skipped at once.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Arr from "effect/Array"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Wire } from "./wire.js"
import { CircuitBreaker, Fallback, Retry, Timeout } from "effect-resilience"
import type { InvalidOptions } from "effect-resilience"

/** How the client treats one provider. */
export interface ProviderConfig {
  readonly name: string
  /** The limit of one attempt. */
  readonly timeout: Duration.DurationInput
  readonly breaker: Omit<CircuitBreaker.CircuitBreaker.Options, "name">
  readonly retry: Retry.PolicyOptions
}

/** What came back. */
export class Completion extends Schema.Class<Completion>("Completion")({
  provider: Schema.String,
  completion: Schema.String
}) {}

/** Why one provider call failed. */
export type ProviderError =
  | HttpClientError.HttpClientError
  | ParseResult.ParseError
  | Timeout.TimeoutError
  | CircuitBreaker.CircuitBreakerOpen

/** Counters of one provider, as the client sees it. */
export interface ProviderStats {
  /** HTTP requests sent for requests. */
  calls: number
  /** HTTP requests sent by health checks (`LlmClient.ping`), outside the breaker. */
  checks: number
  /** Requests that failed: an error status, a reset connection, a timeout. */
  failures: number
  /** Attempts the breaker turned away inside the retries. */
  rejected: number
  /** Requests for which failover skipped the provider because its breaker was open. */
  skipped: number
  /** Requests it answered. */
  answered: number
  /** When its first request failed (`Clock` millis). */
  firstFailureAt: number | undefined
  /** When it answered each request (`Clock` millis), in order. */
  readonly answeredAt: Array<number>
}

/** The client. */
export interface LlmClient {
  readonly complete: (
    prompt: string
  ) => Effect.Effect<Fallback.Answer<Completion, ProviderError>, Fallback.AllProvidersFailed<ProviderError>>
  readonly providers: ReadonlyArray<{
    readonly name: string
    readonly breaker: CircuitBreaker.CircuitBreaker
    readonly stats: ProviderStats
  }>
  /** One request to a provider, outside its breaker and its retries: a health check. */
  readonly ping: (
    provider: string
  ) => Effect.Effect<Completion, HttpClientError.HttpClientError | ParseResult.ParseError>
}

const emptyStats = (): ProviderStats => ({
  calls: 0,
  checks: 0,
  failures: 0,
  rejected: 0,
  skipped: 0,
  answered: 0,
  firstFailureAt: undefined,
  answeredAt: []
})

/** Makes the client: one breaker and one retry policy per provider, made once. */
export const make = (options: {
  readonly baseUrl: string
  readonly providers: NonEmptyReadonlyArray<ProviderConfig>
  readonly wire: Wire
}): Effect.Effect<LlmClient, InvalidOptions, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const http = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    const { baseUrl, wire } = options
    const stats = new Map(options.providers.map((provider) => [provider.name, emptyStats()]))
    const statsOf = (name: string): ProviderStats => stats.get(name)!

    /** One HTTP request, tracked on the wire from sending until its body is read. */
    const send = (provider: string, prompt: string, check = false) =>
      Effect.suspend(() => {
        const id = wire.nextId()
        if (check) statsOf(provider).checks++
        else statsOf(provider).calls++
        wire.inFlight.add(id)
        const request = HttpClientRequest.post(`${baseUrl}/${provider}/v1/chat/completions`).pipe(
          HttpClientRequest.setHeader("x-request-id", id),
          HttpClientRequest.bodyUnsafeJson({ prompt })
        )
        return http.execute(request).pipe(
          Effect.flatMap(HttpClientResponse.schemaBodyJson(Completion)),
          Effect.ensuring(Effect.sync(() => wire.inFlight.delete(id)))
        )
      })

    const recordFailure = (provider: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const counters = statsOf(provider)
          counters.failures++
          if (counters.firstFailureAt === undefined) counters.firstFailureAt = now
        }))

    const failover = yield* Fallback.makeFailover(Arr.map(options.providers, (config) => {
      const retry = Retry.policy(config.retry)
      return {
        name: config.name,
        breaker: config.breaker,
        run: (prompt: string, breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<Completion, ProviderError> =>
          send(config.name, prompt).pipe(
            Timeout.timeout(config.timeout, { operation: `${config.name} completion` }),
            Effect.tapError(() => recordFailure(config.name)),
            breaker.protect,
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (error._tag === "CircuitBreakerOpen") statsOf(config.name).rejected++
              })
            ),
            retry
          )
      }
    }))

    const countSkips = (failures: ReadonlyArray<Fallback.ProviderFailure<ProviderError>>) =>
      Effect.sync(() => {
        for (const failure of failures) {
          if (failure._tag === "Skipped") statsOf(failure.provider).skipped++
        }
      })

    return {
      ping: (provider: string) => send(provider, "ping", true),
      providers: failover.providers.map(({ breaker, name }) => ({ name, breaker, stats: statsOf(name) })),
      complete: (prompt: string) =>
        failover.run(prompt).pipe(
          Effect.tap((answer) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.zipRight(
                countSkips(answer.failures),
                Effect.sync(() => {
                  const counters = statsOf(answer.provider)
                  counters.answered++
                  counters.answeredAt.push(now)
                })
              ))
          ),
          Effect.tapError((error) => countSkips(error.failures))
        )
    }
  })
