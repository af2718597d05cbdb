import { Effect, Metric } from "effect"

/** The state of a counter or gauge, as the tests read it. */
export type MetricState = { readonly count?: number; readonly value?: number } | undefined

/** The state of the metric `name` whose tags include every one of `tags`. */
export const taggedMetric = (name: string, tags: Record<string, string>): Effect.Effect<MetricState> =>
  Effect.map(Metric.snapshot, (pairs) => {
    const pair = pairs.find((pair) =>
      pair.metricKey.name === name &&
      Object.entries(tags).every(([key, value]) =>
        pair.metricKey.tags.some((label) => label.key === key && label.value === value)
      )
    )
    return pair?.metricState as MetricState
  })

/** The state of the metric `name` that has the tag `tag` = `value`. */
export const metricValue = (name: string, tag: string, value: string): Effect.Effect<MetricState> =>
  taggedMetric(name, { [tag]: value })
