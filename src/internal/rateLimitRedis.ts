/**
 * A rate limit shared by every process that uses the same limiter name: `@effect/experimental`'s
 * `RateLimiter` (its algorithms and errors) over a `RateLimiterStore` on Redis.
 *
 * The store runs the Lua scripts of `@effect/experimental`'s `RateLimiter/Redis` store, on a
 * client this module owns: that store's own client has no error listener (ioredis then prints
 * every connection error as unhandled) and queues commands while Redis is down, so a caller
 * would wait for a server that does not answer. Ours fails fast (no offline queue, no resend,
 * a command timeout) and reconnects in the background.
 *
 * @internal
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as RateLimit from "../RateLimit.js"
import type * as RateLimitRedis from "../RateLimit/Redis.js"
import * as options_ from "./options.js"
import * as rateLimit from "./rateLimit.js"
import * as connection_ from "./redisConnection.js"

const STORE = "RateLimit/Redis.layer"
const MODULE = "RateLimit/Redis"

/** @internal */
export const storeDefaults = {
  ...connection_.storeDefaults,
  keyPrefix: "effect-resilience:rate-limit:",
  connectionName: "effect-resilience-rate-limit"
} as const


// The scripts of @effect/experimental's RateLimiter/Redis store (0.61), unchanged.
const fixedWindowScript = `
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local refillms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local current = tonumber(redis.call("GET", key))

if not current then
  local nextpttl = refillms * tokens
  redis.call("SET", key, tokens, "PX", nextpttl)
  return { tokens, nextpttl }
end

local currentpttl = tonumber(redis.call("PTTL", key) or "0")
local next = current + tokens
if limit and next > limit then
  return { next, currentpttl }
end

local nextpttl = currentpttl + (refillms * tokens)
redis.call("SET", key, next, "PX", nextpttl)
return { next, nextpttl }
`

const tokenBucketScript = `
local key = KEYS[1]
local last_refill_key = key .. ":refill"
local tokens = tonumber(ARGV[1])
local refill_ms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local overflow = ARGV[5] == "1"
local current = tonumber(redis.call("GET", key))
local last_refill = tonumber(redis.call("GET", last_refill_key))

if not current then
  current = limit
  last_refill = now
  redis.call("SET", key, current)
  redis.call("SET", last_refill_key, last_refill)
end

local elapsed = now - last_refill
local refill_amount = math.floor(elapsed / refill_ms)
if refill_amount > 0 then
  current = math.min(current + refill_amount, limit)
  last_refill = last_refill + (refill_amount * refill_ms)
  redis.call("SET", last_refill_key, last_refill)
end

local next = current - tokens
if next < 0 and not overflow then
  redis.call("SET", key, current)
  return next
end

redis.call("SET", key, next)
return next
`

interface ScriptedRedis {
  readonly effectResilienceFixedWindow: (
    key: string,
    tokens: number,
    refillMillis: number,
    limit?: number
  ) => Promise<[number, number]>
  readonly effectResilienceTokenBucket: (
    key: string,
    tokens: number,
    refillMillis: number,
    limit: number,
    now: number,
    overflow: 0 | 1
  ) => Promise<number>
}

/**
 * The store on a client of its own: fail fast (no offline queue, no resend, `commandTimeout`,
 * also enforced around each command), reconnecting in the background forever with a backoff
 * up to `maxReconnectDelay`. Connection errors are logged once per outage, without secrets.
 *
 * @internal
 */
