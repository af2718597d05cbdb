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

/** Every module specifier a file names: static, type-only, re-exported and lazy (`import("...")`). */
const everyImport = (file: string): Array<string> => {
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  const specifiers: Array<string> = []
  for (const match of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^"'=]*?from\s+["']([^"']+)["']/gm)) {
    specifiers.push(match[3]!)
  }
  for (const match of text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) specifiers.push(match[1]!)
  for (const match of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) specifiers.push(match[1]!)
  for (const match of text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) specifiers.push(match[1]!)
  return specifiers
}

/** The source files an entry point reaches through relative imports of any kind. */
const filesReachedBy = (entry: string): Set<string> => {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const specifier of everyImport(file)) {
      if (specifier.startsWith(".")) visit(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")))
    }
  }
  visit(entry)
  return seen
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

  it("the core never refers to a driver, not even lazily or as a type: drivers live on their subpaths", () => {
    const driverModules = Object.keys(packageJson.exports)
      .filter((subpath) => subpath !== "." && subpath !== "./package.json")
      .map((subpath) => join(src, `${subpath.slice(2)}.ts`))
    const reached = filesReachedBy(join(src, "index.ts"))
    const drivers = ["ioredis", "pg", "better-sqlite3", "@effect/sql-pg", "@effect/sql-sqlite-node"]
    for (const file of reached) {
      expect(driverModules, `the core reaches ${relative(root, file)}, a subpath module`).not.toContain(file)
      for (const specifier of everyImport(file)) {
        const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!
        expect(drivers, `${relative(root, file)} refers to ${specifier}`).not.toContain(name)
      }
      // Not by name either (a dynamic import built from a string, a require).
      const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
      expect(code, `${relative(root, file)} names ioredis`).not.toMatch(/ioredis/)
    }
    expect(reached.has(join(src, "Cache.ts"))).toBe(true)
  })

  it("driver subpaths follow one naming rule: layer and layerConfig, no layerRedis", async () => {
    const redis = await import("../src/Cache/Redis.js")
    const pg = await import("../src/Sql/Pg.js")
    for (const module of [redis, pg] as Array<Record<string, unknown>>) {
      expect(typeof module["layer"]).toBe("function")
      expect(typeof module["layerConfig"]).toBe("function")
    }
    expect(Object.keys(redis).filter((name) => /Redis$/.test(name) && name !== "RedisConnectionError")).toEqual([])
    const core = await import("../src/index.js")
    expect(Object.keys(core.Cache).filter((name) => /redis/i.test(name))).toEqual([])
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
