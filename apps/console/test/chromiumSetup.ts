/**
 * Global setup of the console's tests: the browser test drives Debian's
 * `chromium` (Playwright's own browser download is not reachable here). When
 * `/usr/bin/chromium` (or `CHROMIUM_PATH`) is missing, this installs it with apt-get (running
 * `apt-get update` first if the install fails); if that is impossible, it
 * tells the browser test to skip, with the reason.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import type { TestProject } from "vitest/node"

/** Debian's chromium; `CHROMIUM_PATH` points elsewhere (the package is still what gets installed). */
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium"

const install = () => {
  const run = (args: ReadonlyArray<string>) =>
    execFileSync("apt-get", args, { stdio: "pipe", timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })
  try {
    run(["install", "-y", "--no-install-recommends", "chromium"])
  } catch {
    run(["update"])
    run(["install", "-y", "--no-install-recommends", "chromium"])
  }
}

export default function setup(project: TestProject) {
  let problem = ""
  if (!existsSync(CHROMIUM)) {
    try {
      console.log("console tests: installing chromium (apt-get install -y chromium)...")
      install()
    } catch (e) {
      problem = `chromium is not installed and apt-get could not install it: ${String((e as Error).message).split("\n")[0]}`
    }
    if (problem === "" && !existsSync(CHROMIUM)) problem = `apt-get ran but ${CHROMIUM} is still missing`
  }
  project.provide("chromiumProblem", problem)
  project.provide("chromiumPath", CHROMIUM)
}

declare module "vitest" {
  export interface ProvidedContext {
    chromiumProblem: string
    chromiumPath: string
  }
}
