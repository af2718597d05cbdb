import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Exit,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Ref,
  Schedule,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../src/Cache.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Fallback from "../src/Fallback.js"
import * as Health from "../src/Health.js"
import * as Registry from "../src/internal/healthRegistry.js"
import * as Outbox from "../src/Outbox.js"
import * as ResilientCache from "../src/ResilientCache.js"
import * as Sql from "../src/Sql.js"
import * as Sqlite from "../src/Sql/Sqlite.js"

let counter = 0
const uniqueName = (base: string) => `${base}-${++counter}`

const quiet = Effect.provide(Logger.minimumLogLevel(LogLevel.None))

/** Lets forked fibers (the first run of each check) run. */
const settle = Effect.repeatN(Effect.yieldNow(), 10)

const open = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.repeatN(breaker.protect(Effect.fail("boom")).pipe(Effect.ignore), 4)

const breakerNamed = (name: string) =>
  CircuitBreaker.make({ name, failureThreshold: 1, successThreshold: 1, resetTimeout: "10 minutes" })

/** Runs `self` with no `Scope` in its context: a breaker made there does not register itself. */
const withoutScope = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.mapInputContext(self, (context: Context.Context<R>) =>
    Context.omit(Scope.Scope)(context as Context.Context<R | Scope.Scope>) as Context.Context<R>)

const dependencies = (states: ReadonlyArray<Health.DependencyState>, critical: ReadonlyArray<boolean> = []) =>
  states.map((state, i) => ({ state, critical: critical[i] ?? false }))

const repeat = <A>(n: number, a: A): Array<A> => Array.from({ length: n }, () => a)

/** Collects changes from now on; read them with the returned effect. */
const recordChanges = Effect.gen(function*() {
  const changes = yield* Effect.flatMap(Health.Health, (health) => health.subscribe)
  const seen = yield* Ref.make<Array<Health.HealthChange>>([])
  yield* changes.pipe(Stream.runForEach((change) => Ref.update(seen, (all) => [...all, change])), Effect.forkScoped)
  return Effect.zipRight(Effect.repeatN(Effect.yieldNow(), 20), Ref.get(seen))
})

const systemChanges = (all: ReadonlyArray<Health.HealthChange>) =>
  all.flatMap((change) => (change._tag === "SystemHealthChanged" ? [`${change.from}->${change.to}`] : []))

const withRegistry = <A, E, R>(self: Effect.Effect<A, E, R>, options?: Health.Options) =>
  self.pipe(Effect.scoped, Effect.provide(Health.layer(options)), quiet)

describe("Health rules", () => {
  it("is Healthy at exactly 80% operational and Degraded just below", () => {
    expect(Health.systemHealthOf(dependencies(["Operational", "Operational", "Operational", "Operational", "Down"])))
      .toBe("Healthy")
    expect(Health.systemHealthOf(dependencies([...repeat(79, "Operational" as const), ...repeat(21, "Down" as const)])))
      .toBe("Degraded")
    expect(Health.systemHealthOf(dependencies([...repeat(8, "Operational" as const), ...repeat(2, "Down" as const)])))
      .toBe("Healthy")
    expect(Health.systemHealthOf(dependencies(repeat(3, "Operational" as const)))).toBe("Healthy")
    expect(Health.systemHealthOf([])).toBe("Healthy")
  })

  it("is Degraded at exactly 50% operational and Critical just below", () => {
    expect(Health.systemHealthOf(dependencies([...repeat(5, "Operational" as const), ...repeat(5, "Down" as const)])))
      .toBe("Degraded")
    expect(Health.systemHealthOf(dependencies([...repeat(49, "Operational" as const), ...repeat(51, "Down" as const)])))
      .toBe("Critical")
    expect(Health.systemHealthOf(dependencies(["Operational", "Down", "Down"]))).toBe("Critical")
  })

  it("counts a degraded dependency as operational but as an active fallback", () => {
    expect(Health.systemHealthOf(dependencies([...repeat(9, "Operational" as const), "Degraded"]))).toBe("Degraded")
    expect(Health.systemHealthOf(dependencies(["Degraded", "Degraded", "Degraded", "Degraded", "Down"])))
      .toBe("Degraded")
  })

  it("counts a dependency down whose own fallback answers (read-only database) as an active fallback", () => {
    const nineUp = repeat(9, { state: "Operational" as const, critical: false })
    const down = (critical: boolean, fallbackActive: boolean) => ({ state: "Down" as const, critical, fallbackActive })
    expect(Health.systemHealthOf([...nineUp, down(false, true)])).toBe("Degraded")
    expect(Health.systemHealthOf([...nineUp, down(false, false)])).toBe("Healthy")
    expect(Health.systemHealthOf([...nineUp, down(true, true)])).toBe("Critical")
  })

  it("is Critical with one critical dependency down, whatever the share", () => {
    const states = [...repeat(99, "Operational" as const), "Down" as const]
    expect(Health.systemHealthOf(dependencies(states, [...repeat(99, false), true]))).toBe("Critical")
    expect(Health.systemHealthOf(dependencies(states, repeat(100, false)))).toBe("Healthy")
    // A critical dependency that is degraded is not down.
    expect(Health.systemHealthOf(dependencies(["Operational", "Degraded"], [true, true]))).toBe("Degraded")
  })

  it("is Emergency with two critical dependencies down, even when most are operational", () => {
    const states = [...repeat(98, "Operational" as const), "Down" as const, "Down" as const]
    expect(Health.systemHealthOf(dependencies(states, [...repeat(98, false), true, true]))).toBe("Emergency")
    expect(Health.systemHealthOf(dependencies(["Down", "Down", "Down"], [true, false, false]))).toBe("Critical")
    expect(Health.systemHealthOf(dependencies(["Down", "Down", "Down"], [true, true, true]))).toBe("Emergency")
  })

  it("maps health to service levels by the default rule", () => {
    expect(["Healthy", "Degraded", "Critical", "Emergency"].map((h) => Health.defaultServiceLevel(h as any)))
      .toEqual(["Full", "Degraded", "Limited", "CacheOnly"])
  })
})

