/**
 * A ledger of the app's workflow runs in `<prefix>_runs`: what was started,
 * with which payload, and how it ended. The engine keeps its state in the
 * cluster tables in a serialized form meant for itself; this table is what
 * operators and the runs API read (status, result, newest first). It is
 * written by `WorkflowLayer.make` around each execution (running, suspended,
 * succeeded, failed), and by the runs API when it starts a run.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as TablePrefix from "./TablePrefix.js"

export const RunStatus = Schema.Literal("running", "suspended", "succeeded", "failed")
export type RunStatus = typeof RunStatus.Type

export class Run extends Schema.Class<Run>("Run")({
  workflow: Schema.String,
  executionId: Schema.String,
  status: RunStatus,
  payload: Schema.optional(Schema.Unknown),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Unknown),
  createdAt: Schema.String,
  updatedAt: Schema.String
}) {}

export interface ListOptions {
  readonly workflow?: string | undefined
  readonly status?: RunStatus | undefined
  readonly limit?: number | undefined
}

export class RunStore extends Context.Tag("@duraflow/runtime-core/RunStore")<RunStore, {
  /** Records a run as running (creating it if new); never downgrades a finished run. */
  readonly running: (workflow: string, executionId: string, payload: unknown) => Effect.Effect<void, SqlError>
  readonly suspended: (workflow: string, executionId: string) => Effect.Effect<void, SqlError>
  readonly finished: (
    workflow: string,
    executionId: string,
    outcome: { readonly status: "succeeded"; readonly result: unknown } | {
      readonly status: "failed"
      readonly error: unknown
    }
  ) => Effect.Effect<void, SqlError>
  readonly get: (workflow: string, executionId: string) => Effect.Effect<Option.Option<Run>, SqlError>
  /** Newest first; payloads are left out (read one run for its payload). */
  readonly list: (options: ListOptions) => Effect.Effect<ReadonlyArray<Run>, SqlError>
}>() {}

export const MAX_LIST = 500

interface Row {
  readonly execution_id: string
  readonly workflow: string
  readonly status: RunStatus
  readonly payload: unknown
  readonly result: unknown
  readonly error: unknown
  readonly created_at: Date
  readonly updated_at: Date
}

const toRun = (row: Row) =>
  new Run({
    workflow: row.workflow,
    executionId: row.execution_id,
    status: row.status,
    ...(row.payload === null ? {} : { payload: row.payload }),
    ...(row.result === null ? {} : { result: row.result }),
    ...(row.error === null ? {} : { error: row.error }),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString()
  })

export const make = (prefix: TablePrefix.TablePrefix) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const runs = sql(TablePrefix.table(prefix, "runs"))
    const json = (value: unknown) => JSON.stringify(value ?? null)
    return RunStore.of({
      running: (workflow, executionId, payload) =>
        sql`INSERT INTO ${runs} (execution_id, workflow, status, payload)
            VALUES (${executionId}, ${workflow}, 'running', ${json(payload)}::jsonb)
            ON CONFLICT (execution_id) DO UPDATE SET status = 'running', updated_at = clock_timestamp()
            WHERE ${runs}.status IN ('running', 'suspended')`.pipe(Effect.asVoid),
      suspended: (workflow, executionId) =>
        sql`UPDATE ${runs} SET status = 'suspended', updated_at = clock_timestamp()
            WHERE execution_id = ${executionId} AND workflow = ${workflow} AND status = 'running'`.pipe(Effect.asVoid),
      finished: (workflow, executionId, outcome) =>
        sql`INSERT INTO ${runs} (execution_id, workflow, status, result, error)
            VALUES (${executionId}, ${workflow}, ${outcome.status},
              ${outcome.status === "succeeded" ? json(outcome.result) : null}::jsonb,
              ${outcome.status === "failed" ? json(outcome.error) : null}::jsonb)
            ON CONFLICT (execution_id) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result,
              error = EXCLUDED.error, updated_at = clock_timestamp()`.pipe(Effect.asVoid),
      get: (workflow, executionId) =>
        sql<Row>`SELECT * FROM ${runs} WHERE execution_id = ${executionId} AND workflow = ${workflow}`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRun))
        ),
      list: ({ limit, status, workflow }) =>
        // without payloads: a list of 500 runs must not carry 500 documents
        sql<Row>`SELECT execution_id, workflow, status, NULL AS payload, result, error, created_at, updated_at
          FROM ${runs} WHERE ${
          sql.and([
            ...(workflow === undefined ? [] : [sql`workflow = ${workflow}`]),
            ...(status === undefined ? [] : [sql`status = ${status}`])
          ])
        } ORDER BY created_at DESC, execution_id DESC LIMIT ${Math.min(Math.max(limit ?? 50, 1), MAX_LIST)}`.pipe(
          Effect.map((rows) => rows.map(toRun))
        )
    })
  })

/** The store for `prefix`; its table comes with `RuntimeTables`. */
export const layer = (prefix: TablePrefix.TablePrefix): Layer.Layer<RunStore, never, SqlClient.SqlClient> =>
  Layer.effect(RunStore, make(prefix))
