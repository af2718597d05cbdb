/**
 * A cache-first query service, and the outage scenario that `npm run demo` plays on it.
 *
 * A query is answered from the cache when it can be: its text is hashed (sha256) into a
 * cache key, the key is looked up, and on a miss the database computes the result, which
 * is stored for next time (`CacheAside`, so concurrent misses of one query run it once).
 * The cache is any `Cache` layer (memory by default, Redis when asked) behind a chaos
 * layer that freezes it for five seconds, all under `ResilientCache`: a breaker, a timeout
 * and a fallback per operation, so that the outage reaches no user.
 *
 * Time comes from the `Clock` and randomness from seeded generators: on `TestClock` the
 * whole scenario runs in no time, and a seed replays the same traffic.
 */
import { createHash } from "node:crypto"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { InvalidOptions } from "effect-resilience"
import { CacheAside, Chaos, ResilientCache } from "effect-resilience"
import type { Cache, CircuitBreaker } from "effect-resilience"

// -----------------------------------------------------------------------------
// The scenario
// -----------------------------------------------------------------------------

/** A stretch of the timeline, in milliseconds from the start. */
export interface Phase {
  readonly name: string
  readonly description: string
  readonly from: number
  readonly until: number
}

/** The cache freezes 5 s in, for 5 s: its calls hang, as on a `kill -STOP`ped Redis. */
export const outage = { start: 5_000, duration: 5_000 } as const

export const phases: ReadonlyArray<Phase> = [
  { name: "healthy", description: "the cache answers", from: 0, until: outage.start },
  {
    name: "outage",
    description: "the cache is frozen, every call to it hangs",
    from: outage.start,
    until: outage.start + outage.duration
  },
  { name: "recovered", description: "the cache is back", from: outage.start + outage.duration, until: 16_000 }
]

/** The length of the timeline, in milliseconds. */
export const duration = phases[phases.length - 1]!.until

/** Requests per second, evenly spaced. */
export const rate = 25

/**
 * The resilient cache: each call gets 100 ms; 5 failures in a row open the breaker, which
 * lets one probe through every 2 seconds and closes after 2 successful probes.
 */
export const resilience = {
  name: "query-cache",
  timeout: "100 millis",
  breaker: { failureThreshold: 5, resetTimeout: "2 seconds", successThreshold: 2 }
} as const satisfies ResilientCache.Options

/** How long a computed result is served from the cache. */
export const resultTtl = "30 seconds"

/** What the chaos layer adds to each call of a memory cache: the network hop a real cache has. */
export const memoryCacheLatency = ["1 millis", "3 millis"] as const

/** The database computes a result in 20 to 60 ms. */
export const databaseLatency = ["20 millis", "60 millis"] as const

const phaseAt = (at: number): Phase => phases.find((phase) => at < phase.until) ?? phases[phases.length - 1]!

// -----------------------------------------------------------------------------
// The database and the queries
// -----------------------------------------------------------------------------

const Row = Schema.Struct({ id: Schema.Number, name: Schema.String, cents: Schema.Number })

/** What a query returns; cached as the JSON of this schema. */
export const QueryResult = Schema.Struct({ rows: Schema.Array(Row) })
export type QueryResult = typeof QueryResult.Type

export interface Database {
  /** Runs a query: a result after 20-60 ms. */
  readonly query: (sql: string) => Effect.Effect<QueryResult>
  /** How many queries it has run. */
  readonly queries: Effect.Effect<number>
}

/** A simulated database: results computed from the query text, latency from a seeded `Chaos.delay`. */
export const makeDatabase = (seed: number): Effect.Effect<Database, InvalidOptions> =>
  Effect.map(Chaos.delay({ latency: databaseLatency, seed: `${seed}/database` }), (latency) => ({
    query: (sql) => latency(Effect.sync(() => compute(sql))),
    queries: Effect.map(latency.stats, (stats) => stats.calls)
  }))

const compute = (sql: string): QueryResult => {
  const category = /category = '(\w+)'/.exec(sql)?.[1] ?? "any"
  const offset = Number(/OFFSET (\d+)/.exec(sql)?.[1] ?? 0)
  return {
    rows: Array.from({ length: 20 }, (_, i) => {
      const id = offset + i + 1
      return { id, name: `${category} #${id}`, cents: 499 + ((id * 7919 + category.length * 104_729) % 9_000) }
    })
  }
}

const categories = ["books", "games", "music", "garden", "kitchen", "toys", "tools", "sports"]

/** 120 distinct queries, the most popular first: page 1 of every category, then page 2... */
export const queries: ReadonlyArray<string> = Array.from({ length: 120 }, (_, i) =>
  `SELECT id, name, cents FROM products WHERE category = '${categories[i % categories.length]}'` +
  ` ORDER BY cents LIMIT 20 OFFSET ${Math.floor(i / categories.length) * 20}`)

