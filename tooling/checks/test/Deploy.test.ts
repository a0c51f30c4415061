/**
 * Per-app deploys: `pnpm deploy:<app>` (the README's command: the app and its workspace
 * packages built to JavaScript, then `pnpm deploy --prod`, cleaned) gives a self-contained
 * folder with only that app's JavaScript and its production dependencies, a clean
 * package.json, at most half the size of the TypeScript-through-tsx folder it replaces, and
 * `node dist/main.js` inside it (no workspace around it, no tsx) serves /health against a
 * fresh database.
 */
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NOT_SHIPPED, pnpm, workspacePackages } from "./workspace.js"

const packages = workspacePackages()
// the apps shipped as images; the web console runs from the workspace for now (see workspace.ts)
const apps = packages.filter((p) => p.dir.startsWith("apps/") && !NOT_SHIPPED.has(p.name))

/** `name` and the workspace packages it needs at run time (`dependencies`, transitively). */
const productionClosure = (name: string): ReadonlySet<string> => {
  const found = new Set<string>()
  const visit = (next: string) => {
    const pkg = packages.find((p) => p.name === next)
    if (pkg === undefined || found.has(next)) return
    found.add(next)
    for (const dep of Object.keys(pkg.manifest.dependencies ?? {})) visit(dep)
  }
  visit(name)
  return found
}

/** Deploys `app` into a fresh temporary folder with the README's command, removed when the scope closes. */
const deploy = (app: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "duraflow-deploy-"))),
    (parent) => Effect.sync(() => rmSync(parent, { recursive: true, force: true }))
  ).pipe(
    Effect.map((parent) => join(parent, app.replace(/^@[^/]+\//, ""))),
    Effect.tap((dir) =>
      Effect.promise(() => pnpm(["run", `deploy:${app.replace(/^@[^/]+\//, "")}`, "--out", dir], { timeoutMs: 480_000 }))
    )
  )

/** Every package folder name in the deployed node_modules/.pnpm store (e.g. `vitest@3.2.7`). */
const storeEntries = (dir: string) => readdirSync(join(dir, "node_modules", ".pnpm"))

/** Every file under `dir` (symlinks not followed), relative to `dir`. */
const files = (dir: string, base = ""): Array<string> =>
  readdirSync(join(dir, base), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(dir, join(base, e.name)) : e.isFile() ? [join(base, e.name)] : []
  )

/** Disk usage of `dir` in bytes, like `du -s`: hard links counted once, symlinks not followed. */
const diskUsage = (dir: string, seen = new Set<number>()): number => {
  const stat = lstatSync(dir)
  if (seen.has(stat.ino)) return 0
  seen.add(stat.ino)
  const own = stat.blocks * 512
  return stat.isDirectory() ? readdirSync(dir).reduce((sum, name) => sum + diskUsage(join(dir, name), seen), own) : own
}

/** `node dist/main.js` in `dir` (plain node: no loader), with output kept; SIGTERM then SIGKILL when the scope closes. */
const startApp = (dir: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const environment: NodeJS.ProcessEnv = { ...process.env, ...env }
      // nothing from the workspace or the test runner may leak into the deployed app
      delete environment.NODE_PATH
      delete environment.NODE_OPTIONS
      delete environment.TEST_DATABASE_URL
      delete environment.VITEST
      const child = spawn(process.execPath, ["dist/main.js"], {
        cwd: dir,
        env: environment,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const output: Array<string> = []
      child.stdout!.on("data", (c: Buffer) => output.push(c.toString("utf8")))
      child.stderr!.on("data", (c: Buffer) => output.push(c.toString("utf8")))
      return { child, output }
    }),
    ({ child }) => stop(child)
  )

const stop = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    child.kill("SIGTERM")
  })

class NotYet extends Error {}

/** Polls GET /health until a 200 (fails at once if the process exits). */
const healthy = (port: number, app: { child: ChildProcess; output: Array<string> }) =>
  Effect.tryPromise({
    try: async () => {
      if (app.child.exitCode !== null || app.child.signalCode !== null) {
        throw new Error(`the app exited (${app.child.exitCode ?? app.child.signalCode}):\n${app.output.join("")}`)
      }
      const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined)
      if (response?.status !== 200) throw new NotYet(`health: ${response?.status ?? "no answer"}`)
      return (await response.json()) as Record<string, any>
    },
    catch: (e) => e as Error
  }).pipe(
    Effect.retry({ schedule: Schedule.spaced("500 millis"), while: (e) => e instanceof NotYet }),
    Effect.timeoutFail({
      duration: Duration.seconds(90),
      onTimeout: () => new Error(`no 200 from /health within 90 s; output:\n${app.output.join("").slice(-4000)}`)
    })
  )

