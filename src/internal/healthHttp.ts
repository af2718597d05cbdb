/**
 * The HTTP face of the health registry: read-only health routes, a Server-Sent Events
 * stream of changes, token-protected admin routes, the metrics exposition and the
 * dashboard page, as one `HttpRouter` whose handlers close over the registry they were
 * built with. Every refusal is a 4xx with a JSON body; no handler can fail.
 *
 * @internal
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import * as Health from "../Health.js"
import type * as HealthHttp from "../HealthHttp.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { dashboardPage } from "./dashboard.js"
import { MetricsExposition } from "./metricsExposition.js"
import * as Options from "./options.js"

const MODULE = "HealthHttp"

interface Validated extends Omit<Resolved, "adminToken"> {
  readonly adminToken: Redacted.Redacted<string> | undefined
}

interface Resolved {
  readonly prefix: string
  readonly adminToken: Option.Option<Redacted.Redacted<string>>
  readonly maxBodyBytes: number
  readonly heartbeatInterval: Duration.Duration
  readonly breakerScanInterval: Duration.Duration
}

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

const prefixCheck = Options.check(
  Schema.String.pipe(Schema.pattern(/^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*$/)),
  "\"\" or a path such as \"/ops\" (segments of URL path characters, no trailing slash)"
)

const validate = (
  options: HealthHttp.Options | undefined
): Effect.Effect<Validated, InvalidOptions> =>
  Effect.gen(function*() {
    const given = yield* Options.object(MODULE, options, false)
    const prefix = yield* Options.field(MODULE, "prefix", given.prefix, prefixCheck, "")
    const maxBodyBytes = yield* Options.field(
      MODULE,
      "maxBodyBytes",
      given.maxBodyBytes,
      Options.integerAtLeast(0),
      4096
    )
    const heartbeatInterval = yield* Options.duration(
      MODULE,
      "heartbeatInterval",
      given.heartbeatInterval,
      Duration.seconds(15)
    )
    const breakerScanInterval = yield* Options.duration(
      MODULE,
      "breakerScanInterval",
      given.breakerScanInterval,
      Duration.seconds(1)
    )
    const adminToken = given.adminToken
    if (adminToken !== undefined) {
      if (!Redacted.isRedacted(adminToken) || typeof Redacted.value(adminToken) !== "string") {
        return yield* new InvalidOptions({
          module: MODULE,
          field: "adminToken",
          expected: "a Redacted string (Redacted.make(token))",
          received: "<not a Redacted string>"
        })
      }
    }
    return { prefix, maxBodyBytes, heartbeatInterval, breakerScanInterval, adminToken }
  })

/**
 * A token a client can send in a header as it is: printable ASCII, no spaces (an
 * `Authorization` header is Latin-1 and a space would end the token).
 */
const usableToken = /^[\x21-\x7e]+$/

const checkToken = (
  field: string,
  token: Redacted.Redacted<string>
): Effect.Effect<Option.Option<Redacted.Redacted<string>>, InvalidOptions> =>
  usableToken.test(Redacted.value(token))
    ? Effect.succeed(Option.some(token))
    : Effect.fail(
      new InvalidOptions({
        module: MODULE,
        field,
        expected: "a non-empty token of printable ASCII characters without spaces",
        // never the token itself
        received: "<redacted>"
      })
    )

/** The token: the option, else `RESILIENCE_ADMIN_TOKEN`, else none (admin off). */
const resolveToken = (
  given: Redacted.Redacted<string> | undefined
): Effect.Effect<Option.Option<Redacted.Redacted<string>>, InvalidOptions | ConfigError.ConfigError> =>
  given !== undefined
    ? checkToken("adminToken", given)
    : Effect.flatMap(Config.option(Config.redacted("RESILIENCE_ADMIN_TOKEN")), (token) =>
      Option.isSome(token) ? checkToken("RESILIENCE_ADMIN_TOKEN", token.value) : Effect.succeed(token))

// -----------------------------------------------------------------------------
// responses
// -----------------------------------------------------------------------------

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store", ...headers } })

const refusal = (status: number, error: string, message: string, extra: Record<string, unknown> = {}) =>
  json({ error, message, ...extra }, status)

const methodNotAllowed = (method: string, allowed: ReadonlyArray<string>) =>
  json(
    { error: "MethodNotAllowed", message: `${method} is not allowed here; use ${allowed.join(" or ")}`, allowed },
    405,
    { allow: allowed.join(", ") }
  )

