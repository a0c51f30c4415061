/**
 * Running vitest and counting what it reports: one way for the workspace test
 * command (`pnpm test`) and every matrix cell.
 *
 * Counts are vitest's JSON report's (passed, failed, skipped = pending + todo),
 * plus what that report does not count:
 * - a test file that failed without a failed test (it did not load, a hook failed)
 *   is one failed test;
 * - vitest exiting non-zero with no failed test (an unhandled error or rejection
 *   between tests, which the JSON report leaves out) is one failure;
 * - no report at all (vitest crashed, or was killed at the timeout) is one failure.
 */
import * as Command from "@effect/platform/Command"
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import { Duration, Effect, Option, Stream } from "effect"
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as path from "node:path"

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

export interface Counts {
  readonly passed: number
  readonly failed: number
  readonly skipped: number
}

export interface Summary extends Counts {
  /** One line per failed test or broken file: `file > test: first line of the error`. */
  readonly failures: ReadonlyArray<string>
  /** Why the run failed beyond its failed tests (no report, killed, an unhandled error). */
  readonly error?: string
  /** When vitest failed: the failed tests and unhandled errors from its output (logged runs only). */
  readonly detail?: string
}

// ---------------------------------------------------------------------------------------------------------------
// The JSON report

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
export const summarizeReport = (report: VitestReport, root: string = workspaceRoot): Summary => {
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

export const readReport = (file: string): Option.Option<VitestReport> => {
  try {
    return Option.some(JSON.parse(readFileSync(file, "utf8")) as VitestReport)
  } catch {
    return Option.none()
  }
}

/**
 * The counts of one vitest run from its exit code (`None`: killed at the timeout) and
 * report, with the failures the report does not count (see the module comment).
 */
export const summarizeRun = (
  exitCode: Option.Option<number>,
  report: Option.Option<VitestReport>,
  root: string = workspaceRoot
): Summary => {
  const broken = (error: string): Summary => ({ passed: 0, failed: 1, skipped: 0, failures: [], error })
  if (Option.isNone(exitCode)) return broken("vitest did not finish in time: killed")
  if (Option.isNone(report)) return broken(`vitest exited with ${exitCode.value} and wrote no report`)
  const summary = summarizeReport(report.value, root)
  if (exitCode.value !== 0 && summary.failed === 0) {
    return { ...summary, failed: 1, error: `vitest exited with ${exitCode.value} although no test failed` }
  }
  return summary
}

const sectionHeader = /⎯\s+(Failed Tests \d+|Failed Suites \d+|Unhandled Errors?|Unhandled Rejection)\s+⎯/

/**
 * Why vitest failed, from its output: its "Failed Suites", "Failed Tests" and "Unhandled
 * Error(s)" sections (each cut at `maxLines`), or its last `maxLines` lines when it has none.
 */
export const failureDetails = (output: string, maxLines = 60): string => {
  const body = output.replace(/\x1b\[[0-9;]*m/g, "").split("\n")
  const starts = body.flatMap((line, i) => sectionHeader.test(line) ? [i] : [])
  if (starts.length === 0) return body.filter((l) => l.trim() !== "").slice(-maxLines).join("\n")
  return starts.flatMap((start, i) => {
    const section = body.slice(start, starts[i + 1] ?? body.length).join("\n").trim().split("\n")
    return section.length > maxLines ? [...section.slice(0, maxLines), `... (${section.length - maxLines} more lines)`] : section
  }).join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Running vitest

export interface RunOptions {
  /** Arguments after `vitest run` (projects, files). */
  readonly args?: ReadonlyArray<string>
  /** Where the JSON report goes. */
  readonly reportFile: string
  /** vitest's whole environment. Default this process's. */
  readonly env?: Record<string, string | undefined>
  /** vitest's output goes into this file (and `detail` is read from it); default: this process's output. */
  readonly logFile?: string
  /** vitest (and its workers) are killed after this long. */
  readonly timeout?: Duration.DurationInput
}

/** Output into `logFile`; the exit code. On interruption: SIGTERM to its process group, SIGKILL 10 s later. */
const runLogged = (command: Command.Command, logFile: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => createWriteStream(logFile, { flags: "a" })),
    (log) =>
      Effect.gen(function*() {
        const process = yield* Command.start(command)
        yield* Effect.onInterrupt(
          Effect.zipRight(
            Stream.merge(process.stdout, process.stderr).pipe(Stream.runForEach((chunk) => Effect.sync(() => log.write(chunk)))),
            process.exitCode
          ),
          () =>
            process.kill("SIGTERM").pipe(
              Effect.timeout("10 seconds"),
              Effect.orElse(() => process.kill("SIGKILL")),
              Effect.ignore
            )
        )
        return yield* process.exitCode
      }).pipe(Effect.scoped),
    (log) => Effect.async<void>((resume) => void log.end(() => resume(Effect.void)))
  )

/** Runs `vitest run` from the workspace root with a JSON report, and counts what it reported. */
export const run = (options: RunOptions): Effect.Effect<Summary, never, CommandExecutor> =>
  Effect.gen(function*() {
    rmSync(options.reportFile, { force: true })
    const args = [
      "vitest",
      "run",
      ...(options.args ?? []),
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${options.reportFile}`
    ]
    const command = Command.make("npx", ...args).pipe(
      Command.workingDirectory(workspaceRoot),
      Command.env(options.env ?? process.env, { extendEnv: false })
    )
    const logFile = options.logFile
    if (logFile !== undefined) {
      yield* Effect.sync(() => writeFileSync(logFile, `$ npx ${args.join(" ")}\n`))
    }
    const running = logFile === undefined
      ? Command.exitCode(command.pipe(Command.stdin("inherit"), Command.stdout("inherit"), Command.stderr("inherit")))
      : runLogged(command, logFile)
    const exitCode = yield* (options.timeout === undefined
      ? Effect.map(running, Option.some)
      : Effect.timeoutOption(running, options.timeout)).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logError(`cannot run vitest: ${error.message}`), Option.some(127)))
      )
    const summary = summarizeRun(exitCode, readReport(options.reportFile))
    const failedRun = Option.match(exitCode, { onNone: () => true, onSome: (code) => code !== 0 })
    if (!failedRun || logFile === undefined) return summary
    const output = yield* Effect.sync(() => readFileSync(logFile, "utf8")).pipe(Effect.orElseSucceed(() => ""))
    return { ...summary, detail: failureDetails(output) }
  })

/** The sum of several runs' counts. */
export const totals = (results: ReadonlyArray<Counts>): Counts =>
  results.reduce((sum, r) => ({
    passed: sum.passed + r.passed,
    failed: sum.failed + r.failed,
    skipped: sum.skipped + r.skipped
  }), { passed: 0, failed: 0, skipped: 0 })

/** `N passed, N failed, N skipped`: the last line of `pnpm test` and of the matrix. */
export const formatTotals = (counts: Counts): string =>
  `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`