describe("Health registry", () => {
  it.effect("registers a breaker, reports it down when open, and forgets it when its scope closes", () =>
    withRegistry(Effect.gen(function*() {
      const name = uniqueName("payments")
      const breaker = yield* breakerNamed(name)
      const scope = yield* Scope.make()
      yield* Health.register({ name, critical: true, source: Health.fromBreaker(breaker) }).pipe(Scope.extend(scope))
      let status = yield* Health.status
      expect(status.health).toBe("Healthy")
      expect(status.dependencies.map((d) => [d.name, d.kind, d.state, d.critical])).toEqual([
        [name, "Breaker", "Operational", true]
      ])
      yield* TestClock.adjust("5 seconds")
      yield* open(breaker)
      status = yield* Health.status
      expect(status.health).toBe("Critical")
      expect(status.serviceLevel).toBe("Limited")
      expect(status.dependencies[0]!.state).toBe("Down")
      expect(status.dependencies[0]!.failureRate).toBe(1)
      expect(status.dependencies[0]!.lastFailure).toEqual({ at: 5000, message: "boom" })
      yield* TestClock.adjust("7 seconds")
      status = yield* Health.status
      expect(Duration.toMillis(status.dependencies[0]!.timeInState)).toBe(7000)
      yield* Scope.close(scope, Exit.void)
      status = yield* Health.status
      expect(status.dependencies).toEqual([])
      expect(status.health).toBe("Healthy")
    })))

  it.effect("refuses a duplicate name with DuplicateDependency and bad options with InvalidOptions", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      yield* Health.register({ name: "db", source: Health.fromBreaker(breaker) })
      const duplicate = yield* Effect.flip(Health.register({ name: "db", source: Health.fromCheck(Effect.void) }))
      expect(duplicate._tag).toBe("DuplicateDependency")
      expect(duplicate.message).toContain(`"db"`)
      const noName = yield* Effect.flip(Health.register({ name: "", source: Health.fromCheck(Effect.void) }))
      expect(noName._tag === "InvalidOptions" && noName.field).toBe("name")
      const noSource = yield* Effect.flip(Health.register({ name: "x", source: {} as any }))
      expect(noSource._tag === "InvalidOptions" && noSource.field).toBe("source")
      const badCritical = yield* Effect.flip(
        Health.register({ name: "y", critical: "yes" as any, source: Health.fromCheck(Effect.void) })
      )
      expect(badCritical._tag === "InvalidOptions" && badCritical.field).toBe("critical")
      const badOptions = yield* Effect.flip(Health.register(null as any))
      expect(badOptions._tag === "InvalidOptions" && badOptions.field).toBe("options")
      expect((yield* Health.status).dependencies.map((d) => d.name)).toEqual(["db"])
    })))

  it.effect("gives a name to exactly one of many fibers registering it at once", () =>
    withRegistry(Effect.gen(function*() {
      const breakers = yield* Effect.forEach(
        Array.from({ length: 100 }),
        () => withoutScope(breakerNamed(uniqueName("race")))
      )
      const results = yield* Effect.forEach(
        breakers,
        (breaker) => Effect.either(Health.register({ name: "shared", source: Health.fromBreaker(breaker) })),
        { concurrency: "unbounded" }
      )
      expect(results.filter((result) => result._tag === "Right").length).toBe(1)
      expect(results.filter((result) => result._tag === "Left" && result.left._tag === "DuplicateDependency").length)
        .toBe(99)
      const winner = breakers[results.findIndex((result) => result._tag === "Right")]!
      expect(yield* Health.breaker("shared")).toBe(winner)
      // Many fibers opening breakers at once: the snapshot agrees with every breaker.
      const many = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const breaker = yield* breakerNamed(uniqueName("many"))
          yield* Health.register({ name: `many-${i}`, source: Health.fromBreaker(breaker) })
          return breaker
        }), { concurrency: "unbounded" })
      yield* Effect.forEach(many.slice(0, 30), open, { concurrency: "unbounded" })
      const status = yield* Health.status
      expect(status.dependencies.filter((d) => d.state === "Down").length).toBe(30)
      expect(status.operational).toBeCloseTo(21 / 51)
      expect(status.health).toBe("Critical")
    })))

  it.effect("finds a breaker by dependency name or by breaker name", () =>
    withRegistry(Effect.gen(function*() {
      const primary = yield* breakerNamed("openai")
      const secondary = yield* breakerNamed("anthropic")
      const own = yield* breakerNamed("orders-breaker")
      yield* Health.register({ name: "orders", source: Health.fromBreaker(own) })
      yield* Health.register({
        name: "llm",
        source: Health.fromFailover({
          providers: [{ name: "openai", breaker: primary }, { name: "anthropic", breaker: secondary }]
        })
      })
      expect(yield* Health.breaker("orders")).toBe(own)
      expect(yield* Health.breaker("anthropic")).toBe(secondary)
      expect(yield* Health.breaker("llm")).toBe(primary)
      const missing = yield* Effect.flip(Health.breaker("nope"))
      expect(missing).toEqual(new Health.DependencyNotFound({ name: "nope" }))
    })))

  it.effect("rates a failover group: operational, degraded while a secondary answers, down when none does", () =>
    withRegistry(Effect.gen(function*() {
      const primary = yield* breakerNamed(uniqueName("primary"))
      const secondary = yield* breakerNamed(uniqueName("secondary"))
      yield* Health.register({
        name: "llm",
        source: Health.fromFailover({
          providers: [{ name: "a", breaker: primary }, { name: "b", breaker: secondary }]
        })
      })
      const state = Effect.map(Health.status, (s) => [s.dependencies[0]!.state, s.health])
      expect(yield* state).toEqual(["Operational", "Healthy"])
      yield* open(primary)
      expect(yield* state).toEqual(["Degraded", "Degraded"])
      yield* open(secondary)
      expect(yield* state).toEqual(["Down", "Critical"])
    })))

  it.effect("shows each breaker of a dependency: its state, failure rate and cumulative calls and rejections", () =>
    withRegistry(Effect.gen(function*() {
      const primary = yield* breakerNamed(uniqueName("primary"))
      const secondary = yield* breakerNamed(uniqueName("secondary"))
      yield* Health.register({
        name: "llm",
        source: Health.fromFailover({
          providers: [{ name: "a", breaker: primary }, { name: "b", breaker: secondary }]
        })
      })
      yield* secondary.protect(Effect.succeed(1))
      yield* open(primary) // one failure opens it, the next four calls are rejected
      const first = (yield* Health.status).dependencies[0]!
      expect(first.breakers).toEqual([
        { name: primary.name, state: "Open", failureRate: 1, totalCalls: 5, rejectedCalls: 4 },
        { name: secondary.name, state: "Closed", failureRate: 0, totalCalls: 1, rejectedCalls: 0 }
      ])
      expect(first.failoverTime).toBeNull()
      yield* primary.forceOpen
      yield* Effect.ignore(primary.protect(Effect.void))
      const second = (yield* Health.status).dependencies[0]!
      expect(second.breakers[0]).toMatchObject({ state: "ForcedOpen", totalCalls: 6, rejectedCalls: 5 })
    })))

  it.effect("measures a failover group's failover time, in the snapshot and as a metric tagged with the group", () =>
    withRegistry(Effect.gen(function*() {
      const up = { alpha: true, beta: true }
      // alpha fails after 2 seconds when down; beta answers after 100 millis when up.
      const call = (name: "alpha" | "beta", latency: Duration.DurationInput) =>
      (prompt: string, breaker: CircuitBreaker.CircuitBreaker) =>
        breaker.protect(
          Effect.zipRight(
            Effect.sleep(latency),
            Effect.suspend(() => (up[name] ? Effect.succeed(`${name}: ${prompt}`) : Effect.fail(`${name} down`)))
          )
        )
      const group = yield* Fallback.makeFailover([
        {
          name: "alpha",
          breaker: { failureThreshold: 1, successThreshold: 1, resetTimeout: "30 seconds" },
          run: call("alpha", "2 seconds")
        },
        {
          name: "beta",
          breaker: { failureThreshold: 1, successThreshold: 1, resetTimeout: "1 second" },
          run: call("beta", "100 millis")
        }
      ], { name: "llm-test" })
      expect(group.name).toBe("llm-test")
      yield* Health.register({ name: "llm", source: Health.fromFailover(group) })
      const histogram = Fallback.failoverTimeMetric.pipe(Metric.tagged("group", "llm-test"))
      const failoverTime = Effect.map(Health.status, (s) => s.dependencies[0]!.failoverTime)
      const ask = (prompt: string, wait: Duration.DurationInput) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Effect.either(group.run(prompt)))
          yield* TestClock.adjust(wait)
          return yield* fiber.await
        })

      expect(yield* ask("one", "2 seconds")).toMatchObject({ _tag: "Success" })
      expect(yield* failoverTime).toBeNull()

      // Both down: alpha fails at 2 s (its breaker opens), beta fails too; no answer.
      up.alpha = false
      up.beta = false
      const none = yield* ask("two", "2100 millis")
      expect(none._tag === "Success" && none.value._tag).toBe("Left")
      expect(yield* failoverTime).toBeNull()
      // Beta is back 5 seconds later: alpha is skipped, beta answers 100 millis after the call.
      yield* TestClock.adjust("5 seconds")
      up.beta = true
      const answer = yield* ask("three", "100 millis")
      expect(answer._tag === "Success" && answer.value._tag === "Right" && answer.value.right.provider).toBe("beta")
      expect(Duration.toMillis((yield* failoverTime)!)).toBe(5_200)
      const first = yield* Metric.value(histogram)
      expect([first.count, first.sum]).toEqual([1, 5.2])
      // Answers from beta while alpha stays down are no new failover.
      yield* ask("four", "100 millis")
      expect((yield* Metric.value(histogram)).count).toBe(1)

      // Alpha recovers (its probe closes the breaker), then fails again: beta answers 100 millis later.
      up.alpha = true
      yield* TestClock.adjust("30 seconds")
      expect(yield* ask("five", "2 seconds")).toMatchObject({ _tag: "Success", value: { _tag: "Right" } })
      up.alpha = false
      const again = yield* ask("six", "2100 millis")
      expect(again._tag === "Success" && again.value._tag === "Right" && again.value.right.provider).toBe("beta")
      expect(Duration.toMillis((yield* failoverTime)!)).toBe(100)
      expect((yield* Metric.value(histogram)).count).toBe(2)
    })))

  it.effect("rates an outbox by its backlog and a cache by its breaker", () =>
    withRegistry(Effect.gen(function*() {
      const depth = yield* Ref.make(0)
      const cacheBreaker = yield* breakerNamed(uniqueName("cache"))
      yield* Health.register({ name: "outbox", source: Health.fromOutbox({ capacity: 3, depth: Ref.get(depth) }) })
      yield* Health.register({ name: "cache", critical: true, source: Health.fromCache({ breaker: cacheBreaker }) })
      const states = Effect.map(Health.status, (s) => [...s.dependencies.map((d) => d.state), s.health])
      expect(yield* states).toEqual(["Operational", "Operational", "Healthy"])
      yield* Ref.set(depth, 1)
      expect(yield* states).toEqual(["Degraded", "Operational", "Degraded"])
      yield* Ref.set(depth, 3)
      expect(yield* states).toEqual(["Down", "Operational", "Degraded"])
      yield* Ref.set(depth, 0)
      yield* open(cacheBreaker)
      // A resilient cache answers from its fallback: degraded, never down.
      expect(yield* states).toEqual(["Operational", "Degraded", "Degraded"])
    })))

  it.effect("rates a database: down in read-only mode (its fallbacks active), degraded while half-open", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("orders"))
      const connected = yield* Ref.make(false)
      const others = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9], (i) => breakerNamed(uniqueName(`other${i}`)))
      for (const [i, other] of others.entries()) {
        yield* Health.register({ name: `other${i}`, source: Health.fromBreaker(other) })
      }
      yield* Health.register({
        name: "orders",
        source: Health.fromDatabase({ breaker, connected: Ref.get(connected), healthCheck: Effect.void })
      })
      const orders = Effect.map(Health.status, (s) => {
        const d = s.dependencies.find((d) => d.name === "orders")!
        return [d.state, d.fallbackActive, s.health]
      })
      expect(yield* orders).toEqual(["Down", true, "Degraded"])
      yield* Ref.set(connected, true)
      expect(yield* orders).toEqual(["Operational", false, "Healthy"])
      yield* open(breaker)
      expect(yield* orders).toEqual(["Down", true, "Degraded"])
      yield* Health.forceRecovery
      expect(yield* orders).toEqual(["Degraded", true, "Degraded"])
    })))

  it.effect("streams system and dependency changes in order and exports them as metrics", () =>
    withRegistry(Effect.gen(function*() {
      const a = yield* breakerNamed(uniqueName("a"))
      const b = yield* breakerNamed(uniqueName("b"))
      const read = yield* recordChanges
      yield* Health.register({ name: "a", critical: true, source: Health.fromBreaker(a) })
      yield* Health.register({ name: "b", critical: true, source: Health.fromBreaker(b) })
      const counted = (from: string, to: string) =>
        Effect.map(
          Metric.value(Health.transitionsMetric.pipe(Metric.tagged("from", from), Metric.tagged("to", to))),
          (state) => state.count
        )
      const before = yield* counted("Critical", "Emergency")
      yield* open(a)
      yield* open(b)
      // Transitions are noticed by the registry as they happen, without a read.
      const seen = yield* read
      expect(systemChanges(seen)).toEqual(["Healthy->Critical", "Critical->Emergency"])
      const dependencyChanges = seen.flatMap((c) => (c._tag === "DependencyStateChanged" ? [`${c.name}:${c.to}`] : []))
      expect(dependencyChanges).toEqual(["a:Down", "b:Down"])
      expect((yield* Metric.value(Health.healthMetric)).value).toBe(3)
      expect((yield* counted("Critical", "Emergency")) - before).toBe(1)
      yield* a.reset
      expect(systemChanges(yield* read)).toEqual(["Healthy->Critical", "Critical->Emergency", "Emergency->Critical"])
      expect((yield* Metric.value(Health.healthMetric)).value).toBe(2)
    })))

  it.effect("logs an Emergency at level error", () =>
    Effect.gen(function*() {
      const logs: Array<{ level: string; message: string }> = []
      const logger = Logger.make(({ logLevel, message }) => {
        logs.push({ level: logLevel.label, message: String(message) })
      })
      yield* Effect.gen(function*() {
        const a = yield* breakerNamed(uniqueName("a"))
        const b = yield* breakerNamed(uniqueName("b"))
        yield* Health.register({ name: "a", critical: true, source: Health.fromBreaker(a) })
        yield* Health.register({ name: "b", critical: true, source: Health.fromBreaker(b) })
        yield* open(a)
        yield* open(b)
        yield* Health.status
      }).pipe(
        Effect.scoped,
        Effect.provide(Health.layer()),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      // The first two; closing the scope removes the dependencies, back to Healthy.
      const system = logs.filter((log) => log.message.startsWith("system health")).slice(0, 2)
      expect(system.map((log) => [log.level, log.message])).toEqual([
        ["WARN", "system health Healthy -> Critical, service level Limited"],
        ["ERROR", "system health Critical -> Emergency, service level CacheOnly"]
      ])
    }))

  it.effect("gives the snapshot a Schema: it encodes to JSON with durations in milliseconds", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      yield* Health.register({ name: "db", source: Health.fromBreaker(breaker) })
      yield* TestClock.adjust("3 seconds")
      const encoded = yield* Schema.encode(Health.Status)(yield* Health.status)
      expect(JSON.parse(JSON.stringify(encoded))).toEqual({
        health: "Healthy",
        serviceLevel: "Full",
        readOnly: false,
        operational: 1,
        at: 3000,
        dependencies: [{
          name: "db",
          kind: "Breaker",
          critical: false,
          state: "Operational",
          fallbackActive: false,
          failureRate: 0,
          timeInState: 3000,
          lastFailure: null,
          mttr: null,
          recoveries: 0,
          breakers: [{ name: breaker.name, state: "Closed", failureRate: 0, totalCalls: 0, rejectedCalls: 0 }],
          failoverTime: null
        }]
      })
      const decoded = yield* Schema.decodeUnknown(Health.Status)(encoded)
      expect(Duration.toMillis(decoded.dependencies[0]!.timeInState)).toBe(3000)
    })))
})

