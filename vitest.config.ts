import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    projects: [
      { test: { name: "core", include: ["packages/core/test/**/*.test.ts"], testTimeout: 30_000 } },
      { test: { name: "node", include: ["packages/node/test/**/*.test.ts"], testTimeout: 60_000 } },
      { test: { name: "ssh", include: ["packages/ssh/test/**/*.test.ts"], testTimeout: 60_000 } },
      { test: { name: "testing", include: ["packages/testing/test/**/*.test.ts"], testTimeout: 30_000 } },
      { test: { name: "pi-extension", include: ["packages/pi-extension/test/**/*.test.ts"], testTimeout: 60_000 } },
      { test: { name: "cli", include: ["packages/cli/test/**/*.test.ts"], testTimeout: 60_000 } },
      { test: { name: "examples", include: ["examples/test/**/*.test.ts"], testTimeout: 120_000 } },
      { test: { name: "bench", include: ["bench/test/**/*.test.ts"], testTimeout: 120_000 } }
    ]
  }
})
