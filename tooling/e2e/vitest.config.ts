import { defineConfig, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

// Each e2e file starts two app processes; on a 2-core machine, one file at a time.
export default mergeConfig(shared, defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 180_000,
    fileParallelism: false
  }
}))
