/**
 * The circuit breaker's state machine, as pure functions of `(state, input, now)`.
 *
 * The Effect shell reads the clock and applies each function with one `Ref.modify`; it
 * never decides anything itself. Every function returns the events it caused (numbered by
 * `seq`, so that subscribers can restore their order) and whether the open schedule must
 * be stepped.
 *
 * @internal
 */
import type * as CB from "../CircuitBreaker.js"
import * as Window from "./window.js"

/** @internal */
export type Status = CB.State

/** @internal */
export type Reason = CB.TransitionReason

/** @internal */
export interface Config {
  readonly failureThreshold: number
  readonly successThreshold: number
  readonly halfOpenMaxCalls: number
  readonly failureRateThreshold: number | undefined
  readonly minimumCalls: number
  readonly slowCallMillis: number | undefined
  readonly slowCallRateThreshold: number | undefined
  readonly recoveryFactor: number
  readonly window: Window.WindowConfig
}

/** @internal */
export interface Probe {
  readonly id: number
  readonly admittedAt: number
}

/** @internal */
export interface Failure {
  readonly at: number
  readonly message: string
}

/** @internal */
export interface Stats {
  readonly total: number
  readonly successful: number
  readonly failed: number
  readonly ignored: number
  readonly interrupted: number
  readonly rejected: number
  readonly slow: number
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  readonly stateChanges: number
  readonly recentFailures: ReadonlyArray<Failure>
}

/** @internal */
export interface State {
  /** The breaker's own state; `isolations > 0` shows it as `ForcedOpen`. */
  readonly status: Status
  /** Changes on every change of what a call sees; calls admitted in an older epoch are late. */
  readonly epoch: number
  /** When the state that callers see (`visible`) began. */
  readonly enteredAt: number
  readonly openUntil: number
  /** Duration of the current (Open, HalfOpen) or last open period, in ms. */
  readonly openDuration: number
  /** Duration of the next open period, drawn ahead from the open schedule. */
  readonly nextOpenDelay: number
  /** Openings since the breaker last closed: the open schedule's input. */
  readonly opens: number
  /** Invalidates schedule draws made for an older opening. */
  readonly drawToken: number
  readonly scheduleState: unknown
  readonly probes: ReadonlyArray<Probe>
  readonly nextProbeId: number
  readonly halfOpenSuccesses: number
  readonly recoveryCredit: number
  readonly isolations: number
  readonly window: Window.Window
  readonly stats: Stats
  /** Events emitted so far. */
  readonly seq: number
}

/** @internal */
export interface Transition {
  readonly seq: number
  readonly from: Status
  readonly to: Status
  readonly at: number
  readonly reason: Reason
}

/**
 * What the shell must do after a step: publish `events`, and step the open schedule
 * (`draw`) from its initial state (`"restart"`) or from the current one (`"next"`).
 *
 * @internal
 */
export interface Effects {
  readonly events: ReadonlyArray<Transition>
  readonly draw: "next" | "restart" | undefined
}

/** The effects of a step that changed nothing visible; compared by identity. @internal */
export const noEffects: Effects = { events: [], draw: undefined }
const none = noEffects

/** A permit to run one call. `probe` is -1 outside HalfOpen. @internal */
export interface Admission {
  readonly _tag: "Admitted"
  readonly epoch: number
  readonly probe: number
}

/** @internal */
export interface Rejection {
  readonly _tag: "Rejected"
  readonly reason: "Open" | "HalfOpenFull" | "ForcedOpen"
  /** ms; `Infinity` for ForcedOpen. */
  readonly retryAfter: number
}

/** @internal */
export type Outcome = "success" | "failure" | "ignored" | "interrupted"

const EPSILON = 1e-9
const RECENT_FAILURES = 50

/** A new, unshared record of zeros: the live state's stats are updated in place. */
const emptyStats = (): Stats => ({
  total: 0,
  successful: 0,
  failed: 0,
  ignored: 0,
  interrupted: 0,
  rejected: 0,
  slow: 0,
  consecutiveFailures: 0,
  consecutiveSuccesses: 0,
  stateChanges: 0,
  recentFailures: []
})

// Hot paths build states and stats with object literals that list every field: on the
// V8 versions Node 20 ships, a spread costs several times more than a literal.

