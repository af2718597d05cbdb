/**
 * `npm run example:service`: an HTTP service over the library, to watch and steer from
 * outside: a dashboard, health endpoints, Prometheus metrics, and chaos switches that take
 * any dependency down and bring it back.
 *
 * It serves a small shop (see `examples/service/shop.ts`): products read cache-first, orders
 * written through the outbox of an embedded SQLite database, and an assistant backed by the
 * three LLM providers of the failover example. It starts healthy with nothing but Node:
 * the memory cache (Redis when `REDIS_URL` is set), SQLite in a temp directory (or
 * `DATA_DIR`), the providers on a loopback server of its own.
 *
 * Variables: `PORT` (default 3000; 0 for any free port), `HOST` (default 127.0.0.1),
 * `RESILIENCE_ADMIN_TOKEN` (the admin routes, chaos included, are off without it),
 * `REDIS_URL`, `DATA_DIR`, `SERVICE_TRAFFIC` (`off` to stop the service's own traffic).
 *
 * The service sends itself a little traffic (a product read every 250 ms, an order and a
 * question every second), as a service in use gets: breakers see calls, so they open when a
 * dependency goes down and close when it is back, and the dashboard moves.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { Health } from "effect-resilience"
import * as HealthHttp from "effect-resilience/HealthHttp"
import * as Prometheus from "effect-resilience/Prometheus"
import * as fs from "node:fs"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import * as Http from "./service/http.js"
import * as Shop from "./service/shop.js"

/** A secret variable, `None` when unset or blank. */
const secret = (name: string) =>
  Config.option(Config.redacted(name)).pipe(
    Config.map(Option.filter((value) => Redacted.value(value).trim() !== ""))
  )

const settings = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "a port: 0 (any free port) to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(3000)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  adminToken: secret("RESILIENCE_ADMIN_TOKEN"),
  redisUrl: secret("REDIS_URL"),
  dataDir: Config.option(Config.string("DATA_DIR")),
  traffic: Config.string("SERVICE_TRAFFIC").pipe(Config.withDefault("on"))
})

/** A temp directory for the database and the journal, removed when the service stops. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-service-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The service's own traffic: reads, orders and questions, whatever their outcome. */
const traffic = (shop: Shop.Shop) => {
  let n = 0
  const every = (interval: Duration.DurationInput, f: () => Effect.Effect<unknown, unknown>) =>
    Effect.repeat(Effect.suspend(() => Effect.ignore(f())), Schedule.spaced(interval))
  return Effect.all([
    every("250 millis", () => shop.product(Shop.productIds[n++ % Shop.productIds.length]!)),
    every("1 second", () => shop.order(Shop.productIds[n % Shop.productIds.length]!, 1)),
    every("1 second", () => shop.ask(`popular question ${n % 3}`))
  ], { concurrency: "unbounded", discard: true })
}

const main = Effect.gen(function*() {
  const config = yield* settings
  const dataDir = Option.isSome(config.dataDir) ? config.dataDir.value : yield* tempDir
  const shop = yield* Shop.make({ dataDir, redisUrl: Option.getOrUndefined(config.redisUrl) })

  const operations = yield* HealthHttp.router(
    Option.isSome(config.adminToken) ? { adminToken: config.adminToken.value } : {}
  )
  const app = HttpRouter.concatAll(operations, Http.api(shop), Http.chaos(shop.outages, config.adminToken))
  yield* HttpServer.serveEffect(app)
  const address = (yield* HttpServer.HttpServer).address
  const base = address._tag === "TcpAddress"
    ? `http://${address.hostname === "0.0.0.0" || address.hostname === "::" ? "localhost" : address.hostname}:${
      address.port
    }`
    : `unix:${address.path}`

  yield* Console.log(`effect-resilience example service listening on ${base}`)
  yield* Console.log(`  dashboard   ${base}/dashboard`)
  yield* Console.log(`  health      ${base}/health  (everything: ${base}/health/resilience)`)
  yield* Console.log(`  metrics     ${base}/metrics`)
  yield* Console.log(`  api         GET ${base}/api/products/p1   POST ${base}/api/orders   POST ${base}/api/ask`)
  yield* Console.log(`  cache       ${shop.description.cache}`)
  yield* Console.log(`  database    ${shop.description.database}`)
  if (Option.isSome(config.adminToken)) {
    yield* Console.log(
      `  chaos       POST ${base}/admin/chaos/<${[...shop.outages.keys()].join("|")}>/<outage|recover>` +
        ` with Authorization: Bearer $RESILIENCE_ADMIN_TOKEN`
    )
  } else {
    yield* Console.log("  admin       off: set RESILIENCE_ADMIN_TOKEN to turn on the admin and chaos routes")
  }
  if (config.traffic !== "off") yield* Effect.forkScoped(traffic(shop))
  return yield* Effect.never
}).pipe(Effect.scoped)

const program = Effect.gen(function*() {
  const { host, port } = yield* settings
  return yield* main.pipe(
    // The exposition is built over the registry: each scrape reads every dependency and breaker.
    Effect.provide(
      Prometheus.layer().pipe(
        Layer.provideMerge(Health.layer({ checkInterval: Shop.checkInterval, critical: ["database"] }))
      )
    ),
    Effect.provide(NodeHttpServer.layer(createServer, { port, host }))
  )
})

/** An error's own message (a configuration error with its variable), else the error as text. */
const describe = (error: unknown): string =>
  ConfigError.isConfigError(error)
    ? String(error)
    : typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

NodeRuntime.runMain(program.pipe(
  // Settings that can never work (a bad REDIS_URL, a missing DATA_DIR, a taken PORT) are one
  // line and exit code 1, without a stack.
  Effect.catchAll((error) =>
    Effect.zipRight(
      Console.error(`the service cannot start: ${describe(error)}`),
      Effect.sync(() => void (process.exitCode = 1))
    )
  )
))
