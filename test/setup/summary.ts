/**
 * A vitest reporter that ends the run with one plain line, `N passed, N failed` (and
 * `, N skipped` when some were), for tools that read a run's closing line.
 */
import type { Reporter, TestModule } from "vitest/node"

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
        else if (state === "skipped") skipped++
      }
      // A file that failed to load has no tests to count, but it failed.
      if (module.state() === "failed" && [...module.children.allTests()].length === 0) failed++
    }
    const line = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`
    // Printed as the process ends, after every other reporter's summary.
    process.once("exit", () => process.stdout.write(`\n${line}\n`))
  }
}
