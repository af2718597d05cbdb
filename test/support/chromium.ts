/**
 * The system's Chromium (Debian's `chromium`) driven by playwright-core: no browser is
 * downloaded. A fresh profile per launch, removed on close; nothing reaches the network
 * that a page does not ask for.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

const candidates = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"]

/** The Chromium executable: `CHROMIUM_PATH`, `/usr/bin/chromium`, or the first of the usual names on `PATH`. */
export const findChromium = (): string | undefined => {
  const fromEnvironment = process.env["CHROMIUM_PATH"]
  if (fromEnvironment !== undefined && fromEnvironment !== "" && fs.existsSync(fromEnvironment)) {
    return fromEnvironment
  }
  if (fs.existsSync("/usr/bin/chromium")) return "/usr/bin/chromium"
  const directories = (process.env["PATH"] ?? "").split(path.delimiter).filter((directory) => directory !== "")
  for (const name of candidates) {
    for (const directory of directories) {
      const file = path.join(directory, name)
      try {
        fs.accessSync(file, fs.constants.X_OK)
        return file
      } catch {
        // not here
      }
    }
  }
  return undefined
}

/** The flags of a quiet headless run: no background traffic, no first-run UI. */
export const chromiumArgs: ReadonlyArray<string> = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** A launched browser context with its own profile directory; `close` stops the browser and removes the profile. */
export interface Chromium {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/** Launches headless Chromium with a fresh profile; fails saying what to install when there is none. */
export const launchChromium = async (
  options: { readonly viewport?: { readonly width: number; readonly height: number } } = {}
): Promise<Chromium> => {
  const executablePath = findChromium()
  if (executablePath === undefined) {
    throw new Error(
      "Chromium not found: install Debian's `chromium` package (apt-get install chromium) or set CHROMIUM_PATH"
    )
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-resilience-chromium-"))
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...chromiumArgs],
      viewport: options.viewport ?? { width: 1366, height: 900 },
      timeout: 60_000
    })
    return {
      context,
      close: async () => {
        await context.close().catch(() => undefined)
        fs.rmSync(userDataDir, { recursive: true, force: true })
      }
    }
  } catch (error) {
    fs.rmSync(userDataDir, { recursive: true, force: true })
    throw error
  }
}
