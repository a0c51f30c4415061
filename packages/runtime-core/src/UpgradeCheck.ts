/**
 * Can this build resume the runs its database holds? Given the app's
 * declared workflows (with their activities and signals) and its database,
 * every run that may resume (`running`, `suspended` in the runs ledger) is
 * checked against what this build would replay it with:
 *
 * - its workflow exists (by name);
 * - its stored payload decodes with the workflow's payload schema;
 * - every activity it completed (`<prefix>_activity_exits`, and results of
 *   transactional activities in `<prefix>_activity_results`) is declared
 *   under the same name, and its stored exit decodes with the declared
 *   success and error schemas (a replay reads it instead of running the body);
 * - every signal it received (a `deferred` request in the engine's messages)
 *   is declared, and its value decodes with the deferred's schemas; every
 *   signal it awaits (recorded in the ledger when it suspended: `awaiting`)
 *   is declared;
 * - every durable clock it waits on (an unanswered clock request) wakes a
 *   workflow this build has.
 *
 * A signal counts as declared by name in the workflow's `signals`; a
 * deferred a workflow awaits internally (e.g. `DurableDeferred.raceAll`'s)
 * must be declared there too for the check to pass.
 *
 * Activities are declared as plain specs (`activity({ name, success, error })`)
 * that the workflow's code spreads into `Activity.make` /
 * `TransactionalActivity.make`, so the declaration cannot drift from the code:
 *
 * ```ts
 * export const Persist = UpgradeCheck.activity({ name: "persist", success: Version })
 * // in the workflow: TransactionalActivity.make({ ...Persist, execute })
 * export const registry = UpgradeCheck.registry(prefix, [UpgradeCheck.workflow(Publish, { activities: [Persist] })])
 * ```
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Effect, Either, ParseResult, Schema } from "effect"
import { CLOCK_ENTITY, internalDeferred, parse, workflowEntityType } from "./internal/EngineStorage.js"
import { exitSchema } from "./internal/InlineActivities.js"
import * as TablePrefix from "./TablePrefix.js"

/** An activity's name and schemas, as `Activity.make` takes them (defaults: `Void` success, `Never` error). */
export interface ActivitySpec {
  readonly name: string
  readonly success?: Schema.Schema<any, any, never> | undefined
  readonly error?: Schema.Schema<any, any, never> | undefined
}

/** Declares an activity spec (an identity: keeps the literal types for the spread into `Activity.make`). */
export const activity = <const A extends ActivitySpec>(spec: A): A => spec

/** A workflow with the activities and signals its runs may have recorded. */
export interface WorkflowSpec {
  readonly workflow: Workflow.Any
  readonly activities: ReadonlyArray<ActivitySpec>
  readonly signals: ReadonlyArray<DurableDeferred.Any>
}

export const workflow = (
  workflow: Workflow.Any,
  options: {
    readonly activities?: ReadonlyArray<ActivitySpec> | undefined
    readonly signals?: ReadonlyArray<DurableDeferred.Any> | undefined
  } = {}
): WorkflowSpec => ({ workflow, activities: options.activities ?? [], signals: options.signals ?? [] })

/** What an app (one prefix) declares: a domain package exports it next to its workflows. */
export interface Registry {
  readonly prefix: TablePrefix.TablePrefix
  readonly workflows: ReadonlyArray<WorkflowSpec>
}

export const registry = (prefix: TablePrefix.TablePrefix, workflows: ReadonlyArray<WorkflowSpec>): Registry => ({
  prefix,
  workflows
})

/** Why one run would be stranded: the step that would fail and the reason. */
export class Problem extends Schema.Class<Problem>("UpgradeCheck/Problem")({
  /** `workflow`, `payload`, `activity <name>`, `signal <name>` or `clock <name>`. */
  step: Schema.String,
  reason: Schema.String
}) {}

export class RunVerdict extends Schema.Class<RunVerdict>("UpgradeCheck/RunVerdict")({
  workflow: Schema.String,
  executionId: Schema.String,
  status: Schema.String,
  startedBy: Schema.optional(Schema.String),
  resumable: Schema.Boolean,
  problems: Schema.Array(Problem)
}) {}

