/**
 * A ledger of the app's workflow runs in `<prefix>_runs`: what was started,
 * with which payload, and how it ended. The engine keeps its state in the
 * cluster tables in a serialized form meant for itself; this table is what
 * operators and the runs API read (status, result, newest first). It is
 * written by `WorkflowLayer.make` around each execution (running, suspended,
 * succeeded, failed), and by the runs API when it starts, cancels or retries a
 * run. `cancelled` is final: no later transition overwrites it (a replay of a
 * cancelled run ends at once, `WorkflowLayer`), and a retry is a new row
 * linked both ways (`retryOf` / `retriedBy`).
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as TablePrefix from "../TablePrefix.js"
import * as AsynchronousCommit from "./AsynchronousCommit.js"
import * as GroupCommit from "./GroupCommit.js"

export const RunStatus = Schema.Literal("running", "suspended", "succeeded", "failed", "cancelled")
export type RunStatus = typeof RunStatus.Type

/** Statuses a run leaves only through an operator (retry makes a new run): nothing resumes it. */
export const isFinished = (status: RunStatus) => status === "succeeded" || status === "failed" || status === "cancelled"

export class Run extends Schema.Class<Run>("Run")({
  workflow: Schema.String,
  executionId: Schema.String,
  status: RunStatus,
  payload: Schema.optional(Schema.Unknown),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Unknown),
  /** The run this one retries (`POST .../retry` on it made this one). */
  retryOf: Schema.optional(Schema.String),
  /** The run that retries this one. */
  retriedBy: Schema.optional(Schema.String),
  /** 1 for a started run, n + 1 for the retry of attempt n. */
  attempt: Schema.optional(Schema.Int),
  /** The app version (`APP_VERSION`, else the app's package version) that started the run. */
  startedBy: Schema.optional(Schema.String),
  /** The other app versions that ran it after its start (a resume, a replay after a restart), in order. */
  resumedBy: Schema.optional(Schema.Array(Schema.String)),
  /**
   * What a suspended run waits for, as its last execution read it: signal names, and durable
   * clocks as `DurableClock/<name>` (empty for other statuses).
   */
  awaiting: Schema.optional(Schema.Array(Schema.String)),
  /** In a list: pass it as `cursor` to get the runs after this one (opaque). */
  cursor: Schema.optional(Schema.String),
  createdAt: Schema.String,
  updatedAt: Schema.String
}) {}

/** A `cursor` this store did not hand out. */
export class InvalidCursor extends Schema.TaggedError<InvalidCursor>()("InvalidCursor", { message: Schema.String }) {}

export interface ListOptions {
  readonly workflow?: string | undefined
  readonly status?: RunStatus | undefined
  readonly limit?: number | undefined
  /** The `cursor` of the last run of the previous page: runs older than it. */
  readonly cursor?: string | undefined
  /** Started at or after. */
  readonly since?: Date | undefined
  /** Started before. */
  readonly until?: Date | undefined
}

/** How a retry is recorded: the new run, linked both ways to the one it retries. */
export interface RetryLink {
  readonly of: string
  readonly attempt: number
}

/** How a run ended, as the ledger records it. */
export type Outcome = { readonly status: "succeeded"; readonly result: unknown } | {
  readonly status: "failed"
  readonly error: unknown
}

