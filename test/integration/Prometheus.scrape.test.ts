import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as http from "node:http"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as Prometheus from "../../src/Prometheus.js"
import { type PrometheusServer, prometheusServer } from "../support/prometheusServer.js"
import { scopedServer } from "./serverLifecycle.js"

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

/** A loopback HTTP server answering `GET /metrics` with the exposition, stopped with the scope. */
const metricsServer = (exposition: Prometheus.MetricsExposition["Type"]) =>
  scopedServer(() =>
    new Promise<{ readonly target: string; readonly scrapes: () => number; readonly close: () => Promise<void> }>(
      (resolve, reject) => {
        let scrapes = 0
        const server = http.createServer((request, response) => {
          if (request.method !== "GET" || request.url !== "/metrics") {
            response.writeHead(404).end()
            return
          }
          scrapes++
          Effect.runPromise(exposition.render).then(
            (text) => response.writeHead(200, { "content-type": exposition.contentType }).end(text),
            (error) => response.writeHead(500).end(String(error))
          )
        })
        server.once("error", reject)
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          if (address === null || typeof address === "string") return reject(new Error("no address"))
          resolve({
            target: `127.0.0.1:${address.port}`,
            scrapes: () => scrapes,
            close: () =>
              new Promise<void>((done) => {
                server.closeAllConnections()
                server.close(() => done())
              })
          })
        })
      }
    )
  )

const waitFor = (prometheus: PrometheusServer, promql: string, value: number) =>
  Effect.promise(() =>
    prometheus.waitFor(promql, (results) => results.length === 1 && results[0]!.value === value, 20_000)
  )

describe("Prometheus scraping the exposition", () => {
  it.live("a real Prometheus server scrapes the breakers' state and gives it back through its HTTP API", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ name: "inventory", failureThreshold: 2, resetTimeout: "10 minutes" })
      const exposition = yield* Prometheus.MetricsExposition
      const target = yield* metricsServer(exposition)
      const prometheus = yield* prometheusServer({ target: target.target })
      const state = `effect_resilience_circuit_breaker_state{breaker="inventory"}`

      yield* waitFor(prometheus, state, 0)
      const health = yield* Effect.promise(() => prometheus.targetHealth())
      expect(health).toEqual({ health: "up", lastError: "" })
      // Opened by failures: 1.
      yield* Effect.repeatN(breaker.protect(Effect.fail("boom")).pipe(Effect.ignore), 1)
      const opened = yield* waitFor(prometheus, state, 1)
      expect(opened[0]!.metric).toMatchObject({
        __name__: "effect_resilience_circuit_breaker_state",
        breaker: "inventory",
        dependency: "inventory",
        job: "effect-resilience",
        instance: target.target
      })
      yield* waitFor(prometheus, `effect_resilience_circuit_breaker_failure_ratio{breaker="inventory"}`, 1)
      yield* waitFor(prometheus, `effect_resilience_health_system`, 2)
      // Forced open: 3; reset: closed again.
      yield* breaker.forceOpen
      yield* waitFor(prometheus, state, 3)
      yield* breaker.reset
      yield* waitFor(prometheus, state, 0)
      yield* waitFor(prometheus, `effect_resilience_circuit_breaker_transitions_total{breaker="inventory"}`, 0)
      // Prometheus saw the whole history, one scrape a second.
      const seen = yield* Effect.promise(() =>
        prometheus.query(`max_over_time(${state}[1m])`)
      )
      expect(seen.map((series) => series.value)).toEqual([3])
      expect(target.scrapes()).toBeGreaterThanOrEqual(4)
    }).pipe(
      Effect.scoped,
      Effect.provide(Prometheus.layer().pipe(Layer.provideMerge(Health.layer()))),
      quiet
    ), 90_000)
})
