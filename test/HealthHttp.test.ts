/**
 * HealthHttp over a real loopback server: NodeHttpServer on port 0, real requests with
 * `fetch`, a real Server-Sent Events stream read from the socket.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import {
  Config,
  ConfigProvider,
  Context,
  Effect,
  Exit,
  HashMap,
  Layer,
  Logger,
  Redacted,
  Ref,
  Schema,
  Scope,
  Stream,
  Supervisor
} from "effect"
import * as http from "node:http"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Health from "../src/Health.js"
import * as HealthHttp from "../src/HealthHttp.js"
import { MetricsExposition } from "../src/internal/metricsExposition.js"
import * as Prometheus from "../src/Prometheus.js"
import { makeRecordingTracer } from "./support/recordingTracer.js"

const TOKEN = "s3cret-admin-token_+/="

interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** Every log line of the program, with its annotations, as text a test can search. */
const recordLogs = Effect.gen(function*() {
  const lines = yield* Ref.make<ReadonlyArray<LogLine>>([])
  const logger = Logger.make<unknown, void>(({ annotations, logLevel, message }) => {
    const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
    const record: LogLine = {
      level: logLevel.label,
      message: text,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    }
    Effect.runSync(Ref.update(lines, (all) => [...all, record]))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
})

/**
 * Serves `HealthHttp.router(options)` on a free loopback port in the current scope and
 * returns its base URL. The registry comes from the context.
 */
const serve = (options?: HealthHttp.Options, around: (layer: Layer.Layer<never>) => Layer.Layer<never> = (l) => l) =>
  Effect.gen(function*() {
    const app = yield* HealthHttp.router(options)
    const scope = yield* Effect.scope
    const server = yield* Layer.buildWithScope(
      NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" }),
      scope
    )
    yield* Layer.buildWithScope(around(HttpServer.serve(app).pipe(Layer.provide(Layer.succeedContext(server)))), scope)
    const address = Context.get(server, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    return `http://127.0.0.1:${address.port}`
  })

const request = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: any = undefined
    try {
      body = JSON.parse(text)
    } catch {
      body = text
    }
    return { status: response.status, headers: response.headers, body }
  })

const post = (url: string, token?: string, init?: RequestInit) =>
  request(url, {
    method: "POST",
    ...init,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...init?.headers }
  })

const breakerNamed = (name: string) =>
  CircuitBreaker.make({ name, failureThreshold: 1, successThreshold: 1, resetTimeout: "10 minutes" })

const openIt = (breaker: CircuitBreaker.CircuitBreaker) => breaker.protect(Effect.fail("boom")).pipe(Effect.ignore)

/** Collects a breaker's transitions from now on. */
const recordTransitions = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const changes = yield* breaker.subscribe
    const seen = yield* Ref.make<ReadonlyArray<CircuitBreaker.StateChange>>([])
    yield* changes.pipe(Stream.runForEach((change) => Ref.update(seen, (all) => [...all, change])), Effect.forkScoped)
    return seen
  })

interface SseEvent {
  readonly event: string | undefined
  readonly data: any
  readonly comment: string | undefined
  readonly retry: number | undefined
}

/** Opens `/health/stream` and reads its events as they come; `close` aborts the request. */
const openStream = (url: string) =>
  Effect.gen(function*() {
    const controller = new AbortController()
    const response = yield* Effect.promise(() => fetch(url, { signal: controller.signal }))
    const events: Array<SseEvent> = []
    const waiters = new Set<() => void>()
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let buffer = ""
    const pump = async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          buffer += decoder.decode(value, { stream: true })
          let end = buffer.indexOf("\n\n")
          while (end !== -1) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            let event: string | undefined
            let data: string | undefined
            let comment: string | undefined
            let retry: number | undefined
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) comment = line.slice(1).trim()
              else if (line.startsWith("event: ")) event = line.slice(7)
              else if (line.startsWith("data: ")) data = line.slice(6)
              else if (line.startsWith("retry: ")) retry = Number(line.slice(7))
            }
            events.push({ event, data: data === undefined ? undefined : JSON.parse(data), comment, retry })
            for (const wake of waiters) wake()
            end = buffer.indexOf("\n\n")
          }
        }
      } catch {
        // aborted
      }
    }
    void pump()
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    /** The first event from index `from` that satisfies `predicate`, waiting up to `timeout` ms. */
    const next = (predicate: (event: SseEvent) => boolean, from = 0, timeout = 5000) =>
      Effect.async<{ readonly event: SseEvent; readonly index: number }, Error>((resume) => {
        const check = () => {
          const index = events.findIndex((event, i) => i >= from && predicate(event))
          if (index === -1) return false
          waiters.delete(wake)
          clearTimeout(timer)
          resume(Effect.succeed({ event: events[index]!, index }))
          return true
        }
        const wake = () => void check()
        const timer = setTimeout(() => {
          waiters.delete(wake)
          resume(Effect.fail(new Error(`no matching event within ${timeout} ms; got ${JSON.stringify(events)}`)))
        }, timeout)
        waiters.add(wake)
        check()
        return Effect.sync(() => {
          waiters.delete(wake)
          clearTimeout(timer)
        })
      })
    return { response, events, next, close: Effect.sync(() => controller.abort()) }
  })

