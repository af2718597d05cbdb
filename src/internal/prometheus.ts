import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { type Attributes, type HrTime, ValueType } from "@opentelemetry/api"
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { emptyResource, resourceFromAttributes } from "@opentelemetry/resources"
import {
  AggregationTemporality,
  type DataPoint,
  DataPointType,
  type MetricData,
  type ResourceMetrics
} from "@opentelemetry/sdk-metrics"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Health from "../Health.js"
import type { InvalidOptions } from "../InvalidOptions.js"
import type * as Prometheus from "../Prometheus.js"
import { stateValue } from "./circuitBreaker.js"
import { Health as HealthTag } from "./healthRegistry.js"
import * as Rules from "./healthRules.js"
import { MetricsExposition } from "./metricsExposition.js"
import * as options_ from "./options.js"

const MODULE = "Prometheus"

/** @internal */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

const healthCheck = options_.check(Schema.Boolean, "a boolean")
const labelName = /^[a-zA-Z_][a-zA-Z0-9_.]*$/
const targetInfoCheck = options_.check(
  Schema.Record({ key: Schema.String, value: Schema.String }).pipe(
    Schema.filter((labels) => Object.keys(labels).every((key) => labelName.test(key)))
  ),
  "an object of label names ([a-zA-Z_][a-zA-Z0-9_.]*) to string values"
)

interface Resolved {
  readonly health: boolean
  readonly targetInfo: Readonly<Record<string, string>> | undefined
}

const resolve = (input: Prometheus.Options | undefined): Either.Either<Resolved, InvalidOptions> =>
  Either.gen(function*() {
    const options = yield* options_.object(MODULE, input, false)
    return {
      health: yield* options_.field(MODULE, "health", options.health, healthCheck, true),
      targetInfo: yield* options_.field(MODULE, "targetInfo", options.targetInfo, targetInfoCheck, undefined)
    }
  })

// -----------------------------------------------------------------------------
// metrics read from the health registry at scrape time
// -----------------------------------------------------------------------------

/**
 * A family of the registry: its name, help, whether it is a counter, and its points. The
 * serializer writes it; nothing here writes exposition text.
 */
interface Family {
  readonly name: string
  readonly help: string
  readonly counter: boolean
  readonly points: Array<readonly [Attributes, number]>
}

const family = (name: string, help: string, counter = false): Family => ({ name, help, counter, points: [] })

/** @internal */
export const names = {
  healthSystem: "effect_resilience_health_system",
  serviceLevel: "effect_resilience_health_service_level",
  operationalRatio: "effect_resilience_health_operational_ratio",
  readOnly: "effect_resilience_health_read_only",
  dependencyInfo: "effect_resilience_dependency_info",
  dependencyState: "effect_resilience_dependency_state",
  fallbackActive: "effect_resilience_dependency_fallback_active",
  dependencyFailureRatio: "effect_resilience_dependency_failure_ratio",
  mttr: "effect_resilience_dependency_mttr_seconds",
  recoveries: "effect_resilience_dependency_recoveries_total",
  cacheDegraded: "effect_resilience_cache_degraded",
  breakerState: "effect_resilience_circuit_breaker_state",
  breakerFailureRatio: "effect_resilience_circuit_breaker_failure_ratio",
  breakerTransitions: "effect_resilience_circuit_breaker_transitions_total"
} as const

const dependencyStateValue = (state: Health.DependencyState): number =>
  state === "Operational" ? 0 : state === "Degraded" ? 1 : 2