/** One route for every method of a path: the wrong method gets a 405 rather than a bare 404. */
const onPath = <E, R>(
  path: HttpRouter.PathInput,
  allowed: ReadonlyArray<"GET" | "POST">,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  HttpRouter.makeRoute(
    "*",
    path,
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const method = request.method === "HEAD" ? "GET" : request.method
      return (allowed as ReadonlyArray<string>).includes(method)
        ? handler
        : Effect.succeed(methodNotAllowed(request.method, allowed))
    })
  )

// -----------------------------------------------------------------------------
// health
// -----------------------------------------------------------------------------

const encodeStatus = Schema.encodeSync(Health.Status)

/** The names of the breakers a snapshot holds, each once, in order. */
const breakerNames = (status: Health.Status): ReadonlyArray<string> =>
  Array.from(new Set(status.dependencies.flatMap((dependency) => dependency.breakers.map((breaker) => breaker.name))))

/** Why the system is not ready, in a sentence a person on call can act on. */
const notReadyReason = (status: Health.Status): { readonly reason: string; readonly down: ReadonlyArray<string> } => {
  const down = status.dependencies.filter((dependency) => dependency.state === "Down")
  const criticalDown = down.filter((dependency) => dependency.critical).map((dependency) => dependency.name)
  const quoted = (names: ReadonlyArray<string>) => names.map((name) => `"${name}"`).join(", ")
  const share = `${Math.round(status.operational * 100)}% of dependencies operational`
  const reason = criticalDown.length > 1
    ? `${status.health}: critical dependencies ${quoted(criticalDown)} are down; ${share}`
    : criticalDown.length === 1
    ? `${status.health}: critical dependency ${quoted(criticalDown)} is down; ${share}`
    : `${status.health}: ${share} (less than 50%)`
  return { reason, down: down.map((dependency) => dependency.name) }
}

/** Each breaker's state in the snapshot, by name. */
const breakerStates = (status: Health.Status): Record<string, CircuitBreaker.State> =>
  Object.fromEntries(
    status.dependencies.flatMap((dependency) => dependency.breakers.map((breaker) => [breaker.name, breaker.state]))
  )

// -----------------------------------------------------------------------------
// server-sent events
// -----------------------------------------------------------------------------

/** @internal */
export interface BreakerStateChanged {
  readonly _tag: "BreakerStateChanged"
  readonly breaker: string
  readonly from: CircuitBreaker.State
  readonly to: CircuitBreaker.State
  readonly at: number
  readonly reason: CircuitBreaker.TransitionReason
}

/**
 * One change on the stream: of the registry, or of a breaker (which may leave its
 * dependency's state as it was).
 *
 * @internal
 */
export type StreamChange = Health.HealthChange | BreakerStateChanged

type Refresh = typeof refresh
const refresh = Symbol.for("effect-resilience/HealthHttp/Refresh")

/** Which dependencies and breakers a snapshot holds, as one comparable string. */
const membersOf = (status: Health.Status): string =>
  JSON.stringify([status.dependencies.map((dependency) => dependency.name), breakerNames(status)])

const sseEvent = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/**
 * The event stream of one client. Subscriptions are taken in the stream's scope before the
 * first status is read, so no change falls between the snapshot and the first change. The
 * scope closes when the client goes away (the server interrupts the response), ending every
 * fiber started here.
 */
