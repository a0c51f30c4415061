/**
 * The GitHub Actions workflows: every file in .github/workflows is valid against the
 * GitHub workflow JSON schema (@action-validator/core, the schema validator compiled to
 * WASM and shipped inside the npm package), the validator really rejects broken
 * copies, and ci.yml has the shape the team relies on: PRs test what they affect,
 * main tests everything, and integration runs every supported Postgres in both modes.
 */
import { validateWorkflow, type ValidationError } from "@action-validator/core"
import { describe, expect, it } from "vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parse, parseDocument } from "yaml"
import { pnpmCommand, root } from "./workspace.js"

const workflowsDir = join(root, ".github", "workflows")
const rootScripts: Record<string, string> = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts
const workflowFiles = readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f)).sort()
const source = (file: string) => readFileSync(join(workflowsDir, file), "utf8")

/** Every error, including those nested in the `oneOf` alternatives the schema tried. */
const flatten = (errors: ReadonlyArray<ValidationError>): ReadonlyArray<ValidationError> =>
  errors.flatMap((e) => [e, ...("states" in e && e.states ? e.states.flatMap((s) => flatten(s.errors)) : [])])

const describeErrors = (errors: ReadonlyArray<ValidationError>) =>
  flatten(errors).map((e) => `${e.code} ${"path" in e ? e.path : ""} ${e.title} ${e.detail ?? ""}`.trim())

interface Step {
  readonly name?: string
  readonly uses?: string
  readonly run?: string
  readonly if?: string
  readonly with?: Record<string, unknown>
}
interface Job {
  readonly "runs-on"?: string
  readonly if?: string
  readonly strategy?: { readonly matrix?: Record<string, unknown> }
  readonly services?: Record<string, any>
  readonly env?: Record<string, unknown>
  readonly steps: ReadonlyArray<Step>
}

describe("workflow files", () => {
  it("there is a CI workflow", () => {
    expect(workflowFiles).toContain("ci.yml")
  })

  it.each(workflowFiles)("%s is a valid GitHub workflow", (file) => {
    const state = validateWorkflow(source(file))
    expect(state.actionType).toBe("workflow")
    expect(describeErrors(state.errors)).toEqual([])
  })

  it.each(workflowFiles)("%s: a copy with a job's runs-on removed is rejected", (file) => {
    const jobs = Object.entries((parse(source(file)) as { jobs: Record<string, Job> }).jobs)
      .filter(([, job]) => job["runs-on"] !== undefined)
    expect(jobs.length).toBeGreaterThan(0)
    for (const [id] of jobs) {
      const doc = parseDocument(source(file))
      doc.deleteIn(["jobs", id, "runs-on"])
      const errors = flatten(validateWorkflow(doc.toString()).errors)
      expect(errors.length).toBeGreaterThan(0)
      expect(errors).toContainEqual(expect.objectContaining({ code: "required", path: `/jobs/${id}/runs-on` }))
    }
  })

  it.each(workflowFiles)("%s: a copy with an unknown top-level key is rejected", (file) => {
    const doc = parseDocument(source(file))
    doc.set("concurrencyy", "typo")
    const errors = flatten(validateWorkflow(doc.toString()).errors)
    expect(errors).toContainEqual(expect.objectContaining({ detail: expect.stringContaining("'concurrencyy'") }))
  })

  it("a copy that is not YAML is rejected with its location", () => {
    const broken = source("ci.yml").replace(/^jobs:\n/m, "jobs:\n  broken: [\n")
    const errors = validateWorkflow(broken).errors
    expect(errors).toContainEqual(expect.objectContaining({ code: "parse_error" }))
  })
})

