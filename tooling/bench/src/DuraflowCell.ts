/** A duraflow cell: the bench workflow on runtime-core's AppRuntime, as an app wires it (in-process, no HTTP). */
import { AppRuntime, Database, TablePrefix, TransactionalActivity, WorkflowLayer } from "@duraflow/runtime-core"
import { SqlClient } from "@effect/sql"
import { Activity, Workflow } from "@effect/workflow"
import { Effect, Layer, ManagedRuntime, Redacted, Schema } from "effect"
import * as Cell from "./Cell.js"

const prefix = TablePrefix.unsafeMake("bench")

const BenchWorkflow = Workflow.make({
  name: "Bench",
  payload: { id: Schema.String },
  idempotencyKey: ({ id }) => id
})

const upsert = (id: string, step: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(Cell.UPSERT, [id, step])).pipe(Effect.asVoid)

/** The activities need the app's SqlClient: re-provided from the runtime's context. */
const sqlDependency = Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient)

const plainLayer = WorkflowLayer.make(BenchWorkflow, {
  dependencies: sqlDependency,
  execute: ({ id }) =>
    Effect.gen(function*() {
      for (const step of [1, 2, 3]) {
        yield* Activity.make({ name: `step-${step}`, execute: Effect.orDie(upsert(id, step)) })
      }
    })
})

/**
 * Transactional steps, the body the upsert statement itself: the statement and the step's exit
 * row go to Postgres as one query (one round trip; `LoneStatement` in runtime-core).
 */
const transactionalLayer = WorkflowLayer.make(BenchWorkflow, {
  dependencies: sqlDependency,
  execute: ({ id }) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      for (const step of [1, 2, 3]) {
        yield* TransactionalActivity.make({ name: `step-${step}`, execute: sql.unsafe(Cell.UPSERT, [id, step]) })
      }
    })
})

/**
 * Transactional steps, the body an effect that runs the statement (any body but a lone
 * statement): a transaction of two round trips, BEGIN with the statement, then the exit row
 * with COMMIT.
 */
const transactionalEffectLayer = WorkflowLayer.make(BenchWorkflow, {
  dependencies: sqlDependency,
  execute: ({ id }) =>
    Effect.gen(function*() {
      for (const step of [1, 2, 3]) {
        yield* TransactionalActivity.make({ name: `step-${step}`, execute: upsert(id, step) })
      }
    })
})

const layers = {
  "durable": plainLayer,
  "memory": plainLayer,
  "durable-tx": transactionalLayer,
  "durable-tx-effect": transactionalEffectLayer
}

export const start = async (req: Cell.Request): Promise<Cell.Runner> => {
  // the engine is chosen by WORKFLOW_MODE, as in an app
  process.env.WORKFLOW_MODE = req.system === "memory" ? "memory" : "durable"
  const runtime = AppRuntime.layer({
    prefix,
    migrations: [{ id: 1, name: "create steps", sql: () => Cell.STEPS_DDL }],
    workflows: layers[req.system as keyof typeof layers]
  }).pipe(Layer.provideMerge(Database.layer({
    url: Redacted.make(req.url),
    applicationName: "bench",
    maxConnections: req.connections,
    // read as an app reads it: `DATABASE_PREPARED_STATEMENTS=false pnpm bench` measures without
    preparedStatements: (await Effect.runPromise(Database.config)).preparedStatements
  })))
  const managed = ManagedRuntime.make(runtime)
  await managed.runPromise(Effect.void)
  return {
    run: (id) => managed.runPromise(BenchWorkflow.execute({ id })),
    stop: () => managed.dispose()
  }
}

