/**
 * Activities run in their workflow's own fiber, and only their outcome is
 * recorded: one row in `<prefix>_activity_exits` per (execution id, activity,
 * attempt), as DBOS records a step's output.
 *
 * `ClusterWorkflowEngine` sends each activity to the workflow's entity as a
 * persisted message: INSERT the request, a storage poll that reads (and marks)
 * it, the entity's RPC dispatch, then the reply's write; four round trips and
 * most of the engine's CPU per step, for an activity that the same runner, in
 * the same process, then executes. Here a step is a lookup and, when it has no
 * recorded outcome yet, its body and one INSERT. Measured with `pnpm bench`
 * (N = 1000 at once): node CPU per workflow -30 %, peak RSS -32 %.
 *
 * Semantics are the memory engine's, made durable:
 * - a replay finds the recorded exit (success, typed failure or defect) and
 *   returns it without running the body again;
 * - the body runs with its own `WorkflowInstance` and `Activity.CurrentAttempt`
 *   and suspends as `Workflow.intoResult` says; a suspended activity records
 *   nothing and runs again when the run resumes;
 * - an activity interrupted with its run (a crash, a preempted run, a cancel)
 *   records nothing and runs again on replay: plain activities stay
 *   at-least-once, transactional ones exactly-once (their own ledger);
 * - two executions of one step (a run replayed by a new shard owner while the
 *   old one still finishes) race on the primary key: the first recorded exit
 *   wins and both return it.
 *
 * A run's recorded exits are read once per execution of its body (one
 * `WorkflowInstance`) instead of once per step: a fresh run of three steps
 * makes 1 read instead of 3 (measured: each statement costs a run about 0.4 ms
 * of node CPU under load). The read starts with the execution, beside the
 * runs ledger's write, so it is not one more round trip before the first step.
 * A step that runs twice in one execution (the same name and attempt) asks the
 * table again. The first execution of a run started in this process just now
 * (its start message saved, not a duplicate: `RunAdmission`'s
 * `firstExecution`) reads nothing: nothing can be
 * recorded for a run whose start message did not exist (retention deletes a
 * run's messages and records together); a step recorded meanwhile by another
 * execution is still found by this one's INSERT (the primary key).
 *
 * A run that a build sending activities as messages left in flight (their
 * replies are in the cluster tables) runs those activities once more here.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Activity, Workflow, WorkflowEngine } from "@effect/workflow"
import { Context, Deferred, Effect, Either, FiberId, Layer, Schema } from "effect"
import pg from "pg"
import * as Retry from "../Retry.js"
import { observeAttempt } from "./ActivityTelemetry.js"
import * as AsynchronousCommit from "./AsynchronousCommit.js"
import * as GroupCommit from "./GroupCommit.js"
import * as TablePrefix from "../TablePrefix.js"
import * as RuntimeTables from "./RuntimeTables.js"
import type * as StatementBatch from "./StatementBatch.js"

/** The stored form of an activity's exit: `Schema.Exit` of its success and error schemas, one per pair. */
const exitSchemas = new WeakMap<object, WeakMap<object, Schema.Schema<any, any>>>()
export const exitSchema = (success: Schema.Schema.All, error: Schema.Schema.All): Schema.Schema<any, any> => {
  let byError = exitSchemas.get(success)
  if (byError === undefined) {
    byError = new WeakMap()
    exitSchemas.set(success, byError)
  }
  let schema = byError.get(error)
  if (schema === undefined) {
    // context-free, as the engine's own exit schemas (`Activity.make` takes context-free schemas)
    schema = Schema.Exit({ success, failure: error, defect: Schema.Defect }) as unknown as Schema.Schema<any, any>
    byError.set(error, schema)
  }
  return schema
}

/**
 * `Schema.encode(schema)(exit)`, a failure of which is a defect: without an
 * effect of its own when the schemas encode synchronously (nearly always; each
 * step's exit is encoded), through the effect otherwise (an asynchronous
 * transformation, or an error to report).
 */
export const encodeExit = <A, I>(schema: Schema.Schema<A, I>, exit: A): Effect.Effect<I> => {
  const encoded = Schema.encodeEither(schema)(exit)
  return Either.isRight(encoded) ? Effect.succeed(encoded.right) : encodeExitLater(schema, exit)
}

