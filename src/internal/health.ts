import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as Health from "../Health.js"
import { InvalidOptions } from "../InvalidOptions.js"
import { counter } from "./metric.js"
import * as options_ from "./options.js"
import {
  type CheckResult,
  Health as HealthTag,
  type HealthWithInternals,
  InternalsId,
  isSource,
  type Source
} from "./healthRegistry.js"
import * as Rules from "./healthRules.js"

const MODULE = "Health"

// -----------------------------------------------------------------------------
// schemas, errors, metrics
// -----------------------------------------------------------------------------

/** @internal */
export const DependencyState = Schema.Literal("Operational", "Degraded", "Down")

/** @internal */
export const SystemHealth = Schema.Literal("Healthy", "Degraded", "Critical", "Emergency")

/** @internal */
export const ServiceLevel = Schema.Literal("Full", "Degraded", "Limited", "CacheOnly")

/** @internal */
export const SourceKindSchema = Schema.Literal("Breaker", "Cache", "Database", "Outbox", "Failover", "Check")

/** @internal */
export const BreakerState = Schema.Literal("Closed", "Open", "HalfOpen", "ForcedOpen", "ForcedClosed")

/** @internal */
export const BreakerStatus = Schema.Struct({
  name: Schema.String,
  state: BreakerState,
  failureRate: Schema.Number,
  totalCalls: Schema.Number,
  rejectedCalls: Schema.Number
})

/** @internal */
export const DependencyStatus = Schema.Struct({
  name: Schema.String,
  kind: SourceKindSchema,
  critical: Schema.Boolean,
  state: DependencyState,
  fallbackActive: Schema.Boolean,
  failureRate: Schema.Number,
  timeInState: Schema.DurationFromMillis,
  lastFailure: Schema.NullOr(Schema.Struct({ at: Schema.Number, message: Schema.String })),
  mttr: Schema.NullOr(Schema.DurationFromMillis),
  recoveries: Schema.Number,
  breakers: Schema.Array(BreakerStatus),
  failoverTime: Schema.NullOr(Schema.DurationFromMillis)
})

/** @internal */
export const Status = Schema.Struct({
  health: SystemHealth,
  serviceLevel: ServiceLevel,
  readOnly: Schema.Boolean,
  operational: Schema.Number,
  at: Schema.Number,
  dependencies: Schema.Array(DependencyStatus)
})

/** @internal */
export class DuplicateDependency extends Data.TaggedError("DuplicateDependency")<{ readonly name: string }> {
  override get message(): string {
    return `Health: a dependency named "${this.name}" is already registered`
  }
}

/** @internal */
export class DependencyNotFound extends Data.TaggedError("DependencyNotFound")<{ readonly name: string }> {
  override get message(): string {
    return `Health: no dependency or breaker named "${this.name}" is registered`
  }
}

/** @internal */
export class FeatureUnavailable extends Data.TaggedError("FeatureUnavailable")<{
  readonly required: Rules.ServiceLevel
  readonly current: Rules.ServiceLevel
}> {
  override get message(): string {
    return `Health: this feature needs service level ${this.required} or better; the service level is ${this.current}`
  }
}

/** @internal */
export const healthGauge = Metric.gauge("effect_resilience_health_system", {
  description: "System health: 0 Healthy, 1 Degraded, 2 Critical, 3 Emergency"
})

/** @internal */
export const transitionsCounter = counter(
  "effect_resilience_health_transitions_total",
  "Changes of system health, tagged from and to"
)

/** @internal */
export const recoveryHistogram = Metric.histogram(
  "effect_resilience_health_recovery_seconds",
  MetricBoundaries.exponential({ start: 0.5, factor: 2, count: 14 }),
  "Time from a dependency going down to it being operational again, tagged dependency"
)

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

/** @internal */
export const defaultCheckInterval: Duration.Duration = Duration.seconds(30)

/** @internal */
export const defaultCheckTimeout: Duration.Duration = Duration.seconds(5)