describe("ci.yml", () => {
  const ci = parse(source("ci.yml")) as {
    on: Record<string, any>
    permissions: unknown
    concurrency: { group: string; "cancel-in-progress": boolean }
    env: Record<string, unknown>
    jobs: Record<string, Job>
  }
  const { unit, integration } = ci.jobs
  const allSteps = Object.values(ci.jobs).flatMap((job) => job.steps)
  const runsIn = (job: Job) => job.steps.flatMap((s) => (s.run === undefined ? [] : [s.run]))

  it("runs on pull requests and on pushes to main", () => {
    expect(Object.keys(ci.on).sort()).toEqual(["pull_request", "push"])
    expect(ci.on.push.branches).toEqual(["main"])
  })

  it("has least-privilege permissions, no Nx cloud, and cancels superseded runs", () => {
    expect(ci.permissions).toEqual({ contents: "read" })
    expect(ci.env.NX_NO_CLOUD).toBe("true")
    expect(ci.concurrency["cancel-in-progress"]).toBe(true)
    // one group per PR (or per branch for pushes), so two PRs never cancel each other
    expect(ci.concurrency.group).toContain("github.event.pull_request.number")
    expect(ci.concurrency.group).toContain("github.ref")
  })

  it("every pnpm invocation is npx -y with the pnpm pinned in package.json", () => {
    const runs = allSteps.flatMap((s) => (s.run === undefined ? [] : [s.run]))
    expect(runs.some((r) => r.includes(pnpmCommand))).toBe(true)
    for (const r of runs) expect(r.split(pnpmCommand).join("")).not.toMatch(/\bpnpm\b/)
  })

  it("every action is pinned to a version", () => {
    for (const step of allSteps.filter((s) => s.uses !== undefined)) {
      expect(step.uses).toMatch(/^[\w.-]+\/[\w.-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/)
    }
  })

  it.each(["unit", "integration"])("%s: checkout, Node 20, pnpm store and Nx caches, frozen install before any tool", (id) => {
    const job = ci.jobs[id]!
    const step = (uses: string) => job.steps.filter((s) => s.uses?.startsWith(`${uses}@`))
    expect(step("actions/checkout")).toHaveLength(1)
    expect(String(step("actions/setup-node")[0]?.with?.["node-version"])).toBe("20")
    const caches = step("actions/cache").map((s) => s.with as { path: string; key: string })
    const store = caches.find((c) => c.path.includes("pnpm-store"))
    expect(store?.key).toContain("hashFiles('pnpm-lock.yaml')")
    expect(caches.map((c) => c.path)).toContain(".nx/cache")
    expect(runsIn(job)).toContain(`${pnpmCommand} install --frozen-lockfile`)
    // the install comes before anything that runs the workspace's tools
    const install = job.steps.findIndex((s) => s.run === `${pnpmCommand} install --frozen-lockfile`)
    const firstTool = job.steps.findIndex((s) =>
      s.run !== undefined && /\b(nx|test|affected|check)\b/.test(s.run) && !s.run.includes("install")
    )
    expect(install).toBeGreaterThan(-1)
    expect(firstTool).toBeGreaterThan(install)
  })

  it("unit: on PRs, lint/typecheck/test of the affected projects against the PR base (full history)", () => {
    expect(unit).toBeDefined()
    expect(unit!.steps.find((s) => s.uses?.startsWith("actions/checkout@"))?.with?.["fetch-depth"]).toBe(0)
    // the root script (`nx affected -t lint typecheck test` with pnpm on PATH for Nx's tasks)
    expect(rootScripts.affected).toMatch(/ nx affected -t lint typecheck test$/)
    const affected = unit!.steps.filter((s) => s.run?.includes(" affected"))
    expect(affected).toHaveLength(1)
    expect(affected[0]!.if).toBe("github.event_name == 'pull_request'")
    expect(affected[0]!.run).toBe(`${pnpmCommand} affected --base=origin/\${{ github.base_ref }}`)
  })

  it("unit: on pushes to main, lint/typecheck/test of every project (no affected)", () => {
    expect(rootScripts.check).toMatch(/ nx run-many -t lint typecheck test$/)
    const all = unit!.steps.filter((s) => s.run === `${pnpmCommand} check`)
    expect(all).toHaveLength(1)
    expect(all[0]!.if).toBe("github.event_name != 'pull_request'")
    // the suites need a real Postgres here too
    expect(unit!.services?.postgres?.image).toMatch(/^postgres:\d+$/)
    expect(unit!.env?.TEST_DATABASE_URL).toBe("postgres://postgres@localhost:5432/postgres")
  })

  it("integration: the matrix is exactly Postgres 15, 16, 17, 18 x mode memory, durable", () => {
    expect(integration).toBeDefined()
    const matrix = integration!.strategy!.matrix!
    // no include/exclude: the product is the whole story
    expect(Object.keys(matrix).sort()).toEqual(["mode", "postgres"])
    expect((matrix.postgres as Array<unknown>).map(String)).toEqual(["15", "16", "17", "18"])
    expect(matrix.mode).toEqual(["memory", "durable"])
    // runs for PRs and for main alike
    expect(integration!.if).toBeUndefined()
  })

  it("integration: each cell runs the README test command on its own Postgres in its own mode", () => {
    const postgres = integration!.services!.postgres
    expect(postgres.image).toBe("postgres:${{ matrix.postgres }}")
    expect(postgres.env.POSTGRES_HOST_AUTH_METHOD).toBe("trust")
    expect(postgres.ports).toEqual(["5432:5432"])
    expect(postgres.options).toMatch(/--health-cmd "?pg_isready/)
    expect(integration!.env).toEqual({
      TEST_DATABASE_URL: "postgres://postgres@localhost:5432/postgres",
      WORKFLOW_MODE: "${{ matrix.mode }}"
    })
    expect(runsIn(integration!).at(-1)).toBe(`${pnpmCommand} test`)
  })
})
