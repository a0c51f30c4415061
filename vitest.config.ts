import { defineConfig } from "vitest/config"

// The workspace test run: every package, app and tooling project in one vitest
// invocation (each project keeps its own vitest.config.ts), so one JSON report
// holds the totals.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tooling/*"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
