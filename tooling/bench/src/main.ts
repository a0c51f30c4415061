/**
 * `pnpm bench`: duraflow (durable with plain activities, durable with
 * transactional activities, memory engine) and DBOS Transact on the same
 * workflow (3 steps, each one upsert) and the same Postgres; per rep the
 * Postgres commit ceiling, then one cell per system, interleaved, each in its
 * own process on a fresh database; a progress line per cell, then a markdown
 * table of median (min-max) over the reps, then the ratios the targets are about.
 *
 *   --n 1000            workflows started at once per cell
 *   --sequential 50     workflows run one at a time afterwards (their p50)
 *   --reps 3            repetitions (interleaved)
 *   --connections 20    connections to Postgres per cell, every system alike: duraflow's pool
 *                       (DATABASE_POOL_MAX), DBOS's system pool and its steps' pool half each
 *                       (its defaults: 10 and 10), the ceiling's inserting connections
 *   --systems a,b       only these systems (durable, durable-tx, durable-tx-effect, memory, dbos)
 *   --timeout 600       seconds a cell may take before it is killed (the run then fails)
 *   --node-flags "..."  Node flags of every cell (default: the apps' own, --max-semi-space-size=64; "" for none)
 *   --database-url      admin URL that may CREATE DATABASE (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
 *
 * The duraflow cells read DATABASE_PREPARED_STATEMENTS as an app does (`false`: every
 * statement unnamed, to measure what named statements buy).
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Effect, Exit, Option } from "effect"
import * as Bench from "./Bench.js"
import * as Cell from "./Cell.js"

const positive = (name: string, fallback: number, description: string) =>
  Options.integer(name).pipe(
    Options.withDefault(fallback),
    Options.filterMap((v) => (v >= 1 ? Option.some(v) : Option.none()), `--${name} must be at least 1`),
    Options.withDescription(description)
  )

const options = {
  n: positive("n", 1000, "workflows started at once per cell"),
  sequential: positive("sequential", 50, "workflows run one at a time afterwards"),
  reps: positive("reps", 3, "repetitions, systems interleaved in each"),
  connections: positive(
    "connections",
    20,
    "connections to Postgres per cell: duraflow's pool, DBOS's system and steps' pools half each, the ceiling's"
  ),
  noWarm: Options.boolean("no-warm").pipe(
    Options.withDescription("skip each cell's warm burst (N more at once after the sequential runs)")
  ),
  timeout: positive("timeout", 600, "seconds a cell may take before it is killed and the run fails"),
  systems: Options.text("systems").pipe(
    Options.withDefault(Cell.systems.join(",")),
    Options.filterMap((raw) => {
      const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "")
      return list.length > 0 && list.every((s) => (Cell.systems as ReadonlyArray<string>).includes(s))
        ? Option.some(list as ReadonlyArray<Cell.System>)
        : Option.none()
    }, `--systems takes a comma-separated list of ${Cell.systems.join(", ")}`),
    Options.withDescription(`systems to run, of ${Cell.systems.join(", ")}`)
  ),
  nodeFlags: Options.text("node-flags").pipe(
    Options.withDefault(Bench.appNodeFlags.join(" ")),
    Options.map((raw) => raw.split(/\s+/).filter((flag) => flag !== "")),
    Options.withDescription("Node flags of every cell, whatever the system (default: those the apps' Dockerfiles set)")
  ),
  databaseUrl: Options.text("database-url").pipe(
    Options.withFallbackConfig(Config.string("DATABASE_URL")),
    Options.withDefault("postgres://postgres@127.0.0.1:5432/postgres"),
    Options.withDescription("admin Postgres URL (may CREATE DATABASE); cells use fresh databases bench_*")
  )
}

const bench = Command.make("bench", options, (args) =>
  Effect.gen(function*() {
    const print = (line: string) => process.stdout.write(`${line}\n`)
    print(
      `Benchmark: ${args.systems.join(", ")}; ${args.n} started at once, ${args.sequential} sequential, ` +
        `${args.reps} reps${args.noWarm ? "" : `, then ${args.n} more at once (warm burst)`}; ` +
        `${args.connections} connections to Postgres per cell; ` +
        `node ${args.nodeFlags.length > 0 ? args.nodeFlags.join(" ") : "(no flags)"} for every cell`
    )
    const options: Bench.Options = { ...args, warm: !args.noWarm }
    const results = yield* Effect.promise(() => Bench.run(options, print)).pipe(
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.promise(() => Bench.dropOwnDatabases(args.databaseUrl).catch(() => undefined))
      )
    )
    print("")
    print(Bench.table(results, options))
    const ratios = Bench.ratios(results, options)
    if (ratios.length > 0) {
      print("")
      print("Ratios of medians (each rep's own in brackets):")
      for (const line of ratios) print(`- ${line}`)
    }
  })).pipe(Command.withDescription("duraflow against DBOS Transact on the same workflow and Postgres"))

/**
 * `pnpm bench -- ...` may pass the separator through; @effect/cli spells a one-letter
 * option `-n`, and `--n` (as written in the docs) is accepted too.
 */
export const normalizeArgv = (argv: ReadonlyArray<string>): Array<string> =>
  argv.filter((arg) => arg !== "--").map((arg) => arg === "--n" ? "-n" : arg.startsWith("--n=") ? `-n${arg.slice(3)}` : arg)

const program = Command.run(bench, { name: "bench", version: "0.1.0" })(
  [...process.argv.slice(0, 2), ...normalizeArgv(process.argv.slice(2))]
).pipe(
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => void (process.exitCode = 2))),
  Effect.provide(NodeContext.layer)
)

// Ctrl-C reaches this process twice under `pnpm bench` (the terminal's and tsx's relay), and a
// SIGINT with no listener kills the process before the interrupted run drops its databases:
// runMain interrupts on the first, this keeps the rest from killing; a third one quits at once.
let interrupts = 0
process.on("SIGINT", () => {
  if (++interrupts >= 3) process.exit(130)
})

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? Number(process.exitCode ?? 0) : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
