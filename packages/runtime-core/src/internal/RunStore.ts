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
import * as TablePrefix from "../TablePrefix.js"

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

/**
 * The same ledger in process memory, for a runtime with no database at all
 * (`AppRuntime.layerMemory`): the same transitions and ordering as the table,
 * and nothing survives a restart (like the memory engine whose runs it records).
 */
export const makeMemory = Effect.sync(() => {
  interface Entry {
    readonly seq: number
    readonly workflow: string
    readonly status: RunStatus
    readonly payload: unknown
    readonly result: unknown
    readonly error: unknown
    readonly createdAt: string
    readonly updatedAt: string
  }
  const entries = new Map<string, Entry>()
  let seq = 0
  // JSON null is stored as "no value", as in the table
  const present = (key: "payload" | "result" | "error", value: unknown) =>
    value === null || value === undefined ? {} : { [key]: value }
  const toRun = (executionId: string, e: Entry, withPayload: boolean) =>
    new Run({
      workflow: e.workflow,
      executionId,
      status: e.status,
      ...(withPayload ? present("payload", e.payload) : {}),
      ...present("result", e.result),
      ...present("error", e.error),
      createdAt: e.createdAt,
      updatedAt: e.updatedAt
    })
  const update = (executionId: string, change: (previous: Entry | undefined, at: string) => Entry | undefined) => {
    const next = change(entries.get(executionId), new Date().toISOString())
    if (next !== undefined) entries.set(executionId, next)
  }
  return RunStore.of({
    running: (workflow, executionId, payload) =>
      Effect.sync(() =>
        update(executionId, (previous, at) =>
          previous === undefined
            ? { seq: seq++, workflow, status: "running", payload, result: null, error: null, createdAt: at, updatedAt: at }
            // never downgrades a finished run
            : previous.status === "running" || previous.status === "suspended"
            ? { ...previous, status: "running", updatedAt: at }
            : undefined)
      ),
    suspended: (workflow, executionId) =>
      Effect.sync(() =>
        update(executionId, (previous, at) =>
          previous?.workflow === workflow && previous.status === "running"
            ? { ...previous, status: "suspended", updatedAt: at }
            : undefined)
      ),
    finished: (workflow, executionId, outcome) =>
      Effect.sync(() =>
        update(executionId, (previous, at) => ({
          ...(previous ?? { seq: seq++, workflow, payload: null, createdAt: at }),
          status: outcome.status,
          result: outcome.status === "succeeded" ? outcome.result : null,
          error: outcome.status === "failed" ? outcome.error : null,
          updatedAt: at
        }))
      ),
    get: (workflow, executionId) =>
      Effect.sync(() => {
        const entry = entries.get(executionId)
        return entry?.workflow === workflow ? Option.some(toRun(executionId, entry, true)) : Option.none()
      }),
    list: ({ limit, status, workflow }) =>
      Effect.sync(() =>
        [...entries.entries()]
          .filter(([, e]) => (workflow === undefined || e.workflow === workflow) && (status === undefined || e.status === status))
          .sort(([, a], [, b]) => b.seq - a.seq)
          .slice(0, Math.min(Math.max(limit ?? 50, 1), MAX_LIST))
          // like the table's list: without payloads
          .map(([id, e]) => toRun(id, e, false))
      )
  })
})

/** The in-memory ledger: no database. */
export const layerMemory: Layer.Layer<RunStore> = Layer.effect(RunStore, makeMemory)
