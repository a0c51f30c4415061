/**
 * `duraflow`: the operator's command line for the apps on one database.
 *
 *   duraflow apps   [DATABASE_URL] [--json]   the apps (prefixes), their live replicas and runs by status
 *   duraflow doctor [DATABASE_URL] [--json] [--fix]   can the apps collide? one verdict per check (`Doctor`);
 *                                             --fix re-drives stuck runs
 *   duraflow runs list|get|steps|cancel|resume|retry|signal --app URL ...   (see `Runs`)
 *   duraflow retention [DATABASE_URL] --prefix P [--older-than "14 days"] [--json]
 *                                             delete one app's expired finished runs now (`Retention`)
 *
 * DATABASE_URL may be given as an argument or in the environment; a read-only
 * role is enough. A table by default, `--json` for scripts. Exit codes: 0 ok,
 * 1 a check failed (doctor) or the database could not be read, 2 usage.
 */
import { AppDirectory, Database, Doctor, Retention, TablePrefix } from "@duraflow/runtime-core"
import { Args, Command, Options } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { Config, Console, Data, Duration, Effect, Option, Redacted } from "effect"
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
          ["prefix", "replicas", "running", "suspended", "succeeded", "failed", "cancelled"],
          infos.map((a) => [
            a.prefix,
            String(a.replicas),
            ...["running", "suspended", "succeeded", "failed", "cancelled"].map((s) => String(a.runs[s] ?? 0))
          ])
        ))
    )
  )).pipe(Command.withDescription("The apps on a database: prefix, live replicas, runs by status"))

export const doctor = Command.make("doctor", {
  databaseUrl,
  json,
  fix: Options.boolean("fix").pipe(Options.withDescription("re-drive the stuck runs found (see Doctor.fix)"))
}, (args) =>
  onDatabase(
    args.databaseUrl,
    Effect.flatMap(Doctor.run, (report) =>
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
              `\nfixed ${f.prefix}: ${f.redriven} overdue message(s) re-driven, ${f.orphansFailed} orphan run(s) marked failed`
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

export const duraflow = Command.make("duraflow").pipe(
  Command.withDescription("Operate the duraflow apps on a database"),
  Command.withSubcommands([apps, doctor, retention, runs])
)

export { table, Usage } from "./Table.js"
