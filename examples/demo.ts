/**
 * `npm run demo`: a cache-first query service whose cache goes down, with nothing but Node.
 *
 * Queries arrive at a steady rate; each one is hashed, looked up in the cache, computed by
 * the database on a miss, and stored. Five seconds in, the cache freezes for five seconds.
 * The timeline shows, second by second, how the requests were answered, how many cache
 * operations fell back, and what the breaker in front of the cache did; a report and a
 * self-check follow. No user sees an error.
 *
 * The cache is in memory by default. With `REDIS_URL` set (`REDIS_URL=redis://localhost:6379
 * npm run demo`), it is that Redis, under the same chaos layer: the outage is injected
 * between the service and Redis, and Redis itself is left alone. The service starts even
 * when Redis does not answer (a cache-first service must): the resilient cache answers with
 * its fallbacks until Redis is back. Real faults of Redis at any moment change the figures,
 * never the self-check: no user error, and every count agrees with every other.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { Cache } from "effect-resilience"
import type { CircuitBreaker } from "effect-resilience"
import * as RedisCache from "effect-resilience/Cache/Redis"
import type { Outcome, Phase, RequestRecord, Result, Second } from "./queryService.js"
import * as QueryService from "./queryService.js"
import { bold, cyan, dim, green, ms, percent, red, seconds, yellow } from "./terminal.js"

// -----------------------------------------------------------------------------
// The backend
// -----------------------------------------------------------------------------

/** The cache under the chaos layer, and how to name it. */
interface Backend {
  readonly name: string
  /** The options in force, one line each, for the header. */
  readonly settings: ReadonlyArray<string>
  readonly layer: Layer.Layer<Cache.Cache, unknown>
  readonly latency: typeof QueryService.memoryCacheLatency | undefined
}

/** A URL without its userinfo and query, either of which may hold a password. */
const redact = (url: string | Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.isRedacted(url) ? Redacted.value(url) : url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
  } catch {
    return "(an unparsable URL)"
  }
}

const millis = (duration: Duration.DurationInput | undefined): string =>
  duration === undefined ? "default" : ms(Duration.toMillis(Duration.decode(duration)))

/** The demo's own choices; the environment (REDIS_URL, REDIS_COMMAND_TIMEOUT, ...) wins over them. */
const redisDefaults: RedisCache.Options = {
  name: "demo",
  prefix: "effect-resilience-demo:",
  commandTimeout: "80 millis",
  connectTimeout: "1 second",
  maxReconnectDelay: "1 second",
  maxRetriesPerRequest: 1
}

const memoryBackend: Backend = {
  name: "in-memory cache (Cache.layerMemory), 1-3 ms per call; set REDIS_URL to use Redis",
  settings: [],
  layer: Cache.layerMemory(),
  // A memory cache answers in no time; the chaos layer adds the network hop a real cache has.
  latency: QueryService.memoryCacheLatency
}

/** The backend REDIS_URL asks for, with the options in force; a configuration that can never work fails here. */
const backend = Effect.gen(function*() {
  const url = process.env["REDIS_URL"]
  if (url === undefined || url.trim() === "") return memoryBackend
  const options = yield* RedisCache.configOptions(redisDefaults)
  const result: Backend = {
    name: `Redis at ${options.url === undefined ? "(none)" : redact(options.url)} (RedisCache.layerConfig)`,
    settings: [
      `commandTimeout ${millis(options.commandTimeout)} · connectTimeout ${millis(options.connectTimeout)}` +
      ` · maxReconnectDelay ${millis(options.maxReconnectDelay)}` +
      ` · maxRetriesPerRequest ${options.maxRetriesPerRequest ?? "default"}`,
      `prefix "${options.prefix ?? ""}"${options.password === undefined ? "" : " · password set (REDIS_PASSWORD)"}` +
      " · starts even if Redis does not answer (requireConnection false)"
    ],
    layer: RedisCache.layer(options),
    latency: undefined
  }
  return result
})

// -----------------------------------------------------------------------------
// Printing
// -----------------------------------------------------------------------------



const stateColor = (state: CircuitBreaker.State): (text: string) => string =>
  state === "Closed" || state === "ForcedClosed" ? green : state === "HalfOpen" ? yellow : red

const glyph: Record<Outcome, string> = { hit: green("▪"), miss: yellow("▫"), error: red("✗") }

const { breaker: breakerOptions } = QueryService.resilience

/** Why the breaker moved, in words. */
const explain = (change: CircuitBreaker.StateChange): string => {
  switch (change.reason) {
    case "FailureThreshold":
      return `${breakerOptions.failureThreshold} cache calls in a row timed out or failed`
    case "OpenDurationElapsed":
      return `open for ${breakerOptions.resetTimeout}: the next cache call is a probe`
    case "ProbeFailed":
      return "the probe timed out: open again"
    case "ProbesSucceeded":
      return `${breakerOptions.successThreshold} probes in a row succeeded`
    default:
      return change.reason
  }
}

