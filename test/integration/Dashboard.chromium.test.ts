/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
 * a program with a `Health` registry and registered breakers, served by `HealthHttp` on a
 * loopback port, its page opened at `/dashboard` and checked for what it shows and does.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, LogLevel, Redacted, Schedule } from "effect"
import * as http from "node:http"
import type { Page } from "playwright-core"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as HealthHttp from "../../src/HealthHttp.js"
import { type Chromium, launchChromium } from "../support/chromium.js"

const TOKEN = "dashboard-admin-token"
const MARKUP_NAME = "<img src=x onerror=\"document.title='owned'\">"

/** A breaker that opens at the first failure and stays open until told otherwise. */
const breakerNamed = (name: string) =>
  CircuitBreaker.make({ name, failureThreshold: 1, successThreshold: 1, resetTimeout: "10 minutes" })

/**
 * The program under test: a registry with a critical database, a payments API that keeps
 * answering (steady traffic, so calls per second have something to show) and a check whose
 * name is markup, served by HealthHttp under `prefix` on a free loopback port.
 */
const serveProgram = (prefix: string) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const registry = yield* Layer.buildWithScope(Health.layer({ checkInterval: "1 hour" }), scope)
    const health = Context.get(registry, Health.Health)
    const db = yield* breakerNamed("db")
    const payments = yield* breakerNamed("payments")
    yield* Effect.provide(
      Effect.all([
        Health.register({ name: "db", critical: true, source: Health.fromBreaker(db) }),
        Health.register({ name: "payments", source: Health.fromBreaker(payments) }),
        Health.register({ name: MARKUP_NAME, source: Health.fromCheck(Effect.void) })
      ]),
      registry
    )
    yield* payments.protect(Effect.void).pipe(
      Effect.repeat(Schedule.spaced("50 millis")),
      Effect.forkScoped
    )

    const app = yield* Effect.provide(
      HealthHttp.router({ prefix, adminToken: Redacted.make(TOKEN), heartbeatInterval: "1 second" }),
      registry
    )
    let nodeServer: http.Server | undefined
    const server = yield* Layer.buildWithScope(
      NodeHttpServer.layer(() => (nodeServer = http.createServer()), { port: 0, host: "127.0.0.1" }),
      scope
    )
    yield* Layer.buildWithScope(HttpServer.serve(app).pipe(Layer.provide(Layer.succeedContext(server))), scope)
    const address = Context.get(server, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    return {
      base: `http://127.0.0.1:${address.port}${prefix}`,
      origin: `http://127.0.0.1:${address.port}`,
      health,
      db,
      payments,
      /** Cuts every open connection, the event stream's included, as a restarting proxy would. */
      dropConnections: () => nodeServer?.closeAllConnections()
    }
  })

/** The browser for one test, closed (and its profile removed) with the scope. */
const browser = Effect.acquireRelease(
  Effect.tryPromise({ try: () => launchChromium(), catch: (error) => error as Error }),
  (chromium: Chromium) => Effect.promise(() => chromium.close())
)

interface Opened {
  readonly page: Page
  /** Every URL the page asked for. */
  readonly requests: Array<string>
  /** Uncaught errors and console errors of the page. */
  readonly errors: Array<string>
}

const openDashboard = (chromium: Chromium, base: string) =>
  Effect.promise(async (): Promise<Opened> => {
    const requests: Array<string> = []
    const errors: Array<string> = []
    chromium.context.on("request", (request) => {
      requests.push(request.url())
    })
    const page = await chromium.context.newPage()
    page.on("pageerror", (error) => errors.push(error.message))
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text())
    })
    await page.goto(`${base}/dashboard`)
    return { page, requests, errors }
  })

const browse = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Waits until the effect's value satisfies `ok` (polling every 50 ms), failing after `within` ms. */
const eventually = <A>(read: Effect.Effect<A>, ok: (a: A) => boolean, within: number, what: string) =>
  Effect.gen(function*() {
    const start = Date.now()
    for (;;) {
      const value = yield* read
      if (ok(value)) return value
      if (Date.now() - start > within) return yield* Effect.die(new Error(`${what}: still ${String(value)}`))
      yield* Effect.sleep("50 millis")
    }
  })

const onLoopback = (url: string): boolean => {
  const { protocol, hostname } = new URL(url)
  if (protocol === "data:" || protocol === "about:" || protocol === "blob:") return true
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]"
}

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))

