/**
 * The healthy Redis suite: what the resilient cache costs when all is well. 100 concurrent
 * callers do `get` of one key against a real local `redis-server` for a fixed time, through
 * raw ioredis (async functions awaiting `client.get`), the plain Redis layer, and
 * `ResilientCache` over the Redis layer (default options for both), in rounds interleaved
 * in the same run. Every answer is checked: a read that did not return the stored value
 * (a miss served by a fallback, an error) is counted and fails the suite.
 *
 * When `redis-server` is not installed the suite says so and measures nothing.
 */
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import * as Cache from "../src/Cache.js"
import * as RedisCache from "../src/Cache/Redis.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { findRedisServer, redisServer } from "../test/integration/redisServer.js"
import type { Figure, Suite, SuiteResult } from "./harness.js"
import { median, target } from "./harness.js"

/** Callers running at once, each doing one `get` after another. */
const callers = 100
/** How long each variant runs per round, and how many timed rounds (after one untimed round). */
const roundMillis = 1_000
const rounds = 5

const key = "bench:throughput"
const value = "x".repeat(100)

/** One round of one variant. */
interface Round {
  readonly gets: number
  /** Reads that did not return the stored value. */
  readonly wrong: number
  readonly wallMillis: number
  readonly cpuMicros: number
}

const cpuMicros = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** `callers` fibers, each running `get` in a loop until the round's deadline. */
const fibers = (get: Effect.Effect<Option.Option<string>>): Effect.Effect<Round> =>
  Effect.suspend(() => {
    let gets = 0
    let wrong = 0
    const cpuStart = cpuMicros()
    const start = performance.now()
    const deadline = Date.now() + roundMillis
    const caller = Effect.whileLoop({
      while: () => Date.now() < deadline,
      body: () => get,
      step: (answer: Option.Option<string>) => {
        gets++
        if (Option.isNone(answer) || answer.value !== value) wrong++
      }
    })
    const all = Effect.forEach(Array.from({ length: callers }), () => caller, {
      concurrency: "unbounded",
      discard: true
    })
    return all.pipe(
      Effect.map(() => ({
        gets,
        wrong,
        wallMillis: performance.now() - start,
        cpuMicros: cpuMicros() - cpuStart
      }))
    )
  })

/** `callers` async functions, each awaiting `client.get` in a loop until the round's deadline. */
const promises = (client: Redis): Effect.Effect<Round> =>
  Effect.promise(async () => {
    let gets = 0
    let wrong = 0
    const cpuStart = cpuMicros()
    const start = performance.now()
    const deadline = Date.now() + roundMillis
    await Promise.all(Array.from({ length: callers }, async () => {
      while (Date.now() < deadline) {
        const answer = await client.get(key).catch(() => null)
        gets++
        if (answer !== value) wrong++
      }
    }))
    return { gets, wrong, wallMillis: performance.now() - start, cpuMicros: cpuMicros() - cpuStart }
  })

const title = `Healthy Redis: ${callers} concurrent callers doing get (real redis-server, same run)`

interface Variant {
  readonly id: string
  readonly label: string
  readonly round: Effect.Effect<Round>
}

/** The healthy Redis suite. */
export const suite: Suite = {
  name: "redis-throughput",
  title,
  run: () =>
    Effect.gen(function*() {
      const binary = Either.try(() => findRedisServer())
      if (Either.isLeft(binary)) {
        const reason = "redis-server is not installed (Debian: apt-get install -y redis-server)"
        yield* Console.log(`${title}\n  skipped: ${reason}\n`)
        return {
          name: "redis-throughput",
          title,
          measurements: [],
          figures: [],
          targets: [],
          details: { skipped: reason }
        }
      }
      const server = yield* redisServer()
      yield* Effect.promise(() => server.admin("SET", key, value))

      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(server.url)),
        (redis) => Effect.promise(() => redis.quit().catch(() => "closed"))
      )
      const plain = Context.get(
        yield* Layer.build(RedisCache.layer({ url: server.url, name: "bench-plain" })),
        Cache.Cache
      )
      const resilient = Context.get(
        yield* Layer.build(
          ResilientCache.layer({ name: "bench-resilient" }).pipe(
            Layer.provide(RedisCache.layer({ url: server.url, name: "bench-resilient" }))
          )
        ),
        ResilientCache.ResilientCache
      )
      const variants: ReadonlyArray<Variant> = [
        { id: "ioredis", label: "raw ioredis (await client.get)", round: promises(client) },
        {
          id: "plain",
          label: "Redis layer (Cache.get)",
          round: fibers(Effect.catchAll(plain.get(key), () => Effect.succeed(Option.none())))
        },
        { id: "resilient", label: "ResilientCache over the Redis layer", round: fibers(resilient.get(key)) }
      ]

      const results: Array<Array<Round>> = variants.map(() => [])
      for (let round = 0; round <= rounds; round++) {
        for (let i = 0; i < variants.length; i++) {
          const result = yield* variants[i]!.round
          // round 0 warms the connections and the JIT up
          if (round > 0) results[i]!.push(result)
        }
      }
      const wrong = variants.flatMap((variant, i) => {
        const count = results[i]!.reduce((sum, r) => sum + r.wrong, 0)
        return count === 0 ? [] : [`${variant.label}: ${count} reads did not return the stored value`]
      })
      if (wrong.length > 0) {
        return yield* Effect.fail(`redis-throughput: ${wrong.join("; ")}`)
      }
      const throughput = (i: number): number => median(results[i]!.map((r) => (r.gets * 1000) / r.wallMillis))
      const cpuPerGet = (i: number): number => median(results[i]!.map((r) => r.cpuMicros / r.gets))
      const figures: Array<Figure> = variants.flatMap((variant, i) => [
        { id: `${variant.id}.getsPerSecond`, label: `${variant.label}: gets/s`, value: throughput(i), unit: "gets/s" },
        { id: `${variant.id}.cpuPerGet`, label: `${variant.label}: CPU per get`, value: cpuPerGet(i), unit: "µs" }
      ])
      const resilientOverPlain: Figure = {
        id: "resilient/plain",
        label: "ResilientCache / Redis layer, throughput",
        value: throughput(2) / throughput(1),
        unit: "x"
      }
      figures.push(
        resilientOverPlain,
        {
          id: "plain/ioredis",
          label: "Redis layer / raw ioredis, throughput",
          value: throughput(1) / throughput(0),
          unit: "x"
        }
      )
      return {
        name: "redis-throughput",
        title,
        measurements: [],
        figures,
        targets: [target(resilientOverPlain, "ResilientCache >= 0.6x the plain Redis layer", ">=", 0.6)],
        details: {
          server: `redis-server on a free loopback port (${binary.right})`,
          callers,
          roundMillis,
          rounds: `${rounds} timed rounds per variant, interleaved, after one untimed round; median`,
          value: `${value.length} bytes under one key`,
          options: "layer({ url, name }) and ResilientCache.layer({ name }): default options otherwise",
          perRound: variants.map((variant, i) => ({ variant: variant.id, rounds: results[i] }))
        }
      } satisfies SuiteResult
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
}
