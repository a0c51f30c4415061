import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// One vitest config for every package; each package merges it in its own vitest.config.ts.
// Postgres-backed suites create their own database, so files may run in parallel,
// but the machine has 2 cores: keep the worker count small and timeouts generous.
// The global setup finds the test Postgres once per run (TEST_DATABASE_URL, else the local
// server, else one embedded Postgres) and hands it to the tests as TEST_DATABASE_URL.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: [fileURLToPath(new URL("./tooling/embedded-postgres/src/vitestSetup.ts", import.meta.url))],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    sequence: { concurrent: false }
  }
})
