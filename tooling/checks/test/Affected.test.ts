/**
 * "Affected" selection: a change in a project selects that project and every project
 * that depends on it (directly or transitively), and nothing else. The expected set is
 * computed from the package.json files; Nx (`nx show projects --affected --files=...`,
 * what `pnpm affected` and the PR job run) and turbo (`turbo ls --filter ...<pkg>`) must
 * both agree with it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import {
  dependentsClosure,
  holdTreeLock,
  jsonOutput,
  nx,
  pnpm,
  root,
  run,
  runOk,
  toolEnv,
  withDependents,
  workspacePackages
} from "./workspace.js"

holdTreeLock()

const packages = workspacePackages()

/** Text of the .ts files under `dir` (node_modules and dist skipped) whose names match `pattern`. */
const sourceFiles = (dir: string, pattern = /\.ts$/): ReadonlyArray<string> =>
  !existsSync(dir) ? [] : readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && pattern.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .filter((path) => !/[/\\](node_modules|dist)[/\\]/.test(path))
    .map((path) => readFileSync(path, "utf8"))

const nxAffectedBy = async (file: string): Promise<ReadonlySet<string>> =>
  new Set(jsonOutput((await nx(["show", "projects", "--affected", `--files=${file}`, "--json"])).stdout) as Array<string>)

const turboWithDependents = async (name: string): Promise<ReadonlySet<string>> => {
  const { stdout } = await runOk("npx", ["turbo", "ls", "--filter", `...${name}`, "--output=json"], { cwd: root, env: toolEnv() })
  const listed = jsonOutput(stdout) as { packages: { items: Array<{ name: string }> } }
  return new Set(listed.packages.items.map((p) => p.name))
}

const sorted = (set: ReadonlySet<string>) => [...set].sort()

interface NxGraph {
  readonly nodes: Record<string, { readonly data: { readonly root: string } }>
  readonly dependencies: Record<string, ReadonlyArray<{ readonly source: string; readonly target: string }>>
}

/** Nx's project graph (`nx graph --file`), the one `nx affected` walks. */
const nxProjectGraph = async (): Promise<NxGraph> => {
  const dir = mkdtempSync(join(tmpdir(), "duraflow-nx-graph-"))
  try {
    const file = join(dir, "graph.json")
    await nx(["graph", `--file=${file}`])
    return (JSON.parse(readFileSync(file, "utf8")) as { graph: NxGraph }).graph
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `name` and every project that depends on it in Nx's graph, directly or transitively. */
const nxWithDependents = (graph: NxGraph, name: string): ReadonlySet<string> =>
  dependentsClosure(
    name,
    Object.values(graph.dependencies).flatMap((edges) => edges.map(({ source, target }) => [source, target] as const))
  )

/** Every package's transitive dependents as turbo sees them (`turbo query`, the graph `--filter ...<pkg>` walks). */
const turboAllDependents = async (): Promise<ReadonlyMap<string, ReadonlySet<string>>> => {
  const query = "query { packages { items { name allDependents { items { name } } } } }"
  const { stdout } = await runOk("npx", ["turbo", "query", query], { cwd: root, env: toolEnv() })
  const result = jsonOutput(stdout) as {
    data: { packages: { items: Array<{ name: string; allDependents: { items: Array<{ name: string }> } }> } }
  }
  return new Map(result.data.packages.items.map((p) => [p.name, new Set(p.allDependents.items.map((d) => d.name))]))
}

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
  // One project graph from each tool for all projects (booting Nx once per project cost
  // minutes of the test run): Nx's graph is what `nx affected` walks from the projects
  // owning the changed files, turbo's is what `--filter ...<pkg>` walks.
  let nxGraph: NxGraph
  let turboDependents: ReadonlyMap<string, ReadonlySet<string>>
  beforeAll(async () => {
    nxGraph = await nxProjectGraph()
    turboDependents = await turboAllDependents()
  }, 300_000)

  it("Nx knows the same projects as pnpm, each at its folder", () => {
    expect(Object.keys(nxGraph.nodes).sort()).toEqual(packages.map((p) => p.name))
    for (const pkg of packages) expect({ [pkg.name]: nxGraph.nodes[pkg.name].data.root }).toEqual({ [pkg.name]: pkg.dir })
  })

  it.each(packages.map((p) => [p.name] as const))("%s (nx and turbo)", (name) => {
    const expected = sorted(withDependents(name, packages))
    expect(sorted(nxWithDependents(nxGraph, name))).toEqual(expected)
    expect(sorted(new Set([name, ...(turboDependents.get(name) ?? [])]))).toEqual(expected)
  })
})

describe("a change to an app alone (apps/ontology-server/src/main.ts)", () => {
  // e2e, dev and the console's tests start the apps as processes by path, so they declare them (devDependencies)
  // to get the edge; faults starts them through e2e's helpers (@duraflow/e2e)
  it("affects the app and the projects that start it (e2e, dev, faults, console), in nx and turbo", async () => {
    const expected = ["@duraflow/console", "@duraflow/dev", "@duraflow/e2e", "@duraflow/faults", "@duraflow/ontology-server"]
    expect(sorted(withDependents("@duraflow/ontology-server", packages))).toEqual(expected)
    expect(sorted(await nxAffectedBy("apps/ontology-server/src/main.ts"))).toEqual(expected)
    expect(sorted(await turboWithDependents("@duraflow/ontology-server"))).toEqual(expected)
  })

  it("`pnpm affected` exits 0 on it: the app's lint, typecheck and tests run (e2e, dev, faults and console left out: too slow here)", async () => {
    const { stdout } = await pnpm(
      ["affected", "--files=apps/ontology-server/src/main.ts", "--exclude=@duraflow/e2e,@duraflow/dev,@duraflow/faults,@duraflow/console", "--skip-nx-cache"],
      { env: toolEnv({ NO_COLOR: "1", FORCE_COLOR: "0" }), timeoutMs: 300_000 }
    )
    const plain = stdout.replace(/\u001b\[[0-9;]*m/g, "")
    for (const target of ["lint", "typecheck", "test"]) expect(plain).toContain(`nx run @duraflow/ontology-server:${target}`)
    expect(plain).toMatch(/Test Files\s+\d+ passed/)
  }, 300_000)

  it("every project's `vitest run` test script has test files to run", () => {
    for (const pkg of packages) {
      const script = (pkg.manifest as { scripts?: Record<string, string> }).scripts?.test ?? ""
      if (!script.startsWith("vitest run") || script.includes("--passWithNoTests")) continue
      const tests = sourceFiles(join(root, pkg.dir, "test"), /\.test\.ts$/)
      expect({ project: pkg.name, tests: tests.length > 0 }).toEqual({ project: pkg.name, tests: true })
    }
  })
})

describe("turbo outside pnpm", () => {
  it("`npx turbo run typecheck` finds the package manager with no pnpm on PATH", async () => {
    // only node/npx and the system: no pnpm from a global install or from `pnpm exec`
    const PATH = [dirname(process.execPath), "/usr/bin", "/bin"].join(delimiter)
    const bare = toolEnv({ PATH, npm_execpath: undefined, PNPM_HOME: undefined, npm_config_user_agent: undefined })
    expect((await run("sh", ["-c", "command -v pnpm"], { env: bare })).code).not.toBe(0)
    const result = await run("npx", ["turbo", "run", "typecheck", "--filter=@duraflow/embedded-postgres"], {
      env: bare,
      timeoutMs: 300_000
    })
    expect({ code: result.code, output: result.code === 0 ? "" : result.stdout + result.stderr }).toEqual({ code: 0, output: "" })
  }, 300_000)
})
