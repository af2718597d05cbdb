import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

const SECONDS = /^\d+$/
// The three HTTP-date forms of RFC 9110: IMF-fixdate, obsolete RFC 850 and asctime.
const IMF_FIXDATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/
const RFC_850 = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/

/**
 * Milliseconds to wait according to a `Retry-After` header value (delay-seconds or an
 * HTTP-date), `undefined` when the value is neither. A date in the past means 0.
 *
 * @internal
 */
export const parseRetryAfterMillis = (header: string, now: number): number | undefined => {
  const value = header.trim()
  if (SECONDS.test(value)) return Number(value) * 1000
  let date: number
  if (IMF_FIXDATE.test(value) || RFC_850.test(value)) {
    date = Date.parse(value)
  } else if (ASCTIME.test(value)) {
    // asctime carries no zone; HTTP dates are always GMT.
    date = Date.parse(`${value} GMT`)
  } else {
    return undefined
  }
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** @internal */
export const parseRetryAfter = (header: string, now: number): Option.Option<Duration.Duration> => {
  const millis = parseRetryAfterMillis(header, now)
  return millis === undefined ? Option.none() : Option.some(Duration.millis(millis))
}

const MAX_DEPTH = 5

/**
 * The wait an error asks for, in milliseconds (`Infinity` for "never"), or `undefined`.
 * Looks at a `retryAfter` field (a `Duration`, a `DurationInput`, a `Retry-After` header
 * value or a `Date`), then at a `retry-after` header (in any casing) on the error or its
 * `response`, then down the `cause` chain.
 *
 * @internal
 */
export const retryAfterMillis = (error: unknown, now: number): number | undefined => {
  let current = error
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (typeof current !== "object" || current === null) return undefined
    const found = ownRetryAfter(current as Record<string, unknown>, now)
    if (found !== undefined) return found
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}

const ownRetryAfter = (error: Record<string, unknown>, now: number): number | undefined => {
  const field = error.retryAfter
  if (field !== undefined && field !== null) {
    const millis = fieldMillis(field, now)
    if (millis !== undefined) return millis
  }
  const fromHeaders = headerMillis(error.headers, now)
  if (fromHeaders !== undefined) return fromHeaders
  const response = error.response
  if (typeof response === "object" && response !== null) {
    return headerMillis((response as { readonly headers?: unknown }).headers, now)
  }
  return undefined
}

const fieldMillis = (field: unknown, now: number): number | undefined => {
  if (Duration.isDuration(field)) return Math.max(0, Duration.toMillis(field))
  if (typeof field === "number") return Number.isNaN(field) ? undefined : Math.max(0, field)
  if (field instanceof Date) {
    const time = field.getTime()
    return Number.isNaN(time) ? undefined : Math.max(0, time - now)
  }
  if (typeof field === "string") {
    const header = parseRetryAfterMillis(field, now)
    if (header !== undefined) return header
    const decoded = Duration.decodeUnknown(field)
    return Option.isSome(decoded) ? Math.max(0, Duration.toMillis(decoded.value)) : undefined
  }
  const decoded = Duration.decodeUnknown(field)
  return Option.isSome(decoded) ? Math.max(0, Duration.toMillis(decoded.value)) : undefined
}

const headerMillis = (headers: unknown, now: number): number | undefined => {
  if (typeof headers !== "object" || headers === null) return undefined
  let value: unknown
  if (typeof (headers as { readonly get?: unknown }).get === "function") {
    // A fetch `Headers` (or any map-like object).
    value = (headers as { get(name: string): unknown }).get("retry-after")
  } else {
    const record = headers as Record<string, unknown>
    value = record["retry-after"] ?? record["Retry-After"]
    // Header names are case-insensitive: look for any other casing.
    if (value === undefined) {
      for (const key of Object.keys(record)) {
        if (key.length === 11 && key.toLowerCase() === "retry-after") {
          value = record[key]
          break
        }
      }
    }
  }
  if (Array.isArray(value)) value = value[0]
  return typeof value === "string" ? parseRetryAfterMillis(value, now) : undefined
}
