/**
 * `npm run example:llm-failover`: failover across three LLM providers over real HTTP.
 *
 * Three "providers" (alpha, the primary; beta; gamma) are served by one HTTP server on
 * loopback. On a 20 second timeline they answer, slow down, answer 429 with Retry-After,
 * fail with 500s and go down; from 9 to 10 seconds all three are unusable at once, so some
 * requests fail. A client sends a request every 100 ms; each provider call is
 * retried by error class outside its own breaker, outside a timeout per attempt, and each
 * request fails over across the providers in order, skipping those whose breaker is open.
 *
 * The providers are registered in a `Health` registry as one failover group, and the
 * service level follows them: while every provider's breaker is open the level is
 * `CacheOnly`, and no provider is asked. Whenever no provider answers, a prompt asked
 * before is answered from the response cache (stale-if-error on the memory layer) and any
 * other prompt gets an explicit degraded answer; both are marked `[degraded`.
 *
 * At the end it prints, per provider, calls, failures and breaker state, the failover time
 * and the time to recovery (MTTR) of each provider, then, as its last lines, the share of
 * requests answered at all (full or degraded) and the share of full answers.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scenario from "./llm/scenario.js"

const pad = (value: string | number, width: number) => String(value).padStart(width)
const seconds = (millis: number) => `${(millis / 1000).toFixed(2)} s`

const program = Effect.gen(function*() {
  yield* Console.log("LLM failover: alpha (primary), beta, gamma on one loopback HTTP server")
  yield* Console.log("a request every 100 ms for 20 s; each request may take up to 6 s, failover included\n")
  const report = yield* Scenario.run({
    timeline: Scenario.timeline,
    providers: [Scenario.provider("alpha"), Scenario.provider("beta"), Scenario.provider("gamma")],
    requests: 200,
    interval: "100 millis",
    deadline: "6 seconds",
    log: (line) => Console.log(line)
  })

  yield* Console.log("\nsecond  sent  alpha  beta  gamma  cached  degraded")
  for (let second = 0; second * 10 < report.outcomes.length; second++) {
    // Ten requests a second, in the order they were sent.
    const sent = report.outcomes.slice(second * 10, second * 10 + 10)
    const by = (name: string) => sent.filter((o) => o.provider === name).length
    const kind = (kind: Scenario.AnswerKind) => sent.filter((o) => o.kind === kind).length
    yield* Console.log(
      `${pad(second, 6)}  ${pad(sent.length, 4)}  ${pad(by("alpha"), 5)}  ${pad(by("beta"), 4)}  ${
        pad(by("gamma"), 5)
      }  ${pad(kind("Cached"), 6)}  ${pad(kind("Degraded"), 8)}`
    )
  }

  yield* Console.log(`\nprovider  calls  failures  rejected  skipped  answered  breaker   (server received)`)
  for (const p of report.providers) {
    yield* Console.log(
      `${p.name.padEnd(8)}  ${pad(p.calls, 5)}  ${pad(p.failures, 8)}  ${pad(p.rejected, 8)}  ${pad(p.skipped, 7)}  ${
        pad(p.answered, 8)
      }  ${p.breaker.padEnd(8)}  (${p.received})`
    )
  }
  yield* Console.log(`\nservice levels: ${report.levels.map((l) => `${l.level} at ${seconds(l.at)}`).join(", ")}`)
  if (report.failoverMillis !== undefined && report.primaryFirstFailureAt !== undefined) {
    yield* Console.log(
      `failover time: ${Scenario.formatMillis(report.failoverMillis)} (alpha first failed at ${
        seconds(report.primaryFirstFailureAt)
      }, beta answered at ${seconds(report.failoverAt ?? 0)})`
    )
  } else {
    yield* Console.log("failover time: none (the primary never failed, or beta never answered after it did)")
  }
  for (const p of report.providers) {
    const failover = p.failoverMillis === undefined ? "none" : Scenario.formatMillis(p.failoverMillis)
    const mttr = p.mttrMillis === undefined
      ? "none (never recovered after opening)"
      : `${Scenario.formatMillis(p.mttrMillis)} (${p.recoveries} ${p.recoveries === 1 ? "recovery" : "recoveries"})`
    yield* Console.log(`${p.name.padEnd(8)}  failover time: ${failover.padEnd(8)}  MTTR: ${mttr}`)
  }
  const percent = (share: number) => `${(share * 100).toFixed(1)}%`
  yield* Console.log(
    `answered: ${percent(report.answeredRate)} (${report.succeeded} full + ${report.cached} cached + ${
      report.degraded
    } degraded / ${report.requests} requests)`
  )
  yield* Console.log(`full answers: ${percent(report.successRate)} (${report.succeeded} / ${report.requests})`)
})

// The breakers and the registry log their transitions, and the response cache each stale
// answer it serves; the lines above already show them.
NodeRuntime.runMain(program.pipe(Logger.withMinimumLogLevel(LogLevel.Error)))
