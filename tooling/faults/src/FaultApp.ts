/**
 * The app process the fault tests and the figures command abuse: prefix
 * `PREFIX`, durable runtime, and the workflow `Work` with three steps:
 *
 * 1. `t1`, a transactional activity: INSERTs a row into `<prefix>_effects`
 *    (no unique key: a body that ran twice would leave two rows);
 * 2. `p2`, a plain activity: counts its executions in `<prefix>_attempts`
 *    (at-least-once by design: re-runs after a crash are expected here);
 * 3. `t3`, a transactional activity after `STEP_MS` of work: INSERTs again.
 *
 * env: DATABASE_URL, PREFIX, START (runs to start, ids w-0.., discarded),
 * START_NAPS / NAP_MS (durable sleeps to time), START_AWAITS (runs that
 * wait for a signal), STEP_MS (default 0), POLL_MS (storage poll, default 10000), TERMINATION_MS
 * (how long SIGTERM waits for running activities, default 15000).
 * Prints JSON lines: {event: "ready" | "started" | "signal"}.
 */
import { Activity, DurableClock, DurableDeferred, Workflow } from "@effect/workflow"
import { Database, Migrations, Retry, TablePrefix, TransactionalActivity, WorkflowLayer, AppRuntime } from "@duraflow/runtime-core"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"

const env = (key: string, fallback?: string) => {
  const value = process.env[key] ?? fallback
  if (value === undefined) throw new Error(`${key} is required`)
  return value
}
const emit = (event: string, data: Record<string, unknown> = {}) =>
  Effect.sync(() => console.log(JSON.stringify({ event, pid: process.pid, at: Date.now(), ...data })))

export const prefix = TablePrefix.unsafeMake(env("PREFIX", "faults"))
const stepMs = Number(env("STEP_MS", "0"))

export const Work = Workflow.make({
  name: "Work",
  payload: { id: Schema.String },
  success: Schema.Number,
  idempotencyKey: ({ id }) => id
})

const insertEffect = (id: string, step: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO ${sql(`${prefix}_effects`)} (wf_id, step, pid) VALUES (${id}, ${step}, ${process.pid})`)

// transient database errors are retried: a Postgres restart must not fail runs
const retrying = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.retry(Retry.backoff({ first: "100 millis", total: "60 seconds" })), Effect.orDie)

export const migrations: ReadonlyArray<Migrations.Migration> = [{
  id: 1,
  name: "effects",
  sql: (t) =>
    `CREATE TABLE ${t("effects")} (wf_id text NOT NULL, step text NOT NULL, pid int NOT NULL,
       at timestamptz NOT NULL DEFAULT clock_timestamp());
     CREATE INDEX ${t("effects_wf_idx")} ON ${t("effects")} (wf_id, step);
     CREATE TABLE ${t("attempts")} (wf_id text PRIMARY KEY, execs int NOT NULL);`
}]

export const WorkLayer = WorkflowLayer.make(Work, {
  dependencies: Layer.context<SqlClient.SqlClient>(),
  execute: ({ id }) =>
    Effect.gen(function*() {
      yield* TransactionalActivity.make({ name: "t1", execute: insertEffect(id, "t1") })
      yield* Activity.make({
        name: "p2",
        execute: retrying(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql`INSERT INTO ${sql(`${prefix}_attempts`)} (wf_id, execs) VALUES (${id}, 1)
            ON CONFLICT (wf_id) DO UPDATE SET execs = ${sql(`${prefix}_attempts`)}.execs + 1`))
      })
      yield* TransactionalActivity.make({
        name: "t3",
        execute: Effect.zipRight(Effect.sleep(Duration.millis(stepMs)), insertEffect(id, "t3"))
      })
      return 3
    })
})

/** Sleeps durably for `ms`, then records `woke` (commit time = the wake-up). */
export const Nap = Workflow.make({ name: "Nap", payload: { id: Schema.String, ms: Schema.Number }, idempotencyKey: (p) => p.id })

/** Signalled from outside: records `armed`, awaits `approval`, records `resumed`. */
export const Approval = DurableDeferred.make("approval", { success: Schema.String })
export const Await = Workflow.make({ name: "Await", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })

export const TimersLayer = Layer.mergeAll(
  WorkflowLayer.make(Nap, {
    dependencies: Layer.context<SqlClient.SqlClient>(),
    execute: ({ id, ms }) =>
      Effect.zipRight(
        DurableClock.sleep({ name: "nap", duration: Duration.millis(ms), inMemoryThreshold: Duration.zero }),
        TransactionalActivity.make({ name: "woke", execute: insertEffect(id, "woke") })
      )
  }),
  WorkflowLayer.make(Await, {
    dependencies: Layer.context<SqlClient.SqlClient>(),
    signals: [Approval],
    execute: ({ id }) =>
      Effect.gen(function*() {
        yield* TransactionalActivity.make({ name: "armed", execute: insertEffect(id, "armed") })
        yield* DurableDeferred.await(Approval)
        yield* TransactionalActivity.make({ name: "resumed", execute: insertEffect(id, "resumed") })
      })
  })
)

const program = Effect.gen(function*() {
  yield* emit("ready")
  const start = Number(env("START", "0"))
  if (start > 0) {
    yield* Effect.forEach(
      Array.from({ length: start }, (_, i) => `w-${i}`),
      (id) => Work.execute({ id }, { discard: true }),
      { concurrency: 50, discard: true }
    )
    yield* emit("started", { count: start })
  }
  // timer and signal probes for the figures command; the start is recorded on the DB clock
  const naps = Number(env("START_NAPS", "0"))
  for (let i = 0; i < naps; i++) {
    const id = `nap-${i}`
    yield* insertEffect(id, "start")
    yield* Nap.execute({ id, ms: Number(env("NAP_MS", "2000")) }, { discard: true })
  }
  const awaits = Number(env("START_AWAITS", "0"))
  yield* Effect.forEach(
    Array.from({ length: awaits }, (_, i) => `await-${i}`),
    (id) => Await.execute({ id }, { discard: true }),
    { discard: true }
  )
  return yield* Effect.never
})

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(
    Effect.provide(AppRuntime.layer({
      prefix,
      migrations,
      workflows: Layer.merge(WorkLayer, TimersLayer),
      sharding: {
        entityMessagePollInterval: Duration.millis(Number(env("POLL_MS", "10000"))),
        // how long a shutdown waits for running activities before interrupting them
        entityTerminationTimeout: Duration.millis(Number(env("TERMINATION_MS", "15000")))
      }
    })),
    Effect.provide(Database.layerConfig({ applicationName: prefix })),
    Effect.tapErrorCause((cause) => emit("failed", { cause: String(cause) })),
    NodeRuntime.runMain
  )
}
