/**
 * Takes docs/images/dashboard.png: a program with a few dependencies in different states,
 * served by HealthHttp on a loopback port, its dashboard opened in headless Chromium with
 * an admin token entered.
 *
 *   npx tsx test/support/screenshotDashboard.ts [output.png]
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, type Duration, Effect, Layer, Logger, LogLevel, Random, Redacted, Schedule } from "effect"
import * as http from "node:http"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as Health from "../../src/Health.js"
import * as HealthHttp from "../../src/HealthHttp.js"
import { launchChromium } from "./chromium.js"

const TOKEN = "screenshot-token"
const output = process.argv[2] ??
  path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "images", "dashboard.png")

/** Calls through `breaker` every `every`, failing with probability `failureRate`. */
const traffic = (breaker: CircuitBreaker.CircuitBreaker, every: Duration.DurationInput, failureRate: number) =>
  Random.next.pipe(
    Effect.flatMap((x) => breaker.protect(x < failureRate ? Effect.fail("timeout") : Effect.void)),
    Effect.ignore,
    Effect.repeat(Schedule.spaced(every)),
    Effect.forkScoped
  )

const program = Effect.gen(function*() {
  const scope = yield* Effect.scope
  const registry = yield* Layer.buildWithScope(Health.layer({ checkInterval: "1 hour" }), scope)
  const make = (name: string, options: Partial<CircuitBreaker.CircuitBreaker.Options> = {}) =>
    CircuitBreaker.make({ name, failureThreshold: 1000, resetTimeout: "10 minutes", ...options })
  const database = yield* make("orders-db")
  const cache = yield* make("redis", { failureThreshold: 3 })
  const payments = yield* make("payments-api", { failureThreshold: 2, successThreshold: 1000 })
  const search = yield* make("search")
  const llm = yield* make("llm-primary")
  yield* Effect.provide(
    Effect.all([
      Health.register({ name: "orders-db", critical: true, source: Health.fromBreaker(database) }),
      Health.register({ name: "redis", source: Health.fromBreaker(cache) }),
      Health.register({ name: "payments-api", source: Health.fromBreaker(payments) }),
      Health.register({ name: "search", source: Health.fromBreaker(search) }),
      Health.register({ name: "llm-primary", source: Health.fromBreaker(llm) })
    ]),
    registry
  )
  yield* traffic(database, "40 millis", 0.06)
  yield* traffic(payments, "100 millis", 0)
  yield* traffic(search, "200 millis", 0.02)
  yield* traffic(llm, "250 millis", 0)

  const app = yield* Effect.provide(HealthHttp.router({ adminToken: Redacted.make(TOKEN) }), registry)
  const server = yield* Layer.buildWithScope(
    NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" }),
    scope
  )
  yield* Layer.buildWithScope(HttpServer.serve(app).pipe(Layer.provide(Layer.succeedContext(server))), scope)
  const address = Context.get(server, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
  const base = `http://127.0.0.1:${address.port}`

  const chromium = yield* Effect.acquireRelease(
    Effect.promise(() => launchChromium({ viewport: { width: 1366, height: 900 } })),
    (browser) => Effect.promise(() => browser.close())
  )
  const page = yield* Effect.promise(() => chromium.context.newPage())
  yield* Effect.promise(() => page.goto(`${base}/dashboard`))
  yield* Effect.promise(() => page.locator("#connection[data-connection=\"live\"]").waitFor())

  // Things happen while the page watches: the cache fails, the payments breaker probes, an
  // operator forces two breakers.
  yield* Effect.sleep("1 second")
  yield* Effect.repeatN(cache.protect(Effect.fail("ECONNREFUSED")).pipe(Effect.ignore), 3)
  yield* Effect.repeatN(payments.protect(Effect.fail("HTTP 503")).pipe(Effect.ignore), 1)
  yield* Effect.sleep("200 millis")
  yield* payments.halfOpen
  yield* llm.forceOpen
  yield* search.forceClosed

  yield* Effect.promise(() => page.getByLabel("Admin token").fill(TOKEN))
  yield* Effect.promise(() => page.locator("#admin-token-save").click())
  // Calls per second need two snapshots a few seconds apart.
  yield* Effect.promise(() =>
    page.locator("section[data-dependency=\"orders-db\"] [data-field=\"calls-per-second\"]").filter({
      hasNotText: "n/a"
    }).waitFor({ timeout: 15_000 })
  )
  yield* Effect.promise(() => page.screenshot({ path: output, fullPage: true }))
  yield* Effect.logInfo(`dashboard screenshot written to ${path.relative(process.cwd(), output)}`)
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Info)))).catch(
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
