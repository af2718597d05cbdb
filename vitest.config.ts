import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = fileURLToPath(new URL("./src/", import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^effect-resilience$/, replacement: `${src}index.ts` },
      { find: /^effect-resilience\/(.*)$/, replacement: `${src}$1.ts` }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/services.ts"],
    reporters: ["default", "./test/setup/summary.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000
  }
})
