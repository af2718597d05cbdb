/**
 * `npm run example:llm-failover`: failover across three LLM providers over real HTTP.
 *
 * Three "providers" (alpha, the primary; beta; gamma) are served by one HTTP server on
 * loopback. On a 20 second timeline they answer, slow down, answer 429 with Retry-After,
 * fail with 500s and go down; from 9 to 10 seconds all three are unusable at once, so some
 * requests fail. A client sends a request every 100 ms; each provider call is
 * retried by error class outside its own breaker, outside a timeout per attempt, and each
 * request fails over across the providers in order, skipping those whose breaker is open.
 * At the end it prints, per provider, calls, failures and breaker state, the failover time
 * (from the primary's first failure to the first answer through the second provider) and
 * the overall success rate.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scenario from "./llm/scenario.js"
import type * as Server from "./llm/server.js"

const timeline: Server.Timeline = {
  alpha: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "80 millis" } },
    { at: "5 seconds", behaviour: { _tag: "Down" } },
    { at: "13 seconds", behaviour: { _tag: "Healthy", latency: "80 millis" } }
  ],
  beta: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "150 millis" } },
    { at: "8 seconds", behaviour: { _tag: "RateLimited", retryAfterSeconds: 1 } },
    { at: "9 seconds", behaviour: { _tag: "RateLimited", retryAfterSeconds: 5 } },
    { at: "11 seconds", behaviour: { _tag: "Flaky", latency: "150 millis", failEvery: 4 } },
    { at: "15 seconds", behaviour: { _tag: "Healthy", latency: "150 millis" } }
  ],
  gamma: [
    { at: 0, behaviour: { _tag: "Healthy", latency: "300 millis" } },
    { at: "7 seconds", behaviour: { _tag: "Healthy", latency: "2500 millis" } },
    { at: "10 seconds", behaviour: { _tag: "Healthy", latency: "300 millis" } },
    { at: "16 seconds", behaviour: { _tag: "Failing" } },
    { at: "18 seconds", behaviour: { _tag: "Healthy", latency: "300 millis" } }
  ]
}

const pad = (value: string | number, width: number) => String(value).padStart(width)

const program = Effect.gen(function*() {
  yield* Console.log("LLM failover: alpha (primary), beta, gamma on one loopback HTTP server")
  yield* Console.log("a request every 100 ms for 20 s; each request may take up to 6 s, failover included\n")
  const report = yield* Scenario.run({
    timeline,
    providers: [Scenario.provider("alpha"), Scenario.provider("beta"), Scenario.provider("gamma")],
    requests: 200,
    interval: "100 millis",
    deadline: "6 seconds",
    log: (line) => Console.log(line)
  })

  yield* Console.log("\nsecond  sent  alpha  beta  gamma  failed")
  for (let second = 0; second * 10 < report.outcomes.length; second++) {
    // Ten requests a second, in the order they were sent.
    const sent = report.outcomes.slice(second * 10, second * 10 + 10)
    const by = (name: string | undefined) => sent.filter((o) => o.provider === name).length
    yield* Console.log(
      `${pad(second, 6)}  ${pad(sent.length, 4)}  ${pad(by("alpha"), 5)}  ${pad(by("beta"), 4)}  ${
        pad(by("gamma"), 5)
      }  ${pad(by(undefined), 6)}`
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
  if (report.failoverMillis !== undefined && report.primaryFirstFailureAt !== undefined) {
    yield* Console.log(
      `\nfailover time: ${Scenario.formatMillis(report.failoverMillis)} (alpha first failed at ${
        (report.primaryFirstFailureAt / 1000).toFixed(2)
      } s, beta answered at ${((report.failoverAt ?? 0) / 1000).toFixed(2)} s)`
    )
  } else {
    yield* Console.log("\nfailover time: none (the primary never failed, or beta never answered after it did)")
  }
  yield* Console.log(
    `success rate: ${(report.successRate * 100).toFixed(1)}% (${report.succeeded} / ${report.requests} requests)`
  )
})

// The breakers log their transitions at Info; the lines above already show them.
NodeRuntime.runMain(program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
