/**
 * Sliding windows of call outcomes, as immutable values.
 *
 * A window answers "how many calls, failures and slow calls in the last N calls / the last
 * D of time". Both kinds are persistent structures updated in O(1) (amortised) per call
 * without copying the window, so a breaker's state can be replaced atomically by
 * `Ref.modify` on every call. Memory is bounded by the window, never by the number of calls.
 *
 * @internal
 */

/** @internal */
export const FAILURE = 1
/** @internal */
export const SLOW = 2

/** @internal */
export type WindowConfig =
  | { readonly _tag: "Count"; readonly size: number }
  | { readonly _tag: "Time"; readonly durationMillis: number; readonly buckets: number }

/** @internal */
export interface Totals {
  readonly calls: number
  readonly failures: number
  readonly slow: number
}

interface Cell {
  readonly flags: number
  readonly next: Cell | undefined
}

/**
 * The last `size` outcomes, as a functional queue: `back` holds the newest first, `front`
 * the oldest first; `front` is refilled by reversing `back` once every `size` calls.
 *
 * @internal
 */
export interface CountWindow extends Totals {
  readonly _tag: "Count"
  readonly size: number
  readonly front: Cell | undefined
  readonly back: Cell | undefined
}

interface Bucket extends Totals {
  readonly index: number
  readonly next: Bucket | undefined
}

/**
 * Buckets of `span` milliseconds, newest first; only buckets that hold calls exist, and the
 * totals are those of the buckets kept after the last pruning.
 *
 * @internal
 */
export interface TimeWindow extends Totals {
  readonly _tag: "Time"
  readonly span: number
  readonly buckets: number
  readonly head: Bucket | undefined
  readonly oldest: number
}

/** @internal */
export type Window = CountWindow | TimeWindow

/** @internal */
export const empty = (config: WindowConfig): Window =>
  config._tag === "Count"
    ? { _tag: "Count", size: config.size, front: undefined, back: undefined, calls: 0, failures: 0, slow: 0 }
    : {
      _tag: "Time",
      span: config.durationMillis / config.buckets,
      buckets: config.buckets,
      head: undefined,
      oldest: Number.POSITIVE_INFINITY,
      calls: 0,
      failures: 0,
      slow: 0
    }

/** @internal */
export const clear = (window: Window): Window =>
  window._tag === "Count"
    ? { _tag: "Count", size: window.size, front: undefined, back: undefined, calls: 0, failures: 0, slow: 0 }
    : { ...window, head: undefined, oldest: Number.POSITIVE_INFINITY, calls: 0, failures: 0, slow: 0 }

/**
 * Adds one outcome (`FAILURE` and `SLOW` flags) recorded at `now`.
 *
 * @internal
 */
export const add = (window: Window, flags: number, now: number): Window =>
  window._tag === "Count" ? addCount(window, flags) : addTime(window, flags, now)

const failureOf = (flags: number) => flags & FAILURE
const slowOf = (flags: number) => (flags & SLOW) >> 1

const addCount = (window: CountWindow, flags: number): CountWindow => {
  let back: Cell | undefined = { flags, next: window.back }
  let front = window.front
  let calls = window.calls + 1
  let failures = window.failures + failureOf(flags)
  let slow = window.slow + slowOf(flags)
  if (calls > window.size) {
    if (front === undefined) {
      front = reverse(back)
      back = undefined
    }
    const evicted = front!
    front = evicted.next
    calls--
    failures -= failureOf(evicted.flags)
    slow -= slowOf(evicted.flags)
  }
  return { _tag: "Count", size: window.size, front, back, calls, failures, slow }
}

const reverse = (cell: Cell | undefined): Cell | undefined => {
  let reversed: Cell | undefined = undefined
  for (let c = cell; c !== undefined; c = c.next) reversed = { flags: c.flags, next: reversed }
  return reversed
}

const addTime = (window: TimeWindow, flags: number, now: number): TimeWindow => {
  const head = window.head
  // A wall clock may step back: a call never lands in a bucket older than the newest one.
  const index = head === undefined ? Math.floor(now / window.span) : Math.max(head.index, Math.floor(now / window.span))
  const failure = failureOf(flags)
  const slow = slowOf(flags)
  if (head !== undefined && head.index === index) {
    // The common case: another call in the current bucket. Buckets older than the window
    // were pruned when this bucket was opened.
    return {
      _tag: "Time",
      span: window.span,
      buckets: window.buckets,
      head: {
        index,
        calls: head.calls + 1,
        failures: head.failures + failure,
        slow: head.slow + slow,
        next: head.next
      },
      oldest: window.oldest,
      calls: window.calls + 1,
      failures: window.failures + failure,
      slow: window.slow + slow
    }
  }
  // A new bucket: prune the ones that fell out of the window (at most `buckets` of them).
  const kept = prune(head, index - window.buckets)
  return {
    ...window,
    head: { index, calls: 1, failures: failure, slow, next: kept.head },
    oldest: kept.head === undefined ? index : kept.oldest,
    calls: kept.calls + 1,
    failures: kept.failures + failure,
    slow: kept.slow + slow
  }
}

interface Pruned extends Totals {
  readonly head: Bucket | undefined
  readonly oldest: number
}

/** Keeps the buckets whose index is above `expiredAtOrBelow`, rebuilding the list. */
const prune = (head: Bucket | undefined, expiredAtOrBelow: number): Pruned => {
  const kept: Array<Bucket> = []
  for (let b = head; b !== undefined && b.index > expiredAtOrBelow; b = b.next) kept.push(b)
  let next: Bucket | undefined = undefined
  let calls = 0
  let failures = 0
  let slow = 0
  for (let i = kept.length - 1; i >= 0; i--) {
    const b = kept[i]!
    next = { index: b.index, calls: b.calls, failures: b.failures, slow: b.slow, next }
    calls += b.calls
    failures += b.failures
    slow += b.slow
  }
  const oldest = kept.length === 0 ? Number.POSITIVE_INFINITY : kept[kept.length - 1]!.index
  return { head: next, oldest, calls, failures, slow }
}

/**
 * The totals of the window as seen at `now`: a time window leaves out the buckets that
 * have fallen out of it since the last call, however long the idle gap.
 *
 * @internal
 */
export const totals = (window: Window, now: number): Totals => {
  if (window._tag === "Count") return window
  const current = Math.floor(now / window.span)
  if (window.oldest > current - window.buckets) return window
  let calls = 0
  let failures = 0
  let slow = 0
  for (let b = window.head; b !== undefined && b.index > current - window.buckets; b = b.next) {
    calls += b.calls
    failures += b.failures
    slow += b.slow
  }
  return { calls, failures, slow }
}

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * Whether a call recorded at `now` would land in the newest bucket of a time window: then
 * the window's totals are exact as they stand (the buckets that fell out were pruned when
 * that bucket was opened), and `addToNewestInPlace` may record it without a new window.
 *
 * @internal
 */
export const landsInNewest = (window: Window, now: number): window is TimeWindow =>
  window._tag === "Time" && window.head !== undefined && window.head.index >= Math.floor(now / window.span)

/**
 * Records one outcome in the newest bucket of a time window, in place: for the owner of the
 * window (the live state of a breaker) only, after `landsInNewest` said yes.
 *
 * @internal
 */
export const addToNewestInPlace = (window: TimeWindow, flags: number): void => {
  const head = window.head as Mutable<Bucket>
  const self = window as Mutable<TimeWindow>
  const failure = failureOf(flags)
  const slow = slowOf(flags)
  head.calls++
  head.failures += failure
  head.slow += slow
  self.calls++
  self.failures += failure
  self.slow += slow
}