interface Resolved {
  readonly checkInterval: Duration.Duration
  readonly checkTimeout: Duration.Duration | undefined
  readonly autoRecovery: boolean
  readonly critical: ReadonlySet<string>
  readonly serviceLevel: NonNullable<Health.Options["serviceLevel"]>
}

// A bare number of seconds (the seeds' unit), or a duration such as "30 seconds".
const secondsOrDuration = (variable: string, text: string): Either.Either<Duration.Duration, InvalidOptions> => {
  const trimmed = text.trim()
  const value = /^\d+(\.\d+)?$/.test(trimmed) ? Duration.seconds(Number(trimmed)) : trimmed
  return options_.duration(MODULE, variable, value, defaultCheckInterval)
}

const booleanText = (variable: string, text: string): Either.Either<boolean, InvalidOptions> => {
  const value = text.trim().toLowerCase()
  if (["true", "1", "yes", "on"].includes(value)) return Either.right(true)
  if (["false", "0", "no", "off"].includes(value)) return Either.right(false)
  return Either.left(
    new InvalidOptions({ module: MODULE, field: variable, expected: "true or false", received: text })
  )
}

// The same rule as the breaker's variables: "payments-api" reads PAYMENTS_API_HEALTH_CHECK_INTERVAL.
const constantCase = (name: string): string =>
  name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toUpperCase()

/** @internal */
export const intervalVariable = (name: string): string => `${constantCase(name)}_HEALTH_CHECK_INTERVAL`

/** A dependency's own interval from `<NAME>_HEALTH_CHECK_INTERVAL`, when set. @internal */
export const intervalFromEnvironment = (
  name: string
): Effect.Effect<Option.Option<Duration.Duration>, InvalidOptions> => {
  const variable = intervalVariable(name)
  return Config.option(Config.string(variable)).pipe(
    Effect.orElseSucceed(() => Option.none<string>()),
    Effect.flatMap((text) =>
      Option.isNone(text)
        ? Effect.succeed(Option.none())
        : Effect.map(secondsOrDuration(variable, text.value), Option.some)
    )
  )
}

/** `HEALTH_CHECK_INTERVAL` and `ENABLE_AUTO_RECOVERY`, or their defaults. @internal */
export const environmentSettings: Effect.Effect<
  { readonly checkInterval: Duration.Duration; readonly autoRecovery: boolean },
  InvalidOptions
> = Effect.gen(function*() {
  const interval = yield* Config.option(Config.string("HEALTH_CHECK_INTERVAL")).pipe(
    Effect.orElseSucceed(() => Option.none<string>())
  )
  const recovery = yield* Config.option(Config.string("ENABLE_AUTO_RECOVERY")).pipe(
    Effect.orElseSucceed(() => Option.none<string>())
  )
  return {
    checkInterval: Option.isSome(interval)
      ? yield* secondsOrDuration("HEALTH_CHECK_INTERVAL", interval.value)
      : defaultCheckInterval,
    autoRecovery: Option.isSome(recovery) ? yield* booleanText("ENABLE_AUTO_RECOVERY", recovery.value) : true
  }
})

const resolve = (input: Health.Options | undefined): Effect.Effect<Resolved, InvalidOptions> =>
  Effect.gen(function*() {
    const options = yield* options_.object(MODULE, input, false)
    const environment = yield* environmentSettings
    const checkInterval = yield* options_.duration(
      MODULE,
      "checkInterval",
      options.checkInterval,
      environment.checkInterval
    )
    const checkTimeout = options.checkTimeout === undefined
      ? undefined
      : yield* options_.duration(MODULE, "checkTimeout", options.checkTimeout, defaultCheckTimeout)
    if (options.autoRecovery !== undefined && typeof options.autoRecovery !== "boolean") {
      return yield* new InvalidOptions({
        module: MODULE,
        field: "autoRecovery",
        expected: "a boolean",
        received: options.autoRecovery
      })
    }
    const critical = options.critical ?? []
    if (!Array.isArray(critical) || !critical.every((name) => typeof name === "string")) {
      return yield* new InvalidOptions({
        module: MODULE,
        field: "critical",
        expected: "an array of dependency names",
        received: critical
      })
    }
    if (options.serviceLevel !== undefined && typeof options.serviceLevel !== "function") {
      return yield* new InvalidOptions({
        module: MODULE,
        field: "serviceLevel",
        expected: "a function from the system health to a service level",
        received: options.serviceLevel
      })
    }
    return {
      checkInterval,
      checkTimeout,
      autoRecovery: options.autoRecovery ?? environment.autoRecovery,
      critical: new Set(critical),
      serviceLevel: options.serviceLevel ?? ((health) => Rules.defaultServiceLevel(health))
    }
  })