export class RunStore extends Context.Tag("@duraflow/runtime-core/RunStore")<RunStore, {
  /**
   * Records a run as running (creating it if new); never downgrades a finished
   * run. True when the run is running now, false when it was finished (or cancelled).
   */
  readonly running: (
    workflow: string,
    executionId: string,
    payload: unknown,
    retry?: RetryLink
  ) => Effect.Effect<boolean, SqlError>
  /** `awaiting`: the deferreds (signals, clocks) the execution waited for and did not get. */
  readonly suspended: (
    workflow: string,
    executionId: string,
    awaiting?: ReadonlyArray<string>
  ) => Effect.Effect<void, SqlError>
  /** Never overwrites `cancelled`: a cancelled run that still ended stays cancelled. */
  readonly finished: (workflow: string, executionId: string, outcome: Outcome) => Effect.Effect<void, SqlError>
  /**
   * The same write as `finished`, as one SQL statement for another statement to
   * run (the run's reply: `RunOutcomes`); absent on a store that is not SQL.
   */
  readonly finishedStatement?: (
    workflow: string,
    executionId: string,
    outcome: Outcome
  ) => Statement.Statement<unknown>
  /** Marks a running or suspended run cancelled; false when it was not (finished, unknown). */
  readonly cancel: (workflow: string, executionId: string) => Effect.Effect<boolean, SqlError>
  /** Records on `executionId` that `retriedBy` retries it. */
  readonly retried: (workflow: string, executionId: string, retriedBy: string) => Effect.Effect<void, SqlError>
  readonly get: (workflow: string, executionId: string) => Effect.Effect<Option.Option<Run>, SqlError>
  /** Only the status (no payload to read): what a run checks when it starts or replays. */
  readonly status: (workflow: string, executionId: string) => Effect.Effect<Option.Option<RunStatus>, SqlError>
  /** Newest first (by start), each with its `cursor`; payloads are left out (read one run for its payload). */
  readonly list: (options: ListOptions) => Effect.Effect<ReadonlyArray<Run>, SqlError | InvalidCursor>
}>() {}

export const MAX_LIST = 500
const DEFAULT_LIST = 50
const limitOf = (limit: number | undefined) => Math.min(Math.max(limit ?? DEFAULT_LIST, 1), MAX_LIST)

/** Cursors are base64url of "<kind>|<position>|<execution id>": opaque to clients, checked on the way back. */
const encodeCursor = (kind: "pg" | "mem", position: string, executionId: string) =>
  Buffer.from(`${kind}|${position}|${executionId}`, "utf8").toString("base64url")

const decodeCursor = (kind: "pg" | "mem", cursor: string) =>
  Effect.suspend(() => {
    const text = Buffer.from(cursor, "base64url").toString("utf8")
    const [k, position, ...rest] = text.split("|")
    const executionId = rest.join("|")
    const valid = k === kind && position !== undefined && executionId !== "" &&
      (kind === "pg" ? /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(position) : /^\d+$/.test(position))
    return valid
      ? Effect.succeed({ position: position!, executionId })
      : Effect.fail(new InvalidCursor({ message: "Not a cursor of this list; pass the `cursor` of a listed run" }))
  })

interface Row {
  readonly execution_id: string
  readonly workflow: string
  readonly status: RunStatus
  readonly payload: unknown
  readonly result: unknown
  readonly error: unknown
  readonly retry_of: string | null
  readonly retried_by: string | null
  readonly attempt: number
  readonly started_by: string | null
  readonly resumed_by: ReadonlyArray<string> | null
  readonly awaiting: ReadonlyArray<string> | null
  readonly created_at: Date
  readonly updated_at: Date
  readonly cursor_at?: string
}

const toRun = (row: Row) =>
  new Run({
    workflow: row.workflow,
    executionId: row.execution_id,
    status: row.status,
    ...(row.payload === null ? {} : { payload: row.payload }),
    ...(row.result === null ? {} : { result: row.result }),
    ...(row.error === null ? {} : { error: row.error }),
    ...(row.retry_of === null ? {} : { retryOf: row.retry_of }),
    ...(row.retried_by === null ? {} : { retriedBy: row.retried_by }),
    attempt: row.attempt,
    ...(row.started_by === null ? {} : { startedBy: row.started_by }),
    resumedBy: row.resumed_by ?? [],
    awaiting: row.awaiting ?? [],
    ...(row.cursor_at === undefined ? {} : { cursor: encodeCursor("pg", row.cursor_at, row.execution_id) }),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString()
  })

/** What a run records as the version of the app that ran it when none is given. */
export const UNKNOWN_VERSION = "unknown"

/** The `running` write of one execution, as the grouped upsert sends it (JSON). */
interface RunningRow {
  readonly execution_id: string
  readonly workflow: string
  /** JSON text (`null` when there is none) */
  readonly payload: string
  readonly retry_of: string | null
  readonly attempt: number
}

/**
 * The store for `prefix`; `version` is this build's app version, recorded on the
 * runs it starts (`startedBy`) and on those it runs after another version (`resumedBy`).
 */