/** Draws queries by popularity: the query of rank r comes with weight 1 / r^1.1 (a Zipf law). */
const popularity = (seed: number): Effect.Effect<string> => {
  const weights = queries.map((_, rank) => 1 / (rank + 1) ** 1.1)
  const total = weights.reduce((sum, w) => sum + w, 0)
  let running = 0
  const cumulative = weights.map((w) => (running += w / total))
  const random = Random.make(`${seed}/traffic`)
  return Effect.map(random.next, (r) => queries[cumulative.findIndex((c) => r < c)] ?? queries[queries.length - 1]!)
}

/** The cache key of a query: the sha256 of its text, whitespace normalised. */
export const cacheKey = (sql: string): string =>
  `query:${createHash("sha256").update(sql.trim().replace(/\s+/g, " ")).digest("hex")}`

// -----------------------------------------------------------------------------
// Records
// -----------------------------------------------------------------------------

/** How a request was answered: from the cache, by the database, or (never, we hope) with an error. */
export type Outcome = "hit" | "miss" | "error"

export interface RequestRecord {
  readonly index: number
  /** When it arrived, in milliseconds from the start (its slot on the timeline). */
  readonly at: number
  readonly phase: Phase
  readonly outcome: Outcome
  /** From arrival to answer, in milliseconds. */
  readonly latency: number
  readonly error: string | undefined
}

/** One second of the timeline, observed when it is over. */
export interface Second {
  readonly second: number
  readonly phase: Phase
  /** The requests that arrived in this second, in order. */
  readonly requests: ReadonlyArray<RequestRecord>
  /** Cache operations answered by their fallback during this second (get: a miss; set: not stored). */
  readonly fallbacks: number
  /** The breaker's state at the end of the second. */
  readonly state: CircuitBreaker.State
  /** The breaker's transitions during this second. */
  readonly changes: ReadonlyArray<CircuitBreaker.StateChange>
}

export interface Result {
  /** When the timeline started, in epoch milliseconds of the `Clock`. */
  readonly startedAt: number
  readonly requests: ReadonlyArray<RequestRecord>
  readonly seconds: ReadonlyArray<Second>
  /** Every transition `breaker.changes` announced. */
  readonly changes: ReadonlyArray<CircuitBreaker.StateChange>
  /** What the resilient cache counted. */
  readonly cache: ResilientCache.Stats
  /** The breaker's own metrics at the end. */
  readonly breaker: CircuitBreaker.Metrics
  /** What the chaos layer saw: every cache call that got past the breaker, and those that hung. */
  readonly chaos: Chaos.Stats
  readonly databaseQueries: number
}

export interface Options<E> {
  /** The cache under the chaos layer. */
  readonly backend: Layer.Layer<Cache.Cache, E>
  /** Latency the chaos layer adds to each cache call (a memory cache has none of its own; default none). */
  readonly cacheLatency?: readonly [Duration.DurationInput, Duration.DurationInput] | undefined
  /** Seeds the traffic, the database and the chaos layer (default 7). */
  readonly seed?: number | undefined
  /**
   * Called with each second once it is over (and its requests have been answered), to print
   * it, and with the start of the timeline in epoch milliseconds of the `Clock`.
   */
  readonly onSecond?: ((second: Second, startedAt: number) => Effect.Effect<void>) | undefined
}

// -----------------------------------------------------------------------------
// The run
// -----------------------------------------------------------------------------

const sleepUntil = (startedAt: number, at: number): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    now < startedAt + at ? Effect.sleep(Duration.millis(startedAt + at - now)) : Effect.void)

/**
 * Runs the scenario: builds the cache stack over `options.backend`, sends `rate` queries a
 * second for `duration` while the cache goes down and comes back, and returns what every
 * request, the resilient cache, the breaker and the chaos layer saw.
 */
