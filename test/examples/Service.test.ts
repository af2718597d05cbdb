import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { launch, type RunningService } from "../../examples/service/launch.js"
import { redisServer } from "../integration/redisServer.js"

/**
 * `npm run example:service` as a child process on a free loopback port, driven over real
 * HTTP through the whole story: healthy, the cache down (Degraded), the database down too
 * (Critical), every LLM provider down too (Emergency: writes queued, reads stale), then
 * everything back (Healthy within the documented 10 seconds).
 */
const token = "service-test-admin-token-7f3a9c"
const documentedRecovery = 10_000

interface Health {
  readonly health: string
  readonly serviceLevel: string
  readonly dependencies: Readonly<Record<string, string>>
  readonly breakers: Readonly<Record<string, string>>
}

const request = (service: RunningService, path: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(`${service.baseUrl}${path}`, init)
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: kept as text
    }
    return { status: response.status, body: body as any }
  })

const admin = (service: RunningService, path: string, authorization?: string) =>
  request(service, path, {
    method: "POST",
    ...(authorization === undefined ? {} : { headers: { authorization } })
  })

const health = (service: RunningService) =>
  Effect.map(request(service, "/health"), (response) => response.body as Health)

/** Polls `/health` until `until` holds; the time it took, or a failure with the last answer. */
const waitFor = (service: RunningService, until: (health: Health) => boolean, withinMillis: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    let last: Health | undefined
    while (Date.now() - started <= withinMillis) {
      last = yield* health(service)
      if (until(last)) return Date.now() - started
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
    }
    return yield* Effect.fail(new Error(`not reached within ${withinMillis} ms; last: ${JSON.stringify(last)}`))
  })

/** Waits until the service has printed `text` (its start-up lines follow the one launch waits for). */
const printed = (service: RunningService, text: string) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (!service.output().includes(text) && Date.now() - started < 5_000) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
    }
    expect(service.output()).toContain(text)
  })

const withService = <A, E>(
  env: Readonly<Record<string, string | undefined>>,
  f: (service: RunningService) => Effect.Effect<A, E>
) =>
  Effect.acquireUseRelease(
    Effect.promise(() => launch({ REDIS_URL: undefined, DATA_DIR: undefined, ...env })),
    f,
    (service) => Effect.promise(() => service.stop())
  )