/** `encodeExit` through the effect alone: for schemas `Schema.encodeEither` could not encode synchronously. */
export const encodeExitLater = <A, I>(schema: Schema.Schema<A, I>, exit: A): Effect.Effect<I> =>
  Effect.orDie(Schema.encode(schema)(exit))

/** What one execution of a run's body knows of its steps' records. */
interface Recorded {
  /** the exits recorded before this execution started, by `stepKey` */
  readonly exits: ReadonlyMap<string, unknown>
  /** steps this execution ran (their records are newer than `exits`) */
  readonly ran: Set<string>
}

const stepKey = (activity: string, attempt: number) => `${attempt}:${activity}`

/** A row of `<prefix>_activity_exits` as the group INSERT sends it (JSON). */
interface ExitRow {
  readonly execution_id: string
  readonly activity: string
  readonly attempt: number
  /** the encoded exit, as JSON text */
  readonly exit: string
  readonly started_at: Date
}

const rowKey = (row: Pick<ExitRow, "execution_id" | "activity" | "attempt">) =>
  `${row.execution_id}\u0000${row.attempt}\u0000${row.activity}`

export interface Key {
  readonly executionId: string
  readonly activity: string
  readonly attempt: number
}

/**
 * Given to an activity's body while it runs inline. `TransactionalActivity`
 * uses it to commit the exit row in its own transaction, with the body's
 * writes, and marks it `recorded` so that the engine does not write it again.
 */
export class Recording extends Context.Tag("@duraflow/runtime-core/InlineActivities/Recording")<Recording, {
  readonly key: Key
  readonly startedAt: Date
  /** The recorded exit of this step (also one a transactional activity of an earlier build committed). */
  readonly lookup: Effect.Effect<{ readonly exit: unknown } | undefined, SqlError>
  /**
   * The INSERT of the exit row, a statement with its parameters (plain
   * INSERT: a row already there is a unique violation), for the step's
   * transaction to send with its COMMIT (`StatementBatch`).
   */
  readonly exitRow: (encodedExit: unknown) => StatementBatch.Step
  recorded: boolean
}>() {}

/**
 * Executions that are the first of a run this process started just now (see
 * `firstExecution` below): nothing of the run exists in the database but its
 * start message, so its ledger row cannot have been cancelled or finished
 * (`WorkflowLayer` then writes `running` beside the body instead of before it).
 */
const firstExecutions = new WeakSet<WorkflowEngine.WorkflowInstance["Type"]>()

/** Whether `instance` is the first execution of a run this process started just now. */
export const isFirstExecution = (instance: WorkflowEngine.WorkflowInstance["Type"]): boolean =>
  firstExecutions.has(instance)

