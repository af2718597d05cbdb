/**
 * Keyed breakers: one breaker per key (host, tenant, model), made on first use from the same
 * options, held in a bounded map.
 *
 * Why not Effect's `RcMap` or `Cache`: `RcMap` refuses a key beyond its capacity (it evicts
 * by reference count and idle time, never by recency) and needs a `Scope` per use; `Cache`
 * expires from creation, not from last use. A JavaScript `Map` keeps insertion order, so
 * moving an entry to the end on each use makes it a least-recently-used list in O(1), with
 * the idle check a walk from its oldest end that stops at the first entry still in use.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as CB from "../CircuitBreaker.js"
import { InvalidOptions } from "../InvalidOptions.js"
import * as circuitBreaker from "./circuitBreaker.js"
import type { CircuitBreakerOpen } from "./circuitBreakerOpen.js"
import * as HealthRegistry from "./healthRegistry.js"
import type { DependencyState } from "./healthRules.js"
import * as options from "./options.js"

/** @internal */
export const KeyedTypeId: CB.KeyedTypeId = Symbol.for("effect-resilience/CircuitBreaker/Keyed") as CB.KeyedTypeId

const MODULE = "CircuitBreaker.keyed"

const booleanCheck: options.Check<boolean> = options.check(Schema.Boolean, "a boolean")

/** The keyed breaker's own options, validated once. */
interface Resolved {
  readonly name: string
  readonly capacity: number
  /** ms; Infinity: no idle eviction. */
  readonly idleTimeToLive: number
  readonly tagMetricsWithKey: boolean
  readonly maxTaggedKeys: number
}

const resolve = <E>(
  input: CB.KeyedCircuitBreaker.Options<E>
): Either.Either<{ readonly resolved: Resolved; readonly breaker: CB.CircuitBreaker.Options<E> }, InvalidOptions> =>
  Either.gen(function*() {
    const given = yield* options.object(MODULE, input, true, "an object { name, capacity?, idleTimeToLive?, ... }")
    const name = yield* options.field(MODULE, "name", given.name, options.nonEmptyString, "")
    if (name === "") {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "name", expected: "a non-empty string", received: undefined })
      )
    }
    const capacity = yield* options.field(MODULE, "capacity", given.capacity, options.integerAtLeast(1), 10_000)
    const idle = yield* options.duration(MODULE, "idleTimeToLive", given.idleTimeToLive, Duration.infinity, {
      positive: true,
      finite: false
    })
    const tagMetricsWithKey = yield* options.field(
      MODULE,
      "tagMetricsWithKey",
      given.tagMetricsWithKey,
      booleanCheck,
      false
    )
    const maxTaggedKeys = yield* options.field(
      MODULE,
      "maxTaggedKeys",
      given.maxTaggedKeys,
      options.integerAtLeast(0),
      100
    )
    const {
      capacity: _capacity,
      idleTimeToLive: _idle,
      maxTaggedKeys: _maxTagged,
      tagMetricsWithKey: _tag,
      ...breaker
    } = given
    return {
      resolved: { name, capacity, idleTimeToLive: Duration.toMillis(idle), tagMetricsWithKey, maxTaggedKeys },
      breaker: breaker as CB.CircuitBreaker.Options<E>
    }
  })

// -----------------------------------------------------------------------------
// Entries
// -----------------------------------------------------------------------------

class Entry {
  /** The breaker handed out; undefined while it is being made. */
  handle: KeyBreaker | undefined = undefined
  /** Completed when the breaker is made, for the fibers that asked for the key meanwhile. */
  made: Deferred.Deferred<KeyBreaker> | undefined = undefined
  inFlight = 0
  evicted = false
  /** The scopes of the subscriptions to this key's transitions, closed when it is evicted. */
  subscriptions: Set<Scope.CloseableScope> | undefined = undefined
  constructor(readonly key: string, public lastUsed: number) {}
}

/**
 * The breaker of one key: the breaker made for it, with calls counted in and out so that an
 * idle key is one with no call in flight, and subscriptions that end when the key is evicted.
 */
