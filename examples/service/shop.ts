/**
 * The service's small API over the library: a shop with products, orders and an assistant.
 *
 * - Products are read cache-first (`Sql.reader` over the `ResilientCache`, itself over Redis
 *   from `REDIS_URL` or the memory cache): fresh for 2 seconds, and served stale for up to
 *   an hour while the database does not answer.
 * - Orders are written through the outbox of the embedded SQLite database: written at once
 *   when it can be, else journaled and replayed when the database is back.
 * - The assistant asks the LLM providers of the failover example (alpha, beta, gamma on a
 *   loopback server), failing over in order; a question asked before is answered from the
 *   response cache while no provider answers, any other with an explicit degraded answer.
 *
 * Dependencies and their criticality in the `Health` registry: `cache` (not critical),
 * `database` (critical), `orders` (the outbox, not critical) and `llm` (the providers as one
 * failover group, critical, down only when every provider is).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Cache, CacheAside, Health, ResilientCache, Timeout } from "effect-resilience"
import * as RedisCache from "effect-resilience/Cache/Redis"
import * as Outbox from "effect-resilience/Outbox"
import * as Sql from "effect-resilience/Sql"
import * as Sqlite from "effect-resilience/Sql/Sqlite"
import { randomUUID } from "node:crypto"
import * as path from "node:path"
import * as LlmClient from "../llm/client.js"
import * as Scenario from "../llm/scenario.js"
import * as LlmServer from "../llm/server.js"
import { Wire } from "../llm/wire.js"
import * as Outages from "./outages.js"

// -----------------------------------------------------------------------------
// Settings
// -----------------------------------------------------------------------------

/**
 * How often each dependency's health check runs. With the breakers below and the service's
 * own traffic, a dependency that is back is Operational again within a few seconds.
 */
export const checkInterval = Duration.seconds(1)

/** The database: a critical one, with a short timeout and a quick health check. */
const databaseOptions: Sql.Options = {
  name: "database",
  timeout: "2 seconds",
  breaker: { failureThreshold: 3, successThreshold: 2, resetTimeout: "10 seconds" },
  healthCheck: { interval: "500 millis", timeout: "500 millis", query: Sqlite.writeLockCheck },
  connectSchedule: Schedule.spaced("500 millis")
}

/** The cache: a breaker that tolerates more, and an in-memory copy of every value. */
const cacheOptions: ResilientCache.Options = {
  name: "cache",
  timeout: "500 millis",
  breaker: { failureThreshold: 5, successThreshold: 3, resetTimeout: "10 seconds" },
  memoryFallback: true
}

/** Products are fresh for 2 seconds in the cache, and served stale for an hour while the database is down. */
const productFreshness = { ttl: "2 seconds", staleIfError: "1 hour" } as const

/** The providers of the failover example, all healthy until someone takes them down. */
const providerNames = ["alpha", "beta", "gamma"] as const

/**
 * Each provider as in the failover example, but open for 10 seconds instead of 2: the group's
 * health check (every second) half-opens the breakers as soon as a provider answers again,
 * so a provider that stays down is not probed by requests every 2 seconds.
 */
const provider = (name: string): LlmClient.ProviderConfig => {
  const config = Scenario.provider(name)
  return { ...config, breaker: { ...config.breaker, resetTimeout: "10 seconds" } }
}

const timeline: LlmServer.Timeline = {
  alpha: [{ at: 0, behaviour: { _tag: "Healthy", latency: "40 millis" } }],
  beta: [{ at: 0, behaviour: { _tag: "Healthy", latency: "60 millis" } }],
  gamma: [{ at: 0, behaviour: { _tag: "Healthy", latency: "80 millis" } }]
}

// -----------------------------------------------------------------------------
// The model
// -----------------------------------------------------------------------------

export const Product = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  priceCents: Schema.Int,
  stock: Schema.Int
})
export type Product = typeof Product.Type

export const Order = Schema.Struct({
  id: Schema.String,
  product: Schema.String,
  quantity: Schema.Int.pipe(Schema.between(1, 100))
})
export type Order = typeof Order.Type

const catalogue: ReadonlyArray<Product> = [
  { id: "p1", name: "kettle", priceCents: 2999, stock: 1000 },
  { id: "p2", name: "teapot", priceCents: 1999, stock: 1000 },
  { id: "p3", name: "mug", priceCents: 599, stock: 1000 },
  { id: "p4", name: "tea caddy", priceCents: 1299, stock: 1000 },
  { id: "p5", name: "strainer", priceCents: 399, stock: 1000 }
]

