/**
 * `npm run bench`: every suite, from one run, inside one Effect program, compiled to
 * JavaScript first (esbuild, no `keepNames`, the libraries loaded as their published
 * JavaScript) so that our code is measured as users run it. Each suite prints a table and
 * writes `.bench/results/<suite>.json` (ignored by git); `npm run bench:record` writes
 * `bench/results/` instead, to commit figures on purpose. Targets print PASS or FAIL; a failed
 * target does not make the run fail (a benchmark is not a test), a case that did not take
 * the path it claims does.
 *
 * `npm run bench -- breaker redis-outage` runs only the suites named.
 *
 * To add a suite, write `bench/<name>.ts` exporting a `Suite` and list it in `suites`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as breaker from "./breaker.js"
import * as breakerMemory from "./breakerMemory.js"
import * as keyedBreakers from "./keyedBreakers.js"
import type { Settings, Suite, Target } from "./harness.js"
import * as redisOutage from "./redisOutage.js"
import * as redisThroughput from "./redisThroughput.js"
import * as sharedBreaker from "./sharedBreaker.js"
import { environment, printSuite, resultsDirectory, writeSuite } from "./report.js"

const suites: ReadonlyArray<Suite> = [
  breaker.suite,
  breakerMemory.suite,
  redisThroughput.suite,
  redisOutage.suite,
  sharedBreaker.suite,
  keyedBreakers.suite
]

/** Fixed here, not read from the environment, so every run measures the same way. */
const settings: Settings = { warmupRounds: 2, rounds: 9, roundMillis: 60 }

const args = process.argv.slice(2)
const record = args.includes("--record")
const names = args.filter((arg) => !arg.startsWith("--"))

const program = Effect.gen(function*() {
  const unknown = names.filter((name) => !suites.some((suite) => suite.name === name))
  if (unknown.length > 0) {
    return yield* Effect.fail(
      `unknown suite ${unknown.join(", ")}; the suites are ${suites.map((suite) => suite.name).join(", ")}`
    )
  }
  const selected = names.length === 0 ? suites : suites.filter((suite) => names.includes(suite.name))
  const env = yield* environment
  yield* Console.log(
    `effect-resilience bench · node ${env.node} · effect ${env.versions["effect"]} · ${env.cpu} × ${env.cpus}` +
      ` · load ${env.loadAverage.join(" ")} · ${env.compiled ? "compiled" : "TypeScript source (not compiled)"}\n`
  )
  const started = Date.now()
  const targets: Array<Target> = []
  for (const suite of selected) {
    const result = yield* Effect.scoped(suite.run(settings))
    yield* printSuite(result, settings)
    const file = yield* writeSuite(result, settings, env, resultsDirectory(record))
    yield* Console.log(`  written to ${file}\n`)
    targets.push(...result.targets)
  }
  const failed = targets.filter((t) => !t.pass).length
  yield* Console.log(
    `${targets.length - failed} of ${targets.length} targets met` +
      ` · ${((Date.now() - started) / 1000).toFixed(1)} s`
  )
})

NodeRuntime.runMain(program.pipe(Effect.provide(NodeContext.layer)))
