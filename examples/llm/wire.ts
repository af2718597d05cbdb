/**
 * Requests on the wire between the client and the provider server.
 *
 * The client records each request from the moment it is sent until its response has been
 * read; the server records the requests it holds back on the `Clock` (a slow provider)
 * and the instant it will answer them. A test that runs the scenario on a `TestClock`
 * reads both to advance the clock only when no response is on its way, so real network
 * I/O never races test time.
 */
export class Wire {
  /** Requests sent whose response has not been read yet. */
  readonly inFlight = new Set<string>()
  /** Requests the server holds until a `Clock` instant (epoch millis). */
  readonly parked = new Map<string, number>()
  private next = 0

  /** A fresh request id. */
  nextId(): string {
    return `r${++this.next}`
  }

  /** Requests in flight that the server is not holding on the clock past `now`. */
  inTransit(now: number): number {
    let count = 0
    for (const id of this.inFlight) {
      const until = this.parked.get(id)
      if (until === undefined || until <= now) count++
    }
    return count
  }

  /** The earliest instant the server will answer a request still in flight. */
  nextAnswer(): number | undefined {
    let earliest: number | undefined
    for (const id of this.inFlight) {
      const until = this.parked.get(id)
      if (until !== undefined && (earliest === undefined || until < earliest)) earliest = until
    }
    return earliest
  }
}
