/**
 * A reference model of the circuit breaker, written from the public contract and the decided
 * semantics (not from the implementation), so that model-based tests compare two independent
 * readings of the same rules. It is deliberately naive: plain mutable fields, arrays instead of
 * ring buffers, no attention to memory.
 *
 * Where the contract leaves a detail open, the model says which reading it takes at that spot.
 */

export type State = "Closed" | "Open" | "HalfOpen" | "ForcedOpen" | "ForcedClosed"

export type Reason =
  | "FailureThreshold"
  | "FailureRate"
  | "SlowCallRate"
  | "OpenDurationElapsed"
  | "ProbeFailed"
  | "ProbesSucceeded"
  | "HealthCheckPassed"
  | "ForceOpen"
  | "ForceClosed"
  | "Reset"
  | "Isolated"
  | "IsolationReleased"

export type RejectReason = "Open" | "HalfOpenFull" | "ForcedOpen"

export type Outcome = "success" | "failure" | "ignored" | "interrupted"

export interface Transition {
  readonly from: State
  readonly to: State
  readonly at: number
  readonly reason: Reason
}

export type Admission =
  | { readonly _tag: "Admitted"; readonly id: number }
  | { readonly _tag: "Rejected"; readonly reason: RejectReason; readonly retryAfter: number }

export interface ModelConfig {
  readonly failureThreshold: number
  readonly successThreshold: number
  readonly halfOpenMaxCalls: number
  readonly recoveryFactor: number
  readonly failureRateThreshold: number | undefined
  readonly slowCallMillis: number | undefined
  readonly slowCallRateThreshold: number | undefined
  readonly minimumCalls: number
  readonly window:
    | { readonly _tag: "Count"; readonly size: number }
    | { readonly _tag: "Time"; readonly durationMillis: number; readonly buckets: number }
  /** The duration of the n-th opening (1-based) since the open schedule was last restarted. */
  readonly openDuration: (opening: number) => number
  /**
   * Known deviations of the implementation from the decided semantics, modelled so that the
   * rest of the comparison can go on while they are open.
   */
  readonly deviations?: {
    /**
     * The decided semantics: `halfOpen` (what a passing health check does) acts on a breaker
     * that reports `Open`, and does nothing in any other state. The implementation also acts on
     * an isolated breaker (which reports `ForcedOpen`) whose underlying state is Open: the open
     * period is cut short silently, and releasing the isolation lands in HalfOpen.
     */
    readonly halfOpenCommandIgnoresIsolation?: boolean
  } | undefined
}

export interface ModelMetrics {
  readonly state: State
  readonly totalCalls: number
  readonly successfulCalls: number
  readonly failedCalls: number
  readonly ignoredCalls: number
  readonly interruptedCalls: number
  readonly rejectedCalls: number
  readonly slowCalls: number
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  readonly stateChanges: number
  readonly probesInFlight: number
  readonly windowCalls: number
  readonly failureRate: number
  readonly slowCallRate: number
  readonly timeInState: number
  readonly openDuration: number
}

type Base =
  | { readonly tag: "Closed" }
  | { readonly tag: "ForcedOpen" }
  | { readonly tag: "ForcedClosed" }
  | { readonly tag: "Open"; readonly openUntil: number; readonly duration: number }
  | { readonly tag: "HalfOpen"; readonly duration: number; credit: number; successes: number }

interface Call {
  readonly id: number
  readonly epoch: number
  readonly kind: "Closed" | "Probe" | "ForcedClosed"
  readonly admittedAt: number
  readonly startedAt: number
}

interface Entry {
  readonly at: number
  readonly failure: boolean
  readonly slow: boolean
}

export class BreakerModel {
  private base: Base = { tag: "Closed" }
  private isolation = 0
  private epoch = 0
  private opens = 0
  private window: Array<Entry> = []
  private readonly calls = new Map<number, Call>()
  private nextId = 0
  private enteredAt = 0

  totalCalls = 0
  successfulCalls = 0
  failedCalls = 0
  ignoredCalls = 0
  interruptedCalls = 0
  rejectedCalls = 0
  slowCalls = 0
  consecutiveFailures = 0
  consecutiveSuccesses = 0
  stateChanges = 0

  /** How often each situation worth covering happened, for the tests to check the generator's reach. */
  readonly coverage = new Map<string, number>()

  /** Every transition emitted so far, in order. */
  readonly events: Array<Transition> = []

  constructor(readonly config: ModelConfig) {}