const withStats = (s: State, stats: Stats): State => withWindowStats(s, s.window, stats)

const withWindowStats = (s: State, window: Window.Window, stats: Stats): State => ({
  status: s.status,
  epoch: s.epoch,
  enteredAt: s.enteredAt,
  openUntil: s.openUntil,
  openDuration: s.openDuration,
  nextOpenDelay: s.nextOpenDelay,
  opens: s.opens,
  drawToken: s.drawToken,
  scheduleState: s.scheduleState,
  probes: s.probes,
  nextProbeId: s.nextProbeId,
  halfOpenSuccesses: s.halfOpenSuccesses,
  recoveryCredit: s.recoveryCredit,
  isolations: s.isolations,
  window,
  stats,
  seq: s.seq
})

const makeStats = (
  s: Stats,
  total: number,
  successful: number,
  failed: number,
  ignored: number,
  interrupted: number,
  rejected: number,
  slow: number,
  consecutiveFailures: number,
  consecutiveSuccesses: number,
  recentFailures: ReadonlyArray<Failure>
): Stats => ({
  total,
  successful,
  failed,
  ignored,
  interrupted,
  rejected,
  slow,
  consecutiveFailures,
  consecutiveSuccesses,
  stateChanges: s.stateChanges,
  recentFailures
})

/** @internal */
export const initial = (config: Config, now: number, firstOpenDelay: number, scheduleState: unknown): State => ({
  status: "Closed",
  epoch: 0,
  enteredAt: now,
  openUntil: 0,
  openDuration: firstOpenDelay,
  nextOpenDelay: firstOpenDelay,
  opens: 0,
  drawToken: 0,
  scheduleState,
  probes: [],
  nextProbeId: 0,
  halfOpenSuccesses: 0,
  recoveryCredit: 1,
  isolations: 0,
  window: Window.empty(config.window),
  stats: emptyStats(),
  seq: 0
})

/** What calls and reads see. @internal */
export const visible = (state: State): Status => state.isolations > 0 ? "ForcedOpen" : state.status

// -----------------------------------------------------------------------------
// Transitions
// -----------------------------------------------------------------------------

/**
 * Moves to `next` (a state whose status, epoch and phase fields are already set), counting
 * the change and emitting an event when what callers see has changed.
 */
const transition = (
  before: State,
  next: State,
  at: number,
  reason: Reason,
  events: Array<Transition>
): State => {
  const from = visible(before)
  const to = visible(next)
  if (from === to && reason !== "Reset") return next
  events.push({ seq: next.seq, from, to, at, reason })
  return {
    ...next,
    enteredAt: at,
    seq: next.seq + 1,
    stats: { ...next.stats, stateChanges: next.stats.stateChanges + 1 }
  }
}

const toOpen = (state: State, at: number, reason: Reason, events: Array<Transition>): State =>
  transition(state, {
    ...state,
    status: "Open",
    epoch: state.epoch + 1,
    openUntil: at + state.nextOpenDelay,
    openDuration: state.nextOpenDelay,
    opens: state.opens + 1,
    drawToken: state.drawToken + 1,
    probes: [],
    halfOpenSuccesses: 0
  }, at, reason, events)

const toHalfOpen = (state: State, at: number, reason: Reason, events: Array<Transition>): State =>
  transition(state, {
    ...state,
    status: "HalfOpen",
    epoch: state.epoch + 1,
    probes: [],
    halfOpenSuccesses: 0,
    recoveryCredit: 1
  }, at, reason, events)

const toClosed = (
  state: State,
  at: number,
  reason: Reason,
  events: Array<Transition>,
  status: "Closed" | "ForcedClosed" = "Closed"
): State =>
  transition(state, {
    ...state,
    status,
    epoch: state.epoch + 1,
    opens: 0,
    drawToken: state.drawToken + 1,
    probes: [],
    halfOpenSuccesses: 0,
    window: Window.clear(state.window),
    stats: { ...state.stats, consecutiveFailures: 0, consecutiveSuccesses: 0 }
  }, at, reason, events)

/**
 * The lazy transition: an Open breaker whose open duration has passed is HalfOpen, as of
 * the moment the duration ended.
 */