/** The product ids of the catalogue. */
export const productIds: ReadonlyArray<string> = catalogue.map((product) => product.id)

/** A product that is not in the catalogue. */
export class ProductNotFound extends Data.TaggedError("ProductNotFound")<{ readonly product: string }> {}

const createTables = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, name TEXT NOT NULL,
         price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)`
    )
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, product TEXT NOT NULL, quantity INTEGER NOT NULL)`
    )
    for (const product of catalogue) {
      yield* sql`INSERT INTO products (id, name, price_cents, stock)
        VALUES (${product.id}, ${product.name}, ${product.priceCents}, ${product.stock})
        ON CONFLICT (id) DO NOTHING`
    }
  })

/** One order: a row, and the stock taken. Run by the outbox in a transaction with its key. */
const placeOrder = (order: Order) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO orders (id, product, quantity) VALUES (${order.id}, ${order.product}, ${order.quantity})`
    yield* sql`UPDATE products SET stock = stock - ${order.quantity} WHERE id = ${order.product}`
  })

// -----------------------------------------------------------------------------
// The shop
// -----------------------------------------------------------------------------

/** A product read, and where it came from. */
export interface ProductRead {
  readonly product: Product
  /** `"Cache"` (fresh copy), `"Load"` (from the database) or `"Stale"` (a copy past its freshness). */
  readonly source: CacheAside.Result<Product>["source"]
  readonly stale: boolean
  readonly ageMillis: number
}

/** An answer of the assistant. */
export interface Answer {
  readonly answer: string
  /** The provider that answered, `undefined` for a cached or a degraded answer. */
  readonly provider: string | undefined
  readonly source: "Provider" | "Cache" | "Degraded"
}

/** The dependencies that can be taken down over HTTP, by name. */
export type OutageSwitches = ReadonlyMap<string, Outages.Switch>

export interface Shop {
  /** Where the data lives and which cache is used, in words (without credentials). */
  readonly description: { readonly database: string; readonly cache: string }
  readonly product: (id: string) => Effect.Effect<ProductRead, ProductNotFound | Sql.DatabaseError>
  readonly order: (
    product: string,
    quantity: number
  ) => Effect.Effect<
    Outbox.WriteResult,
    ProductNotFound | Outbox.OutboxFull | Outbox.JournalError | Sql.DatabaseError | ParseResult.ParseError
  >
  readonly ask: (prompt: string) => Effect.Effect<Answer>
  readonly outages: OutageSwitches
  /** The outbox's counters. */
  readonly outbox: Effect.Effect<Outbox.Metrics>
}

/** What the shop is built from. */
export interface ShopOptions {
  /** The directory of the SQLite file and the outbox's journal. */
  readonly dataDir: string
  /** Redis to cache on; the memory cache when `undefined`. */
  readonly redisUrl: Redacted.Redacted | undefined
}

/** The text of the explicit degraded answer. */
export const degradedAnswer = "The assistant is unavailable right now: please try again in a minute."

/** A Redis URL without its credentials, for printing. */
const withoutCredentials = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
  } catch {
    return "(an unparsable URL)"
  }
}

/**
 * Builds the shop in the scope: the cache, the database and its outbox, the provider server
 * and its client. Every dependency registers in the `Health` registry of the context.
 */
export const make = (options: ShopOptions) =>
  Effect.gen(function*() {
    // The cache: Redis when REDIS_URL says where, else memory; an outage switch in front.
    const baseCache = options.redisUrl === undefined
      ? yield* Cache.makeMemory()
      : Context.get(yield* Layer.build(RedisCache.layerConfig({ prefix: "shop:" })), Cache.Cache)
    const cacheSwitch = yield* Outages.cache(baseCache)
    const cache = yield* ResilientCache.make(cacheOptions).pipe(Effect.provideService(Cache.Cache, cacheSwitch.cache))
    const resilientCache = ResilientCache.asCache(cache)

    // The database: the embedded SQLite file, its client behind an outage switch.
    const filename = path.join(options.dataDir, "shop.sqlite")
    const sqlSwitch = Outages.sql()
    const client = Layer.effect(SqlClient.SqlClient, Effect.flatMap(SqlClient.SqlClient, sqlSwitch.wrap)).pipe(
      Layer.provide(Sqlite.layerClient({ filename }))
    )
    const db = yield* Sql.makeConnecting(client, databaseOptions)
    yield* db.query(createTables)
    const outbox = yield* Outbox.make({
      name: "orders",
      path: path.join(options.dataDir, "orders.outbox"),
      schema: Order,
      key: (order) => order.id,
      apply: placeOrder,
      replay: { batchSize: 100, schedule: Schedule.spaced("250 millis") }
    }).pipe(Effect.provideService(Sql.ResilientSql, db))
    const products = yield* Sql.reader({ ...productFreshness, schema: Product }).pipe(
      Effect.provideService(Sql.ResilientSql, db)
    )

    // The assistant: the providers' server with its fault switch, and the failover client.
    const faults = new LlmServer.FaultSwitch()
    const wire = new Wire()
    const server = Context.get(yield* Layer.build(LlmServer.layer(timeline, wire, faults)), LlmServer.ProviderServer)
    const llm = yield* LlmClient.make({
      baseUrl: server.baseUrl,
      providers: [provider("alpha"), provider("beta"), provider("gamma")],
      wire
    }).pipe(Effect.provide(yield* Layer.build(NodeHttpClient.layerUndici)))
    yield* Health.register({
      name: "llm",
      critical: true,
      source: Health.fromFailover(llm, { check: Scenario.groupCheck(llm) }),
      checkInterval
    })
    const health = yield* Health.Health
    const responses = yield* CacheAside.make({ ttl: "1 millis", staleIfError: "1 hour", schema: LlmClient.Completion })

    const providerSwitch = (names: ReadonlyArray<string>): Outages.Switch => ({
      outage: Effect.sync(() => names.forEach((name) => faults.set(name, { _tag: "Down" }))),
      recover: Effect.sync(() => names.forEach((name) => faults.clear(name))),
      down: Effect.sync(() => names.every((name) => faults.get(name) !== undefined))
    })
    const outages = new Map<string, Outages.Switch>([
      ["cache", cacheSwitch.outage],
      ["database", sqlSwitch.outage],
      ["llm", providerSwitch(providerNames)],
      ...providerNames.map((name) => [name, providerSwitch([name])] as const)
    ])

    const known = (id: string) =>
      productIds.includes(id) ? Effect.void : Effect.fail(new ProductNotFound({ product: id }))

    const shop: Shop = {
      description: {
        database: `embedded SQLite file ${filename}`,
        cache: options.redisUrl === undefined
          ? "memory (set REDIS_URL to cache on Redis)"
          : `Redis at ${withoutCredentials(Redacted.value(options.redisUrl))}`
      },
      outages,
      outbox: outbox.metrics,
      product: (id) =>
        Effect.zipRight(
          known(id),
          products.get(
            `product:${id}`,
            Sql.query((sql) =>
              sql<{ id: string; name: string; price_cents: number; stock: number }>`
                SELECT id, name, price_cents, stock FROM products WHERE id = ${id}`
            ).pipe(
              Effect.flatMap((rows) =>
                rows[0] === undefined
                  ? Effect.fail(new ProductNotFound({ product: id }))
                  : Effect.succeed({
                    id: rows[0].id,
                    name: rows[0].name,
                    priceCents: rows[0].price_cents,
                    stock: rows[0].stock
                  })
              )
            )
          ).pipe(
            Effect.map((result) => ({
              product: result.value,
              source: result.source,
              stale: result.stale,
              ageMillis: Duration.toMillis(result.age)
            }))
          )
        ).pipe(Effect.provideService(Sql.ResilientSql, db), Effect.provideService(Cache.Cache, resilientCache)),
      order: (product, quantity) =>
        Effect.zipRight(
          known(product),
          Effect.flatMap(Schema.decodeUnknown(Order)({ id: randomUUID(), product, quantity }), outbox.write)
        ),
      ask: (prompt) =>
        responses.get(
          `answer:${prompt}`,
          // At CacheOnly (Emergency) no provider is asked: the cache answers, or no one.
          Health.atLeast("Limited", llm.complete(prompt)).pipe(
            Effect.map((answer) => answer.value),
            Timeout.timeout("6 seconds", { operation: "assistant" })
          )
        ).pipe(
          Effect.map((result): Answer =>
            result.source === "Load"
              ? { answer: result.value.completion, provider: result.value.provider, source: "Provider" }
              : { answer: result.value.completion, provider: undefined, source: "Cache" }
          ),
          Effect.orElseSucceed((): Answer => ({ answer: degradedAnswer, provider: undefined, source: "Degraded" })),
          Effect.provideService(Cache.Cache, resilientCache),
          Effect.provideService(Health.Health, health)
        )
    }
    return shop
  }) satisfies Effect.Effect<Shop, unknown, Scope.Scope | Health.Health>
