import { defineConfig } from "vitest/config"

// The workspace test run: every package, app and tooling project in one vitest
// invocation (each project keeps its own vitest.config.ts), so one JSON report
// holds the totals. Every project's config merges vitest.shared.ts, whose global setup
// finds the test Postgres once for the whole run.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tooling/*"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