const observe = (state: State, now: number, events: Array<Transition>): State =>
  state.status === "Open" && now >= state.openUntil
    ? toHalfOpen(state, state.openUntil, "OpenDurationElapsed", events)
    : state

const result = <A>(value: A, state: State, events: Array<Transition>, draw: Effects["draw"]) =>
  [value, state, events.length === 0 && draw === undefined ? none : { events, draw }] as const

// -----------------------------------------------------------------------------
// Calls
// -----------------------------------------------------------------------------

/** Probes that are not stuck: a probe holds its permit for one open duration at most. */
const liveProbes = (state: State, now: number): ReadonlyArray<Probe> => {
  const probes = state.probes
  for (let i = 0; i < probes.length; i++) {
    if (probes[i]!.admittedAt + state.openDuration <= now) {
      return probes.filter((p) => p.admittedAt + state.openDuration > now)
    }
  }
  return probes
}

const reject = (state: State): State => {
  const t = state.stats
  return withStats(
    state,
    makeStats(
      t,
      t.total + 1,
      t.successful,
      t.failed,
      t.ignored,
      t.interrupted,
      t.rejected + 1,
      t.slow,
      t.consecutiveFailures,
      t.consecutiveSuccesses,
      t.recentFailures
    )
  )
}

/**
 * A call asks to run at `now`.
 *
 * @internal
 */
export const acquire = (
  state: State,
  now: number,
  config: Config
): readonly [Admission | Rejection, State, Effects] => {
  const status = state.isolations > 0 ? "ForcedOpen" : state.status
  if (status === "Closed" || status === "ForcedClosed") {
    return [{ _tag: "Admitted", epoch: state.epoch, probe: -1 }, state, none]
  }
  const events: Array<Transition> = []
  if (status === "ForcedOpen") {
    return result(
      { _tag: "Rejected", reason: "ForcedOpen", retryAfter: Number.POSITIVE_INFINITY } as const,
      reject(state),
      events,
      undefined
    )
  }
  const current = observe(state, now, events)
  if (current.status === "Open") {
    const retryAfter = current.openUntil - now
    return result({ _tag: "Rejected", reason: "Open", retryAfter } as const, reject(current), events, undefined)
  }
  // HalfOpen
  const probes = liveProbes(current, now)
  if (probes.length >= config.halfOpenMaxCalls) {
    let earliest = Number.POSITIVE_INFINITY
    for (const p of probes) earliest = Math.min(earliest, p.admittedAt)
    const retryAfter = Math.max(0, earliest + current.openDuration - now)
    const next = probes === current.probes ? current : { ...current, probes }
    return result(
      { _tag: "Rejected", reason: "HalfOpenFull", retryAfter } as const,
      reject(next),
      events,
      undefined
    )
  }
  if (current.recoveryCredit < 1 - EPSILON) {
    const next = { ...current, probes, recoveryCredit: current.recoveryCredit + config.recoveryFactor }
    return result({ _tag: "Rejected", reason: "HalfOpenFull", retryAfter: 0 } as const, reject(next), events, undefined)
  }
  const id = current.nextProbeId
  const next: State = {
    ...current,
    probes: [...probes, { id, admittedAt: now }],
    nextProbeId: id + 1,
    recoveryCredit: current.recoveryCredit - 1 + config.recoveryFactor
  }
  return result({ _tag: "Admitted", epoch: next.epoch, probe: id } as const, next, events, undefined)
}

/**
 * Counts an outcome in the lifetime counters and, when `streak` is set, in the
 * consecutive counters as a success or a failure.
 */
const count = (
  t: Stats,
  outcome: Outcome,
  slow: boolean,
  now: number,
  message: string,
  streak: "success" | "failure" | undefined
): Stats => {
  const failed = outcome === "failure"
  const recent = failed ? appendFailure(t.recentFailures, now, message) : t.recentFailures
  return makeStats(
    t,
    t.total + 1,
    outcome === "success" ? t.successful + 1 : t.successful,
    failed ? t.failed + 1 : t.failed,
    outcome === "ignored" ? t.ignored + 1 : t.ignored,
    outcome === "interrupted" ? t.interrupted + 1 : t.interrupted,
    t.rejected,
    slow ? t.slow + 1 : t.slow,
    streak === "success" ? 0 : streak === "failure" ? t.consecutiveFailures + 1 : t.consecutiveFailures,
    streak === "success" ? t.consecutiveSuccesses + 1 : streak === "failure" ? 0 : t.consecutiveSuccesses,
    recent
  )
}