// -----------------------------------------------------------------------------
// the registry
// -----------------------------------------------------------------------------

const RECENT_CHECKS = 20

interface Entry {
  readonly id: number
  readonly name: string
  readonly critical: boolean
  readonly auto: boolean
  readonly source: Source
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  state: Rules.DependencyState
  fallbackActive: boolean
  since: number
  downSince: number | undefined
  recoveries: number
  recoveryMillis: number
  lastCheck: CheckResult | undefined
  readonly checks: Array<boolean>
  lastCheckFailure: CircuitBreaker.RecordedFailure | undefined
  failureRate: number
  lastFailure: CircuitBreaker.RecordedFailure | undefined
  readonly fibers: Array<Fiber.RuntimeFiber<unknown, unknown>>
}

const messageOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof Cause.TimeoutException) return "health check timed out"
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    return error.message
  }
  return String(error)
}

const later = (
  a: CircuitBreaker.RecordedFailure | undefined,
  b: CircuitBreaker.RecordedFailure | undefined
): CircuitBreaker.RecordedFailure | undefined => (a === undefined ? b : b === undefined || a.at >= b.at ? a : b)

const checkValue = (value: unknown): Rules.DependencyState | undefined =>
  value === "Operational" || value === "Degraded" || value === "Down" ? value : undefined

const noFailoverTime: Effect.Effect<Option.Option<Duration.Duration>> = Effect.succeed(Option.none())

const logAt = (health: Rules.SystemHealth) =>
  health === "Healthy" ? Effect.logInfo : health === "Emergency" ? Effect.logError : Effect.logWarning

