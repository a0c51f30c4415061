/**
 * `duraflow`: the operator's command line for the apps on one database.
 *
 *   duraflow apps   [DATABASE_URL] [--json]   the apps (prefixes), their live replicas, health and runs by status
 *   duraflow doctor [DATABASE_URL] [--json] [--fix]   can the apps collide? one verdict per check (`Doctor`);
 *                                             --fix re-drives stuck runs
 *   duraflow runs list|get|steps|cancel|resume|retry|signal --app URL ...   (see `Runs`)
 *   duraflow retention [DATABASE_URL] --prefix P [--older-than "14 days"] [--json]
 *                                             delete one app's expired finished runs now (`Retention`)
 *   duraflow upgrade-check [DATABASE_URL] --registry MODULE [--json]
 *                                             can this build resume every running/suspended run? (`UpgradeCheck`)
 *
 * DATABASE_URL may be given as an argument or in the environment; a read-only
 * role is enough. A table by default, `--json` for scripts. Exit codes: 0 ok,
 * 1 a check failed (doctor, upgrade-check) or the database could not be read, 2 usage.
 *
 * `make({ domains })` is the command with the code of some domains, whose
 * migrations `doctor` then compares with the database's (an app's own
 * `duraflow` gives its domain); `main` runs it as a process.
 */
import { AppDirectory, Database, Doctor, Retention, TablePrefix, UpgradeCheck } from "@duraflow/runtime-core"
import { Args, Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Cause, Config, Console, Data, Duration, Effect, Exit, Option, Redacted } from "effect"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { runs } from "./Runs.js"
import { table, Usage } from "./Table.js"

/** The command ran and its answer is "no" (a failed check): exit 1 after printing it. */
export class Unhealthy extends Data.TaggedError("Unhealthy")<{ readonly problem: string }> {}

const databaseUrl = Args.text({ name: "DATABASE_URL" }).pipe(
  Args.withDescription("the database (default: the DATABASE_URL variable)"),
  Args.optional
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON instead of a table"))

/** Runs `effect` on the database given as argument or `DATABASE_URL`. */
const onDatabase = <A, E>(arg: Option.Option<string>, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.option(Config.string("DATABASE_URL"))
    const chosen = Option.orElse(arg, () => fromEnv)
    if (Option.isNone(chosen) || chosen.value === "") {
      return yield* new Usage({ problem: "no database: give DATABASE_URL as an argument or in the environment" })
    }
    return yield* Effect.provide(
      effect,
      Database.layer({ url: Redacted.make(chosen.value), applicationName: "duraflow-cli", maxConnections: 2 })
    )
  })

export type AppInfo = AppDirectory.AppInfo

export const apps = Command.make("apps", { databaseUrl, json }, (args) =>
  onDatabase(args.databaseUrl, AppDirectory.list).pipe(
    Effect.flatMap((infos) =>
      args.json
        ? Console.log(JSON.stringify(infos, null, 2))
        : Console.log(infos.length === 0 ? "no duraflow apps on this database" : table(
          ["prefix", "replicas", "health", "running", "suspended", "succeeded", "failed", "cancelled"],
          infos.map((a) => [
            a.prefix,
            String(a.replicas),
            a.health === "degraded" ? `degraded (${a.overdue} overdue)` : a.health,
            ...["running", "suspended", "succeeded", "failed", "cancelled"].map((s) => String(a.runs[s] ?? 0))
          ])
        ))
    )
  )).pipe(Command.withDescription("The apps on a database: prefix, live replicas, health, runs by status"))

/** What the command knows of the apps' code. */
export interface Options {
  /** domains whose migrations `doctor` compares with the database's ledgers */
  readonly domains?: ReadonlyArray<Doctor.DomainCode> | undefined
  /** the build's workflows, for `upgrade-check` without `--registry` (an app's own command) */
  readonly registry?: UpgradeCheck.Registry | undefined
}

