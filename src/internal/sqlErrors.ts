import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Retry from "../Retry.js"
import type { ErrorClass } from "../Retry.js"

/**
 * What went wrong with a database call, in the words a caller acts on.
 *
 * @internal
 */
export type Reason =
  | "Unavailable"
  | "Busy"
  | "Timeout"
  | "CircuitOpen"
  | "Constraint"
  | "Syntax"
  | "Resources"
  | "ReadOnly"
  | "Unknown"

/**
 * Whether a failed write surely did not happen (`NotApplied`) or may have (`Unknown`).
 *
 * @internal
 */
export type Outcome = "NotApplied" | "Unknown"

/**
 * The failure of a call through `ResilientSql`.
 *
 * @internal
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly database: string
  readonly reason: Reason
  readonly errorClass: ErrorClass
  readonly outcome: Outcome
  readonly code: string | undefined
  readonly retryAfter: Duration.Duration | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `database "${this.database}": ${this.reason}${code}: ${describe(this.cause)}`
  }
}

const describe = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null) {
    const record = cause as Record<string, unknown>
    const inner = record.cause
    const own = typeof record.message === "string" && record.message !== "" ? record.message : String(cause)
    if (record._tag === "SqlError" && typeof inner === "object" && inner !== null) {
      const innerMessage = (inner as Record<string, unknown>).message
      if (typeof innerMessage === "string" && innerMessage !== "") return `${own}: ${innerMessage}`
    }
    return own
  }
  return String(cause)
}

/**
 * The error raised when a query runs before the client has connected.
 *
 * @internal
 */
export class NotConnected extends Data.TaggedError("NotConnected")<{
  readonly lastError: unknown
}> {
  override get message(): string {
    return `not connected yet${this.lastError === undefined ? "" : `: ${describe(this.lastError)}`}`
  }
}

// -----------------------------------------------------------------------------
// classification
// -----------------------------------------------------------------------------

interface Decided {
  readonly reason: Reason
  readonly code: string | undefined
  readonly outcome: Outcome
}

// PostgreSQL SQLSTATE codes whose class alone says too little.
const PG_CODES: Readonly<Record<string, Reason>> = {
  "40001": "Busy", // serialization_failure
  "40P01": "Busy", // deadlock_detected
  "55P03": "Busy", // lock_not_available
  "57014": "Timeout", // query_canceled (statement_timeout, or our cancel)
  "57P01": "Unavailable", // admin_shutdown
  "57P02": "Unavailable", // crash_shutdown
  "57P03": "Unavailable", // cannot_connect_now (starting up, recovering)
  "25006": "ReadOnly", // read_only_sql_transaction (a standby)
  "42601": "Syntax"
}

const PG_CLASSES: Readonly<Record<string, Reason>> = {
  "08": "Unavailable", // connection exception
  "53": "Resources", // insufficient resources, too many connections
  "23": "Constraint", // integrity constraint violation
  "22": "Constraint", // data exception (a value the column refuses)
  "42": "Syntax", // syntax error or access rule violation (undefined table...)
  "28": "Syntax", // invalid authorization: configuration, not a blip
  "3D": "Syntax" // invalid catalog name (no such database)
}

// SQLite result codes (better-sqlite3 reports the extended code, e.g. `SQLITE_CONSTRAINT_UNIQUE`).
const SQLITE_PRIMARY: Readonly<Record<string, Reason>> = {
  SQLITE_BUSY: "Busy",
  SQLITE_LOCKED: "Busy",
  SQLITE_PROTOCOL: "Busy",
  SQLITE_CANTOPEN: "Unavailable",
  SQLITE_IOERR: "Unavailable",
  SQLITE_NOTADB: "Unavailable",
  SQLITE_CORRUPT: "Unavailable",
  SQLITE_READONLY: "ReadOnly",
  SQLITE_PERM: "ReadOnly",
  SQLITE_AUTH: "ReadOnly",
  SQLITE_FULL: "Resources",
  SQLITE_NOMEM: "Resources",
  SQLITE_CONSTRAINT: "Constraint",
  SQLITE_MISMATCH: "Constraint",
  SQLITE_TOOBIG: "Constraint",
  SQLITE_RANGE: "Syntax"
}

// Node system errors of a connection that failed or broke.
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENOENT" // a unix socket that is not there
])

// Connection failures of the `pg` driver that carry no code.
const PG_CONNECTION_MESSAGES: ReadonlyArray<RegExp> = [
  /^Connection terminated/,
  /^Client has encountered a connection error/,
  /^Client was closed and is not queryable/,
  /^Cannot use a pool after calling end/,
  /^timeout exceeded when trying to connect/,
  /^Connection timed out/,
  /connect ECONNREFUSED/
]

const sqliteReason = (code: string, message: string): Reason | undefined => {
  const primary = /^SQLITE_[A-Z]+/.exec(code)?.[0]
  if (primary === undefined) return undefined
  if (primary === "SQLITE_ERROR") {
    return /syntax error|no such (table|column|function)|has no column|incomplete input/i.test(message)
      ? "Syntax"
      : undefined
  }
  return SQLITE_PRIMARY[primary]
}