/** The registry's figures for one snapshot, with each breaker's transitions (`undefined`: gone since). */
const fromStatus = (
  status: Health.Status,
  transitions: ReadonlyMap<string, number>
): ReadonlyArray<Family> => {
  const system = family(names.healthSystem, "System health: 0 Healthy, 1 Degraded, 2 Critical, 3 Emergency")
  const level = family(names.serviceLevel, "Service level: 0 Full, 1 Degraded, 2 Limited, 3 CacheOnly")
  const operational = family(names.operationalRatio, "Share of registered dependencies operational, 0 to 1")
  const readOnly = family(names.readOnly, "1 while the system is read-only (Emergency), else 0")
  const info = family(names.dependencyInfo, "A registered dependency, its kind and criticality; always 1")
  const state = family(names.dependencyState, "Dependency state: 0 Operational, 1 Degraded, 2 Down")
  const fallback = family(names.fallbackActive, "1 while a dependency's fallback answers for it, else 0")
  const failureRatio = family(
    names.dependencyFailureRatio,
    "Failure ratio of a dependency's breaker window (or of its recent checks), 0 to 1"
  )
  const mttr = family(names.mttr, "Mean time from a dependency going down to it being operational again, in seconds")
  const recoveries = family(names.recoveries, "Recoveries of a dependency: from down to operational again", true)
  const cache = family(names.cacheDegraded, "1 while a resilient cache answers from its fallback, else 0")
  const breakerState = family(
    names.breakerState,
    "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed"
  )
  const breakerRatio = family(names.breakerFailureRatio, "Failure ratio over a circuit breaker's window, 0 to 1")
  const breakerTransitions = family(
    names.breakerTransitions,
    "State changes of a circuit breaker since it was made or last reset",
    true
  )
  system.points.push([{}, Rules.healthValue(status.health)])
  level.points.push([{}, Rules.serviceLevelOrder.indexOf(status.serviceLevel)])
  operational.points.push([{}, status.operational])
  readOnly.points.push([{}, status.readOnly ? 1 : 0])
  const seen = new Set<string>()
  for (const dependency of status.dependencies) {
    const labels = { dependency: dependency.name }
    info.points.push([{ ...labels, kind: dependency.kind, critical: String(dependency.critical) }, 1])
    state.points.push([labels, dependencyStateValue(dependency.state)])
    fallback.points.push([labels, dependency.fallbackActive ? 1 : 0])
    failureRatio.points.push([labels, dependency.failureRate])
    if (dependency.mttr !== null) mttr.points.push([labels, Duration.toSeconds(dependency.mttr)])
    recoveries.points.push([labels, dependency.recoveries])
    if (dependency.kind === "Cache") {
      cache.points.push([labels, dependency.state === "Operational" && !dependency.fallbackActive ? 0 : 1])
    }
    for (const breaker of dependency.breakers) {
      // A breaker shared by two dependencies is reported once, with the first.
      if (seen.has(breaker.name)) continue
      seen.add(breaker.name)
      const own = { breaker: breaker.name, dependency: dependency.name }
      breakerState.points.push([own, stateValue(breaker.state)])
      breakerRatio.points.push([own, breaker.failureRate])
      const count = transitions.get(breaker.name)
      if (count !== undefined) breakerTransitions.points.push([own, count])
    }
  }
  return [
    system,
    level,
    operational,
    readOnly,
    info,
    state,
    fallback,
    failureRatio,
    mttr,
    recoveries,
    cache,
    breakerState,
    breakerRatio,
    breakerTransitions
  ]
}

const readRegistry = (health: Health.HealthService): Effect.Effect<ReadonlyArray<Family>> =>
  Effect.gen(function*() {
    const status = yield* health.status
    const transitions = new Map<string, number>()
    for (const dependency of status.dependencies) {
      for (const breaker of dependency.breakers) {
        if (transitions.has(breaker.name)) continue
        // By name: a dependency of that name answers with its own breaker, which may be another.
        const found = yield* Effect.option(health.breaker(breaker.name))
        if (Option.isSome(found) && found.value.name === breaker.name) {
          const metrics = yield* found.value.metrics
          transitions.set(breaker.name, metrics.stateChanges)
        }
      }
    }
    return fromStatus(status, transitions)
  })

// -----------------------------------------------------------------------------
// merging the registry's families into the bridge's collection
// -----------------------------------------------------------------------------

const attributesKey = (attributes: Attributes): string =>
  JSON.stringify(Object.keys(attributes).sort().map((key) => [key, attributes[key]]))

const toMetricData = (source: Family, time: HrTime): MetricData => {
  const dataPoints: Array<DataPoint<number>> = source.points.map(([attributes, value]) => ({
    startTime: time,
    endTime: time,
    attributes,
    value
  }))
  const descriptor = { name: source.name, description: source.help, unit: "", valueType: ValueType.DOUBLE }
  return source.counter
    ? {
      dataPointType: DataPointType.SUM,
      descriptor,
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      isMonotonic: true,
      dataPoints
    }
    : {
      dataPointType: DataPointType.GAUGE,
      descriptor,
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPoints
    }
}

