/**
 * Outages switched by hand, for the service's chaos endpoints. Each switch puts the
 * library's own fault injection (`Chaos.makeCache`, `Chaos.makeSql`: an outage window that
 * starts now and never ends) in front of a dependency, and takes it away again.
 *
 * The service holds a cache and a database client that read, on every call, which one is
 * in force: the healthy one, or the faulty one made at the last `outage`. Nothing else
 * changes: the resilient cache, the resilient database, their breakers and health checks
 * see a dependency that refuses every call, as a real outage looks to them.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { Chaos } from "effect-resilience"
import type { Cache } from "effect-resilience"

/** A dependency that a person (or a script) takes down and brings back. */
export interface Switch {
  /** From now on, every call fails as when the dependency is down. */
  readonly outage: Effect.Effect<void>
  /** Calls reach the dependency again. */
  readonly recover: Effect.Effect<void>
  /** Whether an outage is in force. */
  readonly down: Effect.Effect<boolean>
}

// An outage window that starts when the fault is made and never ends: `recover` drops it.
const endless = { outages: [{ start: 0, duration: Duration.infinity }] }

/** The cache `base`, and a switch that puts an outage in front of it. */
export const cache = (base: Cache.CacheService): Effect.Effect<{
  readonly cache: Cache.CacheService
  readonly outage: Switch
}> =>
  Effect.gen(function*() {
    const current = yield* Ref.make(base)
    const via = <A, E>(f: (cache: Cache.CacheService) => Effect.Effect<A, E>) => Effect.flatMap(Ref.get(current), f)
    const getWithTtl = base.getWithTtl
    const service: Cache.CacheService = {
      get: (key) => via((c) => c.get(key)),
      set: (key, value, options) => via((c) => c.set(key, value, options)),
      delete: (key) => via((c) => c.delete(key)),
      invalidate: (prefix) => via((c) => c.invalidate(prefix)),
      getWithTtl: getWithTtl === undefined ? undefined : (key) => via((c) => (c.getWithTtl ?? getWithTtl)(key)),
      defaultTtl: base.defaultTtl,
      commandTimeout: base.commandTimeout
    }
    return {
      cache: service,
      outage: {
        outage: Effect.flatMap(Effect.orDie(Chaos.makeCache(base, endless)), ([faulty]) => Ref.set(current, faulty)),
        recover: Ref.set(current, base),
        down: Effect.map(Ref.get(current), (c) => c !== base)
      }
    }
  })

/**
 * A switch in front of a database client, and the function that puts it there once the
 * client is made (the client may be made after the switch, in the background, when the
 * database does not answer at start): every statement, and every connection reserved (the
 * SQLite write-lock check included), is refused during an outage, as by a server that is
 * down.
 */
export const sql = (): {
  readonly wrap: (base: SqlClient.SqlClient) => Effect.Effect<SqlClient.SqlClient>
  readonly outage: Switch
} => {
  let base: SqlClient.SqlClient | undefined
  // The faulty client in force, or `undefined` while the database is reachable.
  let faulty: SqlClient.SqlClient | undefined
  let down = false
  const makeFaulty = (client: SqlClient.SqlClient) =>
    Effect.map(Effect.orDie(Chaos.makeSql(client, endless)), ([made]) => {
      faulty = made
    })
  return {
    wrap: (client) =>
      Effect.gen(function*() {
        base = client
        if (down) yield* makeFaulty(client)
        // Read on every use: a statement is made by whichever client is in force.
        return new Proxy(client, {
          apply: (_target, thisArg, args) => Reflect.apply(faulty ?? client, thisArg, args),
          get: (_target, property) => Reflect.get(faulty ?? client, property)
        })
      }),
    outage: {
      outage: Effect.suspend(() => {
        down = true
        return base === undefined ? Effect.void : makeFaulty(base)
      }),
      recover: Effect.sync(() => {
        down = false
        faulty = undefined
      }),
      down: Effect.sync(() => down)
    }
  }
}
