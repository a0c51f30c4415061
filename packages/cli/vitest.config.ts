import { defineConfig, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

export default mergeConfig(shared, defineConfig({
  test: {
    // a test spawns `duraflow` up to a dozen times, a Node start each: slow on a busy machine (a bound on nothing)
    testTimeout: 240_000
  }
}))
