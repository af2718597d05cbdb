import * as ConfigError from "effect/ConfigError"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"

import type { Classifier, ErrorClass } from "../Retry.js"

// Node.js (and undici) system error codes of a connection that failed or broke: retry soon.
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED"
])

// Resource exhaustion on our side: retry, but back off.
const DEGRADED_CODES: ReadonlySet<string> = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EBUSY", "EAGAIN"])

// The host does not resolve: it will not within milliseconds.
const PERSISTENT_CODES: ReadonlySet<string> = new Set(["ENOTFOUND"])

// Programming or configuration errors: retrying cannot help.
const FATAL_CODES: ReadonlySet<string> = new Set([
  "EACCES",
  "EPERM",
  "ENOENT",
  "EINVAL",
  "ERR_INVALID_ARG_TYPE",
  "ERR_INVALID_ARG_VALUE",
  "ERR_INVALID_URL",
  "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

// Redis replies (ioredis `ReplyError` messages start with the error code).
const REDIS_PREFIXES: ReadonlyArray<readonly [string, ErrorClass]> = [
  ["OOM", "Degraded"],
  ["BUSY", "Degraded"],
  ["TRYAGAIN", "Transient"],
  ["CLUSTERDOWN", "Transient"],
  ["LOADING", "Persistent"],
  ["MASTERDOWN", "Persistent"],
  ["READONLY", "Persistent"],
  ["NOAUTH", "Fatal"],
  ["WRONGPASS", "Fatal"],
  ["WRONGTYPE", "Fatal"],
  ["NOPERM", "Fatal"]
]

// PostgreSQL SQLSTATE classes (the first two characters of the 5-character code).
const SQLSTATE = /^[0-9A-Z]{5}$/
const SQLSTATE_CLASSES: Readonly<Record<string, ErrorClass>> = {
  "08": "Transient", // connection exception
  "40": "Transient", // serialization failure, deadlock
  "53": "Degraded", // insufficient resources, too many connections
  "57": "Transient", // operator intervention: admin shutdown, crash shutdown, cannot connect now
  "22": "Fatal", // data exception
  "23": "Fatal", // integrity constraint violation
  "28": "Fatal", // invalid authorization
  "42": "Fatal" // syntax error or access rule violation
}

const ofStatus = (status: number): ErrorClass | undefined => {
  if (status >= 500 && status <= 599) return "Transient"
  if (status === 429) return "Degraded"
  if (status === 408 || status === 425) return "Transient"
  if (status >= 400 && status <= 499) return "Fatal"
  return undefined
}

const ofCode = (code: string): ErrorClass | undefined => {
  if (TRANSIENT_CODES.has(code)) return "Transient"
  if (DEGRADED_CODES.has(code)) return "Degraded"
  if (PERSISTENT_CODES.has(code)) return "Persistent"
  if (FATAL_CODES.has(code)) return "Fatal"
  if (SQLSTATE.test(code)) return SQLSTATE_CLASSES[code.slice(0, 2)]
  return undefined
}

const numeric = (value: unknown): number | undefined => {
  if (typeof value === "number") return value
  if (typeof value === "string" && /^\d{3}$/.test(value)) return Number(value)
  return undefined
}

const statusOf = (error: Record<string, unknown>): number | undefined => {
  const status = numeric(error.status) ?? numeric(error.statusCode)
  if (status !== undefined) return status
  const response = error.response
  if (typeof response === "object" && response !== null) {
    const r = response as Record<string, unknown>
    return numeric(r.status) ?? numeric(r.statusCode)
  }
  return undefined
}

const ofTag = (tag: unknown, error: Record<string, unknown>): ErrorClass | undefined => {
  switch (tag) {
    case "CircuitBreakerOpen":
    case "TimeoutError":
    case "TimeoutException":
      return "Transient"
    case "RateLimitExceeded":
    case "BulkheadFull":
      return "Degraded"
    case "InvalidOptions":
    case "ParseError":
      return "Fatal"
    case "RequestError":
      // @effect/platform HttpClientError: a transport failure is worth another try (unless its
      // cause says otherwise); a request that does not encode or has an invalid URL is not.
      if (error.reason === "Transport") return decide(error.cause, 1) ?? "Transient"
      return error.reason === "Encode" || error.reason === "InvalidUrl" ? "Fatal" : undefined
    case "ResponseError":
      // A body that does not decode will not decode the next time either.
      return error.reason === "Decode" ? "Fatal" : undefined
    default:
      return undefined
  }
}

// The class this error says it is, or `undefined` when it says nothing (its `cause` may).
const own = (error: unknown): ErrorClass | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const record = error as Record<string, unknown>
  const byTag = ofTag(record._tag, record)
  if (byTag !== undefined) return byTag
  if (ParseResult.isParseError(error) || ConfigError.isConfigError(error)) return "Fatal"
  const code = record.code
  if (typeof code === "string") {
    const byCode = ofCode(code)
    if (byCode !== undefined) return byCode
  }
  const status = statusOf(record)
  if (status !== undefined) {
    const byStatus = ofStatus(status)
    if (byStatus !== undefined) return byStatus
  }
  const name = record.name
  if (name === "TimeoutError" || name === "MaxRetriesPerRequestError") return "Transient"
  if (error instanceof SyntaxError) return "Fatal"
  const message = record.message
  if (typeof message === "string") {
    for (const [prefix, errorClass] of REDIS_PREFIXES) {
      if (message.startsWith(prefix) && (message.length === prefix.length || message[prefix.length] === " ")) {
        return errorClass
      }
    }
    if (message === "Connection is closed.") return "Transient"
  }
  return undefined
}

const MAX_DEPTH = 5

/**
 * What the error, or when it says nothing its `cause` (the `error` of an
 * `UnknownException`), is known to be.
 */
const decide = (error: unknown, depth: number): ErrorClass | undefined => {
  let current = error
  for (let level = depth; level < MAX_DEPTH; level++) {
    const found = own(current)
    if (found !== undefined) return found
    if (typeof current !== "object" || current === null) return undefined
    const record = current as Record<string, unknown>
    current = record._tag === "UnknownException" && record.error !== undefined ? record.error : record.cause
    if (current === undefined) return undefined
  }
  return undefined
}

/**
 * The default classifier; errors it does not know are `Degraded`.
 *
 * @internal
 */
export const classify = (error: unknown): ErrorClass => decide(error, 0) ?? "Degraded"

/** @internal */
export const classifyWith = <E>(
  rule: (error: E) => Option.Option<ErrorClass>,
  fallback: Classifier<E> = classify
): Classifier<E> =>
(error) => {
  const decided = rule(error)
  return Option.isSome(decided) ? decided.value : fallback(error)
}
