/**
 * `pnpm test:matrix`: the integration suites against every embedded Postgres
 * major (15, 16, 17, 18) in both engine modes (memory, durable), one cell after
 * another, each on a fresh data directory; then a version x mode table (with, for
 * a failed cell, why vitest failed) and one line `N passed, N failed, N skipped`.
 * Exit code 1 when any cell failed, 2 on bad arguments, 130 on Ctrl-C.
 *
 *   --majors=15,18      only these majors
 *   --modes=durable     only these modes
 *   --projects=a,b      only these vitest projects (default the integration projects)
 *   --json              the summary as JSON on stdout (everything else on stderr)
 *   --json=<file>       the summary as JSON into <file>
 *
 * Each cell's full vitest output is in `.data/matrix/pg<major>-<mode>.log`.
 */
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { writeFileSync } from "node:fs"
import * as Matrix from "./Matrix.js"

const matrix = Command.make("matrix", Matrix.options, (args) =>
  Effect.gen(function*() {
    const jsonFile = Option.getOrUndefined(args.json)
    const print = (text: string) => (jsonFile === "-" ? process.stderr : process.stdout).write(`${text}\n`)
    const todo = Matrix.cells(args.majors, args.modes)
    print(
      `Integration matrix: Postgres ${args.majors.join(", ")} x ${args.modes.join(", ")} ` +
        `(${todo.length} cells: ${args.projects.join(", ")})`
    )
    const results = yield* Matrix.runCells(todo, print, { projects: args.projects })
    const totals = Matrix.totals(results)
    print("")
    print(Matrix.formatTable(results))
    print("")
    print(Matrix.formatTotals(totals))
    const summary = `${JSON.stringify({ cells: results, totals }, null, 2)}\n`
    if (jsonFile === "-") process.stdout.write(summary)
    else if (jsonFile !== undefined) writeFileSync(jsonFile, summary)
    process.exitCode = totals.failed > 0 ? 1 : 0
  })).pipe(Command.withDescription("The integration suites on every embedded Postgres major, in both engine modes"))

const program = Command.run(matrix, { name: "matrix", version: "0.1.0" })(
  [...process.argv.slice(0, 2), ...Matrix.normalizeArgv(process.argv.slice(2))]
).pipe(
  // @effect/cli has printed the problem and the usage
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => void (process.exitCode = 2))),
  Effect.provide(NodeContext.layer)
)

// Ctrl-C interrupts the running cell (its vitest is killed, its server stopped, its directory deleted): exit 130.
NodeRuntime.runMain(program, {
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? Number(process.exitCode ?? 0) : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