describe("Health service levels", () => {
  const levelAt = (states: ReadonlyArray<"up" | "down">, options?: Health.Options) =>
    withRegistry(
      Effect.gen(function*() {
        for (const [i, state] of states.entries()) {
          const breaker = yield* breakerNamed(uniqueName("dep"))
          yield* Health.register({ name: `dep${i}`, critical: true, source: Health.fromBreaker(breaker) })
          if (state === "down") yield* open(breaker)
        }
        const full = yield* Health.atLeast("Full", Effect.succeed("full"), { otherwise: Effect.succeed("off") })
        const degraded = yield* Health.atLeast("Degraded", Effect.succeed("degraded"), {
          otherwise: Effect.succeed("off")
        })
        const extra = yield* Health.nonEssential(Effect.succeed("extra"), { otherwise: Effect.succeed("off") })
        const refused = yield* Effect.either(Health.atLeast("Limited", Effect.succeed("limited")))
        return { level: yield* Health.serviceLevel, full, degraded, extra, refused }
      }),
      options
    )

  it.effect("runs every feature at Full", () =>
    Effect.gen(function*() {
      const result = yield* levelAt(["up", "up"])
      expect([result.level, result.full, result.degraded, result.extra]).toEqual(["Full", "full", "degraded", "extra"])
    }))

  it.effect("turns non-essential features off from Limited down, and fails without otherwise", () =>
    Effect.gen(function*() {
      const limited = yield* levelAt(["up", "down"])
      expect([limited.level, limited.full, limited.degraded, limited.extra]).toEqual(["Limited", "off", "off", "off"])
      expect(limited.refused._tag).toBe("Right")
      const cacheOnly = yield* levelAt(["down", "down"])
      expect(cacheOnly.level).toBe("CacheOnly")
      expect(cacheOnly.refused._tag === "Left" && cacheOnly.refused.left).toEqual(
        new Health.FeatureUnavailable({ required: "Limited", current: "CacheOnly" })
      )
    }))

  it.effect("falls back to the default rule when the user's rule throws", () =>
    Effect.gen(function*() {
      const result = yield* levelAt(["up", "down"], {
        serviceLevel: () => {
          throw new Error("bug")
        }
      })
      expect([result.level, result.extra]).toEqual(["Limited", "off"])
    }))

  it.effect("follows a rule of the user's own", () =>
    Effect.gen(function*() {
      const result = yield* levelAt(["up", "down"], {
        serviceLevel: (health, deps) =>
          deps.some((d) => d.name === "dep1" && d.state === "Down") ? "CacheOnly" : Health.defaultServiceLevel(health)
      })
      expect([result.level, result.extra]).toEqual(["CacheOnly", "off"])
    }))
})