class KeyBreaker implements CB.CircuitBreaker {
  readonly [circuitBreaker.TypeId]: CB.TypeId = circuitBreaker.TypeId
  readonly name: string
  constructor(readonly inner: CB.CircuitBreaker, readonly entry: Entry, readonly owner: KeyedImpl) {
    this.name = inner.name
  }

  protect<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitBreakerOpen, R> {
    const entry = this.entry
    const owner = this.owner
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<A, E | CircuitBreakerOpen, R>((fiber) => {
        entry.inFlight++
        owner.touch(entry, clockOf(fiber).unsafeCurrentTimeMillis())
        return Effect.onExit(restore(this.inner.protect(effect)), () =>
          Effect.withFiberRuntime<void>((fiber) => {
            entry.inFlight--
            owner.touch(entry, clockOf(fiber).unsafeCurrentTimeMillis())
            return Effect.void
          }))
      })
    )
  }

  get state() {
    return this.inner.state
  }
  get isCallPermitted() {
    return this.inner.isCallPermitted
  }
  get retryAfter() {
    return this.inner.retryAfter
  }
  get metrics() {
    return this.inner.metrics
  }
  get forceOpen() {
    return this.inner.forceOpen
  }
  get forceClosed() {
    return this.inner.forceClosed
  }
  get reset() {
    return this.inner.reset
  }
  get isolate() {
    return this.inner.isolate
  }
  get halfOpen() {
    return this.inner.halfOpen
  }

  get changes(): Stream.Stream<CB.StateChange> {
    return Stream.unwrapScoped(this.subscribe)
  }

  /**
   * The subscription lives in a child of the caller's scope that eviction closes: the
   * breaker's event queue is released then, and the stream ends, whatever the caller's scope.
   */
  get subscribe(): Effect.Effect<Stream.Stream<CB.StateChange>, never, Scope.Scope> {
    const entry = this.entry
    return Effect.gen(this, function*() {
      if (entry.evicted) return Stream.empty
      const parent = yield* Effect.scope
      const child = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const set = entry.subscriptions ?? (entry.subscriptions = new Set())
      set.add(child)
      yield* Scope.addFinalizer(child, Effect.sync(() => set.delete(child)))
      return yield* Scope.extend(this.inner.subscribe, child)
    })
  }
}

const clockOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Clock.Clock =>
  Context.get(fiber.currentDefaultServices, Clock.Clock)

const closeSubscriptions = (evicted: ReadonlyArray<Entry>): Effect.Effect<void> => {
  const scopes: Array<Scope.CloseableScope> = []
  for (const entry of evicted) {
    if (entry.subscriptions !== undefined) for (const scope of entry.subscriptions) scopes.push(scope)
  }
  return scopes.length === 0 ? Effect.void : Effect.forEach(scopes, (scope) => Scope.close(scope, Exit.void), {
    discard: true
  })
}

const withoutHealth = Effect.mapInputContext((context: Context.Context<never>) =>
  Context.omit(HealthRegistry.Health)(context)
)

class KeyedImpl implements CB.KeyedCircuitBreaker {
  readonly [KeyedTypeId]: CB.KeyedTypeId = KeyedTypeId
  readonly name: string
  /** Least recently used first. */
  entries = new Map<string, Entry>()
  /** The most entries held since the map was last rebuilt. */
  highWater = 0
  /** Keys whose metrics carry their own tag: at most `maxTaggedKeys`, for the life of the keyed breaker. */
  readonly tagged = new Set<string>()
  /** Set when the scope closes: breakers made after that are handed out but not kept. */
  closed = false

  constructor(readonly resolved: Resolved, readonly options: CB.CircuitBreaker.Options<any>) {
    this.name = resolved.name
  }

  touch(entry: Entry, now: number): void {
    if (entry.evicted) return
    entry.lastUsed = now
    this.entries.delete(entry.key)
    this.entries.set(entry.key, entry)
  }

  remove(entry: Entry, evicted: Array<Entry>): void {
    this.entries.delete(entry.key)
    entry.evicted = true
    evicted.push(entry)
  }