const count = (records: ReadonlyArray<RequestRecord>, outcome: Outcome): number =>
  records.filter((r) => r.outcome === outcome).length

const phaseLine = (phase: Phase): string =>
  cyan(`  ── ${seconds(phase.from, 0)}  ${phase.name}: ${phase.description} ──`)

const changeLine = (change: CircuitBreaker.StateChange, startedAt: number): string => {
  const at = seconds(change.at - startedAt).padStart(7)
  const move = `${stateColor(change.from)(change.from)} → ${stateColor(change.to)(bold(change.to))}`
  const width = change.from.length + change.to.length + 3
  return `  ${dim("↳")} ${at}  ${move}${" ".repeat(Math.max(1, 20 - width))}${dim(explain(change))}`
}

/** The line of one second: its requests as glyphs, then its counts and the breaker's state at its end. */
const secondLine = (s: Second): string => {
  const bar = s.requests.map((r) => glyph[r.outcome]).join("")
  const pad = " ".repeat(Math.max(0, QueryService.rate - s.requests.length))
  const errors = count(s.requests, "error")
  const slowest = Math.max(0, ...s.requests.map((r) => r.latency))
  const counts = [
    `${String(count(s.requests, "hit")).padStart(2)} hits`,
    `${String(count(s.requests, "miss")).padStart(2)} db`,
    (s.fallbacks === 0 ? dim : yellow)(`${String(s.fallbacks).padStart(2)} fallbacks`),
    ...(errors > 0 ? [red(`${errors} errors`)] : []),
    `slowest ${ms(slowest).padStart(6)}`
  ].join(dim(" · "))
  const time = `${s.second}–${s.second + 1} s`.padStart(7)
  return `  ${time}  ${bar}${pad}  ${counts}  ${stateColor(s.state)(s.state)}`
}

/** Prints a second as soon as it is over: the phase when it begins one, its line, then its transitions. */
const printSecond = (s: Second, startedAt: number): Effect.Effect<void> =>
  Console.log(
    [
      ...(s.phase.from === s.second * 1000 ? [phaseLine(s.phase)] : []),
      secondLine(s),
      ...s.changes.map((c) => changeLine(c, startedAt))
    ].join("\n")
  )

const row = (label: string, value: string | number, note = ""): string =>
  `  ${label.padEnd(34)}${String(value).padStart(7)}` + (note === "" ? "" : `   ${dim(note)}`)

const printReport = (result: Result): Effect.Effect<boolean> => {
  const { outage, resilience } = QueryService
  const outageEnd = outage.start + outage.duration
  const f = QueryService.figures(result)
  const checks = QueryService.check(result)
  const { breaker, cache, chaos } = result
  const lines: Array<string> = [
    "",
    bold("Report"),
    row("requests", f.requests, `${QueryService.rate} per second for ${seconds(QueryService.duration, 0)}`),
    row(
      "errors seen by users",
      f.errors,
      f.errors === 0 ? green("target 0: met, the outage never reached a user") : red("target 0: missed")
    ),
    row("answered from the cache", f.hits, `hit rate ${percent(f.hitRate)}`),
    row("computed by the database", f.misses, `${result.databaseQueries} queries run: concurrent misses share one`),
    row("cache fallbacks", f.fallbacks, `${f.outageFallbacks} during the outage: get → miss, set → not stored`),
    row(
      "cache calls let through",
      chaos.calls,
      `${chaos.outageHangs} of them hung on the frozen cache; ${breaker.rejectedCalls} refused by the breaker`
    ),
    row("breaker transitions", f.transitions, `${f.probes} probes during the outage`),
    row(
      "breaker opened",
      f.openedAt === undefined ? "never" : seconds(f.openedAt),
      f.openedAt === undefined ? "" : `${seconds(f.openedAt - outage.start)} into the outage`
    ),
    row(
      "breaker closed",
      f.closedAt === undefined ? "never" : seconds(f.closedAt),
      f.closedAt === undefined ? "" : `${seconds(f.closedAt - outageEnd)} after the cache came back`
    ),
    row("latency p50", ms(f.p50)),
    row("latency p99", ms(f.p99), `max ${ms(f.max)}`),
    ...(f.p50WhileOpen === undefined || f.p99WhileOpen === undefined
      ? []
      : [
        row("  p50 while the breaker was open", ms(f.p50WhileOpen), "the database's time"),
        row(
          "  p99 while the breaker was open",
          ms(f.p99WhileOpen),
          `only probes wait for the ${ms(Duration.toMillis(resilience.timeout))} timeout`
        )
      ]),
    "",
    bold("By phase"),
    dim(
      `  ${"phase".padEnd(12)}${"time".padEnd(10)}${"requests".padStart(9)}${"hits".padStart(7)}` +
        `${"hit rate".padStart(10)}${"fallbacks".padStart(11)}${"p50".padStart(10)}${"p99".padStart(10)}`
    )
  ]
  for (const phase of QueryService.phases) {
    const records = result.requests.filter((r) => r.phase === phase)
    const latencies = records.map((r) => r.latency)
    const hits = count(records, "hit")
    const fallbacks = result.seconds.filter((s) => s.phase === phase).reduce((n, s) => n + s.fallbacks, 0)
    lines.push(
      `  ${phase.name.padEnd(12)}${`${phase.from / 1000}–${phase.until / 1000} s`.padEnd(10)}` +
        `${String(records.length).padStart(9)}${String(hits).padStart(7)}` +
        `${percent(records.length === 0 ? 0 : hits / records.length).padStart(10)}${String(fallbacks).padStart(11)}` +
        `${ms(QueryService.percentile(latencies, 0.5)).padStart(10)}` +
        `${ms(QueryService.percentile(latencies, 0.99)).padStart(10)}`
    )
  }
  lines.push(
    "",
    bold("Resilient cache") + dim(" (ResilientCache stats and breaker.metrics)"),
    `  ${cache.hits} hits · ${cache.misses} misses · ${cache.fallbacks} fallbacks` +
      ` · breaker ${stateColor(breaker.state)(breaker.state)}: ${breaker.successfulCalls} successful,` +
      ` ${breaker.failedCalls} failed, ${breaker.rejectedCalls} rejected, ${breaker.stateChanges} state changes`,
    "",
    bold("Scripted outage") + dim(" (figures: a real fault at another moment changes them)"),
    ...QueryService.scripted(result).map((c) =>
      `  ${c.pass ? green("✓") : yellow("·")} ${c.label}: ${c.pass ? "yes" : "no"}`
    ),
    row(
      "  transitions outside it",
      // The scripted story ends with the breaker closing within 3 s of the outage's end.
      result.changes.filter((c) => {
        const at = c.at - result.startedAt
        return at < outage.start || at >= outageEnd + 3_000
      }).length,
      "real faults of the cache show here"
    ),
    "",
    bold("Self-check") + dim(" (holds whatever the cache does)"),
    ...checks.map((c) => `  ${c.pass ? green("✓") : red("✗")} ${c.label}`),
    ""
  )
  const first = result.requests.find((r) => r.outcome === "error")
  if (first !== undefined) lines.push(red(`  first error, at ${seconds(first.at)}: ${first.error}`), "")
  return Effect.as(Console.log(lines.join("\n")), checks.every((c) => c.pass))
}