describe("Health checks and recovery", () => {
  it.effect("moves an open breaker to HalfOpen when its check passes, on schedule", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      const up = yield* Ref.make(false)
      const check = Effect.flatMap(Ref.get(up), (ok) => (ok ? Effect.void : Effect.fail(new Error("refused"))))
      yield* Health.register({ name: "db", source: Health.fromBreaker(breaker, { check }) })
      yield* open(breaker)
      yield* TestClock.adjust("30 seconds")
      expect(yield* breaker.state).toBe("Open")
      expect((yield* Health.status).dependencies[0]!.lastFailure?.message).toBe("refused")
      yield* Ref.set(up, true)
      yield* TestClock.adjust("29 seconds")
      expect(yield* breaker.state).toBe("Open")
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("HalfOpen")
      expect((yield* Health.status).dependencies[0]!.state).toBe("Degraded")
    })))

  it.effect("leaves open breakers alone with autoRecovery false, read from ENABLE_AUTO_RECOVERY", () =>
    Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      yield* Effect.gen(function*() {
        yield* Health.register({ name: "db", source: Health.fromBreaker(breaker, { check: Effect.void }) })
        yield* open(breaker)
        yield* TestClock.adjust("5 minutes")
        expect(yield* breaker.state).toBe("Open")
        // forceRecovery acts whatever autoRecovery says.
        const report = yield* Health.forceRecovery
        expect(report).toEqual({ passed: ["db"], failed: [], halfOpened: [breaker.name] })
        expect(yield* breaker.state).toBe("HalfOpen")
      }).pipe(
        Effect.scoped,
        Effect.provide(Health.layer()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["ENABLE_AUTO_RECOVERY", "false"]]))),
        quiet
      )
    }))

  it.effect("reads HEALTH_CHECK_INTERVAL in seconds and refuses a bad value naming the variable", () =>
    Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      const env = (value: string) =>
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["HEALTH_CHECK_INTERVAL", value]])))
      yield* Effect.gen(function*() {
        yield* Health.register({ name: "db", source: Health.fromBreaker(breaker, { check: Effect.void }) })
        yield* settle // the first check runs at once, while the breaker is closed
        yield* open(breaker)
        yield* TestClock.adjust("9 seconds")
        expect(yield* breaker.state).toBe("Open")
        yield* TestClock.adjust("1 second")
        expect(yield* breaker.state).toBe("HalfOpen")
      }).pipe(Effect.scoped, Effect.provide(Health.layer()), env("10"), quiet)
      for (const bad of ["ten", "-5", "0"]) {
        const error = yield* Effect.flip(Effect.scoped(Layer.build(Health.layer()))).pipe(env(bad))
        expect([error._tag, error.field]).toEqual(["InvalidOptions", "HEALTH_CHECK_INTERVAL"])
      }
      const option = yield* Effect.flip(Effect.scoped(Layer.build(Health.layer({ checkInterval: -1 }))))
      expect(option.field).toBe("checkInterval")
    }))

  it.effect("reads a dependency's own interval from <NAME>_HEALTH_CHECK_INTERVAL, in seconds", () =>
    Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("redis"))
      const runs = yield* Ref.make(0)
      const check = Ref.update(runs, (n) => n + 1)
      const env = ConfigProvider.fromMap(new Map([["REDIS_CACHE_HEALTH_CHECK_INTERVAL", "5"]]))
      yield* Effect.gen(function*() {
        yield* Health.register({ name: "redis-cache", source: Health.fromBreaker(breaker, { check }) })
        yield* Health.register({ name: "other", source: Health.fromCheck(check) })
        yield* settle
        expect(yield* Ref.get(runs)).toBe(2) // each runs once at once
        yield* TestClock.adjust("30 seconds")
        expect(yield* Ref.get(runs)).toBe(2 + 6 + 1)
        const badEnv = ConfigProvider.fromMap(new Map([["REDIS_CACHE_2_HEALTH_CHECK_INTERVAL", "soon"]]))
        const bad = yield* Health.register({ name: "redis-cache-2", source: Health.fromCheck(check) }).pipe(
          Effect.flip,
          Effect.withConfigProvider(badEnv)
        )
        expect(bad._tag === "InvalidOptions" && bad.field).toBe("REDIS_CACHE_2_HEALTH_CHECK_INTERVAL")
      }).pipe(Effect.scoped, Effect.provide(Health.layer()), Effect.withConfigProvider(env), quiet)
    }))

  it.effect("cuts off a check that hangs, so later checks still run on time", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      const runs = yield* Ref.make(0)
      const check = Effect.flatMap(Ref.updateAndGet(runs, (n) => n + 1), (n) => (n === 1 ? Effect.never : Effect.void))
      yield* Health.register({ name: "db", source: Health.fromBreaker(breaker, { check }) })
      yield* open(breaker)
      yield* TestClock.adjust("5 seconds")
      expect((yield* Health.status).dependencies[0]!.lastFailure?.message).toBe("health check timed out")
      yield* TestClock.adjust("30 seconds")
      expect(yield* Ref.get(runs)).toBe(2)
      expect(yield* breaker.state).toBe("HalfOpen")
    }), { checkInterval: "30 seconds", checkTimeout: "5 seconds" }))

  it.effect("rates a check of the user's own by its last run, and forceRecovery runs it now", () =>
    withRegistry(Effect.gen(function*() {
      const up = yield* Ref.make<unknown>(undefined)
      const check = Effect.flatMap(
        Ref.get(up),
        (value) => (value === "fail" ? Effect.fail("down") : Effect.succeed(value))
      )
      yield* Health.register({ name: "search", critical: true, source: Health.fromCheck(check) })
      yield* settle
      expect((yield* Health.status).dependencies[0]!.state).toBe("Operational")
      yield* Ref.set(up, "fail")
      expect(yield* Health.forceRecovery).toEqual({ passed: [], failed: ["search"], halfOpened: [] })
      let status = yield* Health.status
      expect([status.dependencies[0]!.state, status.health]).toEqual(["Down", "Critical"])
      expect(status.dependencies[0]!.failureRate).toBe(0.5)
      yield* Ref.set(up, "Degraded")
      yield* TestClock.adjust("30 seconds")
      status = yield* Health.status
      expect([status.dependencies[0]!.state, status.health]).toEqual(["Degraded", "Degraded"])
    })))

  it.effect("measures the time from down to operational (MTTR) per dependency", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("db"))
      yield* Health.register({ name: "db", source: Health.fromBreaker(breaker, { check: Effect.void }) })
      const histogram = Health.recoveryMetric.pipe(Metric.tagged("dependency", "db"))
      const before = (yield* Metric.value(histogram)).count
      yield* open(breaker)
      yield* TestClock.adjust("30 seconds") // the check passes: HalfOpen
      yield* TestClock.adjust("10 seconds")
      yield* breaker.protect(Effect.void) // the probe succeeds: Closed
      let status = yield* Health.status
      expect(status.dependencies[0]!.state).toBe("Operational")
      expect(Duration.toMillis(status.dependencies[0]!.mttr!)).toBe(40_000)
      yield* open(breaker)
      yield* TestClock.adjust("30 seconds")
      yield* breaker.protect(Effect.void)
      status = yield* Health.status
      expect(status.dependencies[0]!.recoveries).toBe(2)
      expect(Duration.toMillis(status.dependencies[0]!.mttr!)).toBe(35_000)
      const after = yield* Metric.value(histogram)
      expect(after.count - before).toBe(2)
    })))
})

