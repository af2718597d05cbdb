import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { InvalidOptions } from "../InvalidOptions.js"
import type * as Sqlite from "../Sql/Sqlite.js"
import * as options_ from "./options.js"
import * as sql from "./sql.js"
import { type DatabaseError, toDatabaseError } from "./sqlErrors.js"

const MODULE = "Sql/Sqlite"

/** @internal */
export const defaultFilename = "database.sqlite"

/** @internal */
export const defaultBusyTimeout: Duration.Duration = Duration.millis(100)

const synchronousCheck = options_.check(
  Schema.Literal("OFF", "NORMAL", "FULL", "EXTRA"),
  "\"OFF\", \"NORMAL\", \"FULL\" or \"EXTRA\""
)

interface ClientConfig {
  readonly filename: string
  readonly busyTimeout: number
  readonly synchronous: string
  readonly client: Omit<SqliteClient.SqliteClientConfig, "filename">
}

const validate = (input: Sqlite.ClientOptions | undefined): Either.Either<ClientConfig, InvalidOptions> =>
  Either.gen(function*() {
    const options = yield* options_.object(MODULE, input, false)
    const filename = yield* options_.field(
      MODULE,
      "filename",
      options.filename,
      options_.nonEmptyString,
      defaultFilename
    )
    const busyTimeout = yield* options_.duration(MODULE, "busyTimeout", options.busyTimeout, defaultBusyTimeout, {
      positive: false,
      finite: true
    })
    const synchronous = yield* options_.field(MODULE, "synchronous", options.synchronous, synchronousCheck, "FULL")
    if (options.client !== undefined && (typeof options.client !== "object" || options.client === null)) {
      return yield* Either.left(
        new InvalidOptions({
          module: MODULE,
          field: "client",
          expected: "SqliteClient options",
          received: options.client
        })
      )
    }
    return { filename, busyTimeout: Duration.toMillis(busyTimeout), synchronous, client: options.client ?? {} }
  })

/**
 * Opens the file and sets the pragmas. `better-sqlite3` throws when the file cannot be
 * opened (a directory that does not exist): that throw is a failure of this effect.
 */
const makeClient = (config: ClientConfig) =>
  Effect.gen(function*() {
    const client = yield* SqliteClient.make({ ...config.client, filename: config.filename }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(defect))
    )
    // The driver is synchronous: a write that meets a locked file blocks the event loop up
    // to busy_timeout, so it stays short and the breaker does the waiting.
    yield* client.unsafe(`PRAGMA busy_timeout = ${Math.round(config.busyTimeout)}`)
    yield* client.unsafe(`PRAGMA synchronous = ${config.synchronous}`)
    return client
  })

const clientLayer = (
  config: ClientConfig
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, DatabaseError> =>
  Layer.scopedContext(
    Effect.map(
      Effect.mapError(makeClient(config), (error) => toDatabaseError("sqlite", error)),
      (client) => Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
    )
  ).pipe(Layer.provide(Reactivity.layer))

// A file in a directory that does not exist can never be opened: a configuration error,
// not an outage (checked when the layer is built, the directory may be made before).
const directoryExists = (config: ClientConfig): Effect.Effect<void, InvalidOptions> =>
  Effect.suspend(() => {
    const filename = config.filename
    if (filename === ":memory:" || filename.startsWith("file:")) return Effect.void
    const directory = nodePath.dirname(nodePath.resolve(filename))
    let isDirectory = false
    try {
      isDirectory = fs.statSync(directory).isDirectory()
    } catch {
      isDirectory = false
    }
    return isDirectory ? Effect.void : Effect.fail(
      new InvalidOptions({
        module: MODULE,
        field: "filename",
        expected: `a file in a directory that exists (${directory} does not)`,
        received: filename
      })
    )
  })

const checked = <A, E, R>(config: ClientConfig, layer: Layer.Layer<A, E, R>): Layer.Layer<A, E | InvalidOptions, R> =>
  Layer.unwrapEffect(Effect.as(directoryExists(config), layer))

/** @internal */
export const layerClient = (
  options?: Sqlite.ClientOptions
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, InvalidOptions | DatabaseError> => {
  const config = validate(options)
  return Either.isLeft(config) ? Layer.fail(config.left) : checked(config.right, clientLayer(config.right))
}

/**
 * Whether a write could start now: takes the write lock (`BEGIN IMMEDIATE`) and gives it
 * back. `SELECT 1` would pass while another connection holds the file locked.
 *
 * @internal
 */
export const writeLockCheck = (client: SqlClient.SqlClient): Effect.Effect<void, unknown> =>
  Effect.scoped(
    Effect.flatMap(client.reserve, (connection) =>
      Effect.acquireUseRelease(
        connection.executeRaw("BEGIN IMMEDIATE", []),
        () => Effect.void,
        () => Effect.ignore(connection.executeRaw("ROLLBACK", []))
      ))
  )

/** @internal */
export const layer = (options?: Sqlite.Options): Layer.Layer<sql.ResilientSql, InvalidOptions> => {
  const config = validate(options)
  if (Either.isLeft(config)) return Layer.fail(config.left)
  const { busyTimeout: _busyTimeout, client: _client, filename: _filename, synchronous: _synchronous, ...rest } =
    options ?? {}
  return checked(
    config.right,
    sql.layerConnecting(clientLayer(config.right), {
      ...rest,
      name: rest.name ?? "sqlite",
      healthCheck: rest.healthCheck === false ? false : { query: writeLockCheck, ...rest.healthCheck }
    })
  )
}
