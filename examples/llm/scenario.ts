/**
 * The LLM failover scenario, importable by tests: starts the provider server on a free
 * loopback port, makes the resilient client, sends a request every `interval` and reports
 * what happened. Time comes from the `Clock` everywhere (server timeline, client timeouts,
 * retries, breakers), so the same scenario runs in real time or on a `TestClock`.
 *
 * The providers are registered in a `Health` registry as one failover group, and the
 * service level follows them: `CacheOnly` while every provider's breaker is open. Every
 * answer goes through a response cache (`CacheAside` on the memory layer, stale-if-error):
 * when no provider answers (or the level is `CacheOnly`, and none is asked), a prompt asked
 * before is answered from the cache, and any other prompt gets an explicit degraded answer.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type { ServeError } from "@effect/platform/HttpServerError"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Client from "./client.js"
import * as Server from "./server.js"
import { Wire } from "./wire.js"
import { Cache, CacheAside, Health, Retry, Timeout } from "effect-resilience"
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

/**
 * The example's 20 seconds: the primary goes down at 5 s, the second provider is rate
 * limited from 8 s, the third is too slow from 7 to 10 s, so from about 8 to 12 s no
 * provider answers; then they recover one after the other.
 */
export const timeline: Server.Timeline = {
  alpha: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "80 millis" } },
    { at: "5 seconds", behaviour: { _tag: "Down" } },
    { at: "13 seconds", behaviour: { _tag: "Healthy", latency: "80 millis" } }
  ],
  beta: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "150 millis" } },
    { at: "8 seconds", behaviour: { _tag: "RateLimited", retryAfterSeconds: 1 } },
    { at: "9 seconds", behaviour: { _tag: "RateLimited", retryAfterSeconds: 5 } },
    { at: "11 seconds", behaviour: { _tag: "Flaky", latency: "150 millis", failEvery: 4 } },
    { at: "15 seconds", behaviour: { _tag: "Healthy", latency: "150 millis" } }
  ],
  gamma: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "300 millis" } },
    { at: "7 seconds", behaviour: { _tag: "Healthy", latency: "2500 millis" } },
    { at: "10 seconds", behaviour: { _tag: "Healthy", latency: "300 millis" } },
    { at: "16 seconds", behaviour: { _tag: "Failing" } },
    { at: "18 seconds", behaviour: { _tag: "Healthy", latency: "300 millis" } }
  ]
}

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
  /**
   * The prompt of request `index` (default: every other request asks one of ten popular
   * questions, the others a question of their own).
   */
  readonly prompt?: ((index: number) => string) | undefined
  /** How often the failover group's health check runs (default 500 ms). */
  readonly checkInterval?: Duration.DurationInput | undefined
}

/** The default prompts: half of them repeated, half asked once. */
export const defaultPrompt = (index: number): string =>
  index % 2 === 0 ? `popular question ${(index / 2) % 10}` : `question ${index}`

/** The text of the explicit degraded answer. */
export const degradedAnswer = "The assistant is unavailable right now: please try again in a minute."

export interface ProviderReport {
  readonly name: string
  readonly calls: number
  readonly failures: number
  readonly rejected: number
  readonly skipped: number
  readonly answered: number
  readonly breaker: CircuitBreaker.State
  /** Health checks sent to this provider. */
  readonly checks: number
  /** Requests the server received for this provider (checks `calls + checks`). */
  readonly received: number
  /**
   * From the provider's first failure to the first answer by another provider after it, in
   * millis (`undefined` when it never failed, or no other provider answered after).
   */
  readonly failoverMillis: number | undefined
  /** Its breaker's mean time from opening (out of `Closed`) to closing again, in millis. */
  readonly mttrMillis: number | undefined
  /** How many times its breaker closed again after opening. */
  readonly recoveries: number
}

/**
 * How a request was answered: `Full` by a provider; `Cached` from the response cache (a
 * prompt asked before) and `Degraded` with the explicit degraded answer, both while no
 * provider answered (within the request's deadline).
 */
export type AnswerKind = "Full" | "Cached" | "Degraded"

export interface RequestOutcome {
  /** When the request was sent, in millis since the server started. */
  readonly sentAt: number
  readonly latency: number
  /** The provider that answered, or `undefined` when none did. */
  readonly provider: string | undefined
  readonly prompt: string
  readonly kind: AnswerKind
  /** The text of the answer. */
  readonly text: string
  /** Whether the answer says it is degraded (`Cached` and `Degraded` answers do). */
  readonly markedDegraded: boolean
  /** The service level when the request was sent, and when its answer was made. */
  readonly levelAtSend: Health.ServiceLevel
  readonly levelAtAnswer: Health.ServiceLevel
  /** Whether every provider's breaker was open when the answer was made. */
  readonly allOpenAtAnswer: boolean
}