describe("Health auto-registration", () => {
  it.effect("registers a dependency made in a scope while a registry is present, until the scope closes", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("auto"))
      const scope = yield* Scope.make()
      yield* Registry.registerIfPresent(breaker.name, Registry.breakerSource(breaker)).pipe(Scope.extend(scope))
      expect((yield* Health.status).dependencies.map((d) => d.name)).toEqual([breaker.name])
      yield* Scope.close(scope, Exit.void)
      expect((yield* Health.status).dependencies).toEqual([])
    })))

  it.effect("lets dependencies outlive the registry: their scope closes after it without failing", () =>
    Effect.gen(function*() {
      const registryScope = yield* Scope.make()
      const dependencyScope = yield* Scope.make()
      const health = yield* Scope.extend(Health.make(), registryScope)
      const breaker = yield* withoutScope(breakerNamed(uniqueName("late")))
      yield* Health.register({ name: "late", source: Health.fromBreaker(breaker, { check: Effect.void }) }).pipe(
        Effect.provideService(Health.Health, health),
        Scope.extend(dependencyScope)
      )
      yield* Scope.close(registryScope, Exit.void)
      yield* open(breaker)
      yield* TestClock.adjust("1 minute")
      const closed = yield* Effect.exit(Scope.close(dependencyScope, Exit.void))
      expect(Exit.isSuccess(closed)).toBe(true)
      // Registering with a closed registry does nothing.
      yield* Registry.registerIfPresent("later", Registry.breakerSource(breaker)).pipe(
        Effect.provideService(Health.Health, health),
        Effect.scoped
      )
    }).pipe(quiet))

  it.effect("does nothing without a scope or without a registry", () =>
    Effect.gen(function*() {
      const breaker = yield* breakerNamed(uniqueName("auto"))
      // No registry: nothing happens, nothing fails.
      yield* Effect.scoped(Registry.registerIfPresent(breaker.name, Registry.breakerSource(breaker)))
      const scope = yield* Scope.make()
      const health = yield* Scope.extend(Health.make(), scope)
      // A registry but no scope: not registered, so nothing can outlive the breaker.
      yield* Registry.registerIfPresent(breaker.name, Registry.breakerSource(breaker)).pipe(
        Effect.provideService(Health.Health, health)
      )
      expect((yield* health.status).dependencies).toEqual([])
      yield* Scope.close(scope, Exit.void)
    }).pipe(quiet))

  it.effect("counts a breaker once: a cache or database made over it takes its place", () =>
    withRegistry(Effect.gen(function*() {
      const breaker = yield* breakerNamed("cache")
      yield* Registry.registerIfPresent("cache", Registry.breakerSource(breaker))
      yield* Registry.registerIfPresent("cache", Registry.cacheSource({ breaker }))
      // Registered again as a plain breaker (or a cache of the same name): ignored.
      yield* Registry.registerIfPresent("cache", Registry.breakerSource(breaker))
      const other = yield* withoutScope(breakerNamed("other"))
      yield* Registry.registerIfPresent("cache", Registry.cacheSource({ breaker: other }))
      expect((yield* Health.status).dependencies.map((d) => [d.name, d.kind])).toEqual([["cache", "Cache"]])
      // An explicit registration of a taken name is a typed error.
      const error = yield* Effect.flip(Health.register({ name: "cache", source: Health.fromBreaker(breaker) }))
      expect(error._tag).toBe("DuplicateDependency")
    }), { critical: ["cache"] }))

  it.effect("marks auto-registered dependencies critical when named in critical", () =>
    withRegistry(Effect.gen(function*() {
      const a = yield* breakerNamed("a")
      const b = yield* breakerNamed("b")
      yield* Registry.registerIfPresent("a", Registry.breakerSource(a))
      yield* Registry.registerIfPresent("b", Registry.breakerSource(b))
      expect((yield* Health.status).dependencies.map((d) => [d.name, d.critical])).toEqual([["a", true], ["b", false]])
    }), { critical: ["a"] }))

  it.effect("tells a database captured while a registry is present that the system is read-only at Emergency", () =>
    withRegistry(Effect.gen(function*() {
      const readOnly = yield* Registry.readOnlyIfPresent
      const a = yield* breakerNamed("a")
      const b = yield* breakerNamed("b")
      yield* Health.register({ name: "a", critical: true, source: Health.fromBreaker(a) })
      yield* Health.register({ name: "b", critical: true, source: Health.fromBreaker(b) })
      expect(yield* readOnly).toBe(false)
      yield* open(a)
      expect(yield* readOnly).toBe(false)
      yield* open(b)
      expect(yield* readOnly).toBe(true)
      expect((yield* Health.status).readOnly).toBe(true)
      yield* b.reset
      expect(yield* readOnly).toBe(false)
      const outside = yield* Registry.readOnlyIfPresent.pipe(Effect.provide(Layer.empty))
      void outside
    })))
})