const eventStream = (health: Health.HealthService, resolved: Resolved): Stream.Stream<string> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    // A change, or `Refresh`: the set of dependencies changed (a registration is no change).
    // Bounded: a client that cannot keep up loses its oldest changes, never the fresh status
    // that follows them.
    const queue = yield* Effect.acquireRelease(Queue.sliding<StreamChange | Refresh>(1024), Queue.shutdown)
    const registry = yield* health.subscribe
    yield* registry.pipe(Stream.runForEach((change) => Queue.offer(queue, change)), Effect.forkScoped)

    // Breakers whose transitions are followed, by identity: a name registered again with a
    // new breaker is followed again.
    const followed = yield* Ref.make<ReadonlySet<CircuitBreaker.CircuitBreaker>>(new Set())
    const follow = (status: Health.Status) =>
      Effect.forEach(breakerNames(status), (name) =>
        health.breaker(name).pipe(
          Effect.flatMap((breaker) =>
            Effect.flatMap(
              Ref.modify(followed, (set) => set.has(breaker) ? [false, set] : [true, new Set([...set, breaker])]),
              (isNew) =>
                isNew
                  ? Effect.flatMap(breaker.subscribe, (changes) =>
                    changes.pipe(
                      Stream.runForEach((change) =>
                        Queue.offer(queue, {
                          _tag: "BreakerStateChanged",
                          breaker: change.breaker,
                          from: change.from,
                          to: change.to,
                          at: change.at,
                          reason: change.reason
                        })
                      ),
                      Effect.forkScoped
                    ))
                  : Effect.void
            )
          ),
          Effect.catchAll(() => Effect.void)
        ), { discard: true })

    // Follow first, then read the snapshot sent first: no breaker's transition falls between.
    yield* Effect.flatMap(health.status, follow)
    const first = yield* health.status
    // Dependencies and breakers registered (or removed) later are found by a scan: a read of
    // the registry, which also observes lazy Open -> HalfOpen transitions.
    const members = yield* Ref.make(membersOf(first))
    yield* health.status.pipe(
      Effect.tap(follow),
      Effect.flatMap((status) => Ref.getAndSet(members, membersOf(status))),
      Effect.flatMap((before) =>
        Effect.flatMap(Ref.get(members), (now) => now === before ? Effect.void : Queue.offer(queue, refresh))
      ),
      Effect.repeat(Schedule.spaced(resolved.breakerScanInterval)),
      Effect.forkScoped
    )

    const changes = Stream.fromQueue(queue).pipe(
      Stream.mapChunksEffect((chunk) =>
        Effect.map(health.status, (status) =>
          Chunk.append(
            Chunk.filterMap(chunk, (item) =>
              item === refresh ? Option.none() : Option.some(sseEvent("change", item))
            ),
            sseEvent("status", encodeStatus(status))
          )
        )
      )
    )
    const heartbeat = Stream.fromSchedule(Schedule.spaced(resolved.heartbeatInterval)).pipe(
      Stream.map(() => ": heartbeat\n\n")
    )
    return Stream.make(`retry: 2000\n\n${sseEvent("status", encodeStatus(first))}`).pipe(
      Stream.concat(Stream.merge(changes, heartbeat))
    )
  }))

// -----------------------------------------------------------------------------
// admin
// -----------------------------------------------------------------------------

const breakerActions = {
  "force-open": (breaker: CircuitBreaker.CircuitBreaker) => breaker.forceOpen,
  "force-closed": (breaker: CircuitBreaker.CircuitBreaker) => breaker.forceClosed,
  "half-open": (breaker: CircuitBreaker.CircuitBreaker) => breaker.halfOpen,
  "reset": (breaker: CircuitBreaker.CircuitBreaker) => breaker.reset
} as const

type BreakerAction = keyof typeof breakerActions

const isBreakerAction = (action: string): action is BreakerAction => Object.hasOwn(breakerActions, action)

const digest = (text: string): Buffer => Crypto.createHash("sha256").update(text, "utf8").digest()

/** Compares in constant time: both sides are hashed to the same length first. */
const tokenMatches = (expected: Buffer, given: string): boolean => Crypto.timingSafeEqual(expected, digest(given))

const bearer = (authorization: string | undefined): string | undefined => {
  if (authorization === undefined) return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)
  return match === null ? undefined : match[1]
}

/**
 * Logs an admin request (with the client's address when the server knows it) and puts the
 * same facts on the request's span, for an audit trail in logs and traces alike.
 */
const logAdmin = (
  level: "Info" | "Warning",
  message: string,
  annotations: { readonly action: string; readonly breaker?: string; readonly outcome: string }
) =>
  Effect.flatMap(Effect.serviceOption(HttpServerRequest.HttpServerRequest), (request) => {
    const client = Option.flatMap(request, (request) => request.remoteAddress)
    const all = Option.isSome(client) ? { ...annotations, client: client.value } : annotations
    return Effect.zipRight(
      Effect.annotateCurrentSpan({
        "resilience.admin.action": annotations.action,
        "resilience.admin.outcome": annotations.outcome,
        ...(annotations.breaker === undefined ? {} : { "resilience.name": annotations.breaker })
      }),
      (level === "Info" ? Effect.logInfo(message) : Effect.logWarning(message)).pipe(Effect.annotateLogs(all))
    )
  })

/**
 * The gate of every admin route, in order: admin off (404), wrong method (405), no or wrong
 * token (401), a body too large (413) or of unknown length (411). Nothing has changed when any of them answers.
 */
