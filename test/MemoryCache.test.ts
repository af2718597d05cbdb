import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, TestClock } from "effect"
import * as Cache from "../src/Cache.js"

describe("Cache.makeMemory: remaining TTLs", () => {
  it.effect("getWithTtl answers the remaining TTL to the millisecond, and None from the moment it expires", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ ttl: "1 minute" })
      yield* cache.set("k", "v", { ttl: "10 seconds" })
      yield* cache.set("default", "d")
      yield* cache.set("forever", "f", { ttl: Duration.infinity })
      yield* TestClock.adjust("2500 millis")
      expect(yield* cache.getWithTtl!("k")).toEqual(Option.some({ value: "v", ttl: Duration.millis(7500) }))
      expect(yield* cache.getWithTtl!("default")).toEqual(Option.some({ value: "d", ttl: Duration.millis(57_500) }))
      expect(yield* cache.getWithTtl!("forever")).toEqual(Option.some({ value: "f", ttl: Duration.infinity }))
      yield* TestClock.adjust("7499 millis")
      expect(yield* cache.getWithTtl!("k")).toEqual(Option.some({ value: "v", ttl: Duration.millis(1) }))
      yield* TestClock.adjust("1 millis")
      expect(yield* cache.getWithTtl!("k")).toEqual(Option.none())
      expect(yield* cache.getWithTtl!("absent")).toEqual(Option.none())
    }))

  it.effect("getWithTtl counts as a use for the LRU order, as get does", () =>
    Effect.gen(function*() {
      const cache = yield* Cache.makeMemory({ capacity: 2 })
      yield* cache.set("a", "1")
      yield* cache.set("b", "2")
      yield* cache.getWithTtl!("a")
      yield* cache.set("c", "3")
      expect(yield* cache.get("b")).toEqual(Option.none())
      expect(yield* cache.get("a")).toEqual(Option.some("1"))
    }))

  it.effect("declares its default TTL, and that it never waits", () =>
    Effect.gen(function*() {
      expect((yield* Cache.makeMemory()).commandTimeout).toEqual(Duration.zero)
      expect((yield* Cache.makeMemory()).defaultTtl).toEqual(Duration.minutes(5))
      expect((yield* Cache.makeMemory({ ttl: "30 seconds" })).defaultTtl).toEqual(Duration.seconds(30))
    }))

  it.effect("options that are not an object are refused with InvalidOptions naming options", () =>
    Effect.gen(function*() {
      for (const options of [null, 5, "big", []]) {
        const error = yield* Effect.flip(Cache.makeMemory(options as unknown as Cache.MemoryOptions))
        expect([error._tag, error.field]).toEqual(["InvalidOptions", "options"])
      }
    }))
})
