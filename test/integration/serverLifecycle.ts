/**
 * What the real-server harnesses share: a free loopback port, the server as an Effect
 * scoped resource, and vitest hooks that start one server per test file.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"

/** A port that was free a moment ago: bind port 0 on loopback, read it, close. */
export const freePort = (host = "127.0.0.1"): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once("error", reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not find a free port"))))
    })
  })

/** A started server that can be stopped and cleaned up. */
export interface Closeable {
  readonly close: () => Promise<void>
}

/**
 * A server as an Effect scoped resource: started on acquisition, stopped when the scope
 * closes (whether the test passed or failed).
 */
export const scopedServer = <S extends Closeable>(start: () => Promise<S>): Effect.Effect<S, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: start,
      catch: (error) => (error instanceof Error ? error : new Error(String(error)))
    }),
    (server) => Effect.promise(() => server.close())
  )

/** The hooks `useServer` registers (pass vitest's own, so that harnesses also load outside vitest). */
export interface Hooks {
  readonly beforeAll: (fn: () => Promise<void>, timeout?: number) => void
  readonly afterAll: (fn: () => Promise<void>, timeout?: number) => void
}

/**
 * Registers `beforeAll` / `afterAll` hooks starting one server for a test file, and
 * returns a getter for it.
 */
export const useServer = <S extends Closeable>(
  hooks: Hooks,
  what: string,
  start: () => Promise<S>,
  timeouts: { readonly start?: number; readonly stop?: number } = {}
): () => S => {
  let server: S | undefined
  hooks.beforeAll(async () => {
    server = await start()
  }, timeouts.start)
  hooks.afterAll(async () => {
    await server?.close()
  }, timeouts.stop)
  return () => {
    if (server === undefined) throw new Error(`the ${what} of this file has not started`)
    return server
  }
}

/**
 * Spawns a shell that runs `script` once its stdin closes, which happens when this process
 * dies in any way, SIGKILL included, where no exit hook runs. Values are passed to the
 * script as arguments (`$1`, `$2`, ...), never spliced into it.
 */
export const spawnWatchdog = (
  name: string,
  script: string,
  args: ReadonlyArray<string>,
  cwd?: string
): ChildProcess | undefined => {
  try {
    const guard = spawn("/bin/sh", ["-c", `read _ignored; ${script}`, name, ...args], {
      stdio: ["pipe", "ignore", "ignore"],
      ...(cwd === undefined ? {} : { cwd })
    })
    guard.on("error", () => {
      // no shell: the exit hook still covers normal exits
    })
    guard.unref()
    const stdin = guard.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null
    stdin?.on("error", () => undefined)
    stdin?.unref?.()
    return guard
  } catch {
    return undefined
  }
}