export const makeStore = (
  options?: RateLimitRedis.StoreOptions
): Effect.Effect<RateLimiter.RateLimiterStore["Type"], InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const validated = yield* connection_.validateStore(STORE, options, storeDefaults)
    const { connection } = validated
    const { server } = connection
    const { firstConnection, redis: client } = yield* connection_.acquireClient(connection, {
      label: "rate limit store",
      annotations: { store: "rate-limit", server },
      fixed: connection_.failFast(connection, 0),
      reconnect: "doubling",
      logRepeatedErrors: false,
      quitOnRelease: false
    })
    client.defineCommand("effectResilienceFixedWindow", { numberOfKeys: 1, lua: fixedWindowScript })
    client.defineCommand("effectResilienceTokenBucket", { numberOfKeys: 1, lua: tokenBucketScript })
    // Without an offline queue a command sent before the connection is ready fails: wait for the
    // first attempt, at most `connectTimeout`. An unreachable server is not an error: calls meet
    // `onStoreUnavailable` until the background reconnection succeeds.
    yield* firstConnection(connection.connectTimeout)
    const scripted = client as unknown as ScriptedRedis
    const run = <A>(operation: string, command: () => Promise<A>) =>
      connection_.command(
        connection,
        command,
        (cause) =>
          new RateLimiter.RateLimitStoreError({
            message: `rate limit store at ${server} did not answer ${operation}`,
            cause
          }),
        () =>
          new RateLimiter.RateLimitStoreError({
            message: `rate limit store at ${server} did not answer ${operation} within ${
              Duration.format(connection.commandTimeout)
            }`
          })
      )
    return RateLimiter.RateLimiterStore.of({
      fixedWindow: (options) =>
        run("fixedWindow", () =>
          scripted.effectResilienceFixedWindow(
            `${validated.keyPrefix}${options.key}`,
            options.tokens,
            Duration.toMillis(options.refillRate),
            options.limit
          )),
      tokenBucket: (options) =>
        Effect.clockWith((clock) =>
          run("tokenBucket", () =>
            scripted.effectResilienceTokenBucket(
              `${validated.keyPrefix}${options.key}`,
              options.tokens,
              Duration.toMillis(options.refillRate),
              options.limit,
              clock.unsafeCurrentTimeMillis(),
              options.allowOverflow ? 1 : 0
            ))
        )
    })
  })

/** @internal */
export const layer = (
  options?: RateLimitRedis.StoreOptions
): Layer.Layer<RateLimiter.RateLimiterStore, InvalidOptions> =>
  Layer.scoped(RateLimiter.RateLimiterStore, makeStore(options))

/**
 * `REDIS_URL` (redacted), `REDIS_COMMAND_TIMEOUT` (a bare number is seconds) and
 * `REDIS_RATE_LIMIT_KEY_PREFIX`, each optional.
 *
 * @internal
 */
export const config: Config.Config<RateLimitRedis.StoreOptions> = connection_.storeConfig(
  "REDIS_RATE_LIMIT_KEY_PREFIX"
)

/** @internal */
export const layerConfig = (
  defaults?: RateLimitRedis.StoreOptions
): Layer.Layer<RateLimiter.RateLimiterStore, InvalidOptions | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config, (read) => layer({ ...defaults, ...read })))

// -----------------------------------------------------------------------------
// Limiter
// -----------------------------------------------------------------------------

const storeFailureCheck: options_.Check<"admit" | "reject"> = options_.check(
  Schema.Literal("admit", "reject"),
  "\"admit\" or \"reject\""
)

/** @internal */
export const make = (
  input: RateLimitRedis.Options
): Effect.Effect<RateLimit.RejectingRateLimiter, InvalidOptions, RateLimiter.RateLimiterStore> =>
  Effect.gen(function*() {
    if (typeof input === "object" && input !== null && "mode" in input && input.mode !== undefined) {
      return yield* new InvalidOptions({
        module: MODULE,
        field: "mode",
        expected: "no mode: a limit shared on Redis rejects (RateLimitExceeded) rather than waits",
        received: input.mode
      })
    }
    const { algorithm, interval, limit, name } = yield* rateLimit.validate(input)
    const onStoreUnavailable = yield* options_.field(
      MODULE,
      "onStoreUnavailable",
      input.onStoreUnavailable,
      storeFailureCheck,
      "admit"
    )
    const limiter = yield* RateLimiter.make
    const settings = { name, limit, interval, algorithm }
    // As the in-process limiter: counted, an event on the caller's span, then the same error.
    const reject = rateLimit.rejection(settings)
    // Refused while the store does not answer: retry after one interval, when the window has passed.
    const whenUnavailable: Effect.Effect<void, rateLimit.RateLimitExceeded> = onStoreUnavailable === "admit"
      ? Effect.void
      : reject(interval)
    const acquire: Effect.Effect<void, rateLimit.RateLimitExceeded> = limiter.consume({
      algorithm,
      onExceeded: "fail",
      window: interval,
      limit,
      key: name
    }).pipe(
      Effect.matchEffect({
        onFailure: (error) => error.reason === "Exceeded" ? reject(error.retryAfter) : whenUnavailable,
        onSuccess: () => Effect.void
      })
    )
    return rateLimit.rejecting(settings, acquire)
  })