/** @internal */
export const make = (options?: Health.Options): Effect.Effect<Health.HealthService, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* resolve(options)
    const lock = yield* Effect.makeSemaphore(1)
    const locked = lock.withPermits(1)
    const entries = new Map<string, Entry>()
    const pubsub = yield* Effect.acquireRelease(PubSub.unbounded<Health.HealthChange>(), PubSub.shutdown)
    let nextId = 0
    let lastHealth: Rules.SystemHealth = "Healthy"
    // The user's rule must be total; one that throws or answers nonsense gets the default.
    const levelOf = (health: Rules.SystemHealth, all: ReturnType<typeof rated>): Rules.ServiceLevel => {
      try {
        const level = config.serviceLevel(health, all)
        if (Rules.serviceLevelOrder.includes(level)) return level
      } catch {
        // the default below
      }
      return Rules.defaultServiceLevel(health)
    }
    let lastLevel: Rules.ServiceLevel = "Full"
    yield* Metric.set(healthGauge, 0)
    // The registry closing first stops the checks and watchers of dependencies still
    // registered; their scopes may close later, and find nothing left to do.
    let closed = false
    yield* Effect.addFinalizer(() =>
      lock.withPermits(1)(Effect.sync(() => {
        closed = true
      })).pipe(
        Effect.zipRight(
          Effect.forEach(entries.values(), (entry) => Effect.forEach(entry.fibers, Fiber.interruptFork), {
            discard: true
          })
        )
      )
    )

    const rated = () =>
      Array.from(entries.values(), (entry) => ({
        name: entry.name,
        kind: entry.source.kind,
        critical: entry.critical,
        state: entry.state,
        fallbackActive: entry.fallbackActive
      }))

    // Reads sources, records what changed and publishes it. Runs under the lock.
    // `reread`: the dependencies whose sources are read again; the system's health is
    // recomputed from every dependency's last known state. A registration, a removal, a
    // breaker's transition or a check reads one source (or none), so registering n
    // dependencies costs n reads, not n².
    const evaluateSome = (reread: Iterable<Entry>): Effect.Effect<number> => Effect.gen(function*() {
      if (closed) return yield* Clock.currentTimeMillis
      const events: Array<Health.HealthChange> = []
      for (const entry of reread) {
        const found = yield* entry.source.evaluate(entry.lastCheck)
        const now = yield* Clock.currentTimeMillis
        if (found.state !== entry.state) {
          events.push({ _tag: "DependencyStateChanged", name: entry.name, from: entry.state, to: found.state, at: now })
          if (found.state === "Down" && entry.downSince === undefined) entry.downSince = now
          if (found.state === "Operational" && entry.downSince !== undefined) {
            const millis = now - entry.downSince
            entry.downSince = undefined
            entry.recoveries++
            entry.recoveryMillis += millis
            yield* Metric.update(Metric.tagged(recoveryHistogram, "dependency", entry.name), millis / 1000)
          }
          entry.state = found.state
          entry.since = now
        }
        entry.fallbackActive = found.fallbackActive
        entry.failureRate = found.failureRate ?? checkFailureRate(entry)
        entry.lastFailure = later(found.lastFailure, entry.lastCheckFailure)
      }
      const now = yield* Clock.currentTimeMillis
      const all = rated()
      const health = Rules.systemHealth(all)
      const level = levelOf(health, all)
      if (health !== lastHealth) {
        events.push({ _tag: "SystemHealthChanged", from: lastHealth, to: health, at: now, serviceLevel: level })
        yield* Metric.increment(Metric.tagged(Metric.tagged(transitionsCounter, "from", lastHealth), "to", health))
        yield* Metric.set(healthGauge, Rules.healthValue(health))
        lastHealth = health
      }
      lastLevel = level
      for (const event of events) {
        if (event._tag === "SystemHealthChanged") {
          yield* logAt(event.to)(`system health ${event.from} -> ${event.to}, service level ${event.serviceLevel}`)
        } else {
          const log = event.to === "Down" ? Effect.logWarning : Effect.logInfo
          yield* log(`dependency "${event.name}" ${event.from} -> ${event.to}`)
        }
        yield* PubSub.publish(pubsub, event)
      }
      return now
    })

    const evaluate: Effect.Effect<number> = Effect.suspend(() => evaluateSome(Array.from(entries.values())))

    const checkFailureRate = (entry: Entry): number =>
      entry.checks.length === 0 ? 0 : entry.checks.filter((passed) => !passed).length / entry.checks.length

    // Breakers' counters and the failover time are read with the snapshot: a client compares two
    // snapshots to compute calls per second.
    const breakerStatus = (breaker: CircuitBreaker.CircuitBreaker) =>
      Effect.map(breaker.metrics, (metrics) => ({
        name: breaker.name,
        state: metrics.state,
        failureRate: metrics.failureRate,
        totalCalls: metrics.totalCalls,
        rejectedCalls: metrics.rejectedCalls
      }))

    const dependencyStatus = (entry: Entry, now: number) =>
      Effect.zipWith(
        Effect.forEach(entry.source.breakers, breakerStatus),
        entry.source.failoverTime ?? noFailoverTime,
        (breakers, failoverTime): Health.DependencyStatus => ({
          name: entry.name,
          kind: entry.source.kind,
          critical: entry.critical,
          state: entry.state,
          fallbackActive: entry.fallbackActive,
          failureRate: entry.failureRate,
          timeInState: Duration.millis(Math.max(0, now - entry.since)),
          lastFailure: entry.lastFailure === undefined ? null : { ...entry.lastFailure },
          mttr: entry.recoveries === 0 ? null : Duration.millis(entry.recoveryMillis / entry.recoveries),
          recoveries: entry.recoveries,
          breakers,
          failoverTime: Option.getOrNull(failoverTime)
        })
      )

    const snapshot = (now: number): Effect.Effect<Health.Status> =>
      Effect.map(
        Effect.forEach(Array.from(entries.values()), (entry) => dependencyStatus(entry, now)),
        (dependencies) => ({
          health: lastHealth,
          serviceLevel: lastLevel,
          readOnly: lastHealth === "Emergency",
          operational: Rules.operationalShare(rated()),
          at: now,
          dependencies
        })
      )

    const status: Effect.Effect<Health.Status> = locked(Effect.flatMap(evaluate, snapshot))
    const systemHealth: Effect.Effect<Rules.SystemHealth> = locked(Effect.as(evaluate, undefined)).pipe(
      Effect.map(() => lastHealth)
    )
    const serviceLevel: Effect.Effect<Rules.ServiceLevel> = locked(Effect.map(evaluate, () => lastLevel))
    const readOnly = Effect.map(systemHealth, (health) => health === "Emergency")

    // --- checks -------------------------------------------------------------

    interface CheckOutcome {
      readonly name: string
      readonly passed: boolean
      readonly halfOpened: ReadonlyArray<string>
    }

    const runCheck = (entry: Entry, recover: boolean): Effect.Effect<CheckOutcome> =>
      Effect.gen(function*() {
        const check = entry.source.check!
        const exit = yield* Effect.exit(Effect.timeout(check, entry.timeout))
        const now = yield* Clock.currentTimeMillis
        const passed = Exit.isSuccess(exit)
        const halfOpened: Array<string> = []
        if (passed && recover) {
          for (const breaker of entry.source.breakers) {
            if ((yield* breaker.state) === "Open") {
              yield* breaker.halfOpen
              halfOpened.push(breaker.name)
            }
          }
        }
        yield* locked(Effect.gen(function*() {
          entry.lastCheck = { passed, state: Exit.isSuccess(exit) ? checkValue(exit.value) : undefined }
          entry.checks.push(passed)
          if (entry.checks.length > RECENT_CHECKS) entry.checks.shift()
          if (Exit.isFailure(exit)) entry.lastCheckFailure = { at: now, message: messageOf(exit.cause) }
          // Only a registered dependency changes the system's health.
          if (entries.get(entry.name) === entry) yield* evaluateSome([entry])
        }))
        return { name: entry.name, passed, halfOpened }
      })

    // Checks run one interval apart, each bounded by its timeout: a check that hangs is cut
    // off and the next one runs on time.
    const startChecks = (entry: Entry, scope: Scope.Scope) =>
      entry.source.check === undefined
        ? Effect.void
        : runCheck(entry, config.autoRecovery).pipe(
          Effect.zipRight(Effect.sleep(entry.interval)),
          Effect.forever,
          Effect.interruptible,
          Effect.forkIn(scope),
          Effect.map((fiber) => {
            entry.fibers.push(fiber)
          })
        )

    // A transition of a breaker is a moment the health may change: evaluate at once.
    const watchBreakers = (entry: Entry, scope: Scope.Scope) =>
      Effect.forEach(entry.source.breakers, (breaker) =>
        Effect.gen(function*() {
          const changes = yield* Scope.extend(breaker.subscribe, scope)
          const fiber = yield* changes.pipe(
            Stream.runForEach(() =>
              locked(Effect.suspend(() => (entries.get(entry.name) === entry ? evaluateSome([entry]) : Effect.void)))
            ),
            Effect.interruptible,
            Effect.forkIn(scope)
          )
          entry.fibers.push(fiber)
        }), { discard: true })

    const remove = (entry: Entry) =>
      locked(Effect.gen(function*() {
        if (entries.get(entry.name) !== entry) return
        entries.delete(entry.name)
        yield* evaluateSome([])
      })).pipe(Effect.zipRight(Effect.forEach(entry.fibers, Fiber.interruptFork, { discard: true })))

    const holdsBreakerOf = (entry: Entry, source: Source) =>
      entry.source.breakers.some((breaker) => source.breakers.includes(breaker))

    // Under the lock: the plain breaker entries, registered automatically, of breakers that
    // `source` holds; a breaker is counted once, inside the source registered for it last
    // (a cache, a database, a failover group, or the user's own registration).
    const absorbed = (source: Source): Array<Entry> =>
      Array.from(entries.values()).filter((entry) =>
        entry.auto && entry.source.kind === "Breaker" && holdsBreakerOf(entry, source)
      )

    type Added =
      | { readonly _tag: "Added"; readonly entry: Entry }
      | { readonly _tag: "Refused"; readonly reason: "duplicate" | "held" | "closed" }

    const add = (
      name: string,
      critical: boolean,
      auto: boolean,
      source: Source,
      interval: Duration.Duration,
      scope: Scope.Scope
    ): Effect.Effect<Added> =>
      Effect.gen(function*() {
        const result = yield* locked(Effect.gen(function*() {
          if (closed) return { _tag: "Refused", reason: "closed" } as const
          const replaced = absorbed(source)
          const existing = entries.get(name)
          if (existing !== undefined && !replaced.includes(existing)) {
            return { _tag: "Refused", reason: "duplicate" } as const
          }
          const held = Array.from(entries.values()).some((entry) =>
            !replaced.includes(entry) && holdsBreakerOf(entry, source)
          )
          if (auto && held) {
            return { _tag: "Refused", reason: "held" } as const
          }
          for (const entry of replaced) entries.delete(entry.name)
          const now = yield* Clock.currentTimeMillis
          const first = yield* source.evaluate(undefined)
          const entry: Entry = {
            id: nextId++,
            name,
            critical,
            auto,
            source,
            interval,
            timeout: config.checkTimeout === undefined
              ? Duration.min(interval, defaultCheckTimeout)
              : Duration.min(interval, config.checkTimeout),
            state: first.state,
            fallbackActive: first.fallbackActive,
            since: now,
            downSince: first.state === "Down" ? now : undefined,
            recoveries: 0,
            recoveryMillis: 0,
            lastCheck: undefined,
            checks: [],
            lastCheckFailure: undefined,
            failureRate: 0,
            lastFailure: undefined,
            fibers: []
          }
          entries.set(name, entry)
          yield* evaluateSome([])
          return { _tag: "Added", entry, replaced } as const
        }))
        if (result._tag === "Refused") return result
        const { entry, replaced } = result
        yield* Effect.forEach(replaced, (old) => Effect.forEach(old.fibers, Fiber.interruptFork), { discard: true })
        // Whichever closes first, the dependency's scope or the registry's, ends its registration.
        yield* Scope.addFinalizer(scope, remove(entry))
        yield* watchBreakers(entry, scope)
        yield* startChecks(entry, scope)
        return { _tag: "Added", entry } as const
      })

    const register = (
      input: Health.RegisterOptions
    ): Effect.Effect<void, InvalidOptions | DuplicateDependency, Scope.Scope> =>
      Effect.gen(function*() {
        const given = yield* options_.object(MODULE, input, true)
        const name = yield* options_.field(MODULE, "name", given.name, options_.nonEmptyString, "")
        if (given.critical !== undefined && typeof given.critical !== "boolean") {
          return yield* new InvalidOptions({
            module: MODULE,
            field: "critical",
            expected: "a boolean",
            received: given.critical
          })
        }
        if (!isSource(given.source)) {
          return yield* new InvalidOptions({
            module: MODULE,
            field: "source",
            expected: "a source of health (Health.fromBreaker, fromCache, fromDatabase, fromOutbox, fromFailover, ...)",
            received: typeof given.source
          })
        }
        const own = given.checkInterval === undefined ? yield* intervalFromEnvironment(name) : Option.none()
        const interval = yield* options_.duration(
          MODULE,
          "checkInterval",
          given.checkInterval,
          Option.getOrElse(own, () => config.checkInterval)
        )
        const scope = yield* Effect.scope
        const added = yield* add(name, given.critical ?? false, false, given.source, interval, scope)
        if (added._tag === "Refused" && added.reason !== "closed") return yield* new DuplicateDependency({ name })
      })

    const autoRegister = (name: string, source: Source, scope: Scope.Scope): Effect.Effect<void> =>
      Effect.gen(function*() {
        const own = yield* intervalFromEnvironment(name).pipe(
          Effect.catchAll((error) =>
            Effect.as(Effect.logWarning(`Health: ${error.message}; the default interval applies`), Option.none())
          )
        )
        const interval = Option.getOrElse(own, () => config.checkInterval)
        const added = yield* add(name, config.critical.has(name), true, source, interval, scope)
        if (added._tag === "Refused" && added.reason === "duplicate") {
          yield* Effect.logWarning(
            `Health: a dependency named "${name}" is already registered; this ${source.kind.toLowerCase()} is not`
          )
        }
      })

    const findBreaker = (name: string): Effect.Effect<CircuitBreaker.CircuitBreaker, DependencyNotFound> =>
      Effect.suspend(() => {
        const entry = entries.get(name)
        if (entry !== undefined && entry.source.breakers.length > 0) {
          const own = entry.source.breakers.find((breaker) => breaker.name === name)
          return Effect.succeed(own ?? entry.source.breakers[0]!)
        }
        for (const other of entries.values()) {
          const breaker = other.source.breakers.find((breaker) => breaker.name === name)
          if (breaker !== undefined) return Effect.succeed(breaker)
        }
        return Effect.fail(new DependencyNotFound({ name }))
      })

    const forceRecovery: Effect.Effect<Health.RecoveryReport> = Effect.gen(function*() {
      const checked = Array.from(entries.values()).filter((entry) => entry.source.check !== undefined)
      const outcomes = yield* Effect.forEach(checked, (entry) => runCheck(entry, true), { concurrency: "unbounded" })
      return {
        passed: outcomes.filter((outcome) => outcome.passed).map((outcome) => outcome.name),
        failed: outcomes.filter((outcome) => !outcome.passed).map((outcome) => outcome.name),
        halfOpened: outcomes.flatMap((outcome) => outcome.halfOpened)
      }
    })

    const service: HealthWithInternals = {
      register,
      status,
      health: systemHealth,
      serviceLevel,
      changes: Stream.fromPubSub(pubsub),
      subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromQueue),
      breaker: findBreaker,
      forceRecovery,
      [InternalsId]: { autoRegister, readOnly }
    }
    return service
  })

