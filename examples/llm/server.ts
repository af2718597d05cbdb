/**
 * Three "LLM providers" behind one real HTTP server on loopback.
 *
 * `POST /<provider>/v1/chat/completions` with `{ "prompt": string }` answers
 * `{ "provider": string, "completion": string }`. How each provider behaves follows a
 * timeline read from the `Clock` (time since the server started): healthy with some
 * latency, flaky (every n-th request a 500), rate limited (429 with `Retry-After`), failing
 * (500 on every request) or down (the connection is reset before any response).
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import { createServer } from "node:http"
import type { Wire } from "./wire.js"

/** What a provider does with a request. */
export type Behaviour =
  | { readonly _tag: "Healthy"; readonly latency: Duration.DurationInput }
  | { readonly _tag: "Flaky"; readonly latency: Duration.DurationInput; readonly failEvery: number }
  | { readonly _tag: "RateLimited"; readonly retryAfterSeconds: number }
  | { readonly _tag: "Failing" }
  | { readonly _tag: "Down" }

/** From `at` (time since the server started) on, until the next phase, a provider does `behaviour`. */
export interface Phase {
  readonly at: Duration.DurationInput
  readonly behaviour: Behaviour
}

/** The phases of each provider, by provider name. A provider without a phase yet is healthy. */
export type Timeline = Readonly<Record<string, ReadonlyArray<Phase>>>

/** The behaviour in words, for printing. */
export const describe = (behaviour: Behaviour): string => {
  switch (behaviour._tag) {
    case "Healthy":
      return `healthy (${Duration.format(behaviour.latency)} per answer)`
    case "Flaky":
      return `flaky (every ${behaviour.failEvery}th request a 500, ${Duration.format(behaviour.latency)} per answer)`
    case "RateLimited":
      return `rate limited (429, Retry-After: ${behaviour.retryAfterSeconds})`
    case "Failing":
      return "failing (500 on every request)"
    case "Down":
      return "down (connections reset)"
  }
}

const healthy: Behaviour = { _tag: "Healthy", latency: 0 }

/** The behaviour of a provider `elapsed` milliseconds after the server started. */
export const behaviourAt = (phases: ReadonlyArray<Phase>, elapsed: number): Behaviour => {
  let current: Behaviour = healthy
  for (const phase of phases) {
    if (Duration.toMillis(phase.at) <= elapsed) current = phase.behaviour
  }
  return current
}

/**
 * Behaviours set by hand, by provider name, that win over the timeline: the server's fault
 * switch, for a person (or a script) who takes a provider down and brings it back.
 */
export class FaultSwitch {
  private readonly overrides = new Map<string, Behaviour>()

  /** From now on, `provider` does `behaviour`, whatever its timeline says. */
  set(provider: string, behaviour: Behaviour): void {
    this.overrides.set(provider, behaviour)
  }

  /** `provider` follows its timeline again. */
  clear(provider: string): void {
    this.overrides.delete(provider)
  }

  /** The behaviour set by hand for `provider`, if any. */
  get(provider: string): Behaviour | undefined {
    return this.overrides.get(provider)
  }
}

/** The running server. */
export class ProviderServer extends Context.Tag("examples/llm/ProviderServer")<ProviderServer, {
  readonly baseUrl: string
  /** The `Clock` time the timeline starts from. */
  readonly startedAt: number
  /** Requests each provider has received. */
  readonly received: (provider: string) => number
}>() {}

/**
 * Holds a request until `until` on the `Clock` (an absolute instant, so that a late start
 * does not push the answer later), telling the wire meanwhile.
 */
const holdUntil = (wire: Wire, id: string, until: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    wire.parked.set(id, until)
    const wait: Effect.Effect<void> = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      now >= until ? Effect.void : Effect.zipRight(Effect.sleep(until - now), wait))
    return Effect.ensuring(wait, Effect.sync(() => wire.parked.delete(id)))
  })

const completion = (provider: string, prompt: string) =>
  HttpServerResponse.unsafeJson({ provider, completion: `${provider} answers: ${prompt.split("").reverse().join("")}` })

/**
 * The provider server, on a free loopback port, closed with the layer's scope. A behaviour
 * set on `faults` wins over the timeline.
 */
export const layer = (timeline: Timeline, wire: Wire, faults?: FaultSwitch): Layer.Layer<ProviderServer, ServeError> =>
  Layer.scoped(
    ProviderServer,
    Effect.gen(function*() {
      const server = yield* HttpServer.HttpServer
      const startedAt = yield* Clock.currentTimeMillis
      const received = new Map<string, number>()

      const handler = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const { provider = "" } = yield* HttpRouter.params
        const phases = timeline[provider]
        if (phases === undefined) return HttpServerResponse.text("unknown provider", { status: 404 })
        const count = (received.get(provider) ?? 0) + 1
        received.set(provider, count)
        const id = request.headers["x-request-id"] ?? `server-${provider}-${count}`
        const body = yield* Effect.orElseSucceed(request.json, () => ({}))
        const prompt = Predicate.hasProperty(body, "prompt") && typeof body.prompt === "string" ? body.prompt : ""
        const now = yield* Clock.currentTimeMillis
        const behaviour = faults?.get(provider) ?? behaviourAt(phases, now - startedAt)
        switch (behaviour._tag) {
          case "Healthy": {
            yield* holdUntil(wire, id, now + Duration.toMillis(behaviour.latency))
            return completion(provider, prompt)
          }
          case "Flaky": {
            yield* holdUntil(wire, id, now + Duration.toMillis(behaviour.latency))
            return count % behaviour.failEvery === 0
              ? HttpServerResponse.text("internal error", { status: 500 })
              : completion(provider, prompt)
          }
          case "RateLimited":
            return HttpServerResponse.text("rate limited", {
              status: 429,
              headers: { "retry-after": String(behaviour.retryAfterSeconds) }
            })
          case "Failing":
            return HttpServerResponse.text("internal error", { status: 500 })
          case "Down": {
            // No response at all: the client sees its connection reset.
            NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
            return yield* Effect.interrupt
          }
        }
      })

      yield* server.serve(HttpRouter.empty.pipe(HttpRouter.post("/:provider/v1/chat/completions", handler)))
      const address = server.address
      const baseUrl = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : "http://localhost"
      return { baseUrl, startedAt, received: (provider: string) => received.get(provider) ?? 0 }
    })
  ).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
