/**
 * Module boundaries, as ESLint enforces them with the workspace's own eslint.config.mjs:
 * a file with a deliberate violation is written INTO a real project (so Nx attributes it
 * to that project and its tags apply), linted through ESLint's Node API, and deleted.
 *
 * The rule (@nx/enforce-module-boundaries) reads Nx's cached project graph; it is
 * computed first. While a case runs, its file exists in the project's src/ for about a
 * second: the Nx `test` target of this project is `parallelism: false` so no lint or
 * typecheck task of the same Nx run sees it.
 */
import { ESLint, type Linter } from "eslint"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { existsSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { holdTreeLock, jsonOutput, nx, root } from "./workspace.js"

holdTreeLock()

const BOUNDARY_RULE = "@nx/enforce-module-boundaries"
const VIOLATION = "__violation.ts"
const projectDirs = {
  "@duraflow/runtime-core": "packages/runtime-core",
  "@duraflow/ontology": "packages/ontology",
  "@duraflow/knowledge": "packages/knowledge",
  "@duraflow/knowledge-server": "apps/knowledge-server",
  "@duraflow/ontology-server": "apps/ontology-server",
  "@duraflow/embedded-postgres": "tooling/embedded-postgres"
} as const
type Project = keyof typeof projectDirs

const violationFile = (project: Project) => join(root, projectDirs[project], "src", VIOLATION)
const removeViolations = () => {
  for (const project of Object.keys(projectDirs) as Array<Project>) rmSync(violationFile(project), { force: true })
}

let eslint: ESLint

beforeAll(async () => {
  // a run killed mid-case could have left one behind
  removeViolations()
  // computes (or refreshes) the project graph the rule reads from .nx/workspace-data
  const projects = jsonOutput((await nx(["show", "projects", "--json"])).stdout) as Array<string>
  expect(projects).toEqual(expect.arrayContaining(Object.keys(projectDirs)))
  eslint = new ESLint({ cwd: root })
})

afterAll(removeViolations)

/** Lints `import * as Imported from "<specifier>"` as a new file in `project`'s src/, then deletes it. */
const lintImport = async (project: Project, specifier: string): Promise<ReadonlyArray<Linter.LintMessage>> => {
  const file = violationFile(project)
  // `wx`: never overwrite a real file
  writeFileSync(file, `import * as Imported from "${specifier}"\n\nexport const _imported = Imported\n`, { flag: "wx" })
  try {
    const results = await eslint.lintFiles([file])
    expect(results.map((r) => r.filePath)).toEqual([file])
    return results[0]!.messages
  } finally {
    rmSync(file, { force: true })
  }
}

const errorsOf = (messages: ReadonlyArray<Linter.LintMessage>, rules: ReadonlyArray<string> = [BOUNDARY_RULE]) =>
  messages.filter((m) => m.ruleId !== null && rules.includes(m.ruleId) && m.severity === 2 && m.line === 1)

/** The TypeScript file a relative specifier in `project`'s violation file points at. */
const targetOf = (project: Project, specifier: string) =>
  resolve(dirname(violationFile(project)), specifier).replace(/\.js$/, ".ts")

describe("@nx/enforce-module-boundaries with eslint.config.mjs", () => {
  it("(a) runtime-core may not depend on a domain: importing @duraflow/ontology is an error", async () => {
    const errors = errorsOf(await lintImport("@duraflow/runtime-core", "@duraflow/ontology"))
    expect(errors).toHaveLength(1)
    // every domain depends on runtime-core, so Nx reports the cycle before the tag constraint
    expect(errors[0]!.message).toMatch(
      /A project tagged with "type:runtime" can only depend on libs tagged with "type:runtime"|Circular dependency between "@duraflow\/runtime-core" and "@duraflow\/ontology"/
    )
  })

  it.each([
    ["@duraflow/runtime-core", `A project tagged with "type:runtime" can only depend on libs tagged with "type:runtime"`],
    ["@duraflow/ontology", `A project tagged with "type:domain" can only depend on libs tagged with "type:runtime", "type:domain"`],
    ["@duraflow/knowledge-server", `A project tagged with "type:app" can only depend on libs tagged with "type:runtime", "type:domain"`]
  ] as const)("the tag constraints apply: %s importing tooling (@duraflow/embedded-postgres) is an error", async (project, message) => {
    const errors = errorsOf(await lintImport(project, "@duraflow/embedded-postgres"))
    expect(errors.map((e) => e.message)).toEqual([message])
  })

  it("(b) packages never import apps: @duraflow/knowledge importing @duraflow/ontology-server by name is an error", async () => {
    // Nx maps a workspace package name to its project only through the package.json
    // `exports`/`main`, and the apps have neither, so @nx/enforce-module-boundaries never
    // sees this import. Until eslint.config.mjs covers it (a `no-restricted-imports` block for
    // packages/** and tooling/** banning "@duraflow/*-server"), this case fails on purpose.
    const errors = errorsOf(await lintImport("@duraflow/knowledge", "@duraflow/ontology-server"), [
      BOUNDARY_RULE,
      "no-restricted-imports"
    ])
    expect(errors.length).toBeGreaterThan(0)
  })

  it("(b) packages never import apps: @duraflow/knowledge importing an app's file by relative path is an error", async () => {
    const specifier = "../../../apps/ontology-server/src/OntologyServer.js"
    expect(targetOf("@duraflow/knowledge", specifier)).toBe(join(root, "apps/ontology-server/src/OntologyServer.ts"))
    expect(existsSync(targetOf("@duraflow/knowledge", specifier))).toBe(true)
    const errors = errorsOf(await lintImport("@duraflow/knowledge", specifier))
    expect(errors.map((e) => e.message)).toEqual([
      "Projects cannot be imported by a relative or absolute path, and must begin with a npm scope"
    ])
  })

  it("(c) domains talk through public entry points: @duraflow/knowledge importing ontology's internal/canonical by relative path is an error", async () => {
    const specifier = "../../ontology/src/internal/canonical.js"
    expect(targetOf("@duraflow/knowledge", specifier)).toBe(join(root, "packages/ontology/src/internal/canonical.ts"))
    expect(existsSync(targetOf("@duraflow/knowledge", specifier))).toBe(true)
    const errors = errorsOf(await lintImport("@duraflow/knowledge", specifier))
    expect(errors.map((e) => e.message)).toEqual([
      "Projects cannot be imported by a relative or absolute path, and must begin with a npm scope"
    ])
  })

  it.each([
    ["@duraflow/knowledge-server", "@duraflow/knowledge"],
    ["@duraflow/knowledge-server", "@duraflow/runtime-core"],
    ["@duraflow/knowledge", "@duraflow/ontology"],
    ["@duraflow/ontology", "@duraflow/runtime-core"]
  ] as const)("(d) control: %s importing %s (public entry) lints clean", async (project, specifier) => {
    const messages = await lintImport(project, specifier)
    expect(messages).toEqual([])
  })
})