  /** Idle entries, oldest first; the walk stops at the first entry used within the time to live. */
  expire(now: number, evicted: Array<Entry>): void {
    const ttl = this.resolved.idleTimeToLive
    if (ttl === Number.POSITIVE_INFINITY) return
    for (const entry of this.entries.values()) {
      if (now - entry.lastUsed < ttl) break
      // A key with calls in flight is in use; it is touched again when they end.
      if (entry.inFlight > 0 || entry.handle === undefined) continue
      this.remove(entry, evicted)
    }
  }

  /**
   * Over capacity: the least recently used key with no call in flight goes first. Only when
   * every key has calls in flight is the least recently used one evicted anyway (the bound
   * holds); its calls end on the breaker they started on.
   */
  trim(made: Entry, evicted: Array<Entry>): void {
    while (this.entries.size > this.resolved.capacity) {
      let victim: Entry | undefined
      let busy: Entry | undefined
      for (const entry of this.entries.values()) {
        // The key just made is the one asked for: never its own victim.
        if (entry.handle === undefined || entry === made) continue
        if (entry.inFlight === 0) {
          victim = entry
          break
        }
        if (busy === undefined) busy = entry
      }
      victim = victim ?? busy
      if (victim === undefined) return
      this.remove(victim, evicted)
    }
  }

  optionsFor(key: string): CB.CircuitBreaker.Options<any> {
    const { maxTaggedKeys, tagMetricsWithKey } = this.resolved
    let tag = false
    if (tagMetricsWithKey) {
      if (this.tagged.has(key)) tag = true
      else if (this.tagged.size < maxTaggedKeys) {
        this.tagged.add(key)
        tag = true
      }
    }
    return { ...this.options, name: `${this.name}:${key}`, tagMetricsWithName: tag }
  }

  get(key: string): Effect.Effect<CB.CircuitBreaker> {
    return Effect.withFiberRuntime((fiber) => {
      const now = clockOf(fiber).unsafeCurrentTimeMillis()
      const evicted: Array<Entry> = []
      this.expire(now, evicted)
      const found = this.entries.get(key)
      if (found !== undefined) {
        this.touch(found, now)
        const result: Effect.Effect<CB.CircuitBreaker> = found.handle !== undefined
          ? Effect.succeed(found.handle)
          : Deferred.await(found.made!)
        return evicted.length === 0 ? result : Effect.zipRight(closeSubscriptions(evicted), result)
      }
      const entry = new Entry(key, now)
      const made = Deferred.unsafeMake<KeyBreaker>(fiber.id())
      entry.made = made
      if (this.closed) entry.evicted = true
      else {
        this.entries.set(key, entry)
        if (this.entries.size > this.highWater) this.highWater = this.entries.size
      }
      const options = this.optionsFor(key)
      // Made outside the health registry's sight: the keys are registered as one group.
      const make = circuitBreaker.make(options).pipe(withoutHealth, Effect.orDie)
      return Effect.uninterruptible(Effect.flatMap(Effect.exit(make), (exit) => {
        entry.made = undefined
        if (Exit.isFailure(exit)) {
          if (this.entries.get(key) === entry) this.entries.delete(key)
          return Effect.zipRight(Deferred.failCause(made, exit.cause), Effect.failCause(exit.cause))
        }
        const handle = new KeyBreaker(exit.value, entry, this)
        entry.handle = handle
        if (!entry.evicted) this.trim(entry, evicted)
        return Effect.zipRight(
          Effect.zipRight(Deferred.succeed(made, handle), closeSubscriptions(evicted)),
          Effect.succeed(handle)
        )
      }))
    })
  }

  protect(key: string) {
    return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitBreakerOpen, R> =>
      Effect.flatMap(this.get(key), (breaker) => breaker.protect(effect))
  }

  /** Evicts what has been idle too long, then runs `f` on what remains. */
  read<A>(f: (entries: ReadonlyArray<Entry>) => A): Effect.Effect<A> {
    return Effect.withFiberRuntime((fiber) => {
      const evicted: Array<Entry> = []
      this.expire(clockOf(fiber).unsafeCurrentTimeMillis(), evicted)
      const ready = Array.from(this.entries.values()).filter((entry) => entry.handle !== undefined)
      return Effect.as(closeSubscriptions(evicted), f(ready))
    })
  }

  get keys(): Effect.Effect<ReadonlyArray<string>> {
    return this.read((entries) => entries.map((entry) => entry.key))
  }

