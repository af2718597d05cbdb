/**
 * Vitest global setup: makes sure the real servers that the integration tests start are
 * installed. On a Debian machine where we are root, a missing package is installed with
 * apt-get; anywhere else the run fails, saying what to install. A real-server test is
 * never skipped.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"

interface Requirement {
  readonly name: string
  readonly debianPackage: string
  readonly present: () => boolean
}

const onPath = (binary: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${binary}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

const postgresBinDir = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(`${root}/${v}/bin/initdb`)).sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? `${root}/${versions[0]}/bin` : undefined
}

const requirements: ReadonlyArray<Requirement> = [
  { name: "redis-server", debianPackage: "redis-server", present: () => onPath("redis-server") },
  { name: "PostgreSQL (initdb, pg_ctl)", debianPackage: "postgresql", present: () => postgresBinDir() !== undefined },
  { name: "Prometheus (prometheus, promtool)", debianPackage: "prometheus", present: () => onPath("promtool") && onPath("prometheus") },
  { name: "Chromium", debianPackage: "chromium", present: () => onPath("chromium") }
]

const canInstall = () => process.getuid?.() === 0 && onPath("apt-get")

export default function setup() {
  const missing = requirements.filter((r) => !r.present())
  if (missing.length === 0) return
  const packages = missing.map((r) => r.debianPackage)
  if (!canInstall()) {
    throw new Error(
      `The integration tests need ${missing.map((r) => r.name).join(" and ")}, which are not installed. ` +
        `Install them (Debian: apt-get install -y ${packages.join(" ")}) and run the tests again.`
    )
  }
  console.log(`Installing ${packages.join(", ")} for the integration tests (apt-get)...`)
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  execFileSync("apt-get", ["update"], { stdio: "inherit", env })
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...packages], { stdio: "inherit", env })
  const still = missing.filter((r) => !r.present())
  if (still.length > 0) {
    throw new Error(`apt-get did not provide ${still.map((r) => r.name).join(" and ")}: install it by hand.`)
  }
}
