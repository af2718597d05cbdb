/**
 * One worker process of `npm run example:fleet`: `FLEET_FIBERS` fibers call the dependency
 * at `FLEET_TARGET` for `FLEET_DURATION_MILLIS` through a breaker, local (`FLEET_MODE=local`)
 * or shared on Redis (`FLEET_MODE=shared`, `REDIS_URL`, `FLEET_BREAKER` names it).
 *
 * Starts calling when a line arrives on stdin. Prints, one per line: `ready`, `transition <at>
 * <from> <to>`, `stopped <at>` (its first rejection), `probe <epoch>` (a shared probe),
 * `caller-error <message>` (an error that is neither the dependency's nor a rejection: there
 * must be none), and at the end `done calls=<n> rejected=<n> errors=<n>`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { CircuitBreaker } from "effect-resilience"
import * as SharedCircuitBreaker from "effect-resilience/CircuitBreaker/Redis"

const env = (name: string, fallback: string): string => process.env[name] ?? fallback

const mode = env("FLEET_MODE", "local")
const target = env("FLEET_TARGET", "http://127.0.0.1:9/")
const worker = env("FLEET_WORKER", "w0")
const fibers = Number(env("FLEET_FIBERS", "4"))
const durationMillis = Number(env("FLEET_DURATION_MILLIS", "6000"))
const openMillis = Number(env("FLEET_OPEN_MILLIS", "250"))
/** Resolves when the parent says go (a line on stdin), so that every worker starts at once. */
const go = new Promise<void>((resolve) => {
  if (process.stdin.isTTY) return resolve()
  process.stdin.once("data", () => resolve())
  process.stdin.once("end", () => resolve())
})

const print = (line: string) => {
  process.stdout.write(`${line}\n`)
}

class DependencyDown extends Error {
  readonly _tag = "DependencyDown"
}

const callDependency = Effect.tryPromise({
  try: async (signal) => {
    const response = await fetch(target, { headers: { "x-worker": worker }, signal })
    await response.arrayBuffer()
    if (response.status !== 200) throw new DependencyDown(`status ${response.status}`)
  },
  catch: (error) => error instanceof DependencyDown ? error : new DependencyDown(String(error))
}).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new DependencyDown("timed out") }))

const options: SharedCircuitBreaker.Options = {
  name: env("FLEET_BREAKER", "fleet-dependency"),
  failureThreshold: 5,
  successThreshold: 1,
  halfOpenMaxCalls: 1,
  resetTimeout: Duration.millis(openMillis),
  shared: { minimumCalls: 10, failureRateThreshold: 0.5, probeLease: "2 seconds" }
}

let calls = 0
let rejected = 0
let errors = 0

const program = Effect.gen(function*() {
  const breaker: CircuitBreaker.CircuitBreaker = mode === "shared"
    ? yield* SharedCircuitBreaker.make(options)
    : yield* CircuitBreaker.make(options)
  const changes = yield* breaker.subscribe
  yield* Effect.forkScoped(
    Stream.runForEach(changes, (change) =>
      Effect.sync(() => print(`transition ${change.at} ${change.from} ${change.to}`)))
  )
  const call = Effect.gen(function*() {
    const probe = yield* SharedCircuitBreaker.currentProbe
    if (Option.isSome(probe)) print(`probe ${probe.value.epoch}`)
    calls++
    return yield* callDependency
  })
  const loop = Effect.gen(function*() {
    const end = Date.now() + durationMillis
    while (Date.now() < end) {
      const result = yield* Effect.either(breaker.protect(call))
      if (result._tag === "Left" && result.left instanceof CircuitBreaker.CircuitBreakerOpen) {
        if (rejected++ === 0) print(`stopped ${Date.now()}`)
        yield* Effect.sleep(Duration.millis(Math.min(50, Math.max(5, Duration.toMillis(result.left.retryAfter)))))
      } else if (result._tag === "Left" && !(result.left instanceof DependencyDown)) {
        errors++
        print(`caller-error ${String(result.left)}`)
        yield* Effect.sleep("5 millis")
      } else {
        yield* Effect.sleep("5 millis")
      }
    }
  }).pipe(Effect.catchAllDefect((defect) =>
    Effect.sync(() => {
      errors++
      print(`caller-error defect ${String(defect)}`)
    })
  ))
  print("ready")
  yield* Effect.promise(() => go)
  process.stdin.pause()
  yield* Effect.all(Array.from({ length: fibers }, () => loop), { concurrency: "unbounded", discard: true })
  print(`done calls=${calls} rejected=${rejected} errors=${errors}`)
})

const Store: Layer.Layer<SharedCircuitBreaker.Store, unknown> = mode === "shared"
  ? SharedCircuitBreaker.layerConfig({ commandTimeout: "100 millis" })
  : Layer.empty as unknown as Layer.Layer<SharedCircuitBreaker.Store>

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Store), Logger.withMinimumLogLevel(LogLevel.None))).then(
  () => process.exit(0),
  (error) => {
    print(`caller-error fatal ${String(error)}`)
    process.exit(1)
  }
)
