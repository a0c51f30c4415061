import { fileURLToPath } from "node:url"
import { defineConfig, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

// Each file starts both apps and the console as processes: one file at a time. The browser
// test's global setup installs Debian's chromium when it is missing (or marks the test skipped).
export default mergeConfig(shared, defineConfig({
  test: {
    globalSetup: [fileURLToPath(new URL("./test/chromiumSetup.ts", import.meta.url))],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    fileParallelism: false
  }
}))
