/**
 * Printing and saving of suite results: a readable table on stdout and one JSON file per
 * suite, under `.bench/results/` (ignored by git) or, when recording on purpose,
 * `bench/results/`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import * as os from "node:os"
import type { Figure, Measurement, RatioColumn, Settings, SuiteResult, Target } from "./harness.js"

/** Where the machine and the libraries stood when the figures were taken. */
export interface Environment {
  readonly date: string
  readonly node: string
  readonly v8: string
  readonly platform: string
  readonly arch: string
  readonly cpu: string
  readonly cpus: number
  readonly loadAverage: ReadonlyArray<number>
  readonly versions: Readonly<Record<string, string>>
  /** Whether the bench runs as compiled JavaScript (`npm run bench`) rather than TypeScript source. */
  readonly compiled: boolean
}

const versionOf = (name: string): string => {
  try {
    const url = new URL(`../node_modules/${name}/package.json`, import.meta.url)
    return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
}

/** Reads the environment once, at the start of the run. */
export const environment: Effect.Effect<Environment> = Effect.sync(() => ({
  date: new Date().toISOString(),
  node: process.version,
  v8: process.versions.v8,
  platform: os.platform(),
  arch: os.arch(),
  cpu: os.cpus()[0]?.model.trim() ?? "unknown",
  cpus: os.cpus().length,
  loadAverage: os.loadavg().map((load) => Math.round(load * 100) / 100),
  versions: Object.fromEntries(
    ["effect", "cockatiel", "opossum", "ioredis", "esbuild"].map((name) => [name, versionOf(name)])
  ),
  compiled: import.meta.url.endsWith(".js")
}))

const color = process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined
const paint = (code: number) => (text: string): string => color ? `\u001b[${code}m${text}\u001b[0m` : text
const bold = paint(1)
const dim = paint(2)
const green = paint(32)
const red = paint(31)

const formatNumber = (value: number): string =>
  value >= 100 || Number.isInteger(value)
    ? Math.round(value).toLocaleString("en-US")
    : value.toFixed(value >= 10 ? 1 : 2)

const formatFigure = (value: number, unit: string): string =>
  unit === "x" ? `${value.toFixed(2)}x` : `${formatNumber(value)} ${unit}`

const ratioWidth = (column: RatioColumn): number => Math.max(8, column.label.length)

const measurementLine = (m: Measurement, width: number, columns: ReadonlyArray<RatioColumn>): string =>
  `  ${m.label.padEnd(width)}  ${formatNumber(m.nsPerCall).padStart(9)}  ` +
  columns.map((column) => {
    const value = m.ratios?.[column.key]
    return `${(value === undefined ? "" : `${value.toFixed(2)}x`).padStart(ratioWidth(column))}  `
  }).join("") +
  dim(`${formatNumber(m.minNsPerCall)}–${formatNumber(m.maxNsPerCall)}`.padEnd(15)) +
  `  ${formatNumber(m.wallNsPerCall).padStart(9)}  ${m.iterations.toLocaleString("en-US").padStart(10)}`

const figureLine = (f: Figure, width: number): string =>
  `  ${f.label.padEnd(width)}  ${formatFigure(f.value, f.unit).padStart(9)}`

const targetLine = (t: Target, width: number): string =>
  `  ${t.pass ? green("PASS") : red("FAIL")}  ${t.label.padEnd(width - 6)}  ` +
  `${formatFigure(t.value, t.unit).padStart(9)}  ${dim(`(target ${t.comparison} ${formatFigure(t.limit, t.unit)})`)}`

/** Prints one suite as a table. */
export const printSuite = (result: SuiteResult, settings: Settings): Effect.Effect<void> => {
  const width = Math.max(
    40,
    ...result.measurements.map((m) => m.label.length),
    ...result.figures.map((f) => f.label.length),
    ...result.targets.map((t) => t.label.length + 6)
  )
  const columns = result.ratioColumns ?? []
  const lines: Array<string> = [bold(result.title)]
  if (result.measurements.length > 0) {
    lines.push(
      dim(
        `  ${`ns per call, median of ${settings.rounds} rounds`.padEnd(width)}` +
          `  ${"CPU".padStart(9)}  ` +
          columns.map((column) => `${column.label.padStart(ratioWidth(column))}  `).join("") +
          `${"CPU min–max".padEnd(15)}  ${"wall".padStart(9)}  ${"iterations".padStart(10)}`
      ),
      ...result.measurements.map((m) => measurementLine(m, width, columns))
    )
  }
  if (result.figures.length > 0) {
    lines.push("", ...result.figures.map((f) => figureLine(f, width)))
  }
  if (result.targets.length > 0) {
    lines.push("", ...result.targets.map((t) => targetLine(t, width)))
  }
  if (result.notes !== undefined && result.notes.length > 0) {
    lines.push("", ...result.notes.map((note) => dim(`  ${note}`)))
  }
  lines.push("")
  return Console.log(lines.join("\n"))
}

/**
 * Where results go: `.bench/results/` at the root of the repository, ignored by git, so a run
 * leaves the work tree as it was; `bench/results/` (committed) only when recording on purpose
 * (`npm run bench:record`). The same from the TypeScript source (`bench/`) and from the
 * compiled bundle (`.bench/`): both sit one level below the root.
 */
export const resultsDirectory = (record: boolean): URL =>
  new URL(record ? "../bench/results/" : "../.bench/results/", import.meta.url)

/** Writes `<directory>/<name>.json`. Returns the path written, relative to the working directory. */
export const writeSuite = (
  result: SuiteResult,
  settings: Settings,
  env: Environment,
  directoryUrl: URL
): Effect.Effect<string, unknown, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const directory = yield* path.fromFileUrl(directoryUrl)
    yield* fs.makeDirectory(directory, { recursive: true })
    const file = path.join(directory, `${result.name}.json`)
    const document = {
      suite: result.name,
      title: result.title,
      ...env,
      settings,
      cases: result.measurements,
      ratioColumns: result.ratioColumns ?? [],
      notes: result.notes ?? [],
      figures: result.figures,
      targets: result.targets,
      details: result.details
    }
    yield* fs.writeFileString(file, JSON.stringify(document, null, 2) + "\n")
    return path.relative(process.cwd(), file)
  })