// maxMB: half of what `pnpm deploy --prod --legacy` of the TypeScript sources run through tsx
// made (`du -sh`: ontology 96 MB, knowledge 101 MB); the JavaScript folders are 40 and 45 MB
const cases = [
  { app: "@duraflow/ontology-server", prefix: "ontology", env: {}, maxMB: 48 },
  // the knowledge app only needs the ontology app for ingestion; nothing listens there
  { app: "@duraflow/knowledge-server", prefix: "knowledge", env: { ONTOLOGY_URL: "http://127.0.0.1:9" }, maxMB: 50 }
] as const

describe("per-app deploy", () => {
  it("covers every app", () => {
    expect(apps.map((a) => a.name).sort()).toEqual(cases.map((c) => c.app).sort())
  })

  for (const { app, env, maxMB, prefix } of cases) {
    const manifest = packages.find((p) => p.name === app)!.manifest
    const workspaceNames = new Set(packages.map((p) => p.name))

    layer(TestDatabase.layer(`deploy_${prefix}`), { timeout: 600_000, excludeTestServices: true })((it) => {
      it.scoped(`${app}: a self-contained folder with production dependencies only, serving /health`, () =>
        Effect.gen(function*() {
          const dir = yield* deploy(app)

          // the app itself: a clean manifest and its JavaScript, nothing else of the workspace
          const deployed = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
          expect(deployed).toEqual({
            name: app,
            version: (manifest as any).version,
            private: true,
            description: (manifest as any).description,
            type: "module",
            main: "dist/main.js",
            scripts: { start: "node dist/main.js", duraflow: "node dist/cli.js" },
            engines: { node: ">=20.11" },
            dependencies: expect.any(Object)
          })
          expect(Object.keys(deployed.dependencies).sort()).toEqual(Object.keys(manifest.dependencies ?? {}).sort())
          for (const version of Object.values<string>(deployed.dependencies)) expect(version).toMatch(/^\d+\.\d+\.\d+(-[\w.-]+)?$/)
          expect(existsSync(join(dir, "dist", "main.js"))).toBe(true)
          expect(readdirSync(dir).sort()).toEqual(["dist", "node_modules", "package.json"])

          // JavaScript only: no TypeScript source (nor declaration) anywhere, and no tsx to run one
          const all = files(dir)
          expect(all.filter((f) => /\.[cm]?ts$/.test(f))).toEqual([])
          expect(all.filter((f) => f.startsWith("dist/")).every((f) => f.endsWith(".js"))).toBe(true)
          expect(existsSync(join(dir, "node_modules", "tsx"))).toBe(false)
          expect(storeEntries(dir).filter((e) => /^(tsx|esbuild|@esbuild\+[\w-]+|typescript)@/.test(e))).toEqual([])

          // no workspace: specifier in any manifest; workspace packages as published (exports into dist/)
          const manifests = all.filter((f) => f.endsWith("package.json"))
          for (const f of manifests) expect(readFileSync(join(dir, f), "utf8")).not.toContain("workspace:")
          for (const f of manifests.filter((f) => /node_modules\/@duraflow\/[^/]+\/package\.json$/.test(f))) {
            const exports = JSON.stringify(JSON.parse(readFileSync(join(dir, f), "utf8")).exports)
            expect(exports).toContain("./dist/index.js")
            expect(exports).not.toContain("./src/")
          }

          // at most half the size of the folder of TypeScript run through tsx
          expect(diskUsage(dir) / 2 ** 20).toBeLessThan(maxMB)

          // no devDependencies (vitest, @effect/vitest, typescript, tsx), top level or in the store
          const devOnly = Object.keys(manifest.devDependencies ?? {}).filter((d) => !(d in (manifest.dependencies ?? {})))
          expect(devOnly).toEqual(expect.arrayContaining(["vitest", "typescript", "tsx"]))
          for (const dep of devOnly) expect(existsSync(join(dir, "node_modules", dep))).toBe(false)
          const store = storeEntries(dir)
          for (const dep of devOnly) expect(store.filter((e) => e.startsWith(`${dep.replace("/", "+")}@`))).toEqual([])

          // workspace packages: exactly the app's own production ones; no other app, no tooling
          const ownWorkspaceDeps = Object.keys(manifest.dependencies ?? {}).filter((d) => workspaceNames.has(d))
          const linked = readdirSync(join(dir, "node_modules", "@duraflow")).map((n) => `@duraflow/${n}`)
          expect(linked.sort()).toEqual(ownWorkspaceDeps.sort())
          // the store holds those and theirs (production dependencies, transitively)
          const injected = store.filter((e) => e.startsWith("@duraflow+")).map((e) => `@duraflow/${e.slice(10).split("@")[0]}`)
          expect([...new Set(injected)].sort()).toEqual([...productionClosure(app)].filter((n) => n !== app).sort())
          for (const other of apps.filter((a) => a.name !== app)) {
            expect(linked).not.toContain(other.name)
            expect(injected).not.toContain(other.name)
          }

          // it runs from the folder alone, on a fresh database
          const db = yield* TestDatabase.TestDatabase
          const port = yield* TestProcess.freePort
          const mode = process.env.WORKFLOW_MODE ?? "durable"
          const running = yield* startApp(dir, { DATABASE_URL: db.url, PORT: String(port), WORKFLOW_MODE: mode, ...env })
          const health = yield* healthy(port, running)
          expect(health).toMatchObject({ status: "ok", prefix, mode, database: { reachable: true } })

          // it used that database, under its own prefix only
          const sql = yield* SqlClient.SqlClient
          const tables = yield* sql<{ relname: string }>`
            SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace`
          expect(tables.length).toBeGreaterThan(0)
          for (const { relname } of tables) expect(relname.startsWith(`${prefix}_`)).toBe(true)

          // the operator's command runs from the folder too (plain node, its JavaScript): the app is on the
          // database, and the command knows the app's domain, whose applied migrations match its code
          const doctor = spawnSync(process.execPath, ["dist/cli.js", "doctor", db.url, "--json"], {
            cwd: dir,
            encoding: "utf8"
          })
          expect(doctor.status, doctor.stderr).toBe(0)
          const report = JSON.parse(doctor.stdout)
          expect(report).toMatchObject({ prefixes: [prefix], ok: true })
          const migrations = report.verdicts.find((v: { check: string }) => v.check === "migrations")
          expect(migrations.details[0]).toMatch(/^\d+ applied migrations match the code$/)
          // and so does the upgrade check, with the build's own registry (the app's command knows it)
          const upgrade = spawnSync(
            process.execPath,
            ["dist/cli.js", "upgrade-check", db.url, "--json"],
            { cwd: dir, encoding: "utf8" }
          )
          expect(upgrade.status, upgrade.stderr).toBe(0)
          expect(JSON.parse(upgrade.stdout)).toMatchObject({ prefix, ok: true })

          // SIGTERM is a graceful shutdown: exit code 0 well before the SIGKILL fallback
          yield* stop(running.child)
          expect({ code: running.child.exitCode, signal: running.child.signalCode }).toEqual({ code: 0, signal: null })
        }), 600_000)
    })
  }
})