const withHealth = (options?: Health.Options) => Effect.provide(Health.layer(options))

describe("HealthHttp", () => {
  describe("health routes", () => {
    it.live("GET /health/live answers 200 while the server serves", () =>
      Effect.gen(function*() {
        const base = yield* serve()
        const response = yield* request(`${base}/health/live`)
        expect(response.status).toBe(200)
        expect(response.body).toEqual({ status: "live" })
      }).pipe(Effect.scoped, withHealth()))

    it.live("GET /health/ready is 200 when healthy and 503 with the reason when a critical dependency is down", () =>
      Effect.gen(function*() {
        const orders = yield* breakerNamed("orders")
        yield* breakerNamed("search")
        const base = yield* serve()
        const healthy = yield* request(`${base}/health/ready`)
        expect(healthy.status).toBe(200)
        expect(healthy.body).toEqual({ ready: true, health: "Healthy", serviceLevel: "Full" })

        yield* openIt(orders)
        const critical = yield* request(`${base}/health/ready`)
        expect(critical.status).toBe(503)
        expect(critical.body.ready).toBe(false)
        expect(critical.body.health).toBe("Critical")
        expect(critical.body.serviceLevel).toBe("Limited")
        expect(critical.body.down).toEqual(["orders"])
        expect(critical.body.reason).toContain("critical dependency \"orders\" is down")
        expect(critical.headers.get("content-type")).toContain("application/json")
      }).pipe(Effect.scoped, withHealth({ critical: ["orders"] })))

    it.live("GET /health/ready names every critical dependency down in an Emergency", () =>
      Effect.gen(function*() {
        const orders = yield* breakerNamed("orders")
        const payments = yield* breakerNamed("payments")
        const base = yield* serve()
        yield* openIt(orders)
        yield* openIt(payments)
        const response = yield* request(`${base}/health/ready`)
        expect(response.status).toBe(503)
        expect(response.body.health).toBe("Emergency")
        expect(response.body.down).toEqual(["orders", "payments"])
        expect(response.body.reason).toContain("critical dependencies \"orders\", \"payments\" are down")
      }).pipe(Effect.scoped, withHealth({ critical: ["orders", "payments"] })))

    it.live("GET /health gives system health, service level and each breaker's state", () =>
      Effect.gen(function*() {
        const cache = yield* breakerNamed("cache")
        yield* breakerNamed("db")
        yield* cache.forceClosed
        const base = yield* serve()
        const before = yield* request(`${base}/health`)
        expect(before.status).toBe(200)
        expect(before.body).toEqual({
          health: "Healthy",
          serviceLevel: "Full",
          readOnly: false,
          dependencies: { cache: "Operational", db: "Operational" },
          breakers: { cache: "ForcedClosed", db: "Closed" }
        })
        yield* cache.forceOpen
        const after = yield* request(`${base}/health`)
        expect(after.body.breakers).toEqual({ cache: "ForcedOpen", db: "Closed" })
        expect(after.body.dependencies).toEqual({ cache: "Down", db: "Operational" })
        expect(after.body.health).toBe("Degraded")
      }).pipe(Effect.scoped, withHealth()))

    it.live("GET /health/resilience is the Schema-encoded Health.status", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        yield* openIt(db)
        const base = yield* serve()
        const response = yield* request(`${base}/health/resilience`)
        expect(response.status).toBe(200)
        const decoded = yield* Schema.decodeUnknown(Health.Status)(response.body)
        expect(decoded.health).toBe("Critical")
        expect(decoded.dependencies.map((dependency) => [dependency.name, dependency.state])).toEqual([["db", "Down"]])
        expect(decoded.dependencies[0]!.failureRate).toBe(1)
        expect(decoded.dependencies[0]!.lastFailure?.message).toBe("boom")
        // the JSON form: durations as milliseconds
        expect(typeof response.body.dependencies[0].timeInState).toBe("number")
      }).pipe(Effect.scoped, withHealth({ critical: ["db"] })))

    it.live("a wrong method on a health route is a 405 with a JSON error and an Allow header", () =>
      Effect.gen(function*() {
        const base = yield* serve()
        const response = yield* request(`${base}/health/live`, { method: "POST" })
        expect(response.status).toBe(405)
        expect(response.headers.get("allow")).toBe("GET")
        expect(response.body.error).toBe("MethodNotAllowed")
        const head = yield* Effect.promise(() => fetch(`${base}/health/ready`, { method: "HEAD" }))
        expect(head.status).toBe(200)
        const headStream = yield* Effect.promise(() => fetch(`${base}/health/stream`, { method: "HEAD" }))
        expect(headStream.status).toBe(200)
        expect(headStream.headers.get("content-type")).toBe("text/event-stream")
      }).pipe(Effect.scoped, withHealth()))

    it.live("every route sits under the prefix, and nothing answers at the root", () =>
      Effect.gen(function*() {
        yield* breakerNamed("db")
        const base = yield* serve({ prefix: "/ops/v1", adminToken: Redacted.make(TOKEN) })
        expect((yield* request(`${base}/ops/v1/health/live`)).status).toBe(200)
        expect((yield* request(`${base}/ops/v1/health`)).body.breakers).toEqual({ db: "Closed" })
        expect((yield* request(`${base}/health/live`)).status).toBe(404)
        const forced = yield* post(`${base}/ops/v1/admin/circuit-breaker/db/force-open`, TOKEN)
        expect(forced.status).toBe(200)
        expect(forced.body.to).toBe("ForcedOpen")
      }).pipe(Effect.scoped, withHealth()))
  })

  describe("server-sent events", () => {
    it.live("/health/stream sends the status, then a change and a fresh status for each change", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
        const stream = yield* openStream(`${base}/health/stream`)
        expect(stream.response.headers.get("content-type")).toBe("text/event-stream")
        const first = yield* stream.next((event) => event.event !== undefined || event.comment !== undefined)
        expect(first.event.event).toBe("status")
        expect(stream.events[0]!.retry).toBe(2000)
        expect(first.event.data.health).toBe("Healthy")
        yield* Schema.decodeUnknown(Health.Status)(first.event.data)

        yield* post(`${base}/admin/circuit-breaker/db/force-open`, TOKEN)
        const change = yield* stream.next((event) =>
          event.event === "change" && event.data._tag === "BreakerStateChanged"
        )
        expect(change.event.data).toMatchObject({
          breaker: "db",
          from: "Closed",
          to: "ForcedOpen",
          reason: "ForceOpen"
        })
        const after = yield* stream.next((event) => event.event === "status", change.index)
        expect(after.event.data.dependencies[0].state).toBe("Down")
        const registryChange = yield* stream.next((event) =>
          event.event === "change" && event.data._tag === "DependencyStateChanged"
        )
        expect(registryChange.event.data).toMatchObject({ name: "db", from: "Operational", to: "Down" })
        expect(yield* db.state).toBe("ForcedOpen")
      }).pipe(Effect.scoped, withHealth()))

    it.live("a breaker transition that leaves its dependency's state as it was reaches the stream", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const base = yield* serve()
        const stream = yield* openStream(`${base}/health/stream`)
        yield* stream.next((event) => event.event === "status")
        // Closed -> ForcedClosed: the dependency stays Operational, so the registry emits nothing.
        yield* db.forceClosed
        const change = yield* stream.next((event) => event.event === "change")
        expect(change.event.data).toEqual({
          _tag: "BreakerStateChanged",
          breaker: "db",
          from: "Closed",
          to: "ForcedClosed",
          at: change.event.data.at,
          reason: "ForceClosed"
        })
        const status = yield* stream.next((event) => event.event === "status", change.index)
        expect(status.event.data.dependencies[0].state).toBe("Operational")
      }).pipe(Effect.scoped, withHealth()))

    it.live("a lazy Open -> HalfOpen transition reaches the stream though no call observes it", () =>
      Effect.gen(function*() {
        const db = yield* CircuitBreaker.make({ name: "db", failureThreshold: 1, resetTimeout: "300 millis" })
        yield* openIt(db)
        const base = yield* serve({ breakerScanInterval: "100 millis" })
        const stream = yield* openStream(`${base}/health/stream`)
        const first = yield* stream.next((event) => event.event === "status")
        expect(first.event.data.dependencies[0].state).toBe("Down")
        // nobody calls or reads the breaker: the stream's own scan observes the elapsed open duration
        const change = yield* stream.next((event) => event.event === "change" && event.data.breaker === "db", 0, 3000)
        expect(change.event.data).toMatchObject({ from: "Open", to: "HalfOpen", reason: "OpenDurationElapsed" })
        const status = yield* stream.next((event) => event.event === "status", change.index)
        expect(status.event.data.dependencies[0].state).toBe("Degraded")
      }).pipe(Effect.scoped, withHealth()))

    it.live("a breaker registered after the client connected is followed within the scan interval", () =>
      Effect.gen(function*() {
        const base = yield* serve({ breakerScanInterval: "100 millis" })
        const stream = yield* openStream(`${base}/health/stream`)
        yield* stream.next((event) => event.event === "status")
        const late = yield* breakerNamed("late")
        // a registration changes no state: the scan finds it, sends a status, and follows its breaker
        yield* stream.next((event) => event.event === "status" && event.data.dependencies.length === 1)
        yield* late.forceClosed
        const change = yield* stream.next((event) => event.event === "change" && event.data.breaker === "late")
        expect(change.event.data.to).toBe("ForcedClosed")
      }).pipe(Effect.scoped, withHealth()))

    it.live("/health/stream sends a heartbeat comment every heartbeatInterval", () =>
      Effect.gen(function*() {
        const base = yield* serve({ heartbeatInterval: "150 millis" })
        const stream = yield* openStream(`${base}/health/stream`)
        const first = yield* stream.next((event) => event.comment === "heartbeat")
        const second = yield* stream.next((event) => event.comment === "heartbeat", first.index + 1)
        expect(second.index).toBeGreaterThan(first.index)
      }).pipe(Effect.scoped, withHealth()))

    it.live("the stream ends when the client goes away, leaving no fiber behind", () =>
      Effect.gen(function*() {
        yield* breakerNamed("db")
        const supervisor = yield* Supervisor.track
        const base = yield* serve(
          { breakerScanInterval: "50 millis", heartbeatInterval: "50 millis" },
          (layer) => Layer.locallyEffect(layer, Effect.supervised(supervisor))
        )
        const live = () => Effect.map(supervisor.value, (fibers) => fibers.length)
        const idle = yield* live()
        const clientScope = yield* Scope.make()
        const stream = yield* openStream(`${base}/health/stream`).pipe(Scope.extend(clientScope))
        yield* stream.next((event) => event.comment === "heartbeat")
        const serving = yield* live()
        expect(serving).toBeGreaterThan(idle)
        yield* Scope.close(clientScope, Exit.void)
        let after = serving
        for (let i = 0; i < 50 && after > idle; i++) {
          yield* Effect.sleep("50 millis")
          after = yield* live()
        }
        expect(after).toBe(idle)
      }).pipe(Effect.scoped, withHealth()))
  })

  describe("admin", () => {
    it.live("each action moves the breaker, answers from and to, shows on its changes with its reason, is logged", () =>
      Effect.gen(function*() {
        const logs = yield* recordLogs
        yield* Effect.gen(function*() {
          const db = yield* breakerNamed("db")
          const transitions = yield* recordTransitions(db)
          const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
          const url = (action: string) => `${base}/admin/circuit-breaker/db/${action}`

          const open = yield* post(url("force-open"), TOKEN)
          expect(open.status).toBe(200)
          expect(open.body).toEqual({ breaker: "db", action: "force-open", from: "Closed", to: "ForcedOpen" })
          const closed = yield* post(url("force-closed"), TOKEN)
          expect(closed.body).toMatchObject({ from: "ForcedOpen", to: "ForcedClosed" })
          const reset = yield* post(url("reset"), TOKEN)
          expect(reset.body).toMatchObject({ from: "ForcedClosed", to: "Closed" })
          yield* openIt(db)
          const halfOpen = yield* post(url("half-open"), TOKEN)
          expect(halfOpen.body).toMatchObject({ from: "Open", to: "HalfOpen" })

          yield* Effect.sleep("50 millis")
          const seen = (yield* Ref.get(transitions)).map((change) => [change.from, change.to, change.reason])
          expect(seen).toEqual([
            ["Closed", "ForcedOpen", "ForceOpen"],
            ["ForcedOpen", "ForcedClosed", "ForceClosed"],
            ["ForcedClosed", "Closed", "Reset"],
            ["Closed", "Open", seen[3]![2]],
            ["Open", "HalfOpen", seen[4]![2]]
          ])
          const admin = (yield* Ref.get(logs.lines)).filter((line) => line.annotations["outcome"] === "done")
          expect(admin.map((line) => [line.annotations["action"], line.annotations["breaker"]])).toEqual([
            ["force-open", "db"],
            ["force-closed", "db"],
            ["reset", "db"],
            ["half-open", "db"]
          ])
          expect(admin[0]!.message).toContain("Closed -> ForcedOpen")
        }).pipe(Effect.scoped, withHealth(), Effect.provide(logs.layer))
        const everything = JSON.stringify(yield* Ref.get(logs.lines))
        expect(everything).not.toContain("s3cret")
      }))

    it.live("no token or a wrong token is a 401 and changes nothing; the token is never logged", () =>
      Effect.gen(function*() {
        const logs = yield* recordLogs
        yield* Effect.gen(function*() {
          const db = yield* breakerNamed("db")
          const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
          const url = `${base}/admin/circuit-breaker/db/force-open`
          const none = yield* post(url)
          expect(none.status).toBe(401)
          expect(none.body.error).toBe("Unauthorized")
          expect(none.headers.get("www-authenticate")).toBe("Bearer")
          const wrong = yield* post(url, "s3cret-guess")
          expect(wrong.status).toBe(401)
          const prefixOnly = yield* post(url, TOKEN.slice(0, -1))
          expect(prefixOnly.status).toBe(401)
          const basic = yield* post(url, undefined, { headers: { authorization: `Basic ${TOKEN}` } })
          expect(basic.status).toBe(401)
          const recovery = yield* post(`${base}/admin/resilience/force-recovery`, "nope")
          expect(recovery.status).toBe(401)
          expect(yield* db.state).toBe("Closed")
          const refused = (yield* Ref.get(logs.lines)).filter((line) => line.annotations["outcome"] === "unauthorized")
          expect(refused.length).toBe(5)
          expect(refused[0]!.annotations).toEqual({
            action: "force-open",
            breaker: "db",
            outcome: "unauthorized",
            client: "127.0.0.1"
          })
        }).pipe(Effect.scoped, withHealth(), Effect.provide(logs.layer))
        const everything = JSON.stringify(yield* Ref.get(logs.lines))
        expect(everything).not.toContain("s3cret")
      }))

    it.live("an admin request's span carries its action, breaker and outcome, never the token", () =>
      Effect.gen(function*() {
        const recording = makeRecordingTracer()
        yield* Effect.gen(function*() {
          yield* breakerNamed("db")
          const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
          yield* post(`${base}/admin/circuit-breaker/db/force-open`, TOKEN)
          yield* post(`${base}/admin/circuit-breaker/db/reset`, "wrong")
        }).pipe(Effect.scoped, withHealth(), Effect.withTracer(recording.tracer))
        const admin = recording.spans.filter((span) => span.attributeRecord["resilience.admin.action"] !== undefined)
        expect(admin.map((span) => [
          span.attributeRecord["resilience.admin.action"],
          span.attributeRecord["resilience.name"],
          span.attributeRecord["resilience.admin.outcome"],
          span.attributeRecord["http.response.status_code"]
        ])).toEqual([["force-open", "db", "done", 200], ["reset", "db", "unauthorized", 401]])
        expect(JSON.stringify(recording.spans.map((span) => span.attributeRecord))).not.toContain("s3cret")
      }))

    it.live("an unknown breaker is a 404, an unknown action a 400, a GET a 405, all JSON", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
        const unknownBreaker = yield* post(`${base}/admin/circuit-breaker/nope/force-open`, TOKEN)
        expect(unknownBreaker.status).toBe(404)
        expect(unknownBreaker.body).toMatchObject({ error: "BreakerNotFound", breaker: "nope" })
        const unknownAction = yield* post(`${base}/admin/circuit-breaker/db/explode`, TOKEN)
        expect(unknownAction.status).toBe(400)
        expect(unknownAction.body.error).toBe("UnknownAction")
        expect(unknownAction.body.actions).toEqual(["force-open", "force-closed", "half-open", "reset"])
        const unknownResilience = yield* post(`${base}/admin/resilience/reboot`, TOKEN)
        expect(unknownResilience.status).toBe(400)
        const get = yield* request(`${base}/admin/circuit-breaker/db/force-open`, {
          headers: { authorization: `Bearer ${TOKEN}` }
        })
        expect(get.status).toBe(405)
        expect(get.headers.get("allow")).toBe("POST")
        expect(get.body.error).toBe("MethodNotAllowed")
        expect(yield* db.state).toBe("Closed")
      }).pipe(Effect.scoped, withHealth()))

    it.live("any other admin path is a JSON 404 behind the same gate", () =>
      Effect.gen(function*() {
        yield* breakerNamed("db")
        const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
        const unauthenticated = yield* post(`${base}/admin/circuit-breaker/db`)
        expect(unauthenticated.status).toBe(401)
        const missingAction = yield* post(`${base}/admin/circuit-breaker/db`, TOKEN)
        expect(missingAction.status).toBe(404)
        expect(missingAction.body.error).toBe("UnknownAdminRoute")
        const elsewhere = yield* post(`${base}/admin/users/1/delete`, TOKEN)
        expect(elsewhere.status).toBe(404)
        expect(elsewhere.body.error).toBe("UnknownAdminRoute")
      }).pipe(Effect.scoped, withHealth()))

    it.live("a breaker name is URL-decoded, so a provider named with a slash or a space is found", () =>
      Effect.gen(function*() {
        const provider = yield* breakerNamed("llm/open ai")
        const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
        const response = yield* post(
          `${base}/admin/circuit-breaker/${encodeURIComponent("llm/open ai")}/force-open`,
          TOKEN
        )
        expect(response.status).toBe(200)
        expect(response.body.breaker).toBe("llm/open ai")
        expect(yield* provider.state).toBe("ForcedOpen")
      }).pipe(Effect.scoped, withHealth()))

    it.live("an oversized body is a 413, a body of unknown length a 411, and neither changes anything", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const base = yield* serve({ adminToken: Redacted.make(TOKEN), maxBodyBytes: 16 })
        const url = `${base}/admin/circuit-breaker/db/force-open`
        const withLength = yield* post(url, TOKEN, { body: "x".repeat(17) })
        expect(withLength.status).toBe(413)
        expect(withLength.body).toMatchObject({ error: "PayloadTooLarge", maxBodyBytes: 16 })
        const tooLong = yield* post(url, TOKEN, { body: "x".repeat(1 << 20) })
        expect(tooLong.status).toBe(413)
        const chunked = yield* post(url, TOKEN, {
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode("y".repeat(64)))
              controller.close()
            }
          }),
          duplex: "half"
        } as RequestInit)
        expect(chunked.status).toBe(411)
        expect(chunked.body.error).toBe("LengthRequired")
        expect(yield* db.state).toBe("Closed")
        const small = yield* post(url, TOKEN, { body: "{}" })
        expect(small.status).toBe(200)
        expect(yield* db.state).toBe("ForcedOpen")
      }).pipe(Effect.scoped, withHealth()))

    it.live("without a token configured the admin routes answer 404 and a startup log says admin is off", () =>
      Effect.gen(function*() {
        const logs = yield* recordLogs
        yield* Effect.gen(function*() {
          const db = yield* breakerNamed("db")
          const base = yield* serve()
          const response = yield* post(`${base}/admin/circuit-breaker/db/force-open`, TOKEN)
          expect(response.status).toBe(404)
          expect(response.body.error).toBe("AdminDisabled")
          expect((yield* post(`${base}/admin/resilience/force-recovery`)).status).toBe(404)
          expect(yield* db.state).toBe("Closed")
          const messages = (yield* Ref.get(logs.lines)).map((line) => line.message)
          expect(messages.some((message) => message.includes("admin routes are off"))).toBe(true)
        }).pipe(
          Effect.scoped,
          withHealth(),
          Effect.provide(logs.layer),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
        )
      }))

    it.live("the token comes from RESILIENCE_ADMIN_TOKEN when no option is given; an empty one is refused", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const base = yield* serve().pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_ADMIN_TOKEN", "from-env"]])))
        )
        expect((yield* post(`${base}/admin/circuit-breaker/db/force-open`, "from-env")).status).toBe(200)
        expect(yield* db.state).toBe("ForcedOpen")
        const empty = yield* HealthHttp.router().pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RESILIENCE_ADMIN_TOKEN", ""]]))),
          Effect.flip
        )
        expect(empty._tag).toBe("InvalidOptions")
        expect(empty.message).toContain("RESILIENCE_ADMIN_TOKEN")
        expect(empty.message).not.toContain("from-env")
      }).pipe(Effect.scoped, withHealth()))

    it.live("force-recovery runs every check and half-opens the open breakers whose check passes", () =>
      Effect.gen(function*() {
        const logs = yield* recordLogs
        yield* Effect.gen(function*() {
          const search = yield* CircuitBreaker.make({ name: "search", failureThreshold: 1, resetTimeout: "1 hour" })
          yield* Health.register({ name: "search", source: Health.fromBreaker(search, { check: Effect.void }) })
          yield* openIt(search)
          expect(yield* search.state).toBe("Open")
          const base = yield* serve({ adminToken: Redacted.make(TOKEN) })
          const response = yield* post(`${base}/admin/resilience/force-recovery`, TOKEN)
          expect(response.status).toBe(200)
          expect(response.body).toEqual({
            action: "force-recovery",
            passed: ["search"],
            failed: [],
            halfOpened: ["search"]
          })
          expect(yield* search.state).toBe("HalfOpen")
          const line = (yield* Ref.get(logs.lines)).find((line) => line.annotations["action"] === "force-recovery")
          expect(line?.annotations["outcome"]).toBe("done")
        }).pipe(Effect.scoped, withHealth({ autoRecovery: false }), Effect.provide(logs.layer))
      }))
  })

  describe("metrics and dashboard", () => {
    it.live("GET /metrics without an exposition is a 404 saying to provide Prometheus.layer", () =>
      Effect.gen(function*() {
        const base = yield* serve()
        const response = yield* request(`${base}/metrics`)
        expect(response.status).toBe(404)
        expect(response.body.error).toBe("MetricsNotProvided")
        expect(response.body.message).toContain("Prometheus.layer")
      }).pipe(Effect.scoped, withHealth()))

    it.live("GET /metrics renders the exposition in the environment, with its content type", () =>
      Effect.gen(function*() {
        const renders = yield* Ref.make(0)
        const exposition = MetricsExposition.of({
          contentType: "text/plain; version=0.0.4; charset=utf-8",
          render: Effect.map(Ref.updateAndGet(renders, (n) => n + 1), (n) => `# render ${n}\n`)
        })
        const base = yield* serve().pipe(Effect.provideService(MetricsExposition, exposition))
        const first = yield* request(`${base}/metrics`)
        expect(first.status).toBe(200)
        expect(first.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
        expect(first.body).toBe("# render 1\n")
        expect((yield* request(`${base}/metrics`)).body).toBe("# render 2\n")
      }).pipe(Effect.scoped, withHealth()))
    it.live("GET /metrics serves Prometheus.layer's exposition, with the breaker forced open through admin", () =>
      Effect.gen(function*() {
        yield* breakerNamed("payments")
        const exposition = yield* Layer.build(Prometheus.layer())
        const base = yield* serve({ adminToken: Redacted.make(TOKEN) }).pipe(Effect.provide(exposition))
        const before = yield* request(`${base}/metrics`)
        expect(before.status).toBe(200)
        expect(before.headers.get("content-type")).toBe(Prometheus.contentType)
        expect(before.body).toMatch(/^effect_resilience_circuit_breaker_state\{[^}]*breaker="payments"[^}]*\} 0$/m)
        yield* post(`${base}/admin/circuit-breaker/payments/force-open`, TOKEN)
        const after = yield* request(`${base}/metrics`)
        expect(after.body).not.toMatch(/^effect_resilience_circuit_breaker_state\{[^}]*breaker="payments"[^}]*\} 0$/m)
      }).pipe(Effect.scoped, withHealth()))

    it.live("GET /dashboard is the HTML page, pointed at the prefix", () =>
      Effect.gen(function*() {
        const base = yield* serve({ prefix: "/ops" })
        const response = yield* request(`${base}/ops/dashboard`)
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8")
        expect(response.body).toMatch(/^<!doctype html>/i)
        expect(response.headers.get("x-frame-options")).toBe("DENY")
        expect(response.body).toContain("data-base-path=\"/ops\"")
        expect(response.body).not.toMatch(/(src|href)="https?:/)
        expect((yield* request(`${base}/dashboard`)).status).toBe(404)
      }).pipe(Effect.scoped, withHealth()))
  })

  describe("construction", () => {
    it.effect("invalid options fail with InvalidOptions naming the field", () =>
      Effect.gen(function*() {
        const prefix = yield* Effect.flip(HealthHttp.router({ prefix: "ops/" }))
        expect(prefix).toMatchObject({ _tag: "InvalidOptions", field: "prefix" })
        const trailing = yield* Effect.flip(HealthHttp.router({ prefix: "/ops/" }))
        expect(trailing).toMatchObject({ _tag: "InvalidOptions", field: "prefix" })
        const body = yield* Effect.flip(HealthHttp.router({ maxBodyBytes: -1 }))
        expect(body).toMatchObject({ _tag: "InvalidOptions", field: "maxBodyBytes" })
        const heartbeat = yield* Effect.flip(HealthHttp.router({ heartbeatInterval: "0 millis" }))
        expect(heartbeat).toMatchObject({ _tag: "InvalidOptions", field: "heartbeatInterval" })
        for (const token of ["", " ", "two words", "caf\u00e9", "line\n"]) {
          const refused = yield* Effect.flip(HealthHttp.router({ adminToken: Redacted.make(token) }))
          expect(refused).toMatchObject({ _tag: "InvalidOptions", field: "adminToken", received: "<redacted>" })
        }
      }).pipe(withHealth()))

    it.live("HealthHttp.layerConfig reads the options through Config", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const health = yield* Health.Health
        const scope = yield* Effect.scope
        const server = yield* Layer.buildWithScope(
          NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" }),
          scope
        )
        yield* Layer.buildWithScope(
          HttpRouter.Default.serve().pipe(
            Layer.provide(HealthHttp.layerConfig({
              prefix: Config.string("OPS_PREFIX"),
              adminToken: Config.redacted("OPS_TOKEN")
            })),
            Layer.provide(Layer.succeed(Health.Health, health)),
            Layer.provide(Layer.succeedContext(server))
          ),
          scope
        ).pipe(
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["OPS_PREFIX", "/internal"], ["OPS_TOKEN", "from-config"]]))
          )
        )
        const address = Context.get(server, HttpServer.HttpServer).address
        const base = `http://127.0.0.1:${(address as HttpServer.TcpAddress).port}/internal`
        expect((yield* post(`${base}/admin/circuit-breaker/db/force-open`, "from-config")).status).toBe(200)
        expect(yield* db.state).toBe("ForcedOpen")
        const wrong = yield* Layer.buildWithScope(
          HttpRouter.Default.serve().pipe(
            Layer.provide(HealthHttp.layerConfig({ prefix: Config.string("OPS_PREFIX") })),
            Layer.provide(Layer.succeed(Health.Health, health)),
            Layer.provide(Layer.succeedContext(server))
          ),
          scope
        ).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPS_PREFIX", "internal/"]]))),
          Effect.flip
        )
        expect(wrong).toMatchObject({ _tag: "InvalidOptions", field: "prefix" })
      }).pipe(Effect.scoped, withHealth()))

    it.live("HealthHttp.layer mounts the routes on HttpRouter.Default beside the application's own", () =>
      Effect.gen(function*() {
        const db = yield* breakerNamed("db")
        const health = yield* Health.Health
        const scope = yield* Effect.scope
        const server = yield* Layer.buildWithScope(
          NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" }),
          scope
        )
        const own = HttpRouter.Default.use((router) =>
          router.get("/hello", Effect.succeed(HttpServerResponse.text("hello")))
        )
        yield* Layer.buildWithScope(
          HttpRouter.Default.serve().pipe(
            Layer.provide(HealthHttp.layer({ adminToken: Redacted.make(TOKEN) })),
            Layer.provide(own),
            Layer.provide(Layer.succeed(Health.Health, health)),
            Layer.provide(Layer.succeedContext(server))
          ),
          scope
        )
        const address = Context.get(server, HttpServer.HttpServer).address
        const base = `http://127.0.0.1:${(address as HttpServer.TcpAddress).port}`
        expect((yield* request(`${base}/hello`)).body).toBe("hello")
        expect((yield* request(`${base}/health`)).body.breakers).toEqual({ db: "Closed" })
        expect((yield* post(`${base}/admin/circuit-breaker/db/force-open`, TOKEN)).status).toBe(200)
        expect(yield* db.state).toBe("ForcedOpen")
      }).pipe(Effect.scoped, withHealth()))
  })
})