export const make = (prefix: TablePrefix.TablePrefix, version: string = UNKNOWN_VERSION) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const runs = sql(TablePrefix.table(prefix, "runs"))
    const json = (value: unknown) => JSON.stringify(value ?? null)
    const finishedStatement = (workflow: string, executionId: string, outcome: Outcome) =>
      sql`INSERT INTO ${runs} (execution_id, workflow, status, result, error, started_by)
          VALUES (${executionId}, ${workflow}, ${outcome.status},
            ${outcome.status === "succeeded" ? json(outcome.result) : null}::jsonb,
            ${outcome.status === "failed" ? json(outcome.error) : null}::jsonb, ${version})
          ON CONFLICT (execution_id) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result, awaiting = '{}',
            error = EXCLUDED.error, updated_at = clock_timestamp()
          WHERE ${runs}.status <> 'cancelled'`
    // the upsert's conflict clause, shared by the single and the grouped statement
    const runningConflict = sql`ON CONFLICT (execution_id) DO UPDATE SET status = 'running', updated_at = clock_timestamp(),
              awaiting = '{}', started_by = COALESCE(${runs}.started_by, EXCLUDED.started_by),
              resumed_by = CASE WHEN ${runs}.started_by IS NULL OR ${runs}.started_by = EXCLUDED.started_by
                  OR EXCLUDED.started_by = ANY(${runs}.resumed_by) THEN ${runs}.resumed_by
                ELSE array_append(${runs}.resumed_by, EXCLUDED.started_by) END,
              retry_of = COALESCE(${runs}.retry_of, EXCLUDED.retry_of),
              attempt = GREATEST(${runs}.attempt, EXCLUDED.attempt)
            WHERE ${runs}.status IN ('running', 'suspended')`
    // One execution's running write. Alone (its own transaction), the status commits without
    // waiting for the WAL flush: the next execution writes it again, and the run's outcome
    // commits synchronously (`AsynchronousCommit`); inside a caller's transaction, as that commits.
    const runningOne = (alone: boolean) => (row: RunningRow) =>
      sql`INSERT INTO ${runs} (execution_id, workflow, status, payload, retry_of, attempt, started_by)
            SELECT ${row.execution_id}, ${row.workflow}, 'running', ${row.payload}::jsonb, ${row.retry_of},
              ${row.attempt}::integer, ${version}
            ${alone ? sql`FROM ${AsynchronousCommit.from(sql)}` : sql``}
            ${runningConflict}
            RETURNING 1`.pipe(Effect.map((rows) => rows.length > 0))
    // Executions starting together share one upsert (`GroupCommit`); an execution id twice (a row
    // updated twice in one statement is an error) goes on its own, after.
    const running = yield* GroupCommit.make({
      maxBatch: 500,
      maxBytes: GroupCommit.MAX_BYTES,
      size: (row) => row.payload.length,
      key: (row) => row.execution_id,
      alone: runningOne(true),
      inTransaction: runningOne(false),
      write: (rows: ReadonlyArray<RunningRow>) =>
        Effect.map(
          sql<{ execution_id: string }>`INSERT INTO ${runs} (execution_id, workflow, status, payload, retry_of, attempt, started_by)
            SELECT execution_id, workflow, 'running', payload::jsonb, retry_of, attempt, ${version}
            FROM ${AsynchronousCommit.from(sql)}, jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
              AS r(execution_id text, workflow text, payload text, retry_of text, attempt integer)
            ${runningConflict}
            RETURNING execution_id`,
          (updated) => {
            const now = new Set(updated.map((row) => row.execution_id))
            return rows.map((row) => now.has(row.execution_id))
          }
        )
    })
    return RunStore.of({
      running: (workflow, executionId, payload, retry) =>
        running.submit({
          execution_id: executionId,
          workflow,
          payload: json(payload),
          retry_of: retry?.of ?? null,
          attempt: retry?.attempt ?? 1
        }),
      suspended: (workflow, executionId, awaiting = []) =>
        sql`UPDATE ${runs} SET status = 'suspended', updated_at = clock_timestamp(), awaiting = ${[...awaiting]}::text[]
            WHERE execution_id = ${executionId} AND workflow = ${workflow} AND status = 'running'`.pipe(Effect.asVoid),
      finished: (workflow, executionId, outcome) => Effect.asVoid(finishedStatement(workflow, executionId, outcome)),
      finishedStatement,
      cancel: (workflow, executionId) =>
        sql<{ execution_id: string }>`UPDATE ${runs} SET status = 'cancelled', updated_at = clock_timestamp()
            WHERE execution_id = ${executionId} AND workflow = ${workflow} AND status IN ('running', 'suspended')
            RETURNING execution_id`.pipe(Effect.map((rows) => rows.length > 0)),
      retried: (workflow, executionId, retriedBy) =>
        sql`UPDATE ${runs} SET retried_by = ${retriedBy}, updated_at = clock_timestamp()
            WHERE execution_id = ${executionId} AND workflow = ${workflow}`.pipe(Effect.asVoid),
      get: (workflow, executionId) =>
        sql<Row>`SELECT * FROM ${runs} WHERE execution_id = ${executionId} AND workflow = ${workflow}`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRun))
        ),
      status: (workflow, executionId) =>
        sql<{ status: RunStatus }>`SELECT status FROM ${runs}
            WHERE execution_id = ${executionId} AND workflow = ${workflow}`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => r.status))
        ),
      list: ({ cursor, limit, since, status, until, workflow }) =>
        Effect.gen(function*() {
          const after = cursor === undefined ? undefined : yield* decodeCursor("pg", cursor)
          // without payloads: a list of 500 runs must not carry 500 documents. The cursor keeps
          // created_at to the microsecond (a JS Date would round it and skip or repeat runs).
          const rows = yield* sql<Row>`SELECT execution_id, workflow, status, NULL AS payload, result, error,
              retry_of, retried_by, attempt, started_by, resumed_by, awaiting, created_at, updated_at,
              to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
            FROM ${runs} WHERE ${
            sql.and([
              ...(workflow === undefined ? [] : [sql`workflow = ${workflow}`]),
              ...(status === undefined ? [] : [sql`status = ${status}`]),
              ...(since === undefined ? [] : [sql`created_at >= ${since.toISOString()}::timestamptz`]),
              ...(until === undefined ? [] : [sql`created_at < ${until.toISOString()}::timestamptz`]),
              ...(after === undefined
                ? []
                : [sql`(created_at, execution_id) < (${after.position}::timestamptz, ${after.executionId})`])
            ])
          } ORDER BY created_at DESC, execution_id DESC LIMIT ${limitOf(limit)}`
          return rows.map(toRun)
        })
    })
  })