const guarded = (
  resolved: Resolved,
  expectedDigest: Option.Option<Buffer>,
  action: string,
  breaker: string | undefined,
  run: Effect.Effect<HttpServerResponse.HttpServerResponse>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    if (Option.isNone(expectedDigest)) {
      return refusal(404, "AdminDisabled", "admin routes are off: no admin token is configured")
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.method !== "POST") return methodNotAllowed(request.method, ["POST"])
    const annotations = { action, outcome: "unauthorized", ...(breaker === undefined ? {} : { breaker }) }
    const token = bearer(request.headers["authorization"])
    if (token === undefined) {
      yield* logAdmin("Warning", "HealthHttp: admin request without a bearer token refused", annotations)
      return json(
        { error: "Unauthorized", message: "an Authorization: Bearer <token> header is required" },
        401,
        { "www-authenticate": "Bearer" }
      )
    }
    if (!tokenMatches(expectedDigest.value, token)) {
      yield* logAdmin("Warning", "HealthHttp: admin request with a wrong token refused", annotations)
      return json({ error: "Unauthorized", message: "the bearer token is not the admin token" }, 401, {
        "www-authenticate": "Bearer error=\"invalid_token\""
      })
    }
    // The body is never read (no admin action takes one), only bounded: Node discards it.
    const declared = request.headers["content-length"]
    if (declared === undefined && request.headers["transfer-encoding"] !== undefined) {
      return refusal(411, "LengthRequired", "an admin request with a body must give its Content-Length", {
        maxBodyBytes: resolved.maxBodyBytes
      })
    }
    const length = Number(declared ?? "0")
    if (!Number.isInteger(length) || length < 0 || length > resolved.maxBodyBytes) {
      return refusal(413, "PayloadTooLarge", `admin requests carry at most ${resolved.maxBodyBytes} bytes of body`, {
        maxBodyBytes: resolved.maxBodyBytes
      })
    }
    return yield* run
  })

// -----------------------------------------------------------------------------
// router
// -----------------------------------------------------------------------------