describe("Dashboard in headless Chromium", () => {
  it.live("shows the system, one tile per dependency with its values, and a forced-open breaker within 2 s", () =>
    Effect.gen(function*() {
      const { base, origin } = yield* serveProgram("")
      const chromium = yield* browser
      const { errors, page, requests } = yield* openDashboard(chromium, base)

      // the system banner and the tiles, from the snapshot
      yield* browse(() => page.locator("#system[data-health=\"Healthy\"]").waitFor({ timeout: 5_000 }))
      expect(yield* browse(() => page.locator("#system-health").textContent())).toBe("Healthy")
      expect(yield* browse(() => page.locator("#service-level").textContent())).toBe("Full")
      expect(yield* browse(() => page.locator("#operational").textContent())).toBe("100%")
      expect(yield* browse(() => page.locator("section[data-dependency]").count())).toBe(3)
      const db = page.locator("section[data-dependency=\"db\"]")
      expect(yield* browse(() => db.getAttribute("data-state"))).toBe("Closed")
      expect(yield* browse(() => db.getAttribute("data-dependency-state"))).toBe("Operational")
      expect(yield* browse(() => db.locator("[data-field=\"failure-rate\"]").textContent())).toBe("0%")
      expect(yield* browse(() => db.locator("[data-field=\"meta\"]").textContent())).toContain("critical")
      expect(yield* browse(() => db.locator("[data-breaker=\"db\"] [data-field=\"breaker-state\"]").textContent()))
        .toBe("closed")

      // the live stream connects
      yield* browse(() => page.locator("#connection[data-connection=\"live\"]").waitFor({ timeout: 5_000 }))

      // calls per second of the busy breaker, from the totals of two snapshots (the page polls every 5 s)
      const payments = page.locator("section[data-dependency=\"payments\"]")
      const rate = yield* eventually(
        browse(() => payments.locator("[data-field=\"calls-per-second\"]").textContent()),
        (text) => text !== null && Number(text) > 0,
        12_000,
        "calls per second of payments"
      )
      // 20 calls a second are made; a loaded machine makes fewer, never many more
      expect(Number(rate)).toBeGreaterThan(2)
      expect(Number(rate)).toBeLessThan(40)

      // a name made of markup is shown as text, never as markup
      const markup = page.locator("section[data-dependency] h3").filter({ hasText: "onerror" })
      expect(yield* browse(() => markup.textContent())).toBe(MARKUP_NAME)
      expect(yield* browse(() => page.locator("section[data-dependency] img").count())).toBe(0)
      expect(yield* browse(() => page.title())).toBe("Resilience dashboard")

      // force the breaker open through the admin endpoint: the tile turns open within 2 s
      const forced = yield* browse(() =>
        fetch(`${base}/admin/circuit-breaker/db/force-open`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` }
        })
      )
      expect(forced.status).toBe(200)
      const forcedAt = Date.now()
      yield* browse(() =>
        page.locator("section[data-dependency=\"db\"][data-state=\"ForcedOpen\"]").waitFor({ timeout: 2_000 })
      )
      const elapsed = Date.now() - forcedAt
      expect(elapsed).toBeLessThan(2_000)
      expect(yield* browse(() => db.getAttribute("data-color"))).toBe("bad")
      expect(yield* browse(() => db.getAttribute("data-dependency-state"))).toBe("Down")
      expect(yield* browse(() => db.locator("[data-field=\"breaker-state\"]").getAttribute("data-forced"))).toBe("true")
      // a critical dependency down: the banner says so
      yield* browse(() => page.locator("#system[data-health=\"Critical\"]").waitFor({ timeout: 2_000 }))
      // and the transitions list it
      const transitions = yield* browse(() => page.locator("#transitions").textContent())
      expect(transitions).toContain("breaker db: closed to forced open")
      expect(transitions).toContain("system: Healthy to Critical")
      expect(yield* browse(() => db.locator("[data-field=\"tile-transitions\"]").textContent())).toContain(
        "Operational to Down"
      )

      // the page asked only its own server, and threw nothing
      expect(requests.length).toBeGreaterThan(0)
      expect(requests.filter((url) => !onLoopback(url))).toEqual([])
      expect(requests.every((url) => url.startsWith(origin))).toBe(true)
      expect(errors).toEqual([])
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("reconnects after the stream is cut, shows what changed meanwhile, and stays live", () =>
    Effect.gen(function*() {
      const { base, dropConnections, payments } = yield* serveProgram("")
      const chromium = yield* browser
      const { errors, page } = yield* openDashboard(chromium, base)
      yield* browse(() => page.locator("#connection[data-connection=\"live\"]").waitFor({ timeout: 5_000 }))

      // the connection drops; payments is forced open while the page is not listening
      yield* Effect.sync(dropConnections)
      yield* payments.forceOpen
      yield* browse(() => page.locator("#connection[data-connection=\"reconnecting\"]").waitFor({ timeout: 2_000 }))

      // back live (the stream asks for a retry after 2 s), with the change it missed
      yield* browse(() => page.locator("#connection[data-connection=\"live\"]").waitFor({ timeout: 6_000 }))
      yield* browse(() =>
        page.locator("section[data-dependency=\"payments\"][data-state=\"ForcedOpen\"]").waitFor({ timeout: 2_000 })
      )
      expect(yield* browse(() => page.locator("#transitions").textContent())).toContain(
        "breaker payments: closed to forced open"
      )

      // and the new stream carries the next change as quickly as the first one did
      const reset = yield* browse(() =>
        fetch(`${base}/admin/circuit-breaker/payments/reset`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` }
        })
      )
      expect(reset.status).toBe(200)
      yield* browse(() =>
        page.locator("section[data-dependency=\"payments\"][data-state=\"Closed\"]").waitFor({ timeout: 2_000 })
      )
      // the cut stream shows as a failed load in the console; nothing else may
      expect(errors.filter((error) => !error.includes("net::ERR"))).toEqual([])
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("admin buttons appear with a token, act on the breaker server-side, and a refused token says 401", () =>
    Effect.gen(function*() {
      const { base, db, health } = yield* serveProgram("/ops")
      const chromium = yield* browser
      const { errors, page, requests } = yield* openDashboard(chromium, base)
      yield* browse(() => page.locator("section[data-dependency=\"db\"][data-state=\"Closed\"]").waitFor())

      // without a token: no admin controls
      const forceOpen = page.locator("button[data-action=\"force-open\"][data-breaker=\"db\"]")
      expect(yield* browse(() => forceOpen.isVisible())).toBe(false)
      expect(yield* browse(() => page.locator("#force-recovery").isVisible())).toBe(false)

      // a token entered (through its label): the controls appear and act on the server
      yield* browse(() => page.getByLabel("Admin token").fill(TOKEN))
      yield* browse(() => page.locator("#admin-token-save").click())
      expect(yield* browse(() => forceOpen.isVisible())).toBe(true)
      expect(yield* browse(() => page.evaluate("sessionStorage.getItem('effect-resilience.admin-token')")))
        .toBe(TOKEN)
      yield* browse(() => forceOpen.click())
      yield* eventually(db.state, (state) => state === "ForcedOpen", 2_000, "db's state after the click")
      yield* browse(() => page.locator("#admin-message[data-kind=\"ok\"]").waitFor({ timeout: 2_000 }))
      yield* browse(() => page.locator("section[data-dependency=\"db\"][data-state=\"ForcedOpen\"]").waitFor())

      // reset through its button, by its accessible name
      yield* browse(() => page.getByRole("button", { name: "Reset breaker db" }).click())
      yield* eventually(db.state, (state) => state === "Closed", 2_000, "db's state after reset")
      yield* browse(() => page.locator("section[data-dependency=\"db\"][data-state=\"Closed\"]").waitFor())

      // force recovery answers
      yield* browse(() => page.locator("#force-recovery").click())
      yield* browse(() =>
        page.locator("#admin-message[data-kind=\"ok\"]").filter({ hasText: "Force recovery" }).waitFor({
          timeout: 2_000
        })
      )

      // a wrong token: 401 shown clearly, and nothing changes
      yield* browse(() => page.getByLabel("Admin token").fill("not-the-token"))
      yield* browse(() => page.locator("#admin-token-save").click())
      yield* browse(() => forceOpen.click())
      const refused = page.locator("#admin-message[data-kind=\"error\"]")
      yield* browse(() => refused.waitFor({ timeout: 2_000 }))
      expect(yield* browse(() => refused.textContent())).toContain("401")
      expect(yield* db.state).toBe("Closed")
      const status = yield* health.status
      expect(status.health).toBe("Healthy")

      // forgetting the token hides the controls again
      yield* browse(() => page.locator("#admin-token-forget").click())
      expect(yield* browse(() => forceOpen.isVisible())).toBe(false)

      // every request went to the prefix on loopback
      expect(requests.filter((url) => !onLoopback(url))).toEqual([])
      expect(requests.filter((url) => !url.startsWith(base))).toEqual([])
      // the 401 shows as a console error of the failed fetch; nothing else may
      expect(errors.filter((error) => !error.includes("401"))).toEqual([])
    }).pipe(Effect.scoped, quiet), 60_000)
})
