/**
 * The examples of docs/health.md. In an application, import the modules from the package:
 * `import { Health } from "effect-resilience"`, `import * as Sqlite from "effect-resilience/Sql/Sqlite"`.
 */
import { Console, Duration, Effect, Layer, Schema, Stream } from "effect"
import { Cache, CircuitBreaker, Fallback, Health, ResilientCache } from "effect-resilience"
import * as Sqlite from "effect-resilience/Sql/Sqlite"

declare const complete: (provider: string, prompt: string) => Effect.Effect<string, Error>
declare const searchIsUp: Effect.Effect<void, Error>

// The registry. Dependencies that register themselves are critical when listed here.
const HealthLive = Health.layer({ critical: ["orders", "payments"] })

// Built over the registry, the database "orders" and the cache "sessions" register
// themselves, and leave the registry when their layer's scope closes.
const Dependencies = Layer.mergeAll(
  Sqlite.layer({ filename: "orders.sqlite", name: "orders" }),
  ResilientCache.layer({ name: "sessions", memoryFallback: true }).pipe(Layer.provide(Cache.layerMemory()))
).pipe(Layer.provideMerge(HealthLive))

const program = Effect.gen(function*() {
  // A breaker made in a scope registers itself too.
  const payments = yield* CircuitBreaker.make({ name: "payments", failureThreshold: 3 })

  // A failover group, registered by hand: its providers' breakers count once, inside it.
  const llm = yield* Fallback.makeFailover([
    { name: "openai", run: (prompt: string, breaker) => breaker.protect(complete("openai", prompt)) },
    { name: "anthropic", run: (prompt: string, breaker) => breaker.protect(complete("anthropic", prompt)) }
  ], { name: "llm" }) // names the group in the failover time histogram
  yield* Health.register({ name: "llm", source: Health.fromFailover(llm) })

  // A dependency known only by a check of your own, run every 10 seconds.
  yield* Health.register({ name: "search", source: Health.fromCheck(searchIsUp), checkInterval: "10 seconds" })

  // Every change, as it happens.
  yield* Health.changes.pipe(Stream.runForEach(Console.log), Effect.forkScoped)

  // Recommendations are non-essential: off from Limited down.
  const recommendations = yield* Health.nonEssential(Effect.succeed(["book", "pen"]), {
    otherwise: Effect.succeed([])
  })

  // The snapshot, as JSON; each dependency with its breakers and, for a failover group, its failover time.
  const status = yield* Health.status
  yield* Console.log(JSON.stringify(yield* Schema.encode(Health.Status)(status)))
  for (const dependency of status.dependencies) {
    const breakers = dependency.breakers.map((b) => `${b.name} ${b.state} (${b.totalCalls} calls)`).join(", ")
    const failover = dependency.failoverTime === null ? "none" : Duration.format(dependency.failoverTime)
    yield* Console.log(`${dependency.name}: ${dependency.state}; ${breakers}; failover time ${failover}`)
  }
  return { recommendations, payments: yield* payments.state }
})

export const main = program.pipe(Effect.scoped, Effect.provide(Dependencies))