/** The store for `prefix`; its table comes with `RuntimeTables`. */
export const layer = (
  prefix: TablePrefix.TablePrefix,
  version?: string
): Layer.Layer<RunStore, never, SqlClient.SqlClient> => Layer.scoped(RunStore, make(prefix, version))

/**
 * The same ledger in process memory, for a runtime with no database at all
 * (`AppRuntime.layerMemory`): the same transitions and ordering as the table,
 * and nothing survives a restart (like the memory engine whose runs it records).
 */
export const makeMemory = (version: string = UNKNOWN_VERSION) => Effect.sync(() => {
  interface Entry {
    readonly seq: number
    readonly workflow: string
    readonly status: RunStatus
    readonly payload: unknown
    readonly result: unknown
    readonly error: unknown
    readonly retryOf: string | undefined
    readonly retriedBy: string | undefined
    readonly attempt: number
    readonly startedBy: string
    readonly resumedBy: ReadonlyArray<string>
    readonly awaiting: ReadonlyArray<string>
    readonly createdAt: string
    readonly updatedAt: string
  }
  const entries = new Map<string, Entry>()
  let seq = 0
  // JSON null is stored as "no value", as in the table
  const present = (key: "payload" | "result" | "error" | "retryOf" | "retriedBy", value: unknown) =>
    value === null || value === undefined ? {} : { [key]: value }
  const toRun = (executionId: string, e: Entry, listed: boolean) =>
    new Run({
      workflow: e.workflow,
      executionId,
      status: e.status,
      ...(listed ? {} : present("payload", e.payload)),
      ...present("result", e.result),
      ...present("error", e.error),
      ...present("retryOf", e.retryOf),
      ...present("retriedBy", e.retriedBy),
      attempt: e.attempt,
      startedBy: e.startedBy,
      resumedBy: e.resumedBy,
      awaiting: e.awaiting,
      ...(listed ? { cursor: encodeCursor("mem", String(e.seq), executionId) } : {}),
      createdAt: e.createdAt,
      updatedAt: e.updatedAt
    })
  const update = (executionId: string, change: (previous: Entry | undefined, at: string) => Entry | undefined) => {
    const next = change(entries.get(executionId), new Date().toISOString())
    if (next !== undefined) entries.set(executionId, next)
    return next !== undefined
  }
  const fresh = (workflow: string, at: string) => ({
    seq: seq++,
    workflow,
    payload: null,
    result: null,
    error: null,
    retryOf: undefined,
    retriedBy: undefined,
    attempt: 1,
    startedBy: version,
    resumedBy: [],
    awaiting: [],
    createdAt: at
  })
  return RunStore.of({
    running: (workflow, executionId, payload, retry) =>
      Effect.sync(() => {
        update(executionId, (previous, at) =>
          previous === undefined
            ? {
              ...fresh(workflow, at),
              status: "running",
              payload,
              retryOf: retry?.of,
              attempt: retry?.attempt ?? 1,
              updatedAt: at
            }
            // never downgrades a finished run
            : previous.status === "running" || previous.status === "suspended"
            ? {
              ...previous,
              status: "running",
              awaiting: [],
              retryOf: previous.retryOf ?? retry?.of,
              resumedBy: previous.startedBy === version || previous.resumedBy.includes(version)
                ? previous.resumedBy
                : [...previous.resumedBy, version],
              attempt: Math.max(previous.attempt, retry?.attempt ?? 1),
              updatedAt: at
            }
            : undefined)
        return entries.get(executionId)?.status === "running"
      }),
    suspended: (workflow, executionId, awaiting = []) =>
      Effect.sync(() =>
        void update(executionId, (previous, at) =>
          previous?.workflow === workflow && previous.status === "running"
            ? { ...previous, status: "suspended", awaiting: [...awaiting], updatedAt: at }
            : undefined)
      ),
    finished: (workflow, executionId, outcome) =>
      Effect.sync(() =>
        void update(executionId, (previous, at) =>
          previous?.status === "cancelled" ? undefined : {
            ...(previous ?? fresh(workflow, at)),
            status: outcome.status,
            awaiting: [],
            result: outcome.status === "succeeded" ? outcome.result : null,
            error: outcome.status === "failed" ? outcome.error : null,
            updatedAt: at
          })
      ),
    cancel: (workflow, executionId) =>
      Effect.sync(() =>
        update(executionId, (previous, at) =>
          previous?.workflow === workflow && (previous.status === "running" || previous.status === "suspended")
            ? { ...previous, status: "cancelled", updatedAt: at }
            : undefined)
      ),
    retried: (workflow, executionId, retriedBy) =>
      Effect.sync(() =>
        void update(executionId, (previous, at) =>
          previous?.workflow === workflow ? { ...previous, retriedBy, updatedAt: at } : undefined)
      ),
    get: (workflow, executionId) =>
      Effect.sync(() => {
        const entry = entries.get(executionId)
        return entry?.workflow === workflow ? Option.some(toRun(executionId, entry, false)) : Option.none()
      }),
    status: (workflow, executionId) =>
      Effect.sync(() => {
        const entry = entries.get(executionId)
        return entry?.workflow === workflow ? Option.some(entry.status) : Option.none()
      }),
    list: ({ cursor, limit, since, status, until, workflow }) =>
      Effect.map(
        cursor === undefined ? Effect.succeed(undefined) : decodeCursor("mem", cursor),
        (after) =>
          [...entries.entries()]
            .filter(([, e]) =>
              (workflow === undefined || e.workflow === workflow) && (status === undefined || e.status === status) &&
              (since === undefined || Date.parse(e.createdAt) >= since.getTime()) &&
              (until === undefined || Date.parse(e.createdAt) < until.getTime()) &&
              (after === undefined || e.seq < Number(after.position))
            )
            .sort(([, a], [, b]) => b.seq - a.seq)
            .slice(0, limitOf(limit))
            // like the table's list: without payloads
            .map(([id, e]) => toRun(id, e, true))
      )
  })
})

/** The in-memory ledger: no database. */
export const layerMemory: Layer.Layer<RunStore> = Layer.effect(RunStore, makeMemory())

/** The in-memory ledger, recording `version` as the app version. */
export const layerMemoryWith = (version: string): Layer.Layer<RunStore> => Layer.effect(RunStore, makeMemory(version))
