/**
 * "Affected" selection: a change in a project selects that project and every project
 * that depends on it (directly or transitively), and nothing else. The expected set is
 * computed from the package.json files; Nx (`nx show projects --affected --files=...`,
 * what `pnpm affected` and the PR job run) and turbo (`turbo ls --filter ...<pkg>`) must
 * both agree with it.
 */
import { describe, expect, it } from "vitest"
import { jsonOutput, nx, root, runOk, toolEnv, withDependents, workspacePackages } from "./workspace.js"

const packages = workspacePackages()

const nxAffectedBy = async (file: string): Promise<ReadonlySet<string>> =>
  new Set(jsonOutput((await nx(["show", "projects", "--affected", `--files=${file}`, "--json"])).stdout) as Array<string>)

const turboWithDependents = async (name: string): Promise<ReadonlySet<string>> => {
  const { stdout } = await runOk("npx", ["turbo", "ls", "--filter", `...${name}`, "--output=json"], { cwd: root, env: toolEnv() })
  const listed = jsonOutput(stdout) as { packages: { items: Array<{ name: string }> } }
  return new Set(listed.packages.items.map((p) => p.name))
}

const sorted = (set: ReadonlySet<string>) => [...set].sort()

describe("a change in packages/ontology/src/index.ts", () => {
  const expected = withDependents("@duraflow/ontology", packages)

  it("the package.json graph: ontology, its domain dependent, both apps; not runtime-core nor embedded-postgres", () => {
    expect(sorted(expected)).toEqual(expect.arrayContaining([
      "@duraflow/knowledge",
      "@duraflow/knowledge-server",
      "@duraflow/ontology",
      "@duraflow/ontology-server"
    ]))
    expect(expected.has("@duraflow/runtime-core")).toBe(false)
    expect(expected.has("@duraflow/embedded-postgres")).toBe(false)
  })

  it("nx affected selects exactly ontology and its transitive dependents", async () => {
    const affected = await nxAffectedBy("packages/ontology/src/index.ts")
    expect(sorted(affected)).toEqual(sorted(expected))
    for (const name of ["@duraflow/ontology", "@duraflow/knowledge", "@duraflow/ontology-server", "@duraflow/knowledge-server"]) {
      expect(affected.has(name)).toBe(true)
    }
    expect(affected.has("@duraflow/runtime-core")).toBe(false)
    expect(affected.has("@duraflow/embedded-postgres")).toBe(false)
  })

  it("turbo selects the same set (...@duraflow/ontology)", async () => {
    const selected = await turboWithDependents("@duraflow/ontology")
    expect(sorted(selected)).toEqual(sorted(expected))
    expect(selected.has("@duraflow/runtime-core")).toBe(false)
    expect(selected.has("@duraflow/embedded-postgres")).toBe(false)
  })
})

describe("every project: a change in it affects exactly it and its dependents", () => {
  it("Nx knows the same projects as pnpm", async () => {
    const projects = jsonOutput((await nx(["show", "projects", "--json"])).stdout) as Array<string>
    expect([...projects].sort()).toEqual(packages.map((p) => p.name))
  })

  it.each(packages.map((p) => [p.name, p.dir] as const))("%s (nx and turbo)", async (name, dir) => {
    const expected = sorted(withDependents(name, packages))
    expect(sorted(await nxAffectedBy(`${dir}/package.json`))).toEqual(expected)
    expect(sorted(await turboWithDependents(name))).toEqual(expected)
  })
})
