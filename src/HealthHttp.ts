/**
 * The `Health` registry over HTTP, as `@effect/platform` routes served by your own
 * `HttpServer`: liveness and readiness probes, the full snapshot, a Server-Sent Events
 * stream of changes, token-protected admin actions on breakers, the Prometheus exposition
 * (when `Prometheus.layer` is provided) and a live dashboard. Every path sits under
 * `prefix` (default none):
 *
 * | Route | Answer |
 * | --- | --- |
 * | `GET /health/live` | 200 while the process serves requests |
 * | `GET /health/ready` | 200, or 503 with the reason while the system is `Critical` or `Emergency` |
 * | `GET /health` | system health, service level, each dependency's and each breaker's state |
 * | `GET /health/resilience` | `Health.status`, Schema-encoded |
 * | `GET /health/stream` | Server-Sent Events: `status`, then `change` + `status` per change, heartbeats |
 * | `POST /admin/circuit-breaker/:name/:action` | `force-open`, `force-closed`, `half-open`, `reset` |
 * | `POST /admin/resilience/force-recovery` | runs every check now (`Health.forceRecovery`) |
 * | `GET /metrics` | the Prometheus exposition, 404 without `Prometheus.layer` |
 * | `GET /dashboard` | a self-contained HTML page, live from `/health/stream` |
 *
 * Admin routes need `Authorization: Bearer <token>`: the `adminToken` option, else
 * `RESILIENCE_ADMIN_TOKEN` (read with `Config.redacted`); without either they answer 404.
 * Refusals are 4xx with a JSON body `{ error, message }`; nothing answers 500.
 *
 * @since 0.1.0
 */
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Health from "./Health.js"
import * as internal from "./internal/healthHttp.js"
import type { InvalidOptions } from "./InvalidOptions.js"

/**
 * The options of `router`, `layer` and `layerConfig`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A path every route is mounted under, such as `"/ops"` (default `""`: at the root). */
  readonly prefix?: string | undefined
  /**
   * The admin token (default: `RESILIENCE_ADMIN_TOKEN`, read with `Config.redacted`). Without
   * one the admin routes answer 404 and a startup log says so. Never empty.
   */
  readonly adminToken?: Redacted.Redacted<string> | undefined
  /** The largest body an admin request may carry, in bytes (default 4096); larger ones get 413. */
  readonly maxBodyBytes?: number | undefined
  /** How often `/health/stream` sends a heartbeat comment (default 15 seconds). */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /**
   * How often `/health/stream` looks for breakers registered since it started, so that
   * their transitions reach it too (default 1 second).
   */
  readonly breakerScanInterval?: Duration.DurationInput | undefined
}

/**
 * A transition of a registered breaker, as `/health/stream` sends it in an `event: change`:
 * `breaker` (its name), `from`, `to`, `at` (epoch milliseconds) and `reason`. It reaches the
 * stream even when its dependency's state stays the same (`HalfOpen` to `Open`).
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerStateChanged extends internal.BreakerStateChanged {}

/**
 * The `data` of an `event: change` on `/health/stream`, as JSON: a change of the registry
 * (`SystemHealthChanged`, `DependencyStateChanged`) or of a breaker (`BreakerStateChanged`).
 * Each is followed by an `event: status` whose `data` is `Health.Status.Encoded`.
 *
 * @example
 * ```ts
 * import type { Health } from "effect-resilience"
 * import type * as HealthHttp from "effect-resilience/HealthHttp"
 *
 * declare const events: EventTarget // new EventSource("/health/stream") in a browser
 *
 * events.addEventListener("change", (event) => {
 *   const change: HealthHttp.StreamChange = JSON.parse((event as MessageEvent).data)
 *   if (change._tag === "BreakerStateChanged") console.log(change.breaker, change.from, "->", change.to)
 * })
 * events.addEventListener("status", (event) => {
 *   const status: Health.Status.Encoded = JSON.parse((event as MessageEvent).data)
 *   console.log(status.health, status.serviceLevel)
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type StreamChange = Health.HealthChange | BreakerStateChanged

/**
 * The routes, built over the `Health` registry in the context (and the metrics exposition,
 * when one is there). Serve them with `HttpServer.serve`, or mount them in a router of
 * your own. Fails with `InvalidOptions` naming the option, or the variable when
 * `RESILIENCE_ADMIN_TOKEN` is set but empty.
 *
 * @example
 * ```ts
 * import { HttpServer } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { Health } from "effect-resilience"
 * import * as HealthHttp from "effect-resilience/HealthHttp"
 * import { createServer } from "node:http"
 *
 * const ServerLive = Layer.unwrapEffect(Effect.map(HealthHttp.router({ prefix: "/ops" }), HttpServer.serve())).pipe(
 *   Layer.provide(Health.layer()),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const router: (
  options?: Options
) => Effect.Effect<HttpRouter.HttpRouter, InvalidOptions | ConfigError.ConfigError, Health.Health> = internal.router

/**
 * Adds the routes to `HttpRouter.Default`, to be served with `HttpRouter.Default.serve()`
 * beside your own routes.
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { Health } from "effect-resilience"
 * import * as HealthHttp from "effect-resilience/HealthHttp"
 * import { createServer } from "node:http"
 *
 * const ServerLive = HttpRouter.Default.serve().pipe(
 *   Layer.provide(HealthHttp.layer()), // admin token from RESILIENCE_ADMIN_TOKEN
 *   Layer.provide(Health.layer({ critical: ["orders"] })),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 *
 * NodeRuntime.runMain(Layer.launch(ServerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (
  options?: Options
) => Layer.Layer<never, InvalidOptions | ConfigError.ConfigError, Health.Health> = internal.layer

/**
 * `layer` with its options read through Effect `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import * as HealthHttp from "effect-resilience/HealthHttp"
 *
 * const HealthHttpLive = HealthHttp.layerConfig({
 *   prefix: Config.string("HEALTH_HTTP_PREFIX").pipe(Config.withDefault("")),
 *   adminToken: Config.redacted("OPS_TOKEN")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: (
  config: Config.Config.Wrap<Options>
) => Layer.Layer<never, InvalidOptions | ConfigError.ConfigError, Health.Health> = internal.layerConfig
