/**
 * Every Effect metric of the program in the Prometheus text format, for `GET /metrics`
 * (`HealthHttp` serves it when this layer is provided). The metrics leave Effect through
 * `@effect/opentelemetry`'s bridge (Effect's metric registry as an OpenTelemetry
 * `MetricProducer`) and are written by `@opentelemetry/exporter-prometheus`'s serializer.
 *
 * When a `Health` registry is in the context where the layer is built, each scrape also
 * reads it and reports, per registered dependency and breaker, their state, failure ratio,
 * transitions, MTTR, cache degradation, the system health and the service level: labels
 * come from registered names only, so their sets stay bounded.
 *
 * Subpath `effect-resilience/Prometheus`; peer dependencies `@effect/opentelemetry`,
 * `@opentelemetry/api`, `@opentelemetry/sdk-metrics`, `@opentelemetry/resources` and
 * `@opentelemetry/exporter-prometheus`.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type { InvalidOptions } from "./InvalidOptions.js"
import * as internal from "./internal/prometheus.js"
import type { MetricsExposition } from "./internal/metricsExposition.js"

export {
  /**
   * The service that renders the program's metrics for `GET /metrics`: its `contentType`
   * and `render` (collects every metric now and writes them). `layer` provides it;
   * `HealthHttp` reads it from the environment.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import * as Prometheus from "effect-resilience/Prometheus"
   *
   * const text = Effect.gen(function*() {
   *   const exposition = yield* Prometheus.MetricsExposition
   *   return yield* exposition.render
   * }).pipe(Effect.provide(Prometheus.layer()))
   * ```
   *
   * @since 0.1.0
   * @category tags
   */
  MetricsExposition
} from "./internal/metricsExposition.js"

/**
 * The options of `layer` and `make`. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Whether each scrape reads the `Health` registry of the context, when there is one, for
   * the per-dependency and per-breaker gauges (default `true`).
   */
  readonly health?: boolean | undefined
  /**
   * Labels of a `target_info` series describing the process, e.g.
   * `{ "service.name": "orders" }` (default none: Prometheus's own target labels say which
   * process it scraped).
   */
  readonly targetInfo?: Readonly<Record<string, string>> | undefined
}

/**
 * The `Content-Type` of the exposition: `text/plain; version=0.0.4; charset=utf-8`.
 *
 * @example
 * ```ts
 * import * as Prometheus from "effect-resilience/Prometheus"
 *
 * const headers = { "content-type": Prometheus.contentType }
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const contentType: string = internal.contentType

/**
 * Provides `MetricsExposition` in the Prometheus text format. Build it where the `Health`
 * registry is in the context (`Layer.provide(Health.layer())`) to get the registry's gauges.
 * Fails with `InvalidOptions` naming the option.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { CircuitBreaker, Health } from "effect-resilience"
 * import * as Prometheus from "effect-resilience/Prometheus"
 *
 * const Live = Prometheus.layer().pipe(Layer.provideMerge(Health.layer({ critical: ["payments"] })))
 *
 * const program = Effect.gen(function*() {
 *   yield* CircuitBreaker.make({ name: "payments" })
 *   // effect_resilience_circuit_breaker_state{breaker="payments",dependency="payments"} 0
 *   return yield* Prometheus.render
 * }).pipe(Effect.scoped, Effect.provide(Live))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<MetricsExposition, InvalidOptions> = internal.layer

/**
 * Makes the exposition service; see `layer`. Reads the `Health` registry of the context
 * it runs in.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Prometheus from "effect-resilience/Prometheus"
 *
 * const text = Effect.flatMap(Prometheus.make(), (exposition) => exposition.render)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<MetricsExposition["Type"], InvalidOptions> = internal.make

/**
 * Renders the metrics now with the `MetricsExposition` of the context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Prometheus from "effect-resilience/Prometheus"
 *
 * const program = Prometheus.render.pipe(Effect.tap(Effect.log), Effect.provide(Prometheus.layer()))
 * ```
 *
 * @since 0.1.0
 * @category rendering
 */
export const render: Effect.Effect<string, never, MetricsExposition> = internal.render