describe("examples/service.ts over real HTTP", () => {
  it.live("goes Degraded, Critical, Emergency and back to Healthy as dependencies go down and come back", () =>
    withService({ RESILIENCE_ADMIN_TOKEN: token }, (service) =>
      Effect.gen(function*() {
        const bearer = `Bearer ${token}`
        // Starts healthy on the embedded defaults.
        yield* waitFor(service, (h) => h.health === "Healthy", 10_000)
        const started = yield* health(service)
        expect(started.dependencies).toEqual({
          cache: "Operational",
          database: "Operational",
          orders: "Operational",
          llm: "Operational"
        })
        const dashboard = yield* request(service, "/dashboard")
        expect(dashboard.status).toBe(200)
        expect(dashboard.body).toContain("<html")
        const fresh = yield* request(service, "/api/products/p1")
        expect(fresh.status).toBe(200)
        expect(fresh.body.product.name).toBe("kettle")
        expect(fresh.body.stale).toBe(false)
        const asked = yield* request(service, "/api/ask", { method: "POST", body: JSON.stringify({ prompt: "hi" }) })
        expect(asked.body).toEqual({ answer: "alpha answers: ih", provider: "alpha", source: "Provider" })

        // The cache goes down: Degraded, reads still answered.
        const cacheDown = yield* admin(service, "/admin/chaos/cache/outage", bearer)
        expect(cacheDown.status).toBe(200)
        expect(cacheDown.body).toEqual({ dependency: "cache", action: "outage", down: true })
        yield* waitFor(service, (h) => h.health === "Degraded" && h.dependencies.cache === "Degraded", 10_000)
        expect((yield* request(service, "/api/products/p2")).status).toBe(200)

        // The database too: Critical (one critical dependency down), not ready.
        expect((yield* admin(service, "/admin/chaos/database/outage", bearer)).status).toBe(200)
        yield* waitFor(service, (h) => h.health === "Critical" && h.dependencies.database === "Down", 10_000)
        expect((yield* request(service, "/health/ready")).status).toBe(503)

        // Every LLM provider too: Emergency. Writes are queued, reads served stale.
        expect((yield* admin(service, "/admin/chaos/llm/outage", bearer)).status).toBe(200)
        yield* waitFor(service, (h) => h.health === "Emergency" && h.dependencies.llm === "Down", 15_000)
        const metrics = yield* request(service, "/metrics")
        expect(metrics.status).toBe(200)
        expect(metrics.body).toMatch(/^effect_resilience_health_system 3$/m)
        // Open (1), or half-open (2) for the moment a probe is refused once its open period is over.
        expect(metrics.body).toMatch(/^effect_resilience_circuit_breaker_state\{breaker="database",[^}]*\} [12]$/m)
        const write = yield* request(service, "/api/orders", {
          method: "POST",
          body: JSON.stringify({ product: "p3", quantity: 2 })
        })
        expect(write.status).toBe(202)
        expect(write.body.status).toBe("Queued")
        // Past the 2 seconds of freshness, the copy is served stale.
        yield* Effect.sleep("2500 millis")
        const stale = yield* request(service, "/api/products/p1")
        expect(stale.status).toBe(200)
        expect(stale.body.product.id).toBe("p1")
        expect(stale.body.stale).toBe(true)
        expect(stale.body.source).toBe("Stale")
        const cachedAnswer = yield* request(service, "/api/ask", {
          method: "POST",
          body: JSON.stringify({ prompt: "hi" })
        })
        expect(cachedAnswer.body).toEqual({ answer: "alpha answers: ih", source: "Cache" })
        const never = yield* request(service, "/api/ask", {
          method: "POST",
          body: JSON.stringify({ prompt: "never asked before" })
        })
        expect(never.body.source).toBe("Degraded")

        // Everything back: Healthy again within the documented time.
        for (const dependency of ["cache", "database", "llm"]) {
          const recovered = yield* admin(service, `/admin/chaos/${dependency}/recover`, bearer)
          expect(recovered.body).toEqual({ dependency, action: "recover", down: false })
        }
        const recoveredIn = yield* waitFor(service, (h) => h.health === "Healthy", documentedRecovery)
        expect(recoveredIn).toBeLessThanOrEqual(documentedRecovery)
        const healthy = yield* health(service)
        expect(healthy.dependencies).toEqual({
          cache: "Operational",
          database: "Operational",
          orders: "Operational",
          llm: "Operational"
        })
        expect((yield* request(service, "/health/ready")).status).toBe(200)
        const readAgain = yield* request(service, "/api/products/p3")
        expect(readAgain.body.stale).toBe(false)
        yield* Effect.log(`Healthy again ${recoveredIn} ms after every dependency was back`)

        // The token was never printed.
        expect(service.output()).not.toContain(token)
      })), { timeout: 180_000 })

  it.live("refuses chaos without the token (401, nothing changes) and for an unknown dependency (404)", () =>
    withService({ RESILIENCE_ADMIN_TOKEN: token, SERVICE_TRAFFIC: "off" }, (service) =>
      Effect.gen(function*() {
        const none = yield* admin(service, "/admin/chaos/database/outage")
        expect(none.status).toBe(401)
        expect(none.body.error).toBe("Unauthorized")
        const wrong = yield* admin(service, "/admin/chaos/database/outage", `Bearer ${token}x`)
        expect(wrong.status).toBe(401)
        // Nothing changed: the database still answers writes at once.
        const write = yield* request(service, "/api/orders", {
          method: "POST",
          body: JSON.stringify({ product: "p1", quantity: 1 })
        })
        expect(write.status).toBe(201)
        expect(write.body.status).toBe("Written")

        const unknown = yield* admin(service, "/admin/chaos/search/outage", `Bearer ${token}`)
        expect(unknown.status).toBe(404)
        expect(unknown.body.error).toBe("UnknownDependency")
        const action = yield* admin(service, "/admin/chaos/database/explode", `Bearer ${token}`)
        expect(action.status).toBe(404)
        expect(action.body.error).toBe("UnknownAction")
        const badOrder = yield* request(service, "/api/orders", { method: "POST", body: "{" })
        expect(badOrder.status).toBe(400)
        expect(service.output()).not.toContain(token)
      })), { timeout: 120_000 })

  it.live("fails over to beta while alpha is down (llm Degraded), and back to alpha once it answers again", () =>
    withService({ RESILIENCE_ADMIN_TOKEN: token, SERVICE_TRAFFIC: "off" }, (service) =>
      Effect.gen(function*() {
        const ask = (prompt: string) =>
          request(service, "/api/ask", { method: "POST", body: JSON.stringify({ prompt }) })
        expect((yield* ask("one")).body.provider).toBe("alpha")
        const down = yield* admin(service, "/admin/chaos/alpha/outage", `Bearer ${token}`)
        expect(down.body).toEqual({ dependency: "alpha", action: "outage", down: true })
        const failedOver = yield* ask("two")
        expect(failedOver.body).toEqual({ answer: "beta answers: owt", provider: "beta", source: "Provider" })
        yield* waitFor(service, (h) => h.dependencies.llm === "Degraded" && h.breakers.alpha === "Open", 5_000)
        expect((yield* health(service)).health).toBe("Degraded")

        yield* admin(service, "/admin/chaos/alpha/recover", `Bearer ${token}`)
        // The group's check half-opens alpha; the next questions probe it and close it.
        yield* waitFor(service, (h) => h.breakers.alpha === "HalfOpen", documentedRecovery)
        let answeredBy = ""
        for (let i = 0; i < 5 && answeredBy !== "alpha"; i++) answeredBy = (yield* ask(`again ${i}`)).body.provider
        expect(answeredBy).toBe("alpha")
        yield* ask("and again")
        yield* waitFor(service, (h) => h.health === "Healthy" && h.breakers.alpha === "Closed", 5_000)
      })), { timeout: 120_000 })

  it.live("turns the admin and chaos routes off without a token", () =>
    withService({ RESILIENCE_ADMIN_TOKEN: undefined, SERVICE_TRAFFIC: "off" }, (service) =>
      Effect.gen(function*() {
        const chaos = yield* admin(service, "/admin/chaos/cache/outage", "Bearer anything")
        expect(chaos.status).toBe(404)
        yield* printed(service, "admin       off")
        expect((yield* health(service)).health).toBe("Healthy")
      })), { timeout: 120_000 })

  it.live("caches on the Redis of REDIS_URL, goes Degraded while it is killed and Healthy once it is back", () =>
    Effect.gen(function*() {
      const redis = yield* redisServer()
      const password = "redis-url-password-93b1"
      const url = `redis://:${password}@127.0.0.1:${redis.port}/0`
      yield* withService({ REDIS_URL: url, RESILIENCE_ADMIN_TOKEN: token, SERVICE_TRAFFIC: "on" }, (service) =>
        Effect.gen(function*() {
          yield* printed(service, `cache       Redis at redis://127.0.0.1:${redis.port}/0`)
          yield* waitFor(service, (h) => h.health === "Healthy", 10_000)
          const read = yield* request(service, "/api/products/p4")
          expect(read.status).toBe(200)
          expect(yield* Effect.promise(() => redis.admin("EXISTS", "shop:product:p4"))).toBe(1)

          // A real fault: the server is killed, the cache's breaker opens, reads still answer.
          yield* Effect.promise(() => redis.kill())
          yield* waitFor(service, (h) => h.health === "Degraded" && h.dependencies.cache === "Degraded", 15_000)
          expect((yield* request(service, "/api/products/p4")).status).toBe(200)
          yield* Effect.promise(() => redis.restart())
          yield* waitFor(service, (h) => h.health === "Healthy", documentedRecovery + 5_000)
          expect(service.output()).not.toContain(password)
          expect(service.output()).not.toContain(token)
        }))
    }).pipe(Effect.scoped), { timeout: 180_000 })

  it.live("does not start on settings that can never work: one line naming the variable, no secret", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(
        Effect.tryPromise(() => launch({ REDIS_URL: "ftp://user:hunter2-secret@cache.internal:6379" }))
      )
      const message = String(failed.error)
      expect(message).toContain("exited (1)")
      expect(message).toContain("the service cannot start")
      expect(message).toContain("url (REDIS_URL)")
      expect(message).not.toContain("hunter2-secret")
      expect(message).not.toMatch(/\n\s+at /)
    }), { timeout: 120_000 })
})