const ownReason = (error: unknown): Decided | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const record = error as Record<string, unknown>
  switch (record._tag) {
    case "NotConnected":
      return { reason: "Unavailable", code: undefined, outcome: "NotApplied" }
    case "CircuitBreakerOpen":
      return { reason: "CircuitOpen", code: undefined, outcome: "NotApplied" }
    case "TimeoutError":
    case "TimeoutException":
      return { reason: "Timeout", code: undefined, outcome: "Unknown" }
  }
  const code = typeof record.code === "string" ? record.code : undefined
  const message = typeof record.message === "string" ? record.message : ""
  if (code !== undefined) {
    if (code.startsWith("SQLITE_")) {
      const reason = sqliteReason(code, message)
      if (reason !== undefined) {
        // A statement SQLite refused (busy, constraint...) did not commit anything.
        const outcome: Outcome = reason === "Unavailable" && code.startsWith("SQLITE_IOERR") ? "Unknown" : "NotApplied"
        return { reason, code, outcome }
      }
    }
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const reason = PG_CODES[code] ?? PG_CLASSES[code.slice(0, 2)]
      if (reason !== undefined) {
        // The server answered with an error: the statement (and its transaction) did not
        // commit, but for a shutdown in the middle of it, whose commit we never heard of.
        const outcome: Outcome = reason === "Unavailable" || reason === "Timeout" ? "Unknown" : "NotApplied"
        return { reason, code, outcome }
      }
    }
    if (CONNECTION_CODES.has(code)) {
      const outcome: Outcome = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ENOENT"
        ? "NotApplied"
        : "Unknown"
      return { reason: "Unavailable", code, outcome }
    }
  }
  if (PG_CONNECTION_MESSAGES.some((pattern) => pattern.test(message))) {
    return { reason: "Unavailable", code, outcome: "Unknown" }
  }
  if (/^Cannot open database because the directory does not exist|unable to open database file/i.test(message)) {
    return { reason: "Unavailable", code, outcome: "NotApplied" }
  }
  return undefined
}

const MAX_DEPTH = 6

/**
 * The reason of an error: its own, else its `cause`'s (an `SqlError` wraps the driver's
 * error in `cause`; an `AggregateError` of a dual-stack connect holds them in `errors`).
 */
const decide = (error: unknown): Decided | undefined => {
  let current = error
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const found = ownReason(current)
    if (found !== undefined) return found
    if (typeof current !== "object" || current === null) return undefined
    const record = current as Record<string, unknown>
    if (Array.isArray(record.errors) && record.errors.length > 0) {
      const inner = decide(record.errors[0])
      if (inner !== undefined) return inner
    }
    current = record._tag === "UnknownException" && record.error !== undefined ? record.error : record.cause
    if (current === undefined) return undefined
  }
  return undefined
}

const CLASS_OF: Readonly<Record<Exclude<Reason, "Unknown">, ErrorClass>> = {
  Unavailable: "Transient",
  Busy: "Transient",
  Timeout: "Transient",
  CircuitOpen: "Transient",
  Constraint: "Fatal",
  Syntax: "Fatal",
  Resources: "Degraded",
  ReadOnly: "Persistent"
}

/**
 * The reason, retry class, outcome and code of any error met on the way to a database.
 *
 * @internal
 */
export const analyze = (error: unknown): {
  readonly reason: Reason
  readonly errorClass: ErrorClass
  readonly outcome: Outcome
  readonly code: string | undefined
} => {
  const decided = decide(error)
  if (decided === undefined) {
    return { reason: "Unknown", errorClass: Retry.classify(error), outcome: "Unknown", code: undefined }
  }
  return { ...decided, errorClass: CLASS_OF[decided.reason as Exclude<Reason, "Unknown">] ?? "Degraded" }
}

/**
 * The retry class of an error met on the way to a database.
 *
 * @internal
 */
export const classify = (error: unknown): ErrorClass => {
  if (error instanceof DatabaseError) return error.errorClass
  return analyze(error).errorClass
}

/**
 * Whether an error says the database itself is unwell (counted by the breaker): it is
 * unreachable, locked, too slow or out of resources. A query the database refused
 * (constraint, syntax) says nothing about its health.
 *
 * @internal
 */
export const isHealthFailure = (error: unknown): boolean => {
  const { reason } = error instanceof DatabaseError ? error : analyze(error)
  return reason !== "Constraint" && reason !== "Syntax" && reason !== "CircuitOpen"
}

/**
 * Whether a value is an `SqlError` of `@effect/sql` (checked by tag, so two copies of the
 * package agree).
 *
 * @internal
 */
export const isSqlError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "SqlError"

/**
 * Maps an error met on the way to a database into a `DatabaseError`.
 *
 * @internal
 */
export const toDatabaseError = (database: string, error: unknown): DatabaseError => {
  if (error instanceof DatabaseError) return error
  const { code, errorClass, outcome, reason } = analyze(error)
  const retryAfter = reason === "CircuitOpen"
    ? (error as { readonly retryAfter?: Duration.Duration }).retryAfter
    : undefined
  return new DatabaseError({ database, reason, errorClass, outcome, code, retryAfter, cause: error })
}

/**
 * Whether an error is one `ResilientSql` maps into a `DatabaseError`: the client's
 * `SqlError`, and the breaker's, timeout's and connector's own failures.
 *
 * @internal
 */
export const isMapped = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null) return false
  const tag = (error as { readonly _tag?: unknown })._tag
  return tag === "SqlError" || tag === "CircuitBreakerOpen" || tag === "TimeoutError" || tag === "NotConnected" ||
    tag === "DatabaseError"
}
