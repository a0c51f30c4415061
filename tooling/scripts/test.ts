/**
 * The workspace test command (`pnpm test`, called by .ci/run).
 *
 * 1. Finds a Postgres for the real-database suites: TEST_DATABASE_URL if set,
 *    else the local server on 127.0.0.1:5432 (started with pg_ctlcluster when it
 *    is installed but down), else an embedded Postgres in .data/test-postgres.
 * 2. Typechecks and lints every project (Nx).
 * 3. Runs every vitest project once.
 * 4. Runs the integration projects once more on the newest embedded Postgres
 *    (18, a fresh data directory) in WORKFLOW_MODE (default durable): one cell
 *    of the matrix (`pnpm test:matrix`, tooling/matrix), run by its own command.
 * 5. Prints the totals of 3 and 4 as one plain line: `N passed, N failed, N skipped`.
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { Socket } from "node:net"
import { delimiter, join, resolve } from "node:path"

const root = resolve(import.meta.dirname, "../..")
const resultsFile = join(root, ".data", "test-results.json")
const embeddedCellFile = join(root, ".data", "test-embedded-cell.json")
const run = (cmd: string, args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: "inherit", ...options }).status ?? 1

const reachable = (host: string, port: number) =>
  new Promise<boolean>((done) => {
    const socket = new Socket()
    socket.setTimeout(1000)
    socket.once("connect", () => (socket.destroy(), done(true)))
    socket.once("timeout", () => (socket.destroy(), done(false)))
    socket.once("error", () => done(false))
    socket.connect(port, host)
  })

const ensurePostgres = async (): Promise<string | undefined> => {
  if (process.env.TEST_DATABASE_URL) return process.env.TEST_DATABASE_URL
  if (await reachable("127.0.0.1", 5432)) return undefined
  if (existsSync("/etc/postgresql")) {
    for (const version of readdirSync("/etc/postgresql")) {
      console.log(`Postgres on 127.0.0.1:5432 is down: starting cluster ${version}/main`)
      run("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "start"])
    }
    for (let i = 0; i < 20 && !(await reachable("127.0.0.1", 5432)); i++) await new Promise((r) => setTimeout(r, 500))
    if (await reachable("127.0.0.1", 5432)) return undefined
  }
  return "embedded"
}

const main = async () => {
  mkdirSync(join(root, ".data"), { recursive: true })
  const target = await ensurePostgres()
  const env = { ...process.env }
  const tools = process.argv.includes("--no-checks") ? 0 : run("npx", ["nx", "run-many", "-t", "typecheck", "lint"], {
    // Nx runs package scripts with `pnpm run` after stripping node_modules from PATH: offer the workspace's pnpm
    env: { ...env, NX_DAEMON: "false", PATH: [join(root, "tooling/scripts/bin"), env.PATH].join(delimiter) }
  })
  if (tools !== 0) console.error("typecheck/lint failed")

  const vitestArgs = ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${resultsFile}`]
  const vitest = target === "embedded"
    ? run("npx", ["tsx", "tooling/embedded-postgres/src/bin/with-postgres.ts", "--", "npx", ...vitestArgs], { env })
    : run("npx", vitestArgs, { env })

  let totals = { passed: 0, failed: 0, skipped: 0 }
  if (existsSync(resultsFile)) {
    const report = JSON.parse(readFileSync(resultsFile, "utf8"))
    totals = {
      passed: report.numPassedTests,
      failed: report.numFailedTests,
      skipped: report.numPendingTests + report.numTodoTests
    }
    // a file that failed to load (syntax error, failing beforeAll) has no failed test: count it
    const brokenFiles = report.testResults.filter((f: any) => f.status === "failed" && f.assertionResults.every((a: any) => a.status !== "failed"))
    totals.failed += brokenFiles.length
  } else {
    totals.failed = 1
  }
  if (tools !== 0) totals.failed += 1

  // The integration projects on the newest embedded Postgres, in this run's engine mode.
  const mode = (process.env.WORKFLOW_MODE ?? "").trim().toLowerCase() || "durable"
  rmSync(embeddedCellFile, { force: true })
  const embedded = run("npx", [
    "tsx",
    "tooling/matrix/src/main.ts",
    "--majors=18",
    `--modes=${mode}`,
    `--json=${embeddedCellFile}`
  ], { env })
  if (existsSync(embeddedCellFile)) {
    const cell = JSON.parse(readFileSync(embeddedCellFile, "utf8")).totals
    totals.passed += cell.passed
    totals.failed += cell.failed
    totals.skipped += cell.skipped
  } else {
    console.error("the embedded Postgres 18 run reported nothing")
    totals.failed += 1
  }
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`)
  process.exit(vitest !== 0 || tools !== 0 || embedded !== 0 || totals.failed > 0 ? 1 : 0)
}

void main()
