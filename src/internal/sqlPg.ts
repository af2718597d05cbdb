import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as Sql from "../Sql.js"
import * as options_ from "./options.js"
import * as sql from "./sql.js"
import * as SqlConfig from "./sqlConfig.js"
import { type DatabaseError, toDatabaseError } from "./sqlErrors.js"

const MODULE = "Sql/Pg"

/** @internal */
export const defaultConnectTimeout: Duration.Duration = Duration.seconds(5)

/**
 * The text of a URL with what may carry a secret removed: the userinfo (up to the last
 * `@` of the authority, a password may hold `@` or `/`) and the query string (`pg` reads
 * `password=` from it). Works on unparsable text too.
 *
 * @internal
 */
export const redactUrl = (text: string): string => {
  const schemeEnd = text.indexOf("://")
  const authorityStart = schemeEnd === -1 ? 0 : schemeEnd + 3
  const at = text.lastIndexOf("@")
  const scheme = text.slice(0, authorityStart)
  let rest = at >= authorityStart ? text.slice(at + 1) : text.slice(authorityStart)
  const query = rest.search(/[?#]/)
  if (query !== -1) rest = rest.slice(0, query) + (rest[query] === "?" ? "?***" : "")
  return scheme + (at >= authorityStart ? "***@" : "") + rest
}

const URL_RULE = "a postgres:// or postgresql:// URL with a host and a port in 1..65535"

/**
 * Checks what can never work before any connection: a URL that does not parse, another
 * scheme, a port out of range. The message says why without repeating the URL's secrets.
 *
 * @internal
 */
export const validateUrl = (text: string): Either.Either<string, InvalidOptions> => {
  const refuse = (why: string) =>
    Either.left(
      new InvalidOptions({ module: MODULE, field: "url", expected: `${URL_RULE} (${why})`, received: redactUrl(text) })
    )
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)
  if (scheme === null) return refuse("no scheme")
  const protocol = scheme[1]!.toLowerCase()
  if (protocol !== "postgres" && protocol !== "postgresql") return refuse(`the scheme is ${protocol}`)
  const afterScheme = text.slice(scheme[0].length)
  const authority = afterScheme.slice(0, afterScheme.search(/[/?#]|$/))
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1)
  const port = /^(?:\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(hostPort)?.[1]
  if (port !== undefined && port !== "" && !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return refuse("the port is out of range")
  }
  const host = hostPort.replace(/:[^:\]]*$/, "")
  const query = afterScheme.includes("?") ? afterScheme.slice(afterScheme.indexOf("?")) : ""
  if (host === "" && !/[?&]host=/.test(query)) return refuse("no host")
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    return refuse("the URL does not parse")
  }
  // A unix socket is named in the query (`?host=/var/run/postgresql`) with an empty host.
  if (parsed.hostname === "" && !parsed.searchParams.has("host")) return refuse("no host")
  try {
    decodeURIComponent(parsed.username)
    decodeURIComponent(parsed.password)
  } catch {
    return refuse("the user or password is not valid percent-encoding")
  }
  return Either.right(`${protocol}://${parsed.host}${parsed.pathname}`)
}

/**
 * The client's settings checked: the URL (when given) and the port.
 *
 * @internal
 */
export const validate = (config: PgClient.PgClientConfig): Either.Either<PgClient.PgClientConfig, InvalidOptions> =>
  Either.gen(function*() {
    if (typeof config !== "object" || config === null) {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "options", expected: "PgClient options", received: config })
      )
    }
    if (config.url !== undefined) {
      if (!Redacted.isRedacted(config.url)) {
        return yield* Either.left(
          new InvalidOptions({
            module: MODULE,
            field: "url",
            expected: "a Redacted URL (Redacted.make, or Config.redacted)",
            received: typeof config.url === "string" ? redactUrl(config.url) : typeof config.url
          })
        )
      }
      yield* validateUrl(Redacted.value(config.url))
    }
    if (config.password !== undefined && !Redacted.isRedacted(config.password)) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "password",
          expected: "a Redacted password (Redacted.make, or Config.redacted)",
          received: typeof config.password
        })
      )
    }
    const port: unknown = config.port
    if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535)) {
      return yield* Either.left(
        new InvalidOptions({ module: MODULE, field: "port", expected: "an integer in 1..65535", received: port })
      )
    }
    return config
  })

// A connection attempt to a server that does not answer must end, or the pool waits forever.
const withDefaults = (config: PgClient.PgClientConfig): PgClient.PgClientConfig => ({
  ...config,
  connectTimeout: config.connectTimeout ?? defaultConnectTimeout,
  applicationName: config.applicationName ?? "effect-resilience"
})

const clientLayer = (
  config: PgClient.PgClientConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseError> =>
  Layer.mapError(PgClient.layer(withDefaults(config)), (error) => toDatabaseError("postgres", error))

/** @internal */
export const layerClient = (
  config: PgClient.PgClientConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, InvalidOptions | DatabaseError> =>
  Either.match(validate(config), { onLeft: Layer.fail, onRight: clientLayer })

/** @internal */
export const layer = (
  config: PgClient.PgClientConfig,
  options?: Sql.Options
): Layer.Layer<sql.ResilientSql, InvalidOptions> =>
  Either.match(Either.flatMap(options_.object(MODULE, options, false), () => validate(config)), {
    onLeft: Layer.fail,
    onRight: (valid) => sql.layerConnecting(clientLayer(valid), { ...options, name: options?.name ?? "postgres" })
  })

/** @internal */
export const defaultConfig: Config.Config.Wrap<PgClient.PgClientConfig> = { url: Config.redacted("DATABASE_URL") }

/**
 * The client's settings from `config`, and the resilient database's options as
 * `Sql.layerConfig` reads them: its breaker and check interval under its name (default
 * `database`, as the URL's `DATABASE_URL`), over the options given in code.
 *
 * @internal
 */
export const layerConfig = (
  config: Config.Config.Wrap<PgClient.PgClientConfig> = defaultConfig,
  options?: Sql.Options
): Layer.Layer<sql.ResilientSql, InvalidOptions | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const client = yield* Config.unwrap(config)
    const resolved = yield* SqlConfig.resolve({ ...options, name: options?.name ?? SqlConfig.defaultName })
    return Layer.mapError(layer(client, resolved.options), resolved.nameVariable)
  }))