export const run = <E>(options: Options<E>): Effect.Effect<Result, E | InvalidOptions> =>
  Effect.scoped(Effect.gen(function*() {
    const seed = options.seed ?? 7
    const startedAt = yield* Clock.currentTimeMillis

    // backend → Chaos.layerCache (frozen during the outage) → ResilientCache.layer.
    // `provideMerge` keeps the chaos handle in the context; the resilient `Cache` shadows the faulty one.
    const stack = ResilientCache.layer(resilience).pipe(
      Layer.provideMerge(Chaos.layerCache({
        latency: options.cacheLatency,
        outages: [{ start: Duration.millis(outage.start), duration: Duration.millis(outage.duration), mode: "hang" }],
        seed: `${seed}/cache`
      })),
      Layer.provide(options.backend)
    )
    const context = yield* Layer.build(stack)
    const cache = Context.get(context, ResilientCache.ResilientCache)
    const chaos = Context.get(context, Chaos.CacheChaos)

    const changes = yield* Ref.make<ReadonlyArray<CircuitBreaker.StateChange>>([])
    yield* Effect.forkScoped(
      Stream.runForEach(cache.breaker.changes, (change) => Ref.update(changes, (all) => [...all, change]))
    )
    // Let the subscriber start before any traffic: the first transition is seconds away.
    yield* Effect.repeatN(Effect.yieldNow(), 10)

    // Start cold, even on a Redis that an earlier run filled.
    yield* cache.invalidate("query:")

    const database = yield* makeDatabase(seed)
    const results = yield* CacheAside.make({ ttl: resultTtl, staleIfError: 0, schema: QueryResult })
    const pick = popularity(seed)
    const records = yield* Ref.make<ReadonlyArray<RequestRecord>>([])

    /** One request: hash, look up, compute on a miss, store; how it went is recorded. */
    const request = (index: number, at: number, sql: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeNanos
        const exit = yield* Effect.exit(results.get(cacheKey(sql), database.query(sql)))
        const end = yield* Clock.currentTimeNanos
        const record: RequestRecord = {
          index,
          at,
          phase: phaseAt(at),
          latency: Number(end - start) / 1e6,
          outcome: Exit.isSuccess(exit) ? (exit.value.source === "Cache" ? "hit" : "miss") : "error",
          error: Exit.isFailure(exit) ? String(exit.cause) : undefined
        }
        yield* Ref.update(records, (all) => [...all, record])
      }).pipe(Effect.provide(context))

    const interval = 1000 / rate
    const total = Math.round(duration / interval)
    const traffic = Effect.scoped(Effect.gen(function*() {
      const running = yield* FiberSet.make()
      for (let index = 0; index < total; index++) {
        // Each request waits for its slot, so that slow requests never slow the rate down.
        yield* sleepUntil(startedAt, index * interval)
        yield* FiberSet.run(running, request(index, index * interval, yield* pick))
      }
      yield* FiberSet.awaitEmpty(running)
    }))

    const observe = Effect.gen(function*() {
      const seconds: Array<Second> = []
      let fallbacksBefore = (yield* cache.stats).fallbacks
      for (let second = 0; second * 1000 < duration; second++) {
        const from = second * 1000
        const until = from + 1000
        yield* sleepUntil(startedAt, until)
        const fallbacks = (yield* cache.stats).fallbacks
        const state = yield* cache.breaker.state
        // Wait for the answers to this second's requests (each one is bounded by the cache timeouts).
        const arrived = Math.round((Math.min(until, duration) - from) / interval)
        const answered = Effect.map(Ref.get(records), (all) => all.filter((r) => r.at >= from && r.at < until))
        let requests = yield* answered
        while (requests.length < arrived) {
          yield* Effect.sleep("20 millis")
          requests = yield* answered
        }
        const changed = (yield* Ref.get(changes)).filter((c) => c.at - startedAt >= from && c.at - startedAt < until)
        const observed: Second = {
          second,
          phase: phaseAt(from),
          requests: [...requests].sort((a, b) => a.index - b.index),
          fallbacks: fallbacks - fallbacksBefore,
          state,
          changes: changed
        }
        fallbacksBefore = fallbacks
        seconds.push(observed)
        if (options.onSecond !== undefined) yield* options.onSecond(observed, startedAt)
      }
      return seconds
    })

    const [, seconds] = yield* Effect.all([traffic, observe], { concurrency: "unbounded" })

    // A read applies a transition that is due; then wait for the subscriber to catch up.
    yield* cache.breaker.state
    const breaker = yield* cache.breaker.metrics
    yield* Effect.repeat(Ref.get(changes), {
      until: (all) => all.length >= breaker.stateChanges,
      schedule: Schedule.spaced("10 millis")
    }).pipe(Effect.timeout("1 second"), Effect.ignore)

    return {
      startedAt,
      requests: [...(yield* Ref.get(records))].sort((a, b) => a.index - b.index),
      seconds,
      changes: yield* Ref.get(changes),
      cache: yield* cache.stats,
      breaker,
      chaos: yield* chaos.stats,
      databaseQueries: yield* database.queries
    }
  }))

// -----------------------------------------------------------------------------
// Figures and the self-check
// -----------------------------------------------------------------------------

/** The value below which `p` of `values` fall (nearest rank); 0 for none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

export interface Figures {
  readonly requests: number
  readonly errors: number
  readonly hits: number
  readonly misses: number
  readonly hitRate: number
  readonly fallbacks: number
  /** Fallbacks during the outage. */
  readonly outageFallbacks: number
  readonly transitions: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** When the breaker first opened during the outage, in milliseconds from the start. */
  readonly openedAt: number | undefined
  /** When it closed again after the outage. */
  readonly closedAt: number | undefined
  /** The p50 and p99 latency of requests that arrived while the breaker held the frozen cache off. */
  readonly p50WhileOpen: number | undefined
  readonly p99WhileOpen: number | undefined
  /** Probes the breaker let through to the frozen cache (Open → HalfOpen during the outage). */
  readonly probes: number
}