/** Counts an outcome in the lifetime counters only: it changes nothing else. */
const uncounted = (s: State, outcome: Outcome, slow: boolean, now: number, message: string): State =>
  withStats(s, count(s.stats, outcome, slow, now, message, undefined))

/** Why a Closed breaker must open now, if it must. */
const tripReason = (state: State, outcome: Outcome, now: number, config: Config): Reason | undefined =>
  tripReasonOf(state.window, outcome, state.stats.consecutiveFailures, now, config)

const tripReasonOf = (
  window: Window.Window,
  outcome: Outcome,
  consecutiveFailures: number,
  now: number,
  config: Config
): Reason | undefined => {
  if (outcome === "failure" && consecutiveFailures >= config.failureThreshold) return "FailureThreshold"
  if (config.failureRateThreshold === undefined && config.slowCallRateThreshold === undefined) return undefined
  return rateReason(Window.totals(window, now), config)
}

/** Why the rates of a window's totals open a Closed breaker, if they do. */
const rateReason = (totals: Window.Totals, config: Config): Reason | undefined => {
  if (totals.calls === 0 || totals.calls < config.minimumCalls) return undefined
  if (config.failureRateThreshold !== undefined && totals.failures / totals.calls >= config.failureRateThreshold) {
    return "FailureRate"
  }
  if (config.slowCallRateThreshold !== undefined && totals.slow / totals.calls >= config.slowCallRateThreshold) {
    return "SlowCallRate"
  }
  return undefined
}

/**
 * A call admitted in `epoch` (as probe `probe`, -1 outside HalfOpen) ended at `now` after
 * `durationMillis` with `outcome`.
 *
 * @internal
 */
export const record = (
  state: State,
  epoch: number,
  probe: number,
  outcome: Outcome,
  now: number,
  durationMillis: number,
  failureMessage: string,
  config: Config
): readonly [void, State, Effects] => {
  const events: Array<Transition> = []
  const slow = config.slowCallMillis !== undefined && durationMillis >= config.slowCallMillis &&
    (outcome === "success" || outcome === "failure")
  const current = observe(state, now, events)
  if (epoch !== current.epoch) {
    // A late result: it started under a state that has since changed.
    return result(undefined, uncounted(current, outcome, slow, now, failureMessage), events, undefined)
  }
  switch (current.status) {
    case "Closed":
    case "ForcedClosed": {
      if (outcome === "ignored" || outcome === "interrupted") {
        return result(undefined, uncounted(current, outcome, slow, now, failureMessage), events, undefined)
      }
      const flags = (outcome === "failure" ? Window.FAILURE : 0) | (slow ? Window.SLOW : 0)
      const next = withWindowStats(
        current,
        Window.add(current.window, flags, now),
        count(current.stats, outcome, slow, now, failureMessage, outcome)
      )
      if (current.status === "ForcedClosed") return result(undefined, next, events, undefined)
      const reason = tripReason(next, outcome, now, config)
      return reason === undefined
        ? result(undefined, next, events, undefined)
        : result(undefined, toOpen(next, now, reason, events), events, "next")
    }
    case "HalfOpen": {
      // A probe held its permit for one open duration at most: one that ends later is late,
      // whether or not another call has taken its permit since.
      const live = liveProbes(current, now)
      const index = live.findIndex((p) => p.id === probe)
      const counted = (streak: "success" | "failure" | undefined) =>
        count(current.stats, outcome, slow, now, failureMessage, streak)
      if (index < 0) return result(undefined, withStats(current, counted(undefined)), events, undefined)
      const probes = live.filter((_, i) => i !== index)
      if (outcome === "ignored" || outcome === "interrupted") {
        return result(undefined, { ...current, probes, stats: counted(undefined) }, events, undefined)
      }
      const failed = outcome === "failure" || (slow && config.slowCallRateThreshold !== undefined)
      const stats = counted(failed ? "failure" : "success")
      if (failed) {
        return result(undefined, toOpen({ ...current, probes, stats }, now, "ProbeFailed", events), events, "next")
      }
      const successes = current.halfOpenSuccesses + 1
      if (successes >= config.successThreshold) {
        return result(
          undefined,
          toClosed({ ...current, probes, stats }, now, "ProbesSucceeded", events),
          events,
          "restart"
        )
      }
      return result(undefined, { ...current, probes, stats, halfOpenSuccesses: successes }, events, undefined)
    }
    default:
      // Open and ForcedOpen admit nothing, so an admission of the current epoch cannot end there.
      return result(undefined, uncounted(current, outcome, slow, now, failureMessage), events, undefined)
  }
}