// -----------------------------------------------------------------------------
// with the library's own constructors and a real SQLite database
// -----------------------------------------------------------------------------

const Order = Schema.Struct({ id: Schema.String })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-health-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A SQLite database "shop" with an orders table and an outbox "orders", built over the registry in the context. */
const shop = Effect.gen(function*() {
  const dir = yield* tempDir
  const context = yield* Layer.build(
    Sqlite.layer({ filename: path.join(dir, "shop.sqlite"), name: "shop", busyTimeout: 0, healthCheck: false })
  )
  const db = Context.get(context, Sql.ResilientSql)
  yield* db.query((sql) => sql`CREATE TABLE orders (id TEXT NOT NULL)`)
  const outbox = yield* Outbox.make({
    name: "orders",
    path: path.join(dir, "orders.outbox"),
    schema: Order,
    key: (order) => order.id,
    apply: (order) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO orders (id) VALUES (${order.id})`),
    replay: { schedule: Schedule.spaced("1 second") }
  }).pipe(Effect.provide(context))
  const rows = Effect.flatMap(db.client, (sql) => sql<{ readonly id: string }>`SELECT id FROM orders`).pipe(
    Effect.map((all) => all.map((row) => row.id))
  )
  return { db, outbox, rows }
})

describe("Health with the library's constructors", () => {
  it.effect("registers a breaker made in a scope, and not one made outside any scope", () =>
    withRegistry(Effect.gen(function*() {
      const scoped = uniqueName("scoped")
      const unscoped = uniqueName("unscoped")
      const names = Effect.map(Health.status, (s) => s.dependencies.map((d) => d.name))
      const inScope = Effect.gen(function*() {
        yield* CircuitBreaker.make({ name: scoped })
        return yield* names
      })
      expect(yield* Effect.scoped(inScope)).toEqual([scoped])
      expect(yield* names).toEqual([])
      // No scope in the context: nothing could ever remove it, so it is not registered.
      yield* withoutScope(CircuitBreaker.make({ name: unscoped }))
      expect(yield* names).toEqual([])
    })))

  it.effect("registers a resilient cache once, as a cache, until its layer's scope closes", () =>
    withRegistry(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        ResilientCache.layer({ name: "sessions" }).pipe(Layer.provide(Cache.layerMemory())),
        scope
      )
      const cache = Context.get(context, ResilientCache.ResilientCache)
      let status = yield* Health.status
      expect(status.dependencies.map((d) => [d.name, d.kind])).toEqual([["sessions", "Cache"]])
      yield* cache.breaker.forceOpen
      status = yield* Health.status
      expect([status.dependencies[0]!.state, status.health]).toEqual(["Degraded", "Degraded"])
      expect(yield* Health.breaker("sessions")).toBe(cache.breaker)
      yield* Scope.close(scope, Exit.void)
      expect((yield* Health.status).dependencies).toEqual([])
    })))

  it.effect("checks a resilient cache that registers itself by reading the cache behind it", () =>
    withRegistry(Effect.gen(function*() {
      const up = yield* Ref.make(false)
      const reads = yield* Ref.make<Array<string>>([])
      const memory = yield* Cache.makeMemory()
      const unreachable = new Cache.CacheError({
        operation: "get",
        key: "",
        reason: "Unavailable",
        outcome: "NotApplied",
        cause: "down"
      })
      const backend: Cache.CacheService = {
        ...memory,
        get: (key) =>
          Effect.zipRight(
            Ref.update(reads, (all) => [...all, key]),
            Effect.flatMap(Ref.get(up), (ok) => (ok ? memory.get(key) : Effect.fail(unreachable)))
          )
      }
      const cache = yield* ResilientCache.fromCache(backend, {
        name: "sessions",
        breaker: { failureThreshold: 1, resetTimeout: "10 minutes" }
      })
      yield* settle
      yield* cache.get("user:1")
      expect(yield* cache.breaker.state).toBe("Open")
      yield* Ref.set(up, true)
      yield* TestClock.adjust("30 seconds")
      expect(yield* cache.breaker.state).toBe("HalfOpen")
      expect((yield* Ref.get(reads)).filter((key) => key === "effect-resilience:health").length).toBe(2)
    })))

  it.effect("registers a SQLite database and its outbox, each once", () =>
    withRegistry(Effect.gen(function*() {
      const { db } = yield* shop
      const status = yield* Health.status
      expect(status.dependencies.map((d) => [d.name, d.kind, d.critical, d.state])).toEqual([
        ["shop", "Database", true, "Operational"],
        ["orders", "Outbox", false, "Operational"]
      ])
      yield* db.breaker.forceOpen
      expect((yield* Health.status).health).toBe("Critical")
    }), { critical: ["shop"] }))

  it.effect("makes a real SQLite database read-only at Emergency: writes are journaled, replayed after", () =>
    withRegistry(Effect.gen(function*() {
      const { db, outbox, rows } = yield* shop
      const a = yield* breakerNamed(uniqueName("a"))
      const b = yield* breakerNamed(uniqueName("b"))
      yield* Health.register({ name: "a", critical: true, source: Health.fromBreaker(a) })
      yield* Health.register({ name: "b", critical: true, source: Health.fromBreaker(b) })
      expect(yield* outbox.write({ id: "o-1" })).toEqual({ _tag: "Written", key: "o-1" })
      yield* open(a)
      expect(yield* db.mode).toBe("ReadWrite")
      yield* open(b)
      expect(yield* Health.health).toBe("Emergency")
      expect(yield* db.mode).toBe("ReadOnly")
      expect((yield* outbox.write({ id: "o-2" }))._tag).toBe("Queued")
      // Nothing reaches the database while the system is read-only.
      yield* TestClock.adjust("10 seconds")
      expect(yield* rows).toEqual(["o-1"])
      expect(yield* outbox.depth).toBe(1)
      expect((yield* Health.status).dependencies.find((d) => d.name === "orders")!.state).toBe("Degraded")
      // Critical again: read-write, and the journal is replayed.
      yield* b.reset
      expect(yield* db.mode).toBe("ReadWrite")
      yield* TestClock.adjust("2 seconds")
      yield* outbox.awaitEmpty
      expect(yield* rows).toEqual(["o-1", "o-2"])
    })))
})