const outageEnd = outage.start + outage.duration

export const figures = (result: Result): Figures => {
  const { requests } = result
  const count = (outcome: Outcome) => requests.filter((r) => r.outcome === outcome).length
  const latencies = requests.map((r) => r.latency)
  const relative = (change: CircuitBreaker.StateChange) => change.at - result.startedAt
  const opened = result.changes.find((c) =>
    c.from === "Closed" && c.to === "Open" && relative(c) >= outage.start && relative(c) < outageEnd
  )
  const closed = result.changes.find((c) => c.to === "Closed" && relative(c) >= outageEnd)
  const openedAt = opened === undefined ? undefined : relative(opened)
  const whileOpen = openedAt === undefined ? [] : requests.filter((r) => r.at >= openedAt && r.at < outageEnd)
  const hits = count("hit")
  return {
    requests: requests.length,
    errors: count("error"),
    hits,
    misses: count("miss"),
    hitRate: requests.length === 0 ? 0 : hits / requests.length,
    fallbacks: result.cache.fallbacks,
    outageFallbacks: result.seconds.filter((s) => s.phase.name === "outage").reduce((n, s) => n + s.fallbacks, 0),
    transitions: result.changes.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: Math.max(0, ...latencies),
    openedAt,
    closedAt: closed === undefined ? undefined : relative(closed),
    p50WhileOpen: whileOpen.length === 0 ? undefined : percentile(whileOpen.map((r) => r.latency), 0.5),
    p99WhileOpen: whileOpen.length === 0 ? undefined : percentile(whileOpen.map((r) => r.latency), 0.99),
    probes: result.changes.filter((c) =>
      c.from === "Open" && c.to === "HalfOpen" && relative(c) >= outage.start && relative(c) < outageEnd
    ).length
  }
}

export interface Check {
  readonly label: string
  readonly pass: boolean
}

/**
 * What must hold whatever the world does, for the run to count: no user saw an error, and
 * every count agrees with every other. A real fault of the cache at any moment (frozen at
 * startup, restarted mid-run) changes the figures, never these.
 */
export const check = (result: Result): ReadonlyArray<Check> => {
  const f = figures(result)
  const { breaker, cache, chaos } = result
  return [
    { label: "no user saw an error", pass: f.errors === 0 },
    {
      label: `every request was answered (${rate} a second for ${duration / 1000} s)`,
      pass: f.requests === rate * duration / 1000
    },
    { label: "hits + misses = requests", pass: f.hits + f.misses === f.requests },
    { label: "hits = the resilient cache's hits", pass: f.hits === cache.hits },
    { label: "reads of the resilient cache = requests", pass: cache.hits + cache.misses === f.requests },
    {
      label: "database queries <= misses (concurrent misses of a query share one)",
      pass: result.databaseQueries > 0 && result.databaseQueries <= f.misses
    },
    {
      // A probe that outlived probePatience answers its caller with a fallback and is
      // counted by the breaker when it ends: as failed if it failed, not at all otherwise.
      label: "the breaker's failed + rejected calls <= fallbacks <= the same + probe fallbacks",
      pass: breaker.failedCalls + breaker.rejectedCalls <= cache.fallbacks &&
        cache.fallbacks <= breaker.failedCalls + breaker.rejectedCalls + cache.probeFallbacks
    },
    {
      label: "cache calls that reached the cache = calls the breaker let through",
      pass: chaos.calls === breaker.successfulCalls + breaker.failedCalls + breaker.ignoredCalls +
          breaker.interruptedCalls
    },
    {
      label: "transitions on breaker.changes = the breaker's stateChanges",
      pass: f.transitions === breaker.stateChanges
    }
  ]
}

/**
 * What the scripted outage is expected to show: figures, not conditions of success, since a
 * real fault at another moment (the cache frozen at startup, say) legitimately changes them.
 */
export const scripted = (result: Result): ReadonlyArray<Check> => {
  const f = figures(result)
  const { breaker, chaos } = result
  return [
    { label: "the cache answered with fallbacks during the scripted outage", pass: f.outageFallbacks > 0 },
    { label: "the breaker kept most calls off the frozen cache", pass: breaker.rejectedCalls > chaos.outageHangs },
    { label: "the breaker opened during the scripted outage", pass: f.openedAt !== undefined },
    { label: "and closed again after it", pass: f.closedAt !== undefined && breaker.state === "Closed" }
  ]
}
