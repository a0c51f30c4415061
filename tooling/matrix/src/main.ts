/**
 * `pnpm test:matrix`: the integration suites against every embedded Postgres
 * major (15, 16, 17, 18) in both engine modes (memory, durable), one cell after
 * another, each on a fresh data directory; then a version x mode table and one
 * line `N passed, N failed, N skipped`. Exit code 1 when any cell failed, 2 on
 * bad arguments.
 *
 *   --majors=15,18      only these majors
 *   --modes=durable     only these modes
 *   --json              the summary as JSON on stdout (everything else on stderr)
 *   --json=<file>       the summary as JSON into <file>
 *
 * Each cell's full vitest output is in `.data/matrix/pg<major>-<mode>.log`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { writeFileSync } from "node:fs"
import * as Matrix from "./Matrix.js"

const program = Effect.gen(function*() {
  const args = Matrix.parseArgs(process.argv.slice(2))
  if (typeof args === "string") {
    process.stderr.write(`${args}\n${Matrix.usage}\n`)
    process.exitCode = 2
    return
  }
  const jsonToStdout = Option.contains(args.json, true)
  const print = (text: string) => (jsonToStdout ? process.stderr : process.stdout).write(`${text}\n`)

  const todo = Matrix.cells(args.majors, args.modes)
  print(
    `Integration matrix: Postgres ${args.majors.join(", ")} x ${args.modes.join(", ")} ` +
      `(${todo.length} cells: ${Matrix.integrationProjects.join(", ")})`
  )
  const results: Array<Matrix.CellResult> = []
  for (const [index, cell] of todo.entries()) {
    print(`[${index + 1}/${todo.length}] Postgres ${cell.major}, WORKFLOW_MODE=${cell.mode}: running...`)
    const result = yield* Matrix.runCell(cell)
    results.push(result)
    print(
      `[${index + 1}/${todo.length}] Postgres ${result.version || cell.major}, WORKFLOW_MODE=${cell.mode}: ` +
        `${Matrix.formatTotals(result)} in ${Matrix.formatDuration(result.durationMs)}` +
        `${result.error === undefined ? "" : ` (${result.error})`}`
    )
  }
  const totals = Matrix.totals(results)
  print("")
  print(Matrix.formatTable(results))
  print("")
  print(Matrix.formatTotals(totals))
  const summary = JSON.stringify({ cells: results, totals }, null, 2)
  if (jsonToStdout) process.stdout.write(`${summary}\n`)
  else if (Option.isSome(args.json) && args.json.value !== true) writeFileSync(args.json.value, `${summary}\n`)
  process.exitCode = totals.failed > 0 ? 1 : 0
})

// Ctrl-C interrupts the running cell (its vitest is killed, its server stopped, its directory deleted): exit 130.
NodeRuntime.runMain(program, {
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? Number(process.exitCode ?? 0) : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