  get size(): Effect.Effect<number> {
    return this.read((entries) => entries.length)
  }

  get sweep(): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      const evicted: Array<Entry> = []
      this.expire(clockOf(fiber).unsafeCurrentTimeMillis(), evicted)
      // A Map keeps the table it grew to after its entries are deleted: once most keys have
      // gone idle, a copy gives that memory back.
      if (this.entries.size * 4 < this.highWater) {
        this.entries = new Map(this.entries)
        this.highWater = this.entries.size
      }
      return closeSubscriptions(evicted)
    })
  }

  invalidate(key: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      const entry = this.entries.get(key)
      if (entry === undefined || entry.handle === undefined) return Effect.void
      const evicted: Array<Entry> = []
      this.remove(entry, evicted)
      return closeSubscriptions(evicted)
    })
  }

  get clear(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const evicted: Array<Entry> = []
      for (const entry of this.entries.values()) this.remove(entry, evicted)
      this.closed = true
      return closeSubscriptions(evicted)
    })
  }

  /** The breakers alive now, as the health registry reads them. */
  get breakers(): ReadonlyArray<CB.CircuitBreaker> {
    const out: Array<CB.CircuitBreaker> = []
    for (const entry of this.entries.values()) if (entry.handle !== undefined) out.push(entry.handle)
    return out
  }
}

// -----------------------------------------------------------------------------
// Health
// -----------------------------------------------------------------------------

/**
 * The keys as one dependency: Operational while every key's breaker is closed (or there is
 * none), Down when every key's breaker is open, Degraded in between (some keys answer).
 * The failure rate is the worst key's; the last failure is the latest of any key.
 *
 * @internal
 */
export const groupState = (states: ReadonlyArray<DependencyState>): DependencyState => {
  if (states.length === 0) return "Operational"
  let down = 0
  let operational = 0
  for (const state of states) {
    if (state === "Down") down++
    else if (state === "Operational") operational++
  }
  return down === states.length ? "Down" : operational === states.length ? "Operational" : "Degraded"
}

const healthSource = (keyed: KeyedImpl): HealthRegistry.Source => ({
  [HealthRegistry.SourceTypeId]: HealthRegistry.SourceTypeId,
  kind: "Breaker",
  get breakers() {
    return keyed.breakers
  },
  check: undefined,
  failoverTime: undefined,
  evaluate: () =>
    Effect.map(Effect.forEach(keyed.breakers, (breaker) => breaker.metrics), (all) => {
      const state = groupState(all.map((metrics) => HealthRegistry.breakerState(metrics.state)))
      let failureRate = 0
      let lastFailure: CB.RecordedFailure | undefined
      for (const metrics of all) {
        failureRate = Math.max(failureRate, metrics.failureRate)
        const last = metrics.recentFailures[metrics.recentFailures.length - 1]
        if (last !== undefined && (lastFailure === undefined || last.at >= lastFailure.at)) lastFailure = last
      }
      return { state, fallbackActive: state === "Degraded", failureRate, lastFailure }
    })
})

// -----------------------------------------------------------------------------
// Constructor
// -----------------------------------------------------------------------------

/** @internal */
export const keyed = <E = unknown>(
  input: CB.KeyedCircuitBreaker.Options<E>
): Effect.Effect<CB.KeyedCircuitBreaker, InvalidOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const { breaker, resolved } = yield* resolve(input)
    // The breakers' own options are checked once, here, by making one that is thrown away.
    yield* withoutHealth(circuitBreaker.make({ ...breaker, name: `${resolved.name}:options` }))
    const impl = new KeyedImpl(resolved, breaker)
    yield* Effect.addFinalizer(() => impl.clear)
    if (resolved.idleTimeToLive !== Number.POSITIVE_INFINITY) {
      // Idle keys are also evicted on every `get` and read; the sweep frees them when nobody asks.
      const every = Duration.millis(Math.max(1, resolved.idleTimeToLive / 2))
      yield* impl.sweep.pipe(Effect.repeat(Schedule.spaced(every)), Effect.interruptible, Effect.forkScoped)
    }
    yield* HealthRegistry.registerIfPresent(resolved.name, healthSource(impl))
    return impl
  })
