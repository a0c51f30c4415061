/**
 * The package's entry points: apps and domains see the public modules and the
 * test helpers' own entry point, never the engine's internals.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const manifest = JSON.parse(readFileSync(`${root}/package.json`, "utf8"))
// the entry's export lines (its comment may name the internal folder)
const index = readFileSync(`${root}/src/index.ts`, "utf8").split("\n").filter((l) => /^(export|import) /.test(l)).join("\n")

describe("runtime-core's public surface", () => {
  it("exports `.` and `./testing` only; `./internal/*` is closed and guards a folder that exists", () => {
    for (const exports of [manifest.exports, manifest.publishConfig.exports]) {
      expect(Object.keys(exports)).toEqual([".", "./testing", "./internal/*"])
      expect(exports["./internal/*"]).toBeNull()
    }
    expect(existsSync(`${root}/src/internal`)).toBe(true)
  })

  it("the main entry re-exports no internal module and no test helper", () => {
    const internal = readdirSync(`${root}/src/internal`).map((f) => f.replace(/\.ts$/, ""))
    expect(internal.length).toBeGreaterThan(0)
    expect(index).not.toMatch(/internal\/|testing/)
    for (const name of internal) expect(index).not.toContain(`"./${name}.js"`)
  })

  it("effect and @effect/* are peer dependencies, not dependencies", () => {
    const isEffect = (name: string) => name === "effect" || name.startsWith("@effect/")
    expect(Object.keys(manifest.dependencies ?? {}).filter(isEffect)).toEqual([])
    expect(Object.keys(manifest.peerDependencies).filter(isEffect).length).toBeGreaterThan(0)
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain("tsx")
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain("@types/pg")
  })
})
