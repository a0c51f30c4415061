import { defineConfig, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

// These checks run the workspace's own tools (Nx, turbo, ESLint, pnpm deploy) and start
// deployed apps: one file at a time on a 2-core machine, with generous timeouts.
export default mergeConfig(shared, defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 180_000,
    fileParallelism: false
  }
}))