/** @internal */
export const router = (
  options?: HealthHttp.Options
): Effect.Effect<HttpRouter.HttpRouter, InvalidOptions | ConfigError.ConfigError, Health.Health> =>
  Effect.gen(function*() {
    const validated = yield* validate(options)
    const adminToken = yield* resolveToken(validated.adminToken)
    const resolved: Resolved = { ...validated, adminToken }
    const health = yield* Health.Health
    const exposition = yield* Effect.serviceOption(MetricsExposition)
    const expectedDigest = Option.map(adminToken, (token) => digest(Redacted.value(token)))
    yield* Option.isNone(adminToken)
      ? Effect.logInfo(
        "HealthHttp: admin routes are off (set RESILIENCE_ADMIN_TOKEN or the adminToken option to turn them on)"
      )
      : Effect.logInfo(`HealthHttp: admin routes are on under ${resolved.prefix}/admin, behind the bearer token`)

    const live = json({ status: "live" })

    const ready = Effect.map(health.status, (status) => {
      const isReady = status.health !== "Critical" && status.health !== "Emergency"
      return isReady
        ? json({ ready: true, health: status.health, serviceLevel: status.serviceLevel })
        : json(
          { ready: false, health: status.health, serviceLevel: status.serviceLevel, ...notReadyReason(status) },
          503
        )
    })

    const summary = Effect.map(health.status, (status) =>
      json({
        health: status.health,
        serviceLevel: status.serviceLevel,
        readOnly: status.readOnly,
        dependencies: Object.fromEntries(status.dependencies.map((dependency) => [dependency.name, dependency.state])),
        breakers: breakerStates(status)
      }))

    const resilience = Effect.map(health.status, (status) => json(encodeStatus(status)))

    const streamHeaders = { "cache-control": "no-cache", "x-accel-buffering": "no" }
    const stream = Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
      request.method === "HEAD"
        ? HttpServerResponse.empty({ status: 200, headers: { ...streamHeaders, "content-type": "text/event-stream" } })
        : HttpServerResponse.stream(Stream.encodeText(eventStream(health, resolved)), {
          contentType: "text/event-stream",
          headers: streamHeaders
        }))

    const metrics = Effect.map(
      Effect.serviceOption(MetricsExposition),
      (fromRequest) => Option.orElse(fromRequest, () => exposition)
    ).pipe(Effect.flatMap(Option.match({
      onNone: () =>
        Effect.succeed(refusal(
          404,
          "MetricsNotProvided",
          "no metrics exposition in the environment: provide Prometheus.layer (effect-resilience/Prometheus)"
        )),
      onSome: (service) =>
        Effect.map(service.render, (text) => HttpServerResponse.text(text, { contentType: service.contentType }))
    })))

    // The page is made once: it depends on the prefix only. It holds admin buttons, so no
    // other site may frame it (frame-ancestors works only as a header, not in the page's meta).
    const page = HttpServerResponse.text(dashboardPage({ basePath: resolved.prefix }), {
      contentType: "text/html; charset=utf-8",
      headers: {
        "cache-control": "no-cache",
        "content-security-policy": "frame-ancestors 'none'",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff"
      }
    })

    const breakerAdmin = Effect.gen(function*() {
      const params = yield* HttpRouter.params
      const name = params["name"] ?? ""
      const action = params["action"] ?? ""
      return yield* guarded(
        resolved,
        expectedDigest,
        action,
        name,
        Effect.gen(function*() {
          if (!isBreakerAction(action)) {
            return refusal(400, "UnknownAction", `unknown action "${action}"`, { actions: Object.keys(breakerActions) })
          }
          const found = yield* Effect.either(health.breaker(name))
          if (Either.isLeft(found)) {
            yield* logAdmin("Warning", "HealthHttp: admin action on an unknown breaker", {
              action,
              breaker: name,
              outcome: "not found"
            })
            return refusal(404, "BreakerNotFound", `no breaker named "${name}" is registered`, { breaker: name })
          }
          const breaker = found.right
          const from = yield* breaker.state
          yield* breakerActions[action](breaker)
          const to = yield* breaker.state
          yield* logAdmin("Info", `HealthHttp: admin ${action} on breaker "${name}": ${from} -> ${to}`, {
            action,
            breaker: name,
            outcome: "done"
          })
          return json({ breaker: breaker.name, action, from, to })
        })
      )
    })

    const resilienceAdmin = Effect.gen(function*() {
      const params = yield* HttpRouter.params
      const action = params["action"] ?? ""
      return yield* guarded(
        resolved,
        expectedDigest,
        action,
        undefined,
        Effect.gen(function*() {
          if (action !== "force-recovery") {
            return refusal(400, "UnknownAction", `unknown action "${action}"`, { actions: ["force-recovery"] })
          }
          const report = yield* health.forceRecovery
          yield* logAdmin(
            "Info",
            `HealthHttp: admin force-recovery: ${report.passed.length} checks passed, ${report.failed.length} ` +
              `failed, ${report.halfOpened.length} breakers half-opened`,
            { action, outcome: "done" }
          )
          return json({ action, ...report })
        })
      )
    })

    // Any other admin path: behind the same gate, so that probing reveals nothing without the token.
    const otherAdmin = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      guarded(
        resolved,
        expectedDigest,
        "unknown",
        undefined,
        Effect.succeed(refusal(404, "UnknownAdminRoute", `no admin route at ${request.url}`, {
          routes: [
            "POST /admin/circuit-breaker/:name/{force-open,force-closed,half-open,reset}",
            "POST /admin/resilience/force-recovery"
          ]
        }))
      ))

    const routes = HttpRouter.fromIterable([
      onPath("/health/live", ["GET"], Effect.succeed(live)),
      onPath("/health/ready", ["GET"], ready),
      onPath("/health", ["GET"], summary),
      onPath("/health/resilience", ["GET"], resilience),
      onPath("/health/stream", ["GET"], stream),
      onPath("/metrics", ["GET"], metrics),
      onPath("/dashboard", ["GET"], Effect.succeed(page)),
      HttpRouter.makeRoute("*", "/admin/circuit-breaker/:name/:action", breakerAdmin),
      HttpRouter.makeRoute("*", "/admin/resilience/:action", resilienceAdmin),
      HttpRouter.makeRoute("*", "/admin/*", otherAdmin)
    ])
    return resolved.prefix === "" ? routes : HttpRouter.prefixAll(routes, resolved.prefix as HttpRouter.PathInput)
  })

/** @internal */
export const layer = (
  options?: HealthHttp.Options
): Layer.Layer<never, InvalidOptions | ConfigError.ConfigError, Health.Health> =>
  HttpRouter.Default.use((service) => Effect.flatMap(router(options), service.concat))

/** @internal */
export const layerConfig = (
  config: Config.Config.Wrap<HealthHttp.Options>
): Layer.Layer<never, InvalidOptions | ConfigError.ConfigError, Health.Health> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
