/**
 * Every ```ts block of README.md and docs/*.md typechecks, as a module of its own, with the
 * project's compiler options: `effect-resilience` and its subpaths resolve to src/, as they
 * resolve to the published package for a user. Blocks are given to one TypeScript program
 * as files that exist only in memory (beside the markdown they come from, so that
 * node_modules resolves), and nothing is written to disk. A block that only declares things
 * is fine: unused names are not errors here.
 */
import { describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { beforeAll, expect } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

/** One fenced block of TypeScript in a markdown file. */
interface Block {
  /** The markdown file, relative to the root. */
  readonly markdown: string
  /** 1-based index of the block in its file. */
  readonly index: number
  /** 1-based line of the block's first line of code in the markdown file. */
  readonly line: number
  readonly code: string
  /** The in-memory file the block is checked as. */
  readonly fileName: string
}

const markdownFiles = (): ReadonlyArray<string> => [
  "README.md",
  ...fs.readdirSync(path.join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`)
]

/** The ```ts (or ```typescript) blocks of one markdown file; fences inside other fences are not blocks. */
export const extractBlocks = (markdown: string, text: string): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  const lines = text.split("\n")
  let open:
    | { readonly indent: number; readonly fence: string; readonly typescript: boolean; readonly line: number }
    | undefined
  let code: Array<string> = []
  lines.forEach((line, i) => {
    if (open === undefined) {
      // a fence may be indented (inside a list item): the block's lines lose that indentation
      const start = /^( *)(```+|~~~+)\s*([\w-]*)/.exec(line)
      if (start !== null) {
        const typescript = start[3] === "ts" || start[3] === "typescript"
        open = { indent: start[1]!.length, fence: start[2]!, typescript, line: i + 2 }
        code = []
      }
      return
    }
    if (line.trim().startsWith(open.fence) && line.trim().replace(/[`~]/g, "") === "") {
      if (open.typescript) {
        const index = blocks.length + 1
        blocks.push({
          markdown,
          index,
          line: open.line,
          code: code.join("\n") + "\n",
          fileName: path.join(root, `${markdown}.block-${index}.ts`).split(path.sep).join("/")
        })
      }
      open = undefined
      return
    }
    code.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)))
  })
  return blocks
}

const blocks: ReadonlyArray<Block> = markdownFiles().flatMap((markdown) =>
  extractBlocks(markdown, fs.readFileSync(path.join(root, markdown), "utf8"))
)

/** The project's compiler options, for blocks: no output, unused declarations allowed, every block a module. */
const compilerOptions = (): ts.CompilerOptions => {
  const configFile = path.join(root, "tsconfig.json")
  const read = ts.readConfigFile(configFile, ts.sys.readFile)
  if (read.error !== undefined) {
    throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"))
  }
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, configFile)
  return {
    ...parsed.options,
    noEmit: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
    moduleDetection: ts.ModuleDetectionKind.Force
  }
}

/** Typechecks every block in one program; the formatted errors of each block, by file name. */
const typecheck = (all: ReadonlyArray<Block>): ReadonlyMap<string, ReadonlyArray<string>> => {
  const options = compilerOptions()
  const sources = new Map(all.map((block) => [block.fileName, block]))
  const host = ts.createCompilerHost(options, true)
  const getSourceFile = host.getSourceFile.bind(host)
  const fileExists = host.fileExists.bind(host)
  const readFile = host.readFile.bind(host)
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const block = sources.get(fileName)
    return block === undefined
      ? getSourceFile(fileName, languageVersion, onError, shouldCreate)
      : ts.createSourceFile(fileName, block.code, languageVersion, true)
  }
  host.fileExists = (fileName) => sources.has(fileName) || fileExists(fileName)
  host.readFile = (fileName) => sources.get(fileName)?.code ?? readFile(fileName)
  const program = ts.createProgram({ rootNames: [...sources.keys()], options, host })
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]
  if (global.length > 0) {
    throw new Error(ts.formatDiagnostics(global, host))
  }
  const errors = new Map<string, ReadonlyArray<string>>()
  for (const block of all) {
    const file = program.getSourceFile(block.fileName)
    if (file === undefined) {
      errors.set(block.fileName, ["the block was not part of the program"])
      continue
    }
    const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
    errors.set(
      block.fileName,
      diagnostics.map((diagnostic) => {
        const at = diagnostic.start === undefined ? 0 : file.getLineAndCharacterOfPosition(diagnostic.start).line
        const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n    ")
        return `${block.markdown}:${block.line + at}: TS${diagnostic.code}: ${message}`
      })
    )
  }
  return errors
}

/** A block that must fail, checked in the same program: proves that errors are found and placed. */
const canary = extractBlocks(
  "docs/canary.md",
  ["Text", "```ts", "import { CircuitBreaker } from \"effect-resilience\"", "", "CircuitBreaker.nope", "```"].join("\n")
)

describe("Docs", () => {
  let errors: ReadonlyMap<string, ReadonlyArray<string>> = new Map()
  beforeAll(() => {
    errors = typecheck([...blocks, ...canary])
  }, 180_000)

  it("finds the TypeScript blocks of the README and of every guide", () => {
    const files = new Set(blocks.map((block) => block.markdown))
    expect(files.has("README.md")).toBe(true)
    expect([...files].filter((file) => file.startsWith("docs/")).length).toBeGreaterThan(3)
  })

  it("extracts a block's code and the line it starts on, and skips other languages", () => {
    const text = ["# T", "```sh", "npm test", "```", "", "```ts", "const a = 1", "", "export {}", "```", ""].join("\n")
    const found = extractBlocks("docs/t.md", text)
    expect(found.map(({ code, index, line }) => ({ code, index, line }))).toEqual([
      { code: "const a = 1\n\nexport {}\n", index: 1, line: 7 }
    ])
    const indented = extractBlocks("docs/t.md", ["- item", "  ```ts", "  const b = 2", "  ```"].join("\n"))
    expect(indented.map(({ code, line }) => ({ code, line }))).toEqual([{ code: "const b = 2\n", line: 3 }])
  })

  it("reports a block that does not typecheck, at its line in the markdown", () => {
    const reported = errors.get(canary[0]!.fileName) ?? []
    expect(reported.length).toBe(1)
    expect(reported[0]).toMatch(/^docs\/canary\.md:5: TS2339: Property 'nope' does not exist/)
  })

  for (const block of blocks) {
    it(`${block.markdown} block ${block.index} (line ${block.line}) typechecks`, () => {
      expect(errors.get(block.fileName)).toEqual([])
    })
  }
})
