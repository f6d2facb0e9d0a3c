import { defineConfig } from "vitest/config"

// Every project may start real pi agents: each builds the pi extension first if its sources changed.
const globalSetup = ["./vitest.globalSetup.ts"]

export default defineConfig({
  test: {
    projects: [
      { test: { name: "protocol", include: ["packages/protocol/test/**/*.test.ts"], testTimeout: 30_000, globalSetup } },
      { test: { name: "core", include: ["packages/core/test/**/*.test.ts"], testTimeout: 30_000, globalSetup } },
      { test: { name: "node", include: ["packages/node/test/**/*.test.ts"], testTimeout: 60_000, globalSetup } },
      { test: { name: "ssh", include: ["packages/ssh/test/**/*.test.ts"], testTimeout: 60_000, globalSetup } },
      { test: { name: "pi", include: ["packages/pi/test/**/*.test.ts"], testTimeout: 30_000, globalSetup } },
      { test: { name: "testing", include: ["packages/testing/test/**/*.test.ts"], testTimeout: 30_000, globalSetup } },
      { test: { name: "pi-extension", include: ["packages/pi-extension/test/**/*.test.ts"], testTimeout: 60_000, globalSetup } },
      { test: { name: "cli", include: ["packages/cli/test/**/*.test.ts"], testTimeout: 60_000, globalSetup } },
      { test: { name: "examples", include: ["examples/test/**/*.test.ts"], testTimeout: 120_000, globalSetup } },
      { test: { name: "bench", include: ["bench/test/**/*.test.ts"], testTimeout: 120_000, globalSetup } }
    ]
  }
})
