/**
 * Every app has a Dockerfile (apps/<app>/Dockerfile) that builds its deploy folder and runs
 * it on a slim Node as a non-root user. Docker is not available here, so the files are
 * checked by the validator of the Dockerfile language server (`dockerfile-utils`, what
 * editors use): no error and no warning, and the shape the README documents.
 */
import { validate } from "dockerfile-utils"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { NOT_SHIPPED, root, workspacePackages } from "./workspace.js"

const apps = workspacePackages().filter((p) => p.dir.startsWith("apps/") && !NOT_SHIPPED.has(p.name))

/** The instructions of a Dockerfile, continuation lines joined, comments dropped. */
const instructions = (text: string) =>
  text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/)
      return { keyword: keyword!.toUpperCase(), args: rest.join(" ") }
    })

describe("Dockerfiles", () => {
  it("the validator finds errors (it is not a no-op)", () => {
    const diagnostics = validate("FROM node:20\nEXPOSE abc\nFOO bar\n")
    expect(diagnostics.map((d) => d.message)).toEqual(
      expect.arrayContaining(["Invalid containerPort: abc", "Unknown instruction: FOO"])
    )
  })

  for (const app of apps) {
    const short = app.name.replace(/^@[^/]+\//, "")
    const file = join(root, app.dir, "Dockerfile")

    it(`${app.name}: lints clean and ships the deploy folder as a non-root node process`, () => {
      expect(existsSync(file)).toBe(true)
      const text = readFileSync(file, "utf8")
      const diagnostics = validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)
      expect(diagnostics).toEqual([])

      const all = instructions(text)
      const stages = all.flatMap((i, n) => (i.keyword === "FROM" ? [n] : []))
      expect(stages.length).toBe(2) // build, then run
      const build = all.slice(stages[0]!, stages[1]!)
      const final = all.slice(stages[1]!)
      // build stage: the workspace's own commands, pinned pnpm
      expect(build[0]!.args).toMatch(/^node:20[\w.-]* AS build$/)
      expect(build.some((i) => i.keyword === "RUN" && i.args.includes("install --frozen-lockfile"))).toBe(true)
      expect(build.some((i) => i.keyword === "RUN" && i.args.includes(`deploy:${short}`))).toBe(true)
      // run stage: a slim Node, the deploy folder only, not root, a health check, node dist/main.js
      expect(final[0]!.args).toMatch(/^node:20[\w.-]*-slim$/)
      expect(final.filter((i) => i.keyword === "COPY").map((i) => i.args)).toEqual([
        `--from=build --chown=node:node /workspace/dist/${short} /app`
      ])
      expect(final.find((i) => i.keyword === "USER")?.args).toBe("node")
      const port = final.find((i) => i.keyword === "ENV")?.args.match(/PORT=(\d+)/)?.[1]
      expect(port).toBeDefined()
      expect(final.find((i) => i.keyword === "EXPOSE")?.args.split(" ")).toContain(port)
      expect(final.find((i) => i.keyword === "HEALTHCHECK")?.args).toContain("/health")
      expect(final.at(-1)).toEqual({ keyword: "CMD", args: `["node", "dist/main.js"]` })
    })
  }

  it("the build context leaves out installs, builds and data", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n")
    expect(ignored).toEqual(expect.arrayContaining(["**/node_modules", "**/dist", ".data"]))
  })
})
