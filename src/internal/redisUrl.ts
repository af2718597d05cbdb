import * as Either from "effect/Either"

/**
 * A Redis URL that passed every check: it parses, its scheme is `redis:` or `rediss:`, it
 * names a host, its port is in 1..65535, its path is empty or a database number, and its
 * userinfo decodes. `display` is the URL without userinfo or query, for logs and errors.
 *
 * @internal
 */
export interface RedisUrl {
  readonly url: string
  readonly display: string
}

/**
 * Why a Redis URL was refused: what was expected, said without repeating the URL.
 *
 * @internal
 */
export interface Refused {
  readonly expected: string
}

const refuse = (expected: string): Either.Either<never, Refused> => Either.left({ expected })

/**
 * The text of a URL with everything that may carry a secret removed: the userinfo (up to
 * the last `@`, since a password may itself hold `@`, `/` or `?`) and the query string
 * (ioredis reads options, `password` included, from it). Works on unparsable text too.
 *
 * @internal
 */
export const redact = (text: string): string => {
  const schemeEnd = text.indexOf("://")
  const authorityStart = schemeEnd === -1 ? 0 : schemeEnd + 3
  const at = text.lastIndexOf("@")
  let rest = at >= authorityStart ? text.slice(at + 1) : text.slice(authorityStart)
  const scheme = text.slice(0, authorityStart)
  const credentials = at >= authorityStart ? "***@" : ""
  const query = rest.search(/[?#]/)
  if (query !== -1) rest = rest.slice(0, query) + (rest[query] === "?" ? "?***" : "")
  return scheme + credentials + rest
}

const describeRange = "a redis:// or rediss:// URL with a host and a port in 1..65535"

/**
 * Checks a Redis URL completely, before any client sees it: ioredis parses it with
 * `new URL` and throws `TypeError: Invalid URL` for what it cannot read.
 *
 * @internal
 */
export const parse = (text: string): Either.Either<RedisUrl, Refused> => {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)
  if (scheme === null) return refuse(`${describeRange} (no scheme)`)
  const protocol = scheme[1]!.toLowerCase()
  if (protocol !== "redis" && protocol !== "rediss") {
    return refuse(`${describeRange} (the scheme is not redis or rediss)`)
  }
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    // The WHATWG parser refuses an out-of-range port and garbage alike: name the port when it is the cause.
    const afterScheme = text.slice(scheme[0].length)
    const authority = afterScheme.slice(0, afterScheme.search(/[/?#]|$/))
    const hostPort = authority.slice(authority.lastIndexOf("@") + 1)
    const port = /^(?:\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(hostPort)?.[1]
    return refuse(
      port !== undefined && Number(port) > 65535
        ? `${describeRange} (the port is out of range)`
        : `${describeRange} (the URL does not parse)`
    )
  }
  if (parsed.port === "0") return refuse(`${describeRange} (the port is out of range)`)
  if (parsed.hostname === "") return refuse(`${describeRange} (no host)`)
  if (parsed.pathname !== "" && parsed.pathname !== "/" && !/^\/\d+$/.test(parsed.pathname)) {
    return refuse(`${describeRange} (the path, if any, is a database number such as /0)`)
  }
  try {
    decodeURIComponent(parsed.username)
    decodeURIComponent(parsed.password)
  } catch {
    return refuse(`${describeRange} (the user or password is not valid percent-encoding)`)
  }
  const display = `${protocol}://${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
  return Either.right({ url: text, display })
}
