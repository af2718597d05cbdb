import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const src = join(root, "src")

/** Every module specifier imported at run time when the file loads (type-only and lazy imports excluded). */
const staticImports = (file: string): Array<string> => {
  // Comments go first: JSDoc examples import the package by name.
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  const specifiers: Array<string> = []
  const pattern = /^\s*(import|export)\s+(type\s+)?[^"'=]*?from\s+["']([^"']+)["']/gm
  for (const match of text.matchAll(pattern)) {
    if (match[2] === undefined) specifiers.push(match[3]!)
  }
  for (const match of text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) specifiers.push(match[1]!)
  return specifiers
}

/** Modules a file loads lazily, with `import("...")`, only when a function of it runs. */
const lazyImports = (file: string): Array<string> => {
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  return [...text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)].map((match) => match[1]!)
}

/** The packages an entry point loads, following relative imports through src/. */
const packagesLoadedBy = (entry: string, imports = staticImports): Set<string> => {
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const specifier of imports(file)) {
      if (specifier.startsWith(".")) {
        visit(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")))
      } else {
        const parts = specifier.split("/")
        packages.add(specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!)
      }
    }
  }
  visit(entry)
  return packages
}

const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, unknown>
  readonly peerDependencies: Record<string, string>
}

describe("package", () => {
  it("the core entry point loads effect alone", () => {
    const loaded = packagesLoadedBy(join(src, "index.ts"))
    expect([...loaded].filter((name) => !name.startsWith("node:")).sort()).toEqual(["effect"])
  })

  it("what the core loads lazily (Cache.layerRedis) loads only peer dependencies", () => {
    const peers = new Set(Object.keys(packageJson.peerDependencies))
    const lazy = packagesLoadedBy(join(src, "index.ts"), (file) => [...staticImports(file), ...lazyImports(file)])
    expect(lazy.has("ioredis")).toBe(true)
    for (const name of lazy) {
      if (!name.startsWith("node:")) expect(peers.has(name), `the core lazily loads ${name}`).toBe(true)
    }
  })

  it("every subpath export exists and loads only peer dependencies", () => {
    const peers = new Set(Object.keys(packageJson.peerDependencies))
    for (const [subpath, target] of Object.entries(packageJson.exports)) {
      if (subpath === "./package.json") continue
      const types = (target as { readonly types: string }).types
      const file = join(src, relative("dist", types).replace(/\.d\.ts$/, ".ts"))
      const loaded = [...packagesLoadedBy(file)].filter((name) => !name.startsWith("node:"))
      for (const name of loaded) {
        expect(peers.has(name), `${subpath} loads ${name}, which is not a peer dependency`).toBe(true)
      }
    }
  })
})
