import { defineConfig } from "vitest/config"

// One vitest config for every package; each package merges it in its own vitest.config.ts.
// Postgres-backed suites create their own database, so files may run in parallel,
// but the machine has 2 cores: keep the worker count small and timeouts generous.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    sequence: { concurrent: false }
  }
})