  // ---------------------------------------------------------------------------
  // Queries
  // ---------------------------------------------------------------------------

  visible(): State {
    return this.isolation > 0 ? "ForcedOpen" : this.base.tag
  }

  state(now: number): State {
    this.settle(now)
    return this.visible()
  }

  isCallPermitted(now: number): boolean {
    this.settle(now)
    if (this.isolation > 0) return false
    switch (this.base.tag) {
      case "Closed":
      case "ForcedClosed":
        return true
      case "Open":
      case "ForcedOpen":
        return false
      case "HalfOpen":
        return this.liveProbes(now).length < this.config.halfOpenMaxCalls && this.base.credit >= 1
    }
  }

  retryAfter(now: number): number {
    this.settle(now)
    if (this.isolation > 0) return Number.POSITIVE_INFINITY
    switch (this.base.tag) {
      case "Closed":
      case "ForcedClosed":
        return 0
      case "ForcedOpen":
        return Number.POSITIVE_INFINITY
      case "Open":
        return this.base.openUntil - now
      case "HalfOpen": {
        const live = this.liveProbes(now)
        return live.length >= this.config.halfOpenMaxCalls ? this.soonestFree(live, now) : 0
      }
    }
  }

  metrics(now: number): ModelMetrics {
    this.settle(now)
    const totals = this.windowTotals(now)
    const base = this.base
    return {
      state: this.visible(),
      totalCalls: this.totalCalls,
      successfulCalls: this.successfulCalls,
      failedCalls: this.failedCalls,
      ignoredCalls: this.ignoredCalls,
      interruptedCalls: this.interruptedCalls,
      rejectedCalls: this.rejectedCalls,
      slowCalls: this.slowCalls,
      consecutiveFailures: this.consecutiveFailures,
      consecutiveSuccesses: this.consecutiveSuccesses,
      stateChanges: this.stateChanges,
      probesInFlight: this.liveProbes(now).length,
      windowCalls: totals.calls,
      failureRate: totals.calls === 0 ? 0 : totals.failures / totals.calls,
      slowCallRate: totals.calls === 0 ? 0 : totals.slow / totals.calls,
      timeInState: now - this.enteredAt,
      // The current open period's duration, or the next one's.
      openDuration: base.tag === "Open" || base.tag === "HalfOpen" ?
        base.duration :
        this.config.openDuration(this.opens + 1)
    }
  }

  // ---------------------------------------------------------------------------
  // Calls
  // ---------------------------------------------------------------------------

  acquire(now: number): Admission {
    this.settle(now)
    const admitted = (kind: Call["kind"]): Admission => {
      const id = this.nextId++
      this.calls.set(id, { id, epoch: this.epoch, kind, admittedAt: now, startedAt: now })
      return { _tag: "Admitted", id }
    }
    const rejected = (reason: RejectReason, retryAfter: number): Admission => {
      this.totalCalls++
      this.rejectedCalls++
      return { _tag: "Rejected", reason, retryAfter }
    }
    if (this.isolation > 0) return rejected("ForcedOpen", Number.POSITIVE_INFINITY)
    const base = this.base
    switch (base.tag) {
      case "ForcedOpen":
        return rejected("ForcedOpen", Number.POSITIVE_INFINITY)
      case "Open":
        return rejected("Open", base.openUntil - now)
      case "Closed":
        return admitted("Closed")
      case "ForcedClosed":
        return admitted("ForcedClosed")
      case "HalfOpen": {
        const live = this.liveProbes(now)
        if (this.calls.size > live.length) this.hit("HalfOpen arrival while a reclaimed or late call runs")
        if (live.length >= this.config.halfOpenMaxCalls) {
          this.hit("HalfOpen full")
          return rejected("HalfOpenFull", this.soonestFree(live, now))
        }
        if (base.credit >= 1) {
          base.credit = base.credit - 1 + this.config.recoveryFactor
          return admitted("Probe")
        }
        this.hit("HalfOpen arrival turned away by recoveryFactor")
        base.credit = base.credit + this.config.recoveryFactor
        return rejected("HalfOpenFull", 0)
      }
    }
  }