/**
 * Fixes what the bridge gives for the text format, family by family:
 * - the bridge gives every metric the unit `"1"` (or the value of a `unit` tag), which the
 *   serializer writes as a `# UNIT` line the 0.0.4 text format does not have: units live in
 *   the names here (`_seconds`, `_ratio`), so they are dropped;
 * - two Effect metrics of one name whose keys differ only by description give two points
 *   with the same labels, which Prometheus refuses as duplicate series: the first is kept;
 * - a family the registry reports replaces the Effect metric of that name (the registry is
 *   read at scrape time, per breaker or dependency), except the series of breakers tagged
 *   with their name (`tagMetricsWithName`) that the registry does not know.
 */
const merge = (collected: ResourceMetrics, registry: ReadonlyArray<Family>, time: HrTime): ResourceMetrics => {
  const fromRegistry = new Map(registry.map((source) => [source.name, source]))
  const known = new Set<string>()
  for (const source of registry) {
    for (const [attributes] of source.points) {
      if (typeof attributes["breaker"] === "string") known.add(attributes["breaker"])
    }
  }
  const metrics: Array<MetricData> = []
  for (const scope of collected.scopeMetrics) {
    for (const data of scope.metrics) {
      const replacing = fromRegistry.get(data.descriptor.name)
      const seen = new Set<string>()
      const dataPoints = (data.dataPoints as Array<DataPoint<unknown>>).filter((point) => {
        if (replacing !== undefined) {
          const breaker = point.attributes["breaker"]
          if (typeof breaker !== "string" || known.has(breaker)) return false
        }
        const key = attributesKey(point.attributes)
        if (seen.has(key)) return false
        seen.add(key)
        return true
      })
      if (replacing !== undefined) {
        fromRegistry.delete(data.descriptor.name)
        const own = toMetricData(replacing, time)
        const all = [...own.dataPoints, ...dataPoints]
        if (all.length > 0) metrics.push({ ...own, dataPoints: all } as MetricData)
      } else if (dataPoints.length > 0) {
        metrics.push({ ...data, descriptor: { ...data.descriptor, unit: "" }, dataPoints } as MetricData)
      }
    }
  }
  for (const source of fromRegistry.values()) {
    if (source.points.length > 0) metrics.push(toMetricData(source, time))
  }
  return { resource: collected.resource, scopeMetrics: [{ scope: { name: "effect-resilience" }, metrics }] }
}

// -----------------------------------------------------------------------------
// the exposition
// -----------------------------------------------------------------------------

/** @internal */
export const make = (
  options?: Prometheus.Options
): Effect.Effect<MetricsExposition["Type"], InvalidOptions> =>
  Effect.gen(function*() {
    const resolved = yield* resolve(options)
    const resource = resolved.targetInfo === undefined ? emptyResource() : resourceFromAttributes(resolved.targetInfo)
    const producer = yield* OtelMetrics.makeProducer.pipe(Effect.provideService(OtelResource.Resource, resource))
    const health = resolved.health ? yield* Effect.serviceOption(HealthTag) : Option.none()
    const serializer = new PrometheusSerializer(undefined, false, undefined, resolved.targetInfo === undefined, true)
    const render = Effect.gen(function*() {
      const collected = yield* Effect.promise(() => producer.collect())
      const registry = Option.isSome(health) ? yield* readRegistry(health.value) : []
      const millis = yield* Clock.currentTimeMillis
      const time: HrTime = [Math.floor(millis / 1000), (millis % 1000) * 1_000_000]
      return serializer.serialize(merge(collected.resourceMetrics, registry, time))
    })
    return MetricsExposition.of({ contentType, render })
  })

/** @internal */
export const layer = (options?: Prometheus.Options): Layer.Layer<MetricsExposition, InvalidOptions> =>
  Layer.effect(MetricsExposition, make(options))

/** @internal */
export const render: Effect.Effect<string, never, MetricsExposition> = Effect.flatMap(
  MetricsExposition,
  (exposition) => exposition.render
)
