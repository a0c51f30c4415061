/**
 * On the durable engine a run's final ledger status commits with the engine's
 * reply to its start (`RunOutcomes`): one transaction, so the two never
 * disagree, and nothing is left filed in the process afterwards.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import { AppRuntime, TablePrefix, WorkflowLayer } from "../src/index.js"
import { RunOutcomes } from "../src/internal/RunOutcomes.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("outc")

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

const Succeeds = Workflow.make({ name: "Succeeds", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })
const Fails = Workflow.make({ name: "Fails", payload: { id: Schema.String }, error: Refused, idempotencyKey: (p) => p.id })
const Go = DurableDeferred.make("go")
const Waits = Workflow.make({ name: "Waits", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Succeeds, { dependencies: Layer.empty, execute: () => Effect.succeed(42) }),
  WorkflowLayer.make(Fails, { dependencies: Layer.empty, execute: () => Effect.fail(new Refused({ reason: "no" })) }),
  WorkflowLayer.make(Waits, {
    dependencies: Layer.empty,
    signals: [Go],
    execute: ({ id }) => Effect.as(DurableDeferred.await(Go), `${id} went`)
  })
)

/** The run's ledger row and the final reply to its start message, with the transaction that wrote each. */
const ledgerAndReply = (workflow: string, executionId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ status: string; result: unknown; error: unknown; ledger_tx: string; reply_tx: string }>`
      SELECT r.status, r.result, r.error, r.xmin::text AS ledger_tx, p.xmin::text AS reply_tx
      FROM ${sql(TablePrefix.table(prefix, "runs"))} r
      JOIN ${sql(`${TablePrefix.clusterPrefix(prefix)}_messages`)} m
        ON m.entity_type = ${`Workflow/${workflow}`} AND m.entity_id = r.execution_id AND m.tag = 'run'
      JOIN ${sql(`${TablePrefix.clusterPrefix(prefix)}_replies`)} p ON p.request_id = m.request_id
      WHERE r.execution_id = ${executionId}`)

describe("RunOutcomes", () => {
  layer(
    AppRuntime.layer({ prefix, migrations: [], workflows: Workflows }).pipe(
      Layer.provideMerge(TestDatabase.layer("run_outcomes"))
    ),
    { timeout: 60_000, excludeTestServices: true }
  )((it) => {
    it.effect("a run's final status (succeeded or failed) commits in its reply's transaction", () =>
      Effect.gen(function*() {
        expect(yield* Succeeds.execute({ id: "s" })).toBe(42)
        const succeeded = yield* ledgerAndReply("Succeeds", yield* Succeeds.executionId({ id: "s" }))
        expect(succeeded).toHaveLength(1)
        expect(succeeded[0]).toMatchObject({ status: "succeeded", result: 42 })
        expect(succeeded[0]!.ledger_tx).toBe(succeeded[0]!.reply_tx)

        expect(yield* Effect.flip(Fails.execute({ id: "f" }))).toMatchObject({ _tag: "Refused", reason: "no" })
        const failed = yield* ledgerAndReply("Fails", yield* Fails.executionId({ id: "f" }))
        expect(failed).toHaveLength(1)
        expect(failed[0]).toMatchObject({ status: "failed", error: { _tag: "Refused", reason: "no" } })
        expect(failed[0]!.ledger_tx).toBe(failed[0]!.reply_tx)

        // nothing stays filed in the process
        expect(Option.getOrThrow(yield* Effect.serviceOption(RunOutcomes)).size).toEqual({ requests: 0, pending: 0 })
      }))

    it.effect("a run that suspended and resumed: its final status commits with its final reply", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine.WorkflowEngine
        const executionId = yield* Waits.executionId({ id: "w" })
        const run = yield* Effect.fork(Waits.execute({ id: "w" }))
        while ((yield* engine.poll(Waits, executionId))?._tag !== "Suspended") yield* Effect.sleep("50 millis")
        yield* engine.deferredDone(Go, { workflowName: Waits.name, executionId, deferredName: Go.name, exit: Exit.void })
        expect(yield* Fiber.join(run)).toBe("w went")
        const rows = yield* ledgerAndReply("Waits", executionId)
        expect(rows).toHaveLength(1)
        expect(rows[0]).toMatchObject({ status: "succeeded", result: "w went" })
        expect(rows[0]!.ledger_tx).toBe(rows[0]!.reply_tx)
        expect(Option.getOrThrow(yield* Effect.serviceOption(RunOutcomes)).size).toEqual({ requests: 0, pending: 0 })
      }))
  })
})
