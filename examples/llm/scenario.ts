/**
 * The LLM failover scenario, importable by tests: starts the provider server on a free
 * loopback port, makes the resilient client, sends a request every `interval` and reports
 * what happened. Time comes from the `Clock` everywhere (server timeline, client timeouts,
 * retries, breakers), so the same scenario runs in real time or on a `TestClock`.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type { ServeError } from "@effect/platform/HttpServerError"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Client from "./client.js"
import * as Server from "./server.js"
import { Wire } from "./wire.js"
import { Retry, Timeout } from "effect-resilience"
import type { CircuitBreaker, InvalidOptions } from "effect-resilience"

/**
 * How the example's client calls each provider: a 1.5 s timeout per attempt; a breaker that
 * opens after 3 failures and probes after 2 s; two quick retries for 500s, resets and
 * timeouts; one retry for a 429, never before its Retry-After; and no wait longer than a
 * second for a long Retry-After, since failing over is better (an open breaker ends the
 * retries at once anyway).
 */
export const provider = (name: string): Client.ProviderConfig => ({
  name,
  timeout: "1500 millis",
  breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "2 seconds" },
  retry: {
    schedules: {
      Transient: Retry.backoff({ base: "50 millis", max: "500 millis", maxRetries: 2 }),
      Degraded: Retry.backoff({ base: "250 millis", max: "2 seconds", maxRetries: 1 }),
      Persistent: Schedule.stop
    },
    maxRetryAfter: "1 second"
  }
})

export interface ScenarioOptions {
  /** What each provider does, and when. */
  readonly timeline: Server.Timeline
  /** The providers in failover order: the first is the primary. */
  readonly providers: NonEmptyReadonlyArray<Client.ProviderConfig>
  /** Requests sent, one every `interval`. */
  readonly requests: number
  readonly interval: Duration.DurationInput
  /** The limit of one request, failover included. */
  readonly deadline: Duration.DurationInput
  /** Where requests on the wire are recorded (default: a fresh `Wire`). */
  readonly wire?: Wire | undefined
  /** Receives a line for each phase change and breaker transition as it happens. */
  readonly log?: ((line: string) => Effect.Effect<void>) | undefined
}

export interface ProviderReport {
  readonly name: string
  readonly calls: number
  readonly failures: number
  readonly rejected: number
  readonly skipped: number
  readonly answered: number
  readonly breaker: CircuitBreaker.State
  /** Requests the server received for this provider (checks `calls`). */
  readonly received: number
}

export interface RequestOutcome {
  /** When the request was sent, in millis since the server started. */
  readonly sentAt: number
  readonly latency: number
  /** The provider that answered, or `undefined` when the request failed. */
  readonly provider: string | undefined
}

export interface ScenarioReport {
  readonly baseUrl: string
  readonly providers: ReadonlyArray<ProviderReport>
  readonly requests: number
  readonly succeeded: number
  readonly successRate: number
  /** When the primary first failed, in millis since the server started. */
  readonly primaryFirstFailureAt: number | undefined
  /** When the second provider first answered after that. */
  readonly failoverAt: number | undefined
  /** `failoverAt - primaryFirstFailureAt`. */
  readonly failoverMillis: number | undefined
  readonly outcomes: ReadonlyArray<RequestOutcome>
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(1).padStart(5)}s`

/** Runs the scenario; the server is closed when it returns. */
export const run = (options: ScenarioOptions): Effect.Effect<ScenarioReport, ServeError | InvalidOptions> => {
  const wire = options.wire ?? new Wire()
  const serverLayer = Server.layer(options.timeline, wire)
  return Effect.scoped(Effect.gen(function*() {
    const server = yield* Server.ProviderServer
    const since = (now: number) => now - server.startedAt
    const client = yield* Client.make({ baseUrl: server.baseUrl, providers: options.providers, wire })
    const log = options.log

    if (log !== undefined) {
      for (const [provider, phases] of Object.entries(options.timeline)) {
        for (const phase of phases) {
          yield* Effect.forkScoped(
            Effect.sleep(phase.at).pipe(
              Effect.zipRight(Effect.flatMap(Clock.currentTimeMillis, (now) =>
                log(`[${seconds(since(now))}] ${provider}: ${Server.describe(phase.behaviour)}`)))
            )
          )
        }
      }
      for (const { breaker } of client.providers) {
        const changes = yield* breaker.subscribe
        yield* Effect.forkScoped(Stream.runForEach(changes, (change) => {
          const at = seconds(since(change.at))
          return log(`[${at}] breaker ${change.breaker}: ${change.from} -> ${change.to} (${change.reason})`)
        }))
      }
    }

    const one = (index: number) =>
      Effect.gen(function*() {
        const sentAt = yield* Clock.currentTimeMillis
        const result = yield* client.complete(`question ${index}`).pipe(
          Timeout.timeout(options.deadline, { operation: "completion" }),
          Effect.either
        )
        const now = yield* Clock.currentTimeMillis
        return {
          sentAt: since(sentAt),
          latency: now - sentAt,
          provider: Either.isRight(result) ? result.right.provider : undefined
        }
      })

    const fibers: Array<Fiber.RuntimeFiber<RequestOutcome>> = []
    for (let index = 0; index < options.requests; index++) {
      if (index > 0) yield* Effect.sleep(options.interval)
      fibers.push(yield* Effect.fork(one(index)))
    }
    const outcomes = yield* Fiber.joinAll(fibers)

    const providers: Array<ProviderReport> = []
    for (const { breaker, name, stats } of client.providers) {
      providers.push({
        name,
        calls: stats.calls,
        failures: stats.failures,
        rejected: stats.rejected,
        skipped: stats.skipped,
        answered: stats.answered,
        breaker: yield* breaker.state,
        received: server.received(name)
      })
    }
    const [primary, second] = client.providers
    const firstFailure = primary.stats.firstFailureAt
    const failover = firstFailure === undefined || second === undefined
      ? undefined
      : second.stats.answeredAt.find((at) => at >= firstFailure)
    const succeeded = outcomes.filter((outcome) => outcome.provider !== undefined).length
    return {
      baseUrl: server.baseUrl,
      providers,
      requests: outcomes.length,
      succeeded,
      successRate: outcomes.length === 0 ? 0 : succeeded / outcomes.length,
      primaryFirstFailureAt: firstFailure === undefined ? undefined : since(firstFailure),
      failoverAt: failover === undefined ? undefined : since(failover),
      failoverMillis: failover === undefined || firstFailure === undefined ? undefined : failover - firstFailure,
      outcomes
    }
  })).pipe(Effect.provide(Layer.merge(serverLayer, NodeHttpClient.layerUndici)))
}

/** Formats a duration in millis for the report. */
export const formatMillis = (millis: number): string => Duration.format(Duration.millis(Math.round(millis)))
