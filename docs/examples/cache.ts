/**
 * The examples of docs/cache.md. In an application, import the modules from the package:
 * `import { Cache, CacheAside, Chaos, ResilientCache } from "effect-resilience"
import * as CachePersistence from "effect-resilience/CachePersistence"`.
 */
import * as PersistedCache from "@effect/experimental/PersistedCache"
import { Data, Effect, Layer, Option, PrimaryKey, Schema } from "effect"
import { Cache, CacheAside, Chaos, ResilientCache } from "effect-resilience"
import * as CachePersistence from "effect-resilience/CachePersistence"

// --- The service -----------------------------------------------------------------------

// Code reads and writes through the `Cache` tag; it does not know which Layer it runs on.
export const rememberVisit = (user: string) =>
  Effect.gen(function*() {
    const cache = yield* Cache.Cache
    const previous = yield* cache.get(`visit:${user}`)
    yield* cache.set(`visit:${user}`, new Date().toISOString(), { ttl: "1 day" })
    return previous
  })

// --- Layers ----------------------------------------------------------------------------

// The embedded default: a bounded LRU with TTL (1000 entries, 5 minutes unless told).
export const MemoryCache = Cache.layerMemory({ capacity: 10_000, ttl: "10 minutes" })

// The no-op cache: every read misses, every write is dropped, nothing fails.
export const NoCache = Cache.layerDegraded

// In production, the resilient cache over the backend (here the memory cache; see
// docs/redis.md for the Redis layer): its operations cannot fail.
export const ResilientMemoryCache = ResilientCache.layer({ name: "sessions", timeout: "200 millis" }).pipe(
  Layer.provide(Cache.layerMemory())
)

// --- Swapping layers in tests ----------------------------------------------------------

// The same program, three environments: healthy, absent, and failing 30% of the time.
export const healthy = rememberVisit("ada").pipe(Effect.provide(MemoryCache))
export const withoutCache = rememberVisit("ada").pipe(Effect.provide(NoCache))
export const flaky = rememberVisit("ada").pipe(
  Effect.either, // a CacheError reaches the caller: this cache is not resilient
  Effect.provide(Chaos.layerCache({ failureRate: 0.3, seed: 1 }).pipe(Layer.provide(MemoryCache)))
)

// --- Typed view ------------------------------------------------------------------------

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, joined: Schema.DateFromString })

export const typedView = Effect.gen(function*() {
  const users = yield* Cache.typed(User)
  yield* users.set("user:1", { id: 1, name: "Ada", joined: new Date("2020-01-01") }, { ttl: "1 hour" })
  // Option<{ id: number; name: string; joined: Date }>: a payload that does not decode is None
  const user = yield* users.get("user:1")
  return Option.map(user, (u) => u.joined.getFullYear())
}).pipe(Effect.provide(MemoryCache))

// --- CacheAside ------------------------------------------------------------------------

class ProductsDown extends Data.TaggedError("ProductsDown") {}

const Product = Schema.Struct({ sku: Schema.String, cents: Schema.Number })
const fetchProduct = (sku: string) => Effect.succeed({ sku, cents: 1999 })

export const productPrice = (sku: string) =>
  Effect.gen(function*() {
    const products = yield* CacheAside.make({ ttl: "1 minute", staleIfError: "1 hour", schema: Product })
    const result = yield* products.get(`product:${sku}`, fetchProduct(sku))
    if (result.stale) yield* Effect.logWarning(`price of ${sku} is stale`)
    return result.value.cents
  })

// A load that fails: answered from a stale copy when one is young enough, else ProductsDown.
export const whenSourceIsDown = CacheAside.get(
  "product:abc",
  Effect.fail(new ProductsDown()),
  { ttl: "1 minute", schema: Product }
).pipe(Effect.provide(MemoryCache))

// --- PersistedCache on the Cache ---------------------------------------------------------

class GetProduct extends Schema.TaggedRequest<GetProduct>()("GetProduct", {
  failure: Schema.String,
  success: Product,
  payload: { sku: Schema.String }
}) {
  [PrimaryKey.symbol]() {
    return `GetProduct:${this.sku}`
  }
}

export const persisted = Effect.gen(function*() {
  const products = yield* PersistedCache.make({
    storeId: "products",
    lookup: (request: GetProduct) => fetchProduct(request.sku),
    timeToLive: () => "10 minutes"
  })
  return yield* products.get(new GetProduct({ sku: "abc" }))
}).pipe(
  Effect.scoped,
  Effect.provide(CachePersistence.layerResult.pipe(Layer.provide(Cache.layerMemory())))
)