// -----------------------------------------------------------------------------
// Main
// -----------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const { outage, resilience } = QueryService
  const cache = yield* backend
  yield* Console.log(
    [
      "",
      bold("A cache-first query service whose cache goes down"),
      dim(`  cache:    ${cache.name}`),
      ...cache.settings.map((line) => dim(`            ${line}`)),
      dim(
        `  stack:    ResilientCache (${ms(Duration.toMillis(Duration.decode(resilience.timeout)))} timeout per call;` +
          ` the breaker opens after ${breakerOptions.failureThreshold} failures,`
      ),
      dim(
        `            probes every ${breakerOptions.resetTimeout}, closes after ${breakerOptions.successThreshold}` +
          " successful probes)"
      ),
      dim(
        `            → Chaos.layerCache (frozen from ${seconds(outage.start, 0)} to` +
          ` ${seconds(outage.start + outage.duration, 0)}) → the cache`
      ),
      dim(
        `  traffic:  ${QueryService.rate} queries a second over ${QueryService.queries.length} distinct ones,` +
          " popular ones more often; each one is"
      ),
      dim("            hashed (sha256), looked up, computed by the database on a miss (20-60 ms), stored"),
      "",
      dim("     time  requests: ") + `${glyph.hit} cache  ${glyph.miss} database  ${glyph.error} error`
    ].join("\n")
  )
  return yield* QueryService.run({ backend: cache.layer, cacheLatency: cache.latency, onSecond: printSecond })
})

/** One line, never a stack trace nor a secret: the message of a typed error, or the first line of a defect's. */
const oneLine = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const error: unknown = failure._tag === "Some" ? failure.value : Cause.squash(cause)
  const tag = typeof error === "object" && error !== null && "_tag" in error ? `${String(error._tag)}: ` : ""
  const message = error instanceof Error ? error.message : String(error)
  return `${tag}${message.split("\n")[0]}`
}

const main = Effect.gen(function*() {
  const result = yield* program
  // Transitions after the last second (a due transition observed by the final read).
  for (const change of result.changes.filter((c) => c.at - result.startedAt >= QueryService.duration)) {
    yield* Console.log(changeLine(change, result.startedAt))
  }
  const pass = yield* printReport(result)
  if (!pass) return yield* Effect.fail(new Error("the demo's self-check failed"))
}).pipe(
  Effect.catchAllCause((cause) =>
    Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Console.error(red(`demo: ${oneLine(cause)}`)).pipe(
      Effect.zipRight(Effect.sync(() => {
        process.exitCode = 1
      }))
    )
  )
)

NodeRuntime.runMain(
  main.pipe(
    // The resilient cache logs every transition; the timeline shows them already.
    Logger.withMinimumLogLevel(LogLevel.Error)
  )
)
