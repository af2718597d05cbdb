import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as MetricLabel from "effect/MetricLabel"
import * as RateLimiter from "effect/RateLimiter"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as RateLimit from "../RateLimit.js"
import * as options from "./options.js"
import * as tracing from "./tracing.js"
import { counter } from "./metric.js"
import { withLabels } from "./metricLabels.js"

/** @internal */
export const TypeId: RateLimit.TypeId = Symbol.for("effect-resilience/RateLimit") as RateLimit.TypeId

/**
 * The rejection of a call by a rate limiter in `reject` mode.
 *
 * @internal
 */
export class RateLimitExceeded extends Data.TaggedError("RateLimitExceeded")<{
  readonly limiter: string
  readonly limit: number
  readonly interval: Duration.Duration
  readonly retryAfter: Duration.Duration
}> {
  override get message(): string {
    return `rate limiter "${this.limiter}" allows ${this.limit} calls per ${
      Duration.format(this.interval)
    }: retry after ${Duration.format(this.retryAfter)}`
  }
}

// -----------------------------------------------------------------------------
// Pure core: (state, now) => [millis to wait (0: admitted), state]
// -----------------------------------------------------------------------------

/**
 * Token bucket, as Effect's `RateLimiter`: `limit` tokens, one more every
 * `ceil(interval / limit)` millis while the bucket is not full. `last` is when the last
 * token was added (or, full, when refilling would start).
 *
 * @internal
 */
export interface TokenBucket {
  readonly tokens: number
  readonly last: number
}

/** @internal */
export const takeToken = (
  state: TokenBucket,
  now: number,
  limit: number,
  millisPerToken: number
): readonly [number, TokenBucket] => {
  let tokens = state.tokens
  let last = state.last
  if (tokens >= limit) {
    last = now
  } else if (now > last) {
    const added = Math.floor((now - last) / millisPerToken)
    tokens = Math.min(limit, tokens + added)
    last = tokens >= limit ? now : last + added * millisPerToken
  }
  if (tokens >= 1) return [0, { tokens: tokens - 1, last }]
  return [Math.max(1, last + millisPerToken - now), { tokens, last }]
}

/**
 * Fixed window, as Effect's `RateLimiter`: a window of `interval` opens with the first call
 * after the previous one closed, and admits `limit` calls.
 *
 * @internal
 */
export interface FixedWindow {
  readonly start: number
  readonly count: number
}

/** @internal */
export const takeWindow = (
  state: FixedWindow,
  now: number,
  limit: number,
  intervalMillis: number
): readonly [number, FixedWindow] => {
  const current = now >= state.start + intervalMillis ? { start: now, count: 0 } : state
  if (current.count < limit) return [0, { start: current.start, count: current.count + 1 }]
  return [Math.max(1, current.start + intervalMillis - now), current]
}

// -----------------------------------------------------------------------------
// Effect shell
// -----------------------------------------------------------------------------

/** @internal */
export const rejectedCounter = counter(
  "effect_resilience_rate_limit_rejected_total",
  "Calls rejected by a rate limiter in reject mode"
)

const algorithmCheck: options.Check<"token-bucket" | "fixed-window"> = options.check(
  Schema.Literal("token-bucket", "fixed-window"),
  "\"token-bucket\" or \"fixed-window\""
)

const modeCheck: options.Check<"wait" | "reject"> = options.check(
  Schema.Literal("wait", "reject"),
  "\"wait\" or \"reject\""
)

/** @internal */
export const validate = (given: RateLimit.RateLimit.Options) =>
  Effect.gen(function*() {
    const module = "RateLimit"
    const input = yield* options.object(module, given, true, "an object { limit, interval, algorithm?, mode?, name? }")
    const name = yield* options.field(module, "name", input.name, options.nonEmptyString, "rate-limit")
    if (input.limit === undefined) {
      return yield* new InvalidOptions({ module, field: "limit", expected: "an integer >= 1", received: undefined })
    }
    const limit = yield* options.field(module, "limit", input.limit, options.integerAtLeast(1), 1)
    if (input.interval === undefined) {
      return yield* new InvalidOptions({
        module,
        field: "interval",
        expected: "a finite positive duration",
        received: undefined
      })
    }
    const interval = yield* options.duration(module, "interval", input.interval, Duration.seconds(1))
    const algorithm = yield* options.field<"token-bucket" | "fixed-window">(
      module,
      "algorithm",
      input.algorithm,
      algorithmCheck,
      "token-bucket"
    )
    const mode = yield* options.field<"wait" | "reject">(module, "mode", input.mode, modeCheck, "wait")
    return { name, limit, interval, algorithm, mode }
  })

/**
 * What names a rejecting limiter.
 *
 * @internal
 */
export interface RejectingSettings {
  readonly name: string
  readonly limit: number
  readonly interval: Duration.Duration
  readonly algorithm: "token-bucket" | "fixed-window"
}