/** Wraps the engine in context: `activityExecute` runs inline and records the exit. */
export const layer = (
  prefix: TablePrefix.TablePrefix,
  options?: {
    /**
     * Whether this execution is the first of a run whose start message this
     * process saved just now (asked once per execution): it has no recorded
     * steps, so they are not read.
     */
    readonly firstExecution?: ((workflowName: string, executionId: string) => boolean) | undefined
  }
): Layer.Layer<WorkflowEngine.WorkflowEngine, never, WorkflowEngine.WorkflowEngine | SqlClient.SqlClient> =>
  Layer.scoped(
    WorkflowEngine.WorkflowEngine,
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine.WorkflowEngine
      const sql = yield* SqlClient.SqlClient
      const table = sql(TablePrefix.table(prefix, "activity_exits"))
      // a transactional step's exit row, sent with its COMMIT (one text for every step: it goes by name)
      const insertExitRow = `INSERT INTO ${
        pg.escapeIdentifier(TablePrefix.table(prefix, "activity_exits"))
      } (execution_id, activity, attempt, exit, started_at) VALUES ($1, $2, $3, $4::jsonb, $5::timestamptz)`
      const results = sql(TablePrefix.table(prefix, "activity_results"))

      // a step's reads and writes retry as the engine's storage does (for up to a minute). With
      // Postgres away, the runner loses its shard locks with their session sooner, which stops
      // the run without an outcome: it is replayed once Postgres is back (tooling/faults,
      // Outages.test.ts, 130 s away). A statement that keeps failing while the runner keeps its
      // shards (a privilege revoked) is a defect, as the engine's own storage failures are
      const durably = <A>(effect: Effect.Effect<A, SqlError>) =>
        effect.pipe(Retry.retrying({ schedule: Retry.storage }), Effect.orDie)

      // The recorded exits of an execution, or of one of its steps. A transactional activity that a
      // build before InlineActivities committed has its result in `activity_results` only: it counts
      // as recorded, so the body does not run again; an exit row of the same step comes first.
      const exitRows = (executionId: string, step?: { readonly activity: string; readonly attempt: number }) => {
        const of = step === undefined
          ? sql`execution_id = ${executionId}`
          : sql`execution_id = ${executionId} AND activity = ${step.activity} AND attempt = ${step.attempt}`
        return sql<{ activity: string; attempt: number; exit: unknown }>`SELECT activity, attempt, exit, 0 AS source
            FROM ${table} WHERE ${of}
          UNION ALL
          SELECT activity, attempt, jsonb_build_object('_tag', 'Success', 'value', result), 1 AS source
            FROM ${results} WHERE ${of}
          ORDER BY source`
      }

      const recorded = (executionId: string, activity: string, attempt: number) =>
        Effect.map(exitRows(executionId, { activity, attempt }), (rows) => rows[0])

      const recordedAll = (executionId: string) =>
        Effect.map(exitRows(executionId), (rows) => {
          const exits = new Map<string, unknown>()
          for (const row of rows) {
            const key = stepKey(row.activity, row.attempt)
            if (!exits.has(key)) exits.set(key, row.exit)
          }
          return exits
        })

      // per execution of a run's body: read once, by the execution's start (see `register`) or
      // whichever of its steps (maybe parallel) comes first; a read that fails or is interrupted
      // leaves the next step to read again
      const executions = new WeakMap<WorkflowEngine.WorkflowInstance["Type"], Deferred.Deferred<Recorded | undefined>>()
      const recordedFor = (
        instance: WorkflowEngine.WorkflowInstance["Type"],
        read: (effect: Effect.Effect<ReadonlyMap<string, unknown>, SqlError>) => Effect.Effect<ReadonlyMap<string, unknown>> =
          durably
      ): Effect.Effect<Recorded> =>
        Effect.suspend(() => {
          const pending = executions.get(instance)
          if (pending !== undefined) {
            return Effect.flatMap(Deferred.await(pending), (found) => found === undefined ? recordedFor(instance) : Effect.succeed(found))
          }
          const deferred = Deferred.unsafeMake<Recorded | undefined>(FiberId.none)
          executions.set(instance, deferred)
          return read(recordedAll(instance.executionId)).pipe(
            Effect.map((exits): Recorded => ({ exits, ran: new Set() })),
            Effect.onExit((exit) => {
              if (exit._tag === "Success") return Deferred.succeed(deferred, exit.value)
              executions.delete(instance)
              return Deferred.succeed(deferred, undefined)
            })
          )
        })

      // One step's exit row: alone (its own transaction) or inside the caller's; whether it went in
      const exitOne = (alone: boolean) => (row: ExitRow) =>
        sql`INSERT INTO ${table} (execution_id, activity, attempt, exit, started_at)
          SELECT ${row.execution_id}, ${row.activity}, ${row.attempt}::integer, ${row.exit}::jsonb,
            ${row.started_at}::timestamptz
          ${alone ? sql`FROM ${AsynchronousCommit.from(sql)}` : sql``}
          ON CONFLICT (execution_id, activity, attempt) DO NOTHING
          RETURNING 1`.pipe(Effect.map((inserted) => inserted.length > 0))

      // Concurrent runs' exits share one INSERT (`GroupCommit`); each learns whether its row went in
      // (a step's key twice: the second finds the first's row, and returns that exit).
      const exits = yield* GroupCommit.make({
        maxBatch: 500,
        maxBytes: GroupCommit.MAX_BYTES,
        size: (row: ExitRow) => row.exit.length,
        key: rowKey,
        // alone (its own transaction), each statement commits without waiting for the WAL flush: a
        // plain step is at-least-once, and a lost exit only runs it again (`AsynchronousCommit`)
        alone: exitOne(true),
        inTransaction: exitOne(false),
        write: (rows: ReadonlyArray<ExitRow>) =>
          Effect.map(
            sql<Pick<ExitRow, "execution_id" | "activity" | "attempt">>`
              INSERT INTO ${table} (execution_id, activity, attempt, exit, started_at)
              SELECT execution_id, activity, attempt, exit::jsonb, started_at
              FROM ${AsynchronousCommit.from(sql)}, jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
                AS r(execution_id text, activity text, attempt integer, exit text, started_at timestamptz)
              ON CONFLICT (execution_id, activity, attempt) DO NOTHING
              RETURNING execution_id, activity, attempt`,
            (inserted) => {
              const won = new Set(inserted.map(rowKey))
              return rows.map((row) => won.has(rowKey(row)))
            }
          )
      })

      /** Records `encoded`, or returns the exit another execution recorded first. */
      const record = (executionId: string, activity: string, attempt: number, startedAt: Date, encoded: unknown) =>
        Effect.flatMap(
          exits.submit({ execution_id: executionId, activity, attempt, exit: JSON.stringify(encoded), started_at: startedAt }),
          (inserted) => inserted ? Effect.succeed(undefined) : recorded(executionId, activity, attempt)
        )

      return WorkflowEngine.WorkflowEngine.of({
        ...engine,
        // each execution starts reading its records at once (its first step awaits them). One try,
        // outside the run's fiber: a run that ends or suspends first does not interrupt the statement
        // (which would cost a pg_cancel_backend); a failed read leaves its first step to read again.
        register: (workflow, execute) =>
          engine.register(workflow, (payload, executionId) =>
            Effect.zipRight(
              Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) => {
                // a run started here just now has nothing recorded (a step another execution
                // records meanwhile is still found by this one's INSERT: the primary key)
                if (options?.firstExecution?.(workflow.name, executionId) === true) {
                  const none = Deferred.unsafeMake<Recorded | undefined>(FiberId.none)
                  Deferred.unsafeDone(none, Effect.succeed({ exits: new Map(), ran: new Set() }))
                  executions.set(instance, none)
                  firstExecutions.add(instance)
                  return Effect.void
                }
                return Effect.forkDaemon(Effect.catchAllCause(recordedFor(instance, Effect.orDie), () => Effect.void))
              }),
              execute(payload, executionId)
            )),
        activityExecute: (activity, attempt) =>
          Effect.gen(function*() {
            const instance = yield* WorkflowEngine.WorkflowInstance
            const schema = exitSchema(activity.successSchema, activity.errorSchema)
            const executionId = instance.executionId
            const known = yield* recordedFor(instance)
            const key = stepKey(activity.name, attempt)
            const found = known.ran.has(key)
              ? yield* durably(recorded(executionId, activity.name, attempt))
              : known.exits.has(key)
              ? { exit: known.exits.get(key) }
              : undefined
            if (found !== undefined) {
              return new Workflow.Complete({ exit: yield* Effect.orDie(Schema.decodeUnknown(schema)(found.exit)) })
            }
            const activityInstance = WorkflowEngine.WorkflowInstance.initial(instance.workflow, executionId)
            activityInstance.interrupted = instance.interrupted
            const startedAt = new Date()
            const recording = Recording.of({
              key: { executionId, activity: activity.name, attempt },
              startedAt,
              // built when asked (a retry of a transactional step): its statement is three fragments
              lookup: Effect.suspend(() => recorded(executionId, activity.name, attempt)),
              exitRow: (encodedExit) => ({
                text: insertExitRow,
                values: [executionId, activity.name, attempt, JSON.stringify(encodedExit), startedAt.toISOString()],
                // (it returns none: not described)
                rows: false
              }),
              recorded: false
            })
            const result = yield* activity.execute.pipe(
              Workflow.intoResult,
              // one copy of the run's context for the three (each provideService copies it)
              Effect.provide(
                Context.make(WorkflowEngine.WorkflowInstance, activityInstance).pipe(
                  Context.add(Activity.CurrentAttempt, attempt),
                  Context.add(Recording, recording)
                )
              ),
              observeAttempt(instance.workflow.name, executionId, activity.name, attempt)
            )
            // suspended: nothing to record; recorded: a transactional activity committed it
            if (result._tag === "Suspended") return result
            known.ran.add(key)
            if (recording.recorded) return result
            const encoded = yield* encodeExit(schema, result.exit)
            const earlier = yield* durably(record(executionId, activity.name, attempt, startedAt, encoded))
            if (earlier === undefined) return result
            return new Workflow.Complete({ exit: yield* Effect.orDie(Schema.decodeUnknown(schema)(earlier.exit)) })
          })
      })
    })
  ).pipe(Layer.provide(RuntimeTables.layer(prefix).pipe(Layer.orDie)))
