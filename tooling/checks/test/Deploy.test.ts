/**
 * Per-app deploys: `pnpm --filter <app> deploy --prod --legacy <dir>` (what the README's
 * deploy:<app> scripts run) gives a self-contained folder with only that app and its
 * production dependencies, and `node --import tsx src/main.ts` inside it (no workspace
 * around it) serves /health against a fresh database.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pnpm, workspacePackages } from "./workspace.js"

const packages = workspacePackages()
const apps = packages.filter((p) => p.dir.startsWith("apps/"))

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

/** A port nobody listens on right now (the OS picks it). */
const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Deploys `app` into a fresh temporary folder, removed when the scope closes. */
const deploy = (app: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "duraflow-deploy-"))),
    (parent) => Effect.sync(() => rmSync(parent, { recursive: true, force: true }))
  ).pipe(
    Effect.map((parent) => join(parent, app.replace(/^@[^/]+\//, ""))),
    Effect.tap((dir) => Effect.promise(() => pnpm(["--filter", app, "deploy", "--prod", "--legacy", dir], { timeoutMs: 150_000 })))
  )

/** Every package folder name in the deployed node_modules/.pnpm store (e.g. `vitest@3.2.7`). */
const storeEntries = (dir: string) => readdirSync(join(dir, "node_modules", ".pnpm"))

/** `node --import tsx src/main.ts` in `dir`, with output kept; SIGTERM then SIGKILL when the scope closes. */
const startApp = (dir: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const environment: NodeJS.ProcessEnv = { ...process.env, ...env }
      // nothing from the workspace or the test runner may leak into the deployed app
      delete environment.NODE_PATH
      delete environment.NODE_OPTIONS
      delete environment.TEST_DATABASE_URL
      delete environment.VITEST
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
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

const cases = [
  { app: "@duraflow/ontology-server", prefix: "ontology", env: {} },
  // the knowledge app only needs the ontology app for ingestion; nothing listens there
  { app: "@duraflow/knowledge-server", prefix: "knowledge", env: { ONTOLOGY_URL: "http://127.0.0.1:9" } }
] as const

describe("per-app deploy", () => {
  it("covers every app", () => {
    expect(apps.map((a) => a.name).sort()).toEqual(cases.map((c) => c.app).sort())
  })

  for (const { app, env, prefix } of cases) {
    const manifest = packages.find((p) => p.name === app)!.manifest
    const workspaceNames = new Set(packages.map((p) => p.name))

    layer(TestDatabase.layer(`deploy_${prefix}`), { timeout: 180_000, excludeTestServices: true })((it) => {
      it.scoped(`${app}: a self-contained folder with production dependencies only, serving /health`, () =>
        Effect.gen(function*() {
          const dir = yield* deploy(app)

          // the app itself: its manifest and its sources, nothing else of the workspace
          expect(JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name).toBe(app)
          expect(existsSync(join(dir, "src", "main.ts"))).toBe(true)
          expect(readdirSync(dir).sort()).toEqual(["node_modules", "package.json", "src"])

          // no devDependencies (vitest, @effect/vitest, typescript), top level or in the store
          const devOnly = Object.keys(manifest.devDependencies ?? {}).filter((d) => !(d in (manifest.dependencies ?? {})))
          expect(devOnly).toEqual(expect.arrayContaining(["vitest", "typescript"]))
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
          const port = yield* freePort
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

          // SIGTERM is a graceful shutdown: exit code 0 well before the SIGKILL fallback
          yield* stop(running.child)
          expect({ code: running.child.exitCode, signal: running.child.signalCode }).toEqual({ code: 0, signal: null })
        }), 180_000)
    })
  }
})