  /** Ends the call admitted as `id`. A defect is passed as `"failure"`. */
  end(id: number, outcome: Outcome, now: number): void {
    this.settle(now)
    const call = this.calls.get(id)
    if (call === undefined) throw new Error(`model: no call ${id} in flight`)
    this.calls.delete(id)
    const slow = (outcome === "success" || outcome === "failure") && this.config.slowCallMillis !== undefined &&
      now - call.startedAt >= this.config.slowCallMillis
    this.totalCalls++
    if (slow) this.slowCalls++
    switch (outcome) {
      case "success":
        this.successfulCalls++
        break
      case "failure":
        this.failedCalls++
        break
      case "ignored":
        this.ignoredCalls++
        break
      case "interrupted":
        this.interruptedCalls++
        break
    }
    if (this.isLate(call, now)) return
    if (call.kind === "Probe") this.hit(`probe ${outcome}${slow ? " (slow)" : ""}`)
    if (outcome === "ignored" || outcome === "interrupted") return
    const failure = outcome === "failure"
    switch (call.kind) {
      case "ForcedClosed":
        this.record(failure, slow, now)
        return
      case "Closed": {
        this.record(failure, slow, now)
        if (failure && this.consecutiveFailures >= this.config.failureThreshold) {
          return this.open(now, "FailureThreshold")
        }
        const totals = this.windowTotals(now)
        if (totals.calls < this.window.length) this.hit("rates judged after the time window forgot calls")
        if (totals.calls >= this.config.minimumCalls) {
          const rate = this.config.failureRateThreshold
          if (rate !== undefined && totals.failures / totals.calls >= rate) return this.open(now, "FailureRate")
          const slowRate = this.config.slowCallRateThreshold
          if (slowRate !== undefined && totals.slow / totals.calls >= slowRate) return this.open(now, "SlowCallRate")
        }
        return
      }
      case "Probe": {
        const base = this.base
        if (base.tag !== "HalfOpen") throw new Error("model: a current probe outside HalfOpen")
        // A slow probe counts as a failed one when the slow-call rule is on. Probe outcomes move
        // the consecutive counters as calls in Closed do.
        const failedProbe = failure || (slow && this.config.slowCallRateThreshold !== undefined)
        if (failedProbe) {
          this.consecutiveFailures++
          this.consecutiveSuccesses = 0
          return this.open(now, "ProbeFailed")
        }
        this.consecutiveFailures = 0
        this.consecutiveSuccesses++
        base.successes++
        if (base.successes >= this.config.successThreshold) {
          this.change(now, "ProbesSucceeded", () => {
            this.base = { tag: "Closed" }
            this.window = []
            this.consecutiveFailures = 0
            this.consecutiveSuccesses = 0
            this.opens = 0
          })
        }
        return
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Commands
  // ---------------------------------------------------------------------------

  forceOpen(now: number): void {
    this.settle(now)
    this.change(now, "ForceOpen", () => {
      this.base = { tag: "ForcedOpen" }
    })
  }

  forceClosed(now: number): void {
    this.settle(now)
    // Already forced closed: nothing to do (the window keeps what it recorded meanwhile).
    if (this.base.tag === "ForcedClosed") return
    this.change(now, "ForceClosed", () => {
      this.base = { tag: "ForcedClosed" }
      // Closing restarts the open schedule.
      this.opens = 0
      this.window = []
      this.consecutiveFailures = 0
      this.consecutiveSuccesses = 0
    })
  }

  reset(now: number): void {
    this.settle(now)
    const from = this.visible()
    this.hit(`reset from ${this.base.tag}${this.isolation > 0 ? " while isolated" : ""}`)
    this.base = { tag: "Closed" }
    this.window = []
    this.opens = 0
    this.totalCalls = 0
    this.successfulCalls = 0
    this.failedCalls = 0
    this.ignoredCalls = 0
    this.interruptedCalls = 0
    this.rejectedCalls = 0
    this.slowCalls = 0
    this.consecutiveFailures = 0
    this.consecutiveSuccesses = 0
    this.epoch++
    this.enteredAt = now
    // While an isolation holds, the breaker still reports ForcedOpen after a reset.
    this.events.push({ from, to: this.visible(), at: now, reason: "Reset" })
    this.stateChanges = 0
  }

  /** What a passing health check does: Open -> HalfOpen now; nothing in any other visible state. */
  halfOpen(now: number): void {
    this.settle(now)
    const base = this.base
    if (base.tag !== "Open") return
    if (this.isolation > 0) {
      this.hit("health check passed while isolated over Open")
      if (this.config.deviations?.halfOpenCommandIgnoresIsolation !== true) return
    }
    this.change(now, "HealthCheckPassed", () => {
      this.base = { tag: "HalfOpen", duration: base.duration, credit: 1, successes: 0 }
    })
  }

  isolate(now: number): void {
    this.settle(now)
    this.hit(`isolated over ${this.base.tag}${this.calls.size > 0 ? " with calls in flight" : ""}`)
    this.change(now, "Isolated", () => {
      this.isolation++
    })
    this.epoch++
  }

  release(now: number): void {
    this.settle(now)
    if (this.isolation === 0) throw new Error("model: release without isolate")
    if (this.isolation === 1) this.hit(`last isolation released over ${this.base.tag}`)
    this.change(now, "IsolationReleased", () => {
      this.isolation--
    })
    this.epoch++
  }

  // ---------------------------------------------------------------------------
  // Machinery
  // ---------------------------------------------------------------------------

  /** The lazy Open -> HalfOpen transition, stamped with the moment the open period ended. */
  private settle(now: number): void {
    const base = this.base
    if (base.tag === "Open" && now >= base.openUntil) {
      if (this.isolation > 0) this.hit("open period ended while isolated")
      this.change(base.openUntil, "OpenDurationElapsed", () => {
        this.base = { tag: "HalfOpen", duration: base.duration, credit: 1, successes: 0 }
      })
    }
  }

  /** Applies `mutate`; when the visible state changed, emits the transition and starts a new epoch. */
  private change(at: number, reason: Reason, mutate: () => void): void {
    const from = this.visible()
    mutate()
    const to = this.visible()
    // `timeInState` is the time in the state the breaker reports: it restarts with every
    // emitted transition, isolations included, and not when a hidden state changes.
    if (from !== to) {
      this.enteredAt = at
      this.hit(`transition ${from} -> ${to} (${reason})`)
      this.events.push({ from, to, at, reason })
      this.stateChanges++
      this.epoch++
    }
  }

  private open(now: number, reason: Reason): void {
    this.opens++
    const duration = this.config.openDuration(this.opens)
    this.change(now, reason, () => {
      this.base = { tag: "Open", openUntil: now + duration, duration }
    })
  }

  private isLate(call: Call, now: number): boolean {
    if (call.epoch !== this.epoch) {
      this.hit(`late ${call.kind} call`)
      if (call.kind === "Probe" && this.base.tag === "HalfOpen") this.hit("probe of an earlier epoch ended in HalfOpen")
      return true
    }
    if (call.kind !== "Probe") return false
    const base = this.base
    if (base.tag !== "HalfOpen") throw new Error("model: a current probe outside HalfOpen")
    if (now >= call.admittedAt + base.duration) {
      this.hit("probe ended after its permit was reclaimed")
      return true
    }
    return false
  }

  private hit(situation: string): void {
    this.coverage.set(situation, (this.coverage.get(situation) ?? 0) + 1)
  }

  /** The probes holding a permit now, with when they were admitted. */
  private liveProbes(now: number): Array<{ readonly id: number; readonly admittedAt: number }> {
    const base = this.base
    if (this.isolation > 0 || base.tag !== "HalfOpen") return []
    return Array.from(this.calls.values()).filter((call) =>
      call.kind === "Probe" && call.epoch === this.epoch && now < call.admittedAt + base.duration
    )
  }

  /**
   * How long until the first of the busy permits is reclaimed: the contract's "the longest a busy
   * probe may still hold its permit" read as the wait before a retry can be admitted.
   */
  private soonestFree(live: ReadonlyArray<{ readonly admittedAt: number }>, now: number): number {
    const base = this.base
    if (base.tag !== "HalfOpen") return 0
    return Math.max(0, Math.min(...live.map((probe) => probe.admittedAt + base.duration - now)))
  }

  private record(failure: boolean, slow: boolean, now: number): void {
    this.window.push({ at: now, failure, slow })
    const config = this.config.window
    if (config._tag === "Count" && this.window.length > config.size) this.window.shift()
    if (failure) {
      this.consecutiveFailures++
      this.consecutiveSuccesses = 0
    } else {
      this.consecutiveFailures = 0
      this.consecutiveSuccesses++
    }
  }

  private windowTotals(now: number): { calls: number; failures: number; slow: number } {
    const config = this.config.window
    let entries = this.window
    if (config._tag === "Time") {
      // Buckets of duration / buckets ms; a bucket leaves the window once `buckets` newer ones
      // could have started, however long the idle gap.
      const span = config.durationMillis / config.buckets
      const current = Math.floor(now / span)
      entries = entries.filter((entry) => Math.floor(entry.at / span) > current - config.buckets)
    }
    return {
      calls: entries.length,
      failures: entries.filter((entry) => entry.failure).length,
      slow: entries.filter((entry) => entry.slow).length
    }
  }
}
