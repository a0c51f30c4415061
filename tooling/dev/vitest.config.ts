import { defineConfig, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

// The main job's tests start it as a real process tree (embedded Postgres and both apps):
// one file at a time, with generous timeouts.
export default mergeConfig(shared, defineConfig({
  test: {
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false
  }
}))