// -----------------------------------------------------------------------------
// Hot paths, in place
// -----------------------------------------------------------------------------

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

const appendFailure = (recent: ReadonlyArray<Failure>, at: number, message: string): ReadonlyArray<Failure> => {
  // A new array: snapshots handed to readers (metrics.recentFailures) never change under them.
  const kept = recent.length >= RECENT_FAILURES ? recent.slice(recent.length - RECENT_FAILURES + 1) : recent.slice()
  kept.push({ at, message })
  return kept
}

/**
 * `record` for the common case, applied to the live state in place: a call of the current
 * epoch ends while the breaker is `Closed` (or `ForcedClosed`) and trips nothing. The shell
 * owns the live state (the value of the breaker's `Ref`, read and written within one fiber
 * step, and every transition makes a new one), so this changes exactly what `record` would
 * without a new state per call: only the window allocates. Returns `false`, having changed
 * nothing, when the call is late, the breaker is in another state, or the call trips it:
 * then `record` decides.
 *
 * @internal
 */
export const recordClosedInPlace = (
  state: State,
  epoch: number,
  outcome: Outcome,
  now: number,
  durationMillis: number,
  failureMessage: string,
  config: Config
): boolean => {
  if (epoch !== state.epoch || (state.status !== "Closed" && state.status !== "ForcedClosed")) return false
  const stats = state.stats as Mutable<Stats>
  if (outcome === "ignored" || outcome === "interrupted") {
    stats.total++
    if (outcome === "ignored") stats.ignored++
    else stats.interrupted++
    return true
  }
  const failed = outcome === "failure"
  const slow = config.slowCallMillis !== undefined && durationMillis >= config.slowCallMillis
  const flags = (failed ? Window.FAILURE : 0) | (slow ? Window.SLOW : 0)
  const consecutiveFailures = failed ? stats.consecutiveFailures + 1 : 0
  const closed = state.status === "Closed"
  if (closed && failed && consecutiveFailures >= config.failureThreshold) return false
  const rates = config.failureRateThreshold !== undefined || config.slowCallRateThreshold !== undefined
  const current = state.window
  if (Window.landsInNewest(current, now)) {
    // The common case of a time window: the call joins the newest bucket, whose totals are exact.
    if (closed && rates) {
      const totals = {
        calls: current.calls + 1,
        failures: current.failures + (failed ? 1 : 0),
        slow: current.slow + (slow ? 1 : 0)
      }
      if (rateReason(totals, config) !== undefined) return false
    }
    Window.addToNewestInPlace(current, flags)
  } else {
    const window = Window.add(current, flags, now)
    if (closed && rates && rateReason(Window.totals(window, now), config) !== undefined) return false
    ;(state as Mutable<State>).window = window
  }
  stats.total++
  if (slow) stats.slow++
  stats.consecutiveFailures = consecutiveFailures
  if (failed) {
    stats.failed++
    stats.consecutiveSuccesses = 0
    stats.recentFailures = appendFailure(stats.recentFailures, now, failureMessage)
  } else {
    stats.successful++
    stats.consecutiveSuccesses++
  }
  return true
}

/**
 * `acquire` for a call rejected while `Open` (its open period not over) or forced open,
 * applied in place: counts the rejection and returns the `retryAfter` in ms (`Infinity` when
 * forced open), or -1, having changed nothing, in any other case.
 *
 * @internal
 */
export const rejectInPlace = (state: State, now: number): number => {
  let retryAfter: number
  if (state.isolations > 0 || state.status === "ForcedOpen") retryAfter = Number.POSITIVE_INFINITY
  else if (state.status === "Open" && now < state.openUntil) retryAfter = state.openUntil - now
  else return -1
  const stats = state.stats as Mutable<Stats>
  stats.total++
  stats.rejected++
  return retryAfter
}

