import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as http from "node:http"
import { launch } from "../../examples/service/launch.js"
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

/**
 * The example service (`npm run example:service`) as a child process, scraped every second
 * by a real Prometheus server: a breaker forced open through the admin endpoint shows in
 * Prometheus's HTTP API, as its state (3, forced open) and as the system's health (2,
 * Critical: the database is critical).
 */
const token = "prometheus-scrape-admin-token-41d8"

const service = Effect.acquireRelease(
  Effect.promise(() =>
    launch({ RESILIENCE_ADMIN_TOKEN: token, SERVICE_TRAFFIC: "off", REDIS_URL: undefined, DATA_DIR: undefined })
  ),
  (running) => Effect.promise(() => running.stop())
)

const adminAction = (baseUrl: string, path: string) =>
  Effect.promise(() =>
    fetch(`${baseUrl}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` } }).then((response) =>
      response.status
    )
  )

const only = (results: ReadonlyArray<{ readonly value: number }>) => results.length === 1 ? results[0]!.value : NaN

describe("Prometheus scraping the example service", () => {
  it.live("reads a breaker forced open through the admin endpoint back through Prometheus's HTTP API", () =>
    Effect.gen(function*() {
      const running = yield* service
      const prometheus = yield* prometheusServer({ target: new URL(running.baseUrl).host })
      const wait = (promql: string, value: number) =>
        Effect.promise(() => prometheus.waitFor(promql, (results) => only(results) === value, 20_000))

      // The target is up and the breaker closed.
      yield* wait(`up{job="effect-resilience"}`, 1)
      expect(yield* Effect.promise(() => prometheus.targetHealth())).toEqual({ health: "up", lastError: "" })
      const closed = yield* wait(`effect_resilience_circuit_breaker_state{breaker="database"}`, 0)
      expect(closed[0]!.metric).toMatchObject({ breaker: "database", dependency: "database" })
      yield* wait(`effect_resilience_health_system`, 0)

      // Forced open over HTTP: Prometheus reads 3 (forced open), and the system Critical (2).
      expect(yield* adminAction(running.baseUrl, "/admin/circuit-breaker/database/force-open")).toBe(200)
      const forced = yield* wait(`effect_resilience_circuit_breaker_state{breaker="database"}`, 3)
      expect(forced[0]!.metric).toMatchObject({ breaker: "database", dependency: "database" })
      yield* wait(`effect_resilience_health_system`, 2)
      yield* wait(`effect_resilience_dependency_state{dependency="database"}`, 2)

      // Reset: closed again, Healthy again.
      expect(yield* adminAction(running.baseUrl, "/admin/circuit-breaker/database/reset")).toBe(200)
      yield* wait(`effect_resilience_circuit_breaker_state{breaker="database"}`, 0)
      yield* wait(`effect_resilience_health_system`, 0)
      expect(running.output()).not.toContain(token)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
