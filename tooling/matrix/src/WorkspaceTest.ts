/**
 * The workspace test command (`pnpm test`, called by .ci/run; tooling/scripts/test.ts):
 *
 * 1. typechecks and lints every project (one program, one ESLint run), unless `--no-checks`;
 * 2. runs every vitest project once (vitest's global setup finds the test Postgres:
 *    TEST_DATABASE_URL, else the local server, else one embedded Postgres);
 * 3. runs the server projects (the integration projects but e2e, `Matrix.serverProjects`)
 *    once more on the newest embedded Postgres (18, a fresh data directory) in
 *    WORKFLOW_MODE (default durable): one matrix cell. The e2e project's processes run the
 *    same SQL through the apps, and leaving them out keeps CI within its time budget;
 *    `pnpm test:matrix` runs every integration project on every major;
 * 4. prints the totals of 2 and 3 (a failed typecheck or lint is one more failure) as
 *    its last line: `N passed, N failed, N skipped`. Exit code 1 when anything failed.
 */
import { Command, Options } from "@effect/cli"
import * as Process from "@effect/platform/Command"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit } from "effect"
import { mkdirSync } from "node:fs"
import * as path from "node:path"
import * as Matrix from "./Matrix.js"
import * as Vitest from "./Vitest.js"

const root = Vitest.workspaceRoot

/** A root devDependency's binary in the workspace root, its output shown; whether it exited 0. */
const step = (bin: string, ...args: Array<string>) =>
  Process.make(path.join(root, "node_modules", ".bin", bin), ...args).pipe(
    Process.workingDirectory(root),
    Process.env({ NX_DAEMON: "false" }),
    Process.stdin("inherit"),
    Process.stdout("inherit"),
    Process.stderr("inherit"),
    Process.exitCode,
    Effect.map((code) => code === 0),
    Effect.orElseSucceed(() => false)
  )

/**
 * Typecheck and lint of every project, each once over the whole workspace: one TypeScript
 * program (`tsconfig.workspace.json`: every project's src and test on the shared base, the
 * options each project's own tsconfig.json has) and one ESLint run, instead of Nx's
 * per-project targets, which check the shared packages again in every project that imports
 * them (about 200 s of CPU against 30 here). Nx's project graph is computed first: the
 * module-boundaries rule reads the cached graph and, finding none, skips itself.
 */
const checks = Effect.reduce(
  [["nx", "show", "projects"], ["tsc", "-p", "tsconfig.workspace.json"], ["eslint", "."]],
  true,
  (passed, [bin, ...args]) => Effect.map(step(bin!, ...args), (ok) => passed && ok)
)

export const test = Command.make("test", {
  noChecks: Options.boolean("no-checks").pipe(Options.withDescription("skip typecheck and lint"))
}, ({ noChecks }) =>
  Effect.gen(function*() {
    mkdirSync(path.join(root, ".data"), { recursive: true })
    const checked = noChecks || (yield* checks)
    if (!checked) console.error("typecheck/lint failed")
    const all = yield* Vitest.run({ reportFile: path.join(root, ".data", "test-results.json") })
    if (all.error !== undefined) console.error(all.error)

    // The server projects on the newest embedded Postgres, in this run's engine mode.
    const mode = (process.env.WORKFLOW_MODE ?? "").trim().toLowerCase() === "memory" ? "memory" : "durable"
    const cells = yield* Matrix.runCells([{ major: 18, mode }], console.log, { projects: Matrix.serverProjects })
    console.log(`\n${Matrix.formatTable(cells)}\n`)

    const totals = Vitest.totals([all, ...cells, { passed: 0, failed: checked ? 0 : 1, skipped: 0 }])
    console.log(Vitest.formatTotals(totals))
    process.exitCode = totals.failed > 0 ? 1 : 0
  })).pipe(Command.withDescription("typecheck, lint, every test suite, and one matrix cell; then the totals"))

export const main = (argv: ReadonlyArray<string>): void =>
  Command.run(test, { name: "test", version: "0.1.0" })(argv).pipe(
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain({
      teardown: (exit, onExit) =>
        onExit(Exit.isSuccess(exit) ? Number(process.exitCode ?? 0) : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
    })
  )
