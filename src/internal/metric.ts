import * as Metric from "effect/Metric"

/**
 * A counter that only goes up, described once: every counter of this library is one.
 *
 * @internal
 */
export const counter = (name: string, description: string): Metric.Metric.Counter<number> =>
  Metric.counter(name, { description, incremental: true })