// -----------------------------------------------------------------------------
// Commands
// -----------------------------------------------------------------------------

/** @internal */
export type Command = "ForceOpen" | "ForceClosed" | "Reset" | "Isolate" | "Release" | "HealthCheckPassed"

/**
 * Applies a command at `now`.
 *
 * @internal
 */
export const command = (state: State, command: Command, now: number): readonly [void, State, Effects] => {
  const events: Array<Transition> = []
  const current = observe(state, now, events)
  switch (command) {
    case "ForceOpen":
      return result(
        undefined,
        current.status === "ForcedOpen" ? current : transition(current, {
          ...current,
          status: "ForcedOpen",
          epoch: current.epoch + 1,
          probes: [],
          halfOpenSuccesses: 0
        }, now, "ForceOpen", events),
        events,
        undefined
      )
    case "ForceClosed":
      return current.status === "ForcedClosed"
        ? result(undefined, current, events, undefined)
        : result(undefined, toClosed(current, now, "ForceClosed", events, "ForcedClosed"), events, "restart")
    case "Reset": {
      const cleared: State = { ...current, stats: emptyStats() }
      const next = toClosed(cleared, now, "Reset", events)
      return result(undefined, { ...next, stats: emptyStats() }, events, "restart")
    }
    // Isolating or releasing makes every call in flight late, probes included: their permits go.
    case "Isolate":
      return result(
        undefined,
        transition(
          current,
          { ...current, isolations: current.isolations + 1, epoch: current.epoch + 1, probes: [] },
          now,
          "Isolated",
          events
        ),
        events,
        undefined
      )
    case "Release": {
      if (current.isolations === 0) return result(undefined, current, events, undefined)
      const released: State = { ...current, isolations: current.isolations - 1, epoch: current.epoch + 1, probes: [] }
      return result(undefined, transition(current, released, now, "IsolationReleased", events), events, undefined)
    }
    // An isolated breaker shows ForcedOpen: a health check has nothing to move.
    case "HealthCheckPassed":
      return visible(current) === "Open"
        ? result(undefined, toHalfOpen(current, now, "HealthCheckPassed", events), events, undefined)
        : result(undefined, current, events, undefined)
  }
}

/**
 * Applies the lazy transition, if due, for a read.
 *
 * @internal
 */
export const observeAt = (state: State, now: number): readonly [State, State, Effects] => {
  const events: Array<Transition> = []
  const next = observe(state, now, events)
  return result(next, next, events, undefined)
}

/**
 * Stores the open duration drawn for the opening that `token` names, unless the breaker
 * has opened or closed again since.
 *
 * @internal
 */
export const setNextOpenDelay = (state: State, token: number, delay: number, scheduleState: unknown): State =>
  state.drawToken === token ? { ...state, nextOpenDelay: delay, scheduleState } : state

// -----------------------------------------------------------------------------
// Queries (pure reads of an observed state)
// -----------------------------------------------------------------------------

/** @internal */
export const isCallPermitted = (state: State, now: number, config: Config): boolean => {
  switch (visible(state)) {
    case "Closed":
    case "ForcedClosed":
      return true
    case "Open":
    case "ForcedOpen":
      return false
    case "HalfOpen":
      return liveProbes(state, now).length < config.halfOpenMaxCalls && state.recoveryCredit >= 1 - EPSILON
  }
}

/** ms until a call may be permitted. @internal */
export const retryAfter = (state: State, now: number, config: Config): number => {
  switch (visible(state)) {
    case "Closed":
    case "ForcedClosed":
      return 0
    case "ForcedOpen":
      return Number.POSITIVE_INFINITY
    case "Open":
      return Math.max(0, state.openUntil - now)
    case "HalfOpen": {
      const probes = liveProbes(state, now)
      if (probes.length < config.halfOpenMaxCalls) return 0
      let earliest = Number.POSITIVE_INFINITY
      for (const p of probes) earliest = Math.min(earliest, p.admittedAt)
      return Math.max(0, earliest + state.openDuration - now)
    }
  }
}

/** @internal */
export const probesInFlight = (state: State, now: number): number =>
  state.status === "HalfOpen" ? liveProbes(state, now).length : 0
