import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type * as MetricLabel from "effect/MetricLabel"

/**
 * Updates metrics with an instance's own labels (`bulkhead=<name>`) joined with the labels
 * the calling fiber carries (`Effect.tagMetrics`), as Effect's own metric effects do. The
 * joined array is remembered for the last ambient array seen: Effect caches a metric's hook
 * by the identity of its label array, so the common case (the same tags call after call)
 * allocates nothing and finds its hook at once.
 *
 * @internal
 */
export const withLabels = (
  own: ReadonlyArray<MetricLabel.MetricLabel>
): (update: (labels: ReadonlyArray<MetricLabel.MetricLabel>) => void) => Effect.Effect<void> => {
  let lastAmbient: ReadonlyArray<MetricLabel.MetricLabel> | undefined
  let lastJoined = own
  const join = (ambient: ReadonlyArray<MetricLabel.MetricLabel>): ReadonlyArray<MetricLabel.MetricLabel> => {
    if (ambient.length === 0) return own
    if (ambient !== lastAmbient) {
      lastAmbient = ambient
      lastJoined = Arr.union(own, ambient)
    }
    return lastJoined
  }
  return (update) =>
    Effect.withFiberRuntime<void>((fiber) => {
      update(join(fiber.getFiberRef(FiberRef.currentMetricLabels)))
      return Effect.void
    })
}