/**
 * How a limiter rejects a call: counted (tagged `limiter=<name>` and with the tags the calling
 * fiber carries, `Effect.tagMetrics`), an event on the caller's span, then `RateLimitExceeded`.
 *
 * @internal
 */
export const rejection = (
  settings: RejectingSettings
): (retryAfter: Duration.Duration) => Effect.Effect<never, RateLimitExceeded> => {
  const { interval, limit, name } = settings
  const countRejected = withLabels([MetricLabel.make("limiter", name)])((labels) =>
    rejectedCounter.unsafeUpdate(1, labels)
  )
  return (retryAfter) =>
    Effect.zipRight(
      countRejected,
      tracing.eventThen("resilience.rate_limit.rejected", () => ({
        "resilience.policy": "rate_limit",
        "resilience.name": name,
        "resilience.outcome": "rejected",
        "resilience.retry_after_ms": Duration.toMillis(retryAfter)
      }), () => Effect.fail(new RateLimitExceeded({ limiter: name, limit, interval, retryAfter })))
    )
}

/**
 * The rejecting limiter of `acquire`.
 *
 * @internal
 */
export const rejecting = (
  settings: RejectingSettings,
  acquire: Effect.Effect<void, RateLimitExceeded>
): RateLimit.RejectingRateLimiter => ({
  [TypeId]: TypeId,
  name: settings.name,
  limit: settings.limit,
  interval: settings.interval,
  algorithm: settings.algorithm,
  acquire,
  run: (effect) => Effect.zipRight(acquire, effect)
})

const makeRejecting = (config: RejectingSettings): Effect.Effect<RateLimit.RejectingRateLimiter> =>
  Effect.gen(function*() {
    const { algorithm, limit } = config
    const intervalMillis = Duration.toMillis(config.interval)
    const reject = rejection(config)
    let take: (now: number) => Effect.Effect<number>
    if (algorithm === "token-bucket") {
      const millisPerToken = Math.ceil(intervalMillis / limit)
      const ref = yield* Ref.make<TokenBucket>({ tokens: limit, last: 0 })
      take = (now) => Ref.modify(ref, (state) => takeToken(state, now, limit, millisPerToken))
    } else {
      const ref = yield* Ref.make<FixedWindow>({ start: Number.NEGATIVE_INFINITY, count: 0 })
      take = (now) => Ref.modify(ref, (state) => takeWindow(state, now, limit, intervalMillis))
    }
    const acquire: Effect.Effect<void, RateLimitExceeded> = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => Effect.flatMap(take(now), (wait) => wait === 0 ? Effect.void : reject(Duration.millis(wait)))
    )
    return rejecting(config, acquire)
  })

/** @internal */
export function make(
  options: RateLimit.RateLimit.Options & { readonly mode: "reject" }
): Effect.Effect<RateLimit.RejectingRateLimiter, InvalidOptions>
/** @internal */
export function make(
  options: RateLimit.RateLimit.Options & { readonly mode?: "wait" | undefined }
): Effect.Effect<RateLimiter.RateLimiter, InvalidOptions, Scope.Scope>
/** @internal */
export function make(
  input: RateLimit.RateLimit.Options
): Effect.Effect<RateLimit.RejectingRateLimiter | RateLimiter.RateLimiter, InvalidOptions, Scope.Scope> {
  return Effect.flatMap(
    validate(input),
    (config): Effect.Effect<RateLimit.RejectingRateLimiter | RateLimiter.RateLimiter, never, Scope.Scope> =>
      config.mode === "reject"
        ? makeRejecting(config)
        : Effect.map(
          RateLimiter.make({ limit: config.limit, interval: config.interval, algorithm: config.algorithm }),
          (limiter) => traceWaits(limiter, config.name)
        )
  )
}

/**
 * Effect's limiter, recording on the caller's span how long a call waited for it
 * (`resilience.rate_limit.waited`). A caller in no span, or one that did not wait, gets the
 * limiter as it is.
 */
const traceWaits = (limiter: RateLimiter.RateLimiter, name: string): RateLimiter.RateLimiter =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    if (tracing.unsafeCurrentSpan(fiber) === undefined) return limiter(effect)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const before = clock.unsafeCurrentTimeMillis()
    return limiter(Effect.suspend(() => {
      const waited = clock.unsafeCurrentTimeMillis() - before
      if (waited > 0) {
        tracing.unsafeEvent(fiber, "resilience.rate_limit.waited", () => ({
          "resilience.policy": "rate_limit",
          "resilience.name": name,
          "resilience.outcome": "waited",
          "resilience.wait_ms": waited
        }))
      }
      return effect
    }))
  })

/** @internal */
export const run = dual<
  (
    limiter: RateLimit.RejectingRateLimiter
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimitExceeded, R>,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    limiter: RateLimit.RejectingRateLimiter
  ) => Effect.Effect<A, E | RateLimitExceeded, R>
>(2, (self, limiter) => limiter.run(self))