export interface ScenarioReport {
  readonly baseUrl: string
  readonly providers: ReadonlyArray<ProviderReport>
  readonly requests: number
  /** Requests answered by a provider. */
  readonly succeeded: number
  /** `succeeded / requests`: the share of full answers. */
  readonly successRate: number
  /** Requests answered from the response cache, and with the explicit degraded answer. */
  readonly cached: number
  readonly degraded: number
  /** `(succeeded + cached + degraded) / requests`: the share of requests answered at all. */
  readonly answeredRate: number
  /** Every change of the service level, in order (`at` in millis since the server started). */
  readonly levels: ReadonlyArray<{ readonly at: number; readonly level: Health.ServiceLevel }>
  /** When the primary first failed, in millis since the server started. */
  readonly primaryFirstFailureAt: number | undefined
  /** When the second provider first answered after that. */
  readonly failoverAt: number | undefined
  /** `failoverAt - primaryFirstFailureAt`. */
  readonly failoverMillis: number | undefined
  readonly outcomes: ReadonlyArray<RequestOutcome>
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(1).padStart(5)}s`

/**
 * The service level of the example: `CacheOnly` while the failover group is down (every
 * provider's breaker open), else the library's default rule.
 */
export const serviceLevel = (
  health: Health.SystemHealth,
  dependencies: ReadonlyArray<{ readonly kind: Health.SourceKind; readonly state: Health.DependencyState }>
): Health.ServiceLevel =>
  dependencies.some((dependency) => dependency.kind === "Failover" && dependency.state === "Down")
    ? "CacheOnly"
    : Health.defaultServiceLevel(health)

/**
 * The failover group's health check: it passes when a provider whose breaker is open
 * answers again (or when none is open). The registry then moves the open breakers to
 * HalfOpen, and the next requests probe them at once instead of waiting out their open
 * duration.
 */
export const groupCheck = (client: Client.LlmClient) =>
  Effect.gen(function*() {
    const open: Array<string> = []
    for (const { breaker, name } of client.providers) {
      if ((yield* breaker.state) === "Open") open.push(name)
    }
    if (open.length > 0) yield* Effect.raceAll(open.map((name) => client.ping(name)))
  })

/** The mean of some millis, `undefined` when there are none. */
const mean = (values: ReadonlyArray<number>) =>
  values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length

/** Runs the scenario; the server is closed when it returns. */
export const run = (
  options: ScenarioOptions
): Effect.Effect<ScenarioReport, ServeError | InvalidOptions | Health.DuplicateDependency> => {
  const wire = options.wire ?? new Wire()
  const serverLayer = Server.layer(options.timeline, wire)
  const promptOf = options.prompt ?? defaultPrompt
  return Effect.scoped(Effect.gen(function*() {
    const server = yield* Server.ProviderServer
    const since = (now: number) => now - server.startedAt
    const client = yield* Client.make({ baseUrl: server.baseUrl, providers: options.providers, wire })
    const log = options.log
    // The providers' breakers registered themselves; the group takes their place.
    yield* Health.register({
      name: "llm",
      critical: true,
      source: Health.fromFailover(client, { check: groupCheck(client) }),
      checkInterval: options.checkInterval ?? "500 millis"
    })
    // Every answer is stored; a stored answer is served only when no provider answers.
    const responses = yield* CacheAside.make({ ttl: "1 millis", staleIfError: "1 hour", schema: Client.Completion })

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
    }
    // Each breaker's transitions: for the log, and for its time to recovery.
    const transitions = new Map(client.providers.map(({ name }) => [name, [] as Array<CircuitBreaker.StateChange>]))
    for (const { breaker, name } of client.providers) {
      const changes = yield* breaker.subscribe
      yield* Effect.forkScoped(Stream.runForEach(changes, (change) => {
        transitions.get(name)!.push(change)
        const at = seconds(since(change.at))
        return log === undefined
          ? Effect.void
          : log(`[${at}] breaker ${change.breaker}: ${change.from} -> ${change.to} (${change.reason})`)
      }))
    }
    const levels = yield* Ref.make<Array<{ at: number; level: Health.ServiceLevel }>>([])
    const observeLevel = Effect.gen(function*() {
      const level = yield* Health.serviceLevel
      const now = since(yield* Clock.currentTimeMillis)
      const changed = yield* Ref.modify(levels, (all) =>
        all.length > 0 && all[all.length - 1]!.level === level
          ? [false, all]
          : [true, [...all, { at: now, level }]])
      if (changed && log !== undefined) yield* log(`[${seconds(now)}] service level: ${level}`)
      return level
    })
    const allOpen = Effect.map(
      Effect.forEach(client.providers, ({ breaker }) => breaker.state),
      (states) => states.every((state) => state === "Open" || state === "ForcedOpen")
    )

    const one = (index: number) =>
      Effect.gen(function*() {
        const sentAt = yield* Clock.currentTimeMillis
        const prompt = promptOf(index)
        const levelAtSend = yield* observeLevel
        // At CacheOnly no provider is asked: the request goes straight to the cache.
        const load = Health.atLeast("Limited", client.complete(prompt)).pipe(
          Effect.map((answer) => answer.value),
          Timeout.timeout(options.deadline, { operation: "completion" })
        )
        const answer = yield* responses.get(prompt, load).pipe(
          Effect.map((result) =>
            result.source === "Load"
              ? { kind: "Full" as const, provider: result.value.provider, text: result.value.completion }
              : {
                kind: "Cached" as const,
                provider: undefined,
                text: `[degraded: cached answer] ${result.value.completion}`
              }
          ),
          Effect.orElseSucceed(() => ({
            kind: "Degraded" as const,
            provider: undefined,
            text: `[degraded] ${degradedAnswer}`
          }))
        )
        const levelAtAnswer = yield* observeLevel
        const allOpenAtAnswer = yield* allOpen
        const now = yield* Clock.currentTimeMillis
        return {
          sentAt: since(sentAt),
          latency: now - sentAt,
          provider: answer.provider,
          prompt,
          kind: answer.kind,
          text: answer.text,
          markedDegraded: answer.text.startsWith("[degraded"),
          levelAtSend,
          levelAtAnswer,
          allOpenAtAnswer
        } satisfies RequestOutcome
      })

    const fibers: Array<Fiber.RuntimeFiber<RequestOutcome>> = []
    for (let index = 0; index < options.requests; index++) {
      if (index > 0) yield* Effect.sleep(options.interval)
      fibers.push(yield* Effect.fork(one(index)))
    }
    const outcomes = yield* Fiber.joinAll(fibers)

    const providers: Array<ProviderReport> = []
    for (const { breaker, name, stats } of client.providers) {
      const firstFailure = stats.firstFailureAt
      const others = client.providers.filter((other) => other.name !== name)
      const answeredAfter = firstFailure === undefined
        ? []
        : others.flatMap((other) => other.stats.answeredAt.filter((at) => at >= firstFailure))
      const recoveries: Array<number> = []
      let openedAt: number | undefined
      for (const change of transitions.get(name)!) {
        if (change.from === "Closed" && change.to === "Open") openedAt = change.at
        if (change.to === "Closed" && openedAt !== undefined) {
          recoveries.push(change.at - openedAt)
          openedAt = undefined
        }
      }
      providers.push({
        name,
        calls: stats.calls,
        failures: stats.failures,
        rejected: stats.rejected,
        skipped: stats.skipped,
        answered: stats.answered,
        breaker: yield* breaker.state,
        checks: stats.checks,
        received: server.received(name),
        failoverMillis: firstFailure === undefined || answeredAfter.length === 0
          ? undefined
          : Math.min(...answeredAfter) - firstFailure,
        mttrMillis: mean(recoveries),
        recoveries: recoveries.length
      })
    }
    const [primary, second] = client.providers
    const firstFailure = primary.stats.firstFailureAt
    const failover = firstFailure === undefined || second === undefined
      ? undefined
      : second.stats.answeredAt.find((at) => at >= firstFailure)
    const count = (kind: AnswerKind) => outcomes.filter((outcome) => outcome.kind === kind).length
    const succeeded = count("Full")
    const cached = count("Cached")
    const degraded = count("Degraded")
    const share = (n: number) => outcomes.length === 0 ? 0 : n / outcomes.length
    return {
      baseUrl: server.baseUrl,
      providers,
      requests: outcomes.length,
      succeeded,
      successRate: share(succeeded),
      cached,
      degraded,
      answeredRate: share(succeeded + cached + degraded),
      levels: yield* Ref.get(levels),
      primaryFirstFailureAt: firstFailure === undefined ? undefined : since(firstFailure),
      failoverAt: failover === undefined ? undefined : since(failover),
      failoverMillis: failover === undefined || firstFailure === undefined ? undefined : failover - firstFailure,
      outcomes
    }
  })).pipe(
    Effect.provide(Layer.mergeAll(
      serverLayer,
      NodeHttpClient.layerUndici,
      Health.layer({ serviceLevel }),
      Cache.layerMemory()
    ))
  )
}

/** Formats a duration in millis for the report. */
export const formatMillis = (millis: number): string => Duration.format(Duration.millis(Math.round(millis)))