const makeDoctor = (options: Options) => Command.make("doctor", {
  databaseUrl,
  json,
  fix: Options.boolean("fix").pipe(Options.withDescription("re-drive the stuck runs found (see Doctor.fix)"))
}, (args) =>
  onDatabase(
    args.databaseUrl,
    Effect.flatMap(Doctor.check({ domains: options.domains }), (report) =>
      Effect.map(
        args.fix && report.verdicts.some((v) => v.check === "stuck-runs" && !v.ok) ? Doctor.fix : Effect.succeed([]),
        (fixed) => ({ ...report, fixed })
      ))
  ).pipe(
    Effect.tap(({ fixed, prefixes, verdicts }) =>
      args.json
        ? Console.log(JSON.stringify({ prefixes, ok: verdicts.every((v) => v.ok), verdicts, fixed }, null, 2))
        : Console.log(
          `apps: ${prefixes.length === 0 ? "none" : prefixes.join(", ")}\n` +
            table(
              ["check", "verdict", "details"],
              verdicts.flatMap((v) =>
                v.details.map((d, i) => i === 0 ? [v.check, v.ok ? "ok" : "FAIL", d] : ["", "", d])
              )
            ) +
            fixed.map((f) =>
              `\nfixed ${f.prefix}: ${f.redriven} overdue message(s) re-driven, ${f.orphansFailed} orphan run(s) marked failed, ${f.resumed} signalled run(s) resumed`
            ).join("")
        )
    ),
    Effect.flatMap(({ fixed, verdicts }) => {
      // stuck runs that --fix re-drove are dealt with; anything else fails the command
      const failed = verdicts.filter((v) => !v.ok && !(v.check === "stuck-runs" && fixed.length > 0)).map((v) => v.check)
      return failed.length === 0 ? Effect.void : new Unhealthy({ problem: `failed: ${failed.join(", ")}` })
    })
  )).pipe(Command.withDescription("Checks that the apps on a database cannot collide; exit 1 on any failure"))

export const retention = Command.make("retention", {
  databaseUrl,
  json,
  prefix: Options.text("prefix").pipe(Options.withDescription("the app whose expired runs to delete")),
  olderThan: Options.text("older-than").pipe(
    Options.withDefault("14 days"),
    Options.withDescription("finished runs whose last update is older than this (a duration)")
  )
}, (args) =>
  Effect.gen(function*() {
    const prefix = yield* TablePrefix.make(args.prefix).pipe(Effect.mapError((e) => new Usage({ problem: e.message })))
    const age = yield* Option.match(Duration.decodeUnknown(args.olderThan), {
      onNone: () => new Usage({ problem: `--older-than: expected a duration such as "14 days", got ${JSON.stringify(args.olderThan)}` }),
      onSome: Effect.succeed
    })
    const total = { runs: 0, messages: 0, replies: 0, activities: 0, batches: 0 }
    yield* onDatabase(args.databaseUrl, Effect.gen(function*() {
      while (true) {
        const batch = yield* Retention.sweepBatch(prefix, { age })
        if (!batch.locked) return yield* new Unhealthy({ problem: `another process of ${prefix} is sweeping now; try again later` })
        total.runs += batch.runs
        total.messages += batch.messages
        total.replies += batch.replies
        total.activities += batch.activities
        total.batches++
        // a progress line on stderr (stdout stays the result)
        if (!args.json) process.stderr.write(`\rdeleted ${total.runs} runs in ${total.batches} batches...`)
        if (batch.runs < 1000) break
      }
      if (!args.json) process.stderr.write("\n")
    }))
    yield* Console.log(args.json ? JSON.stringify({ prefix, olderThan: Duration.format(age), ...total }) : table(
      ["prefix", "older than", "runs", "messages", "replies", "activity rows"],
      [[prefix, Duration.format(age), String(total.runs), String(total.messages), String(total.replies), String(total.activities)]]
    ))
  })).pipe(Command.withDescription("Deletes one app's finished runs older than --older-than, with every row they own"))