export class Report extends Schema.Class<Report>("UpgradeCheck/Report")({
  prefix: Schema.String,
  /** Runs that may resume (running, suspended), each with its verdict. */
  runs: Schema.Array(RunVerdict),
  /** How many of them this build cannot resume. */
  stranded: Schema.Int,
  ok: Schema.Boolean
}) {}

/** Execution ids per query. */
const CHUNK = 1000

const decodeProblem = (schema: Schema.Schema<any, any, never>, value: unknown): string | undefined =>
  Either.match(Schema.decodeUnknownEither(schema)(value), {
    onLeft: (e) => ParseResult.TreeFormatter.formatErrorSync(e).replace(/\s+/g, " ").slice(0, 300),
    onRight: () => undefined
  })


const exists = (sql: SqlClient.SqlClient, table: string) =>
  Effect.map(sql<{ e: boolean }>`SELECT to_regclass(${`public.${table}`}) IS NOT NULL AS e`, (rows) => rows[0]?.e === true)

/** Checks every run of `registry.prefix` that may resume; see the module comment. */
export const check = (registry: Registry): Effect.Effect<Report, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const t = (name: string) => TablePrefix.table(registry.prefix, name)
    const byName = new Map(registry.workflows.map((w) => [w.workflow.name, w]))
    if (!(yield* exists(sql, t("runs")))) return new Report({ prefix: registry.prefix, runs: [], stranded: 0, ok: true })

    // a ledger an older build migrated has no versions nor awaits (runtime migration 5)
    const columns = new Set(
      (yield* sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = ${t("runs")}`).map((c) => c.name)
    )
    const runs = yield* sql<{
      execution_id: string
      workflow: string
      status: string
      payload: unknown
      started_by: string | null
      awaiting: ReadonlyArray<string> | null
    }>`SELECT execution_id, workflow, status, payload,
        ${columns.has("started_by") ? sql`started_by` : sql`NULL AS started_by`},
        ${columns.has("awaiting") ? sql`awaiting` : sql`NULL AS awaiting`}
      FROM ${sql(t("runs"))} WHERE status IN ('running', 'suspended') ORDER BY created_at, execution_id`
    const exits = new Map<string, Array<{ activity: string; attempt: number; exit: unknown }>>()
    const messages = new Map<string, Array<{ entity_type: string; tag: string | null; payload: any; answered: boolean }>>()
    const cluster = TablePrefix.clusterPrefix(registry.prefix)
    const [hasExits, hasResults, hasMessages] = yield* Effect.all([
      exists(sql, t("activity_exits")),
      exists(sql, t("activity_results")),
      exists(sql, `${cluster}_messages`)
    ])
    const verdictOf = (run: (typeof runs)[number]) => {
      const problems: Array<Problem> = []
      const problem = (step: string, reason: string) => problems.push(new Problem({ step, reason }))
      const spec = byName.get(run.workflow)
      if (spec === undefined) {
        problem("workflow", `workflow ${run.workflow} is not in this build (removed or renamed)`)
      } else {
        const payloadIssue = decodeProblem(spec.workflow.payloadSchema as unknown as Schema.Schema<any, any, never>, run.payload)
        if (payloadIssue !== undefined) problem("payload", `the stored payload does not decode: ${payloadIssue}`)
        const activities = new Map(spec.activities.map((a) => [a.name, a]))
        for (const done of exits.get(run.execution_id) ?? []) {
          const declared = activities.get(done.activity)
          const step = `activity ${done.activity}`
          if (declared === undefined) {
            problem(step, `completed by the run, but ${run.workflow} declares no activity ${done.activity} in this build (renamed or removed)`)
            continue
          }
          const issue = decodeProblem(exitSchema(declared.success ?? Schema.Void, declared.error ?? Schema.Never), done.exit)
          if (issue !== undefined) problem(step, `its stored result (attempt ${done.attempt}) does not decode: ${issue}`)
        }
        const signals = new Map(spec.signals.map((d) => [d.name, d]))
        for (const m of messages.get(run.execution_id) ?? []) {
          if (m.entity_type === CLOCK_ENTITY || m.tag !== "deferred" || m.entity_type !== workflowEntityType(run.workflow)) continue
          const name = String(m.payload?.name)
          if (internalDeferred(name)) continue
          const deferred = signals.get(name)
          if (deferred === undefined) {
            problem(`signal ${name}`, `received by the run, but ${run.workflow} declares no signal ${name} in this build`)
            continue
          }
          const issue = decodeProblem(
            Schema.Exit({ success: deferred.successSchema, failure: deferred.errorSchema, defect: Schema.Defect }) as any,
            m.payload?.exit
          )
          if (issue !== undefined) problem(`signal ${name}`, `its stored value does not decode: ${issue}`)
        }
        // what the run waits for (recorded when it suspended): a signal must still be declared
        for (const name of run.awaiting ?? []) {
          if (name.startsWith("DurableClock/") || signals.has(name)) continue
          problem(`signal ${name}`, `the run awaits it, but ${run.workflow} declares no signal ${name} in this build`)
        }
      }
      for (const m of messages.get(run.execution_id) ?? []) {
        if (m.entity_type !== CLOCK_ENTITY || m.answered) continue
        const target = String(m.payload?.workflowName)
        if (target === run.workflow && !byName.has(target)) {
          problem(`clock ${String(m.payload?.name)}`, `pending, and wakes workflow ${target}, which is not in this build`)
        }
      }
      return new RunVerdict({
        workflow: run.workflow,
        executionId: run.execution_id,
        status: run.status,
        ...(run.started_by === null ? {} : { startedBy: run.started_by }),
        resumable: problems.length === 0,
        problems
      })
    }

    const verdicts: Array<RunVerdict> = []
    // a chunk of runs at a time: their recorded steps (bind parameters are limited), then their verdicts
    for (let i = 0; i < runs.length; i += CHUNK) {
      const chunk = runs.slice(i, i + CHUNK)
      const ids = chunk.map((r) => r.execution_id)
      exits.clear()
      messages.clear()
      const add = (id: string, row: { activity: string; attempt: number; exit: unknown }) => {
        const list = exits.get(id) ?? []
        if (!list.some((x) => x.activity === row.activity && x.attempt === row.attempt)) list.push(row)
        exits.set(id, list)
      }
      if (hasExits) {
        for (
          const row of yield* sql<{ execution_id: string; activity: string; attempt: number; exit: unknown }>`
          SELECT execution_id, activity, attempt, exit FROM ${sql(t("activity_exits"))}
          WHERE execution_id IN ${sql.in(ids)} ORDER BY finished_at`
        ) add(row.execution_id, row)
      }
      if (hasResults) {
        for (
          const row of yield* sql<{ execution_id: string; activity: string; attempt: number; result: unknown }>`
          SELECT execution_id, activity, attempt, result FROM ${sql(t("activity_results"))}
          WHERE execution_id IN ${sql.in(ids)} ORDER BY committed_at`
        ) add(row.execution_id, { ...row, exit: { _tag: "Success", value: row.result } })
      }

      // the engine's own requests: signals received, clocks pending
      if (hasMessages) {
        for (
          const row of yield* sql<{
            entity_id: string
            entity_type: string
            tag: string | null
            payload: string | null
            answered: boolean
          }>`SELECT m.entity_id, m.entity_type, m.tag, m.payload,
              EXISTS (SELECT 1 FROM ${sql(`${cluster}_replies`)} r WHERE r.request_id = m.id AND r.kind = 0) AS answered
            FROM ${sql(`${cluster}_messages`)} m
            WHERE m.kind = 0 AND m.entity_id IN ${sql.in(ids)}
              AND ((m.entity_type LIKE 'Workflow/%' AND m.tag = 'deferred') OR m.entity_type = ${CLOCK_ENTITY})
            ORDER BY m.id`
        ) {
          const list = messages.get(row.entity_id) ?? []
          list.push({ ...row, payload: parse(row.payload) })
          messages.set(row.entity_id, list)
        }
      }
      verdicts.push(...chunk.map(verdictOf))
    }

    const stranded = verdicts.filter((v) => !v.resumable).length
    return new Report({ prefix: registry.prefix, runs: verdicts, stranded, ok: stranded === 0 })
  })

/** One line per problem: `<workflow>/<execution id> <step>: <reason>`. */
export const describe = (report: Report): ReadonlyArray<string> =>
  report.runs.flatMap((run) =>
    run.problems.map((p) => `${run.workflow}/${run.executionId} (${run.status}) ${p.step}: ${p.reason}`)
  )