/** @internal */
export const layer = (options?: Health.Options): Layer.Layer<HealthTag, InvalidOptions> =>
  Layer.scoped(HealthTag, make(options))

// -----------------------------------------------------------------------------
// accessors and combinators
// -----------------------------------------------------------------------------

/** @internal */
export const atLeast = <A, E, R, B = never, E2 = never, R2 = never>(
  level: Rules.ServiceLevel,
  feature: Effect.Effect<A, E, R>,
  options?: { readonly otherwise?: Effect.Effect<B, E2, R2> | undefined }
): Effect.Effect<A | B, E | E2 | FeatureUnavailable, R | R2 | HealthTag> =>
  Effect.flatMap(HealthTag, (health) =>
    Effect.flatMap(health.serviceLevel, (current): Effect.Effect<A | B, E | E2 | FeatureUnavailable, R | R2> =>
      Rules.isAtLeast(current, level)
        ? feature
        : options?.otherwise ?? Effect.fail(new FeatureUnavailable({ required: level, current }))))

/** @internal */
export const withHealth = <A, E, R>(
  f: (health: Health.HealthService) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | HealthTag> => Effect.flatMap(HealthTag, f)

/** @internal */
export const changes: Stream.Stream<Health.HealthChange, never, HealthTag> = Stream.unwrapScoped(
  withHealth((health) => health.subscribe)
)