/** Loads an app's `UpgradeCheck.Registry` from a module (its `registry` export, or its default export). */
const loadRegistry = (path: string) =>
  Effect.tryPromise({
    try: () => import(pathToFileURL(resolve(path)).href) as Promise<Record<string, unknown>>,
    catch: (e) => new Usage({ problem: `--registry ${path}: cannot load it (${e instanceof Error ? e.message : String(e)})` })
  }).pipe(
    Effect.flatMap((module) => {
      const found = (module["registry"] ?? module["default"]) as Partial<UpgradeCheck.Registry> | undefined
      return found !== undefined && typeof found.prefix === "string" && Array.isArray(found.workflows)
        ? Effect.succeed(found as UpgradeCheck.Registry)
        : Effect.fail(new Usage({ problem: `--registry ${path}: exports no \`registry\` (UpgradeCheck.registry(prefix, workflows))` }))
    })
  )

const makeUpgradeCheck = (options: Options) => Command.make("upgrade-check", {
  databaseUrl,
  json,
  registry: Options.text("registry").pipe(
    Options.withDescription(
      "the module exporting this build's `registry` (UpgradeCheck.registry), e.g. dist/registry.js (an app's own duraflow knows it)"
    ),
    Options.optional
  )
}, (args) =>
  Effect.gen(function*() {
    const registry = yield* Option.match(args.registry, {
      onSome: loadRegistry,
      onNone: () =>
        options.registry !== undefined
          ? Effect.succeed(options.registry)
          : new Usage({ problem: "--registry: which build? give the module exporting its `registry` (e.g. dist/registry.js)" })
    })
    const report = yield* onDatabase(args.databaseUrl, UpgradeCheck.check(registry))
    yield* Console.log(
      args.json ? JSON.stringify(report, null, 2) : [
        table(
          ["run", "workflow", "status", "started by", "verdict", "step", "reason"],
          report.runs.flatMap((r) => {
            const head = [r.executionId, r.workflow, r.status, r.startedBy ?? ""]
            return r.problems.length === 0
              ? [[...head, "ok", "", ""]]
              : r.problems.map((p, i) => [...(i === 0 ? head : ["", "", "", ""]), i === 0 ? "STRANDED" : "", p.step, p.reason])
          })
        ),
        `${registry.prefix}: ${report.runs.length} run(s) may resume, ${report.stranded} stranded by this build`
      ].join("\n")
    )
    if (!report.ok) {
      return yield* new Unhealthy({
        problem: `${report.stranded} run(s) of ${registry.prefix} would be stranded:\n` + UpgradeCheck.describe(report).join("\n")
      })
    }
  })).pipe(Command.withDescription("Can this build resume every running and suspended run? Exit 1 naming each one it cannot"))

export const doctor = makeDoctor({})
export const upgradeCheck = makeUpgradeCheck({})

/** The `duraflow` command, knowing the code of `options.domains`. */
export const make = (options: Options = {}) =>
  Command.make("duraflow").pipe(
    Command.withDescription("Operate the duraflow apps on a database"),
    Command.withSubcommands([apps, makeDoctor(options), retention, runs, makeUpgradeCheck(options)])
  )

/** The command without any domain's code (runtime-core's own migrations are still checked). */
export const duraflow = make()

/** Runs the command on `process.argv` as the process's work, with its exit codes (see above). */
export const main = (options: Options = {}): void =>
  Command.run(make(options), { name: "duraflow", version: "0.1.0" })(
    // `pnpm duraflow -- doctor` may pass the separator through
    process.argv.filter((arg, i) => i < 2 || arg !== "--")
  ).pipe(
    Effect.catchTags({
      Usage: ({ problem }) =>
        Effect.zipRight(Console.error(`${problem}\n(duraflow --help lists the commands)`), Effect.sync(() => process.exit(2))),
      Unhealthy: ({ problem }) => Effect.zipRight(Console.error(problem), Effect.sync(() => process.exit(1)))
    }),
    Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => process.exit(2))),
    Effect.provide(NodeContext.layer),
    Effect.exit,
    Effect.flatMap((exit) =>
      Exit.isFailure(exit)
        ? Effect.zipRight(Console.error(Cause.pretty(exit.cause).split("\n")[0]), Effect.sync(() => process.exit(1)))
        : Effect.void
    ),
    NodeRuntime.runMain
  )

export { table, Usage } from "./Table.js"
