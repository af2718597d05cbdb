import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as zlib from "node:zlib"

/**
 * How values are stored in Redis.
 *
 * A value below the compression threshold is stored as its UTF-8 text, unchanged, so it
 * reads as itself in `redis-cli` and in other clients. A larger value is stored as
 * `0xFF 0x01` followed by its raw-deflate bytes. `0xFF` never occurs in UTF-8, so no text
 * value can be mistaken for a compressed one; the second byte names the format, so a
 * future format can be told apart from this one. A value is only stored compressed when
 * compression makes it smaller.
 *
 * @internal
 */
export const COMPRESSED_MARKER = 0xff

/** @internal */
export const FORMAT_DEFLATE_RAW = 0x01

/** Above this size, deflate runs on the libuv thread pool instead of blocking the event loop. */
const ASYNC_THRESHOLD = 64 * 1024

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Why a stored payload could not be read back. The layer serves it as a miss (and counts
 * it); it is a typed value so that the reason reaches the log.
 *
 * @internal
 */
export class Corrupt extends Data.TaggedError("Corrupt")<{
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

const corrupt = (detail: string): Either.Either<never, Corrupt> => Either.left(new Corrupt({ detail }))

const header = Buffer.from([COMPRESSED_MARKER, FORMAT_DEFLATE_RAW])

const deflate = (input: Buffer): Effect.Effect<Buffer> =>
  input.length <= ASYNC_THRESHOLD
    ? Effect.sync(() => zlib.deflateRawSync(input))
    : Effect.async<Buffer>((resume) => {
      zlib.deflateRaw(input, (error, output) => {
        // deflate of an in-memory buffer has no failure mode but memory exhaustion
        resume(error ? Effect.die(error) : Effect.succeed(output))
      })
    })

/**
 * Encodes a value for storage: the plain string when it is shorter than `threshold`
 * bytes or does not shrink, else the marked compressed bytes.
 *
 * @internal
 */
export const encode = (value: string, threshold: number): Effect.Effect<string | Buffer> => {
  // UTF-8 is at most 3 bytes per UTF-16 unit: a cheap bound that skips the byte count for short strings
  if (value.length * 3 < threshold) return Effect.succeed(value)
  const bytes = Buffer.from(value, "utf8")
  if (bytes.length < threshold) return Effect.succeed(value)
  return Effect.map(
    deflate(bytes),
    (compressed) => compressed.length + header.length < bytes.length ? Buffer.concat([header, compressed]) : value
  )
}

/**
 * Decodes a stored payload: the text of a plain value, the inflated text of a compressed
 * one, or `Corrupt` when the payload is neither (bad marker format, bad deflate stream,
 * invalid UTF-8, or inflated size above `maxSize`).
 *
 * @internal
 */
export const decode = (payload: Buffer, maxSize: number): Either.Either<string, Corrupt> => {
  if (payload.length === 0 || payload[0] !== COMPRESSED_MARKER) {
    try {
      return Either.right(utf8.decode(payload))
    } catch {
      return corrupt("the stored value is not valid UTF-8")
    }
  }
  if (payload.length < header.length || payload[1] !== FORMAT_DEFLATE_RAW) {
    return corrupt(`unknown compression format ${payload.length < 2 ? "(truncated header)" : payload[1]}`)
  }
  let inflated: Buffer
  try {
    inflated = zlib.inflateRawSync(
      payload.subarray(header.length),
      Number.isFinite(maxSize) ? { maxOutputLength: Math.max(1, maxSize) } : {}
    )
  } catch (error) {
    return corrupt(`the compressed value does not inflate: ${error instanceof Error ? error.message : String(error)}`)
  }
  try {
    return Either.right(utf8.decode(inflated))
  } catch {
    return corrupt("the inflated value is not valid UTF-8")
  }
}

/**
 * The size of a value in UTF-8 bytes, the unit of `maxValueSize`.
 *
 * @internal
 */
export const byteLength = (value: string): number => Buffer.byteLength(value, "utf8")
