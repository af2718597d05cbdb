import { CacheError } from "./cacheService.js"

/** @internal */
export type Operation = CacheError["operation"]

/** @internal */
export type Reason = CacheError["reason"]

const errorCode = (error: unknown): string | undefined => {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code
  }
  return undefined
}

const errorName = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "name" in error && typeof error.name === "string"
    ? error.name
    : undefined

const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : String(error)

const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN"
])

/**
 * How an ioredis failure is classified: the `reason`, and whether the command surely did
 * not reach the server (`sent: false`) or may have been executed (`sent: "maybe"`).
 *
 * @internal
 */
export interface Classification {
  readonly reason: Reason
  readonly sent: false | "maybe"
}

/**
 * Classifies an error thrown by ioredis or replied by the server.
 *
 * - Replies (`ReplyError`) come from a server that refused the command, which therefore
 *   was not applied: `OOM` is `OutOfMemory`; `LOADING`, `BUSY`, `MASTERDOWN`, `READONLY`,
 *   `MISCONF`, `TRYAGAIN`, `CLUSTERDOWN` are `Unavailable`; `WRONGTYPE` and protocol
 *   errors are `Protocol`; a bulk above `proto-max-bulk-len` is `TooLarge`.
 * - "Command timed out" is `Timeout`: the command was written and may have run.
 * - "Stream isn't writeable" means the client refused to send it (offline queue off):
 *   `Unavailable`, not sent.
 * - A closed connection, a reconnect that gave up (`MaxRetriesPerRequestError`) and socket
 *   errors are `Unavailable`; the command may have been written before the socket broke.
 *
 * @internal
 */
export const classify = (error: unknown): Classification => {
  const message = errorMessage(error)
  const name = errorName(error)
  if (name === "ReplyError") {
    const code = message.split(" ", 1)[0] ?? ""
    switch (code) {
      case "OOM":
        return { reason: "OutOfMemory", sent: false }
      case "LOADING":
      case "BUSY":
      case "MASTERDOWN":
      case "READONLY":
      case "MISCONF":
      case "TRYAGAIN":
      case "CLUSTERDOWN":
        return { reason: "Unavailable", sent: false }
      case "WRONGTYPE":
        return { reason: "Protocol", sent: false }
    }
    if (/proto-max-bulk-len|exceeds maximum allowed size|invalid bulk length/i.test(message)) {
      return { reason: "TooLarge", sent: false }
    }
    if (/protocol error/i.test(message)) return { reason: "Protocol", sent: false }
    return { reason: "Unknown", sent: false }
  }
  if (message === "Command timed out") return { reason: "Timeout", sent: "maybe" }
  if (message.startsWith("Stream isn't writeable")) return { reason: "Unavailable", sent: false }
  if (name === "MaxRetriesPerRequestError") return { reason: "Unavailable", sent: "maybe" }
  if (message.startsWith("Connection is closed")) return { reason: "Unavailable", sent: "maybe" }
  const code = errorCode(error)
  if (code !== undefined && unavailableCodes.has(code)) return { reason: "Unavailable", sent: "maybe" }
  return { reason: "Unknown", sent: "maybe" }
}

/** Commands whose arguments hold credentials (`AUTH user password`, `HELLO 3 AUTH ...`). */
const secretCommands: ReadonlySet<string> = new Set(["auth", "hello", "acl", "config", "migrate"])

/**
 * The error without the credentials ioredis attaches to it: a reply error carries the
 * command it answers (`command: { name: "auth", args: [user, password] }`), which would show
 * in the JSON of any error that keeps it as its `cause`. Other errors are returned as they are.
 *
 * @internal
 */
export const withoutSecrets = (error: unknown): unknown => {
  if (typeof error !== "object" || error === null || !("command" in error)) return error
  const command = error.command as { readonly name?: unknown } | null | undefined
  const name = typeof command?.name === "string" ? command.name.toLowerCase() : undefined
  if (name !== undefined && !secretCommands.has(name)) return error
  const copy = new Error(errorMessage(error))
  copy.name = errorName(error) ?? "Error"
  const code = errorCode(error)
  return Object.assign(copy, code === undefined ? {} : { code }, { command: { name, args: ["<redacted>"] } })
}

const writes: ReadonlySet<Operation> = new Set(["set", "delete", "invalidate"])

/**
 * Maps an ioredis failure into a `CacheError`. A write's outcome is `Unknown` whenever the
 * command may have reached the server (a timeout above all); a read's outcome is always
 * `NotApplied`, since a read changes nothing. `applied` says that an earlier step of the
 * same operation (a batch of `invalidate`) already changed data.
 *
 * @internal
 */
export const toCacheError = (
  operation: Operation,
  key: string,
  error: unknown,
  applied = false
): CacheError => {
  const { reason, sent } = classify(error)
  const outcome = writes.has(operation) && (applied || sent === "maybe") ? "Unknown" : "NotApplied"
  return new CacheError({ operation, key, reason, outcome, cause: withoutSecrets(error) })
}
