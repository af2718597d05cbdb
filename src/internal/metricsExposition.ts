import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/**
 * What serves `GET /metrics`: the program's metrics as text in some exposition format.
 * `Prometheus.layer` provides it (on its own subpath, with the OpenTelemetry packages);
 * `HealthHttp` reads it from the environment, so the HTTP routes never load them.
 *
 * @internal
 */
export class MetricsExposition extends Context.Tag("effect-resilience/MetricsExposition")<
  MetricsExposition,
  {
    /** The `Content-Type` of the text, e.g. `text/plain; version=0.0.4; charset=utf-8`. */
    readonly contentType: string
    /** Collects every metric now and renders them. */
    readonly render: Effect.Effect<string>
  }
>() {}
