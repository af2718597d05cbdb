/**
 * `npm run bench`: every suite, from one run, inside one Effect program. Each suite prints a
 * table and writes `bench/results/<suite>.json`. Targets print PASS or FAIL; a failed target
 * does not make the run fail (a benchmark is not a test), a case that did not take the path
 * it claims does.
 *
 * To add a suite, write `bench/<name>.ts` exporting a `Suite` and list it in `suites`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as breaker from "./breaker.js"
import type { Settings, Suite, Target } from "./harness.js"
import * as redisOutage from "./redisOutage.js"
import { environment, printSuite, writeSuite } from "./report.js"

const suites: ReadonlyArray<Suite> = [breaker.suite, redisOutage.suite]

/** Fixed here, not read from the environment, so every run measures the same way. */
const settings: Settings = { warmupRounds: 2, rounds: 9, roundMillis: 60 }

const program = Effect.gen(function*() {
  const env = yield* environment
  yield* Console.log(
    `effect-resilience bench · node ${env.node} · effect ${env.versions["effect"]} · ${env.cpu} × ${env.cpus}` +
      ` · load ${env.loadAverage.join(" ")}\n`
  )
  const started = Date.now()
  const targets: Array<Target> = []
  for (const suite of suites) {
    const result = yield* Effect.scoped(suite.run(settings))
    yield* printSuite(result, settings)
    const file = yield* writeSuite(result, settings, env)
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
