/**
 * On the durable engine a run's final ledger status commits with the engine's
 * reply to its start (`RunOutcomes`): one transaction, so the two never
 * disagree, and nothing is left filed in the process afterwards.
 */
import { EntityId, Sharding } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import { AppRuntime, TablePrefix, WorkflowLayer } from "../src/index.js"
import { RunOutcomes } from "../src/internal/RunOutcomes.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("outc")

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

const Succeeds = Workflow.make({ name: "Succeeds", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })
const Fails = Workflow.make({ name: "Fails", payload: { id: Schema.String }, error: Refused, idempotencyKey: (p) => p.id })
const Go = DurableDeferred.make("go")
const Waits = Workflow.make({ name: "Waits", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })

/** Completed by the first step of `Stepped` when it runs. */
const stepRan = Effect.runSync(Deferred.make<void>())
const Stepped = Workflow.make({ name: "Stepped", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Stepped, {
    dependencies: Layer.empty,
    execute: ({ id }) =>
      Effect.as(Activity.make({ name: "first", execute: Deferred.succeed(stepRan, undefined) }), `${id} stepped`)
  }),
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

/**
 * Another transaction inserts the run's ledger row and keeps it uncommitted: the run's own running
 * write (an upsert of that row) waits for it until the returned effect rolls it back.
 */
const holdLedgerRow = (workflow: string, executionId: string) =>
  Effect.gen(function*() {
    const blocker = yield* (yield* SqlClient.SqlClient).reserve
    yield* blocker.executeUnprepared("BEGIN", [], undefined)
    yield* blocker.executeUnprepared(
      `INSERT INTO outc_runs (execution_id, workflow, status) VALUES ('${executionId}', '${workflow}', 'running')`,
      [],
      undefined
    )
    return Effect.asVoid(blocker.executeUnprepared("ROLLBACK", [], undefined))
  })

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

    it.effect("a burst of runs beyond the bound of runs in flight leaves nothing noted in the process", () =>
      Effect.gen(function*() {
        // 250 at once against the default bound of 100: the first hundred go to their entities at
        // once (deliverLocal), the rest through the storage read, which also returns starts of
        // runs already executing; each noted start is cleared by its execution or its reply
        const results = yield* Effect.forEach(
          Array.from({ length: 250 }, (_, i) => `burst-${i}`),
          (id) => Succeeds.execute({ id }),
          { concurrency: "unbounded" }
        )
        expect(results.every((n) => n === 42)).toBe(true)
        const outcomes = Option.getOrThrow(yield* Effect.serviceOption(RunOutcomes))
        // (a reply's clearing runs just after the reply is saved, beside its caller's resumption;
        // the default liveness limit, then the sizes themselves are what the failure shows)
        yield* Eventually.until(
          Effect.sync(() => outcomes.size.requests === 0 && outcomes.size.pending === 0),
          "every noted start cleared"
        ).pipe(Effect.catchAllDefect(() => Effect.void))
        expect(outcomes.size).toEqual({ requests: 0, pending: 0 })
      }))

    it.effect("a run started here runs its first step without waiting for the ledger's running write; its outcome lands after it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const executionId = yield* Stepped.executionId({ id: "b" })
        // a start is handed over at once (and known as started here) once the runner holds the shard
        const sharding = Option.getOrThrow(yield* Effect.serviceOption(Sharding.Sharding))
        const shard = sharding.getShardId(EntityId.make(executionId), "default")
        yield* Eventually.until(Effect.sync(() => sharding.hasShardId(shard)), "the runner holds the run's shard")
        // the run's running write waits for another transaction's lock on its row
        const release = yield* holdLedgerRow("Stepped", executionId)
        const run = yield* Effect.fork(Stepped.execute({ id: "b" }))
        // the first step runs meanwhile (a liveness limit: it never would if the body waited)
        yield* Deferred.await(stepRan).pipe(
          Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => "the first step waited for the running write" })
        )
        expect(yield* sql`SELECT status FROM outc_runs WHERE execution_id = ${executionId}`).toEqual([])
        yield* release
        expect(yield* Fiber.join(run)).toBe("b stepped")
        // the outcome was written after the running write, in the reply's transaction
        const rows = yield* ledgerAndReply("Stepped", executionId)
        expect(rows).toHaveLength(1)
        expect(rows[0]).toMatchObject({ status: "succeeded", result: "b stepped" })
        expect(rows[0]!.ledger_tx).toBe(rows[0]!.reply_tx)
      }).pipe(Effect.scoped))

    it.effect("a run started here that suspends at once, its running write still waiting for its turn, has its ledger row", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sharding = Option.getOrThrow(yield* Effect.serviceOption(Sharding.Sharding))
        const first = yield* Stepped.executionId({ id: "held" })
        const quick = yield* Waits.executionId({ id: "quick" })
        for (const id of [first, quick]) {
          const shard = sharding.getShardId(EntityId.make(id), "default")
          yield* Eventually.until(Effect.sync(() => sharding.hasShardId(shard)), "the runner holds the run's shard")
        }
        // the first run's running write is sent and waits for another transaction's lock on its row,
        // so the next one's waits for its turn in the grouped statement (GroupCommit)
        const release = yield* holdLedgerRow("Stepped", first)
        const held = yield* Effect.fork(Stepped.execute({ id: "held" }))
        yield* Eventually.until(
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'`,
            (rows) => rows[0]!.n > 0
          ),
          "the first run's running write waits for the lock"
        )
        const waits = yield* Effect.fork(Waits.execute({ id: "quick" }))
        // its body suspends meanwhile (a read of its signal, which is not there)
        yield* Effect.sleep("1 second")
        yield* release
        expect(yield* Fiber.join(held)).toBe("held stepped")
        const engine = yield* WorkflowEngine.WorkflowEngine
        yield* Eventually.until(Effect.map(engine.poll(Waits, quick), (r) => r?._tag === "Suspended"), "the run suspended")
        // the ledger has the run, suspended on its signal (before: no row at all)
        yield* Eventually.until(
          Effect.map(sql<{ status: string }>`SELECT status FROM outc_runs WHERE execution_id = ${quick}`, (rows) => rows[0]?.status === "suspended"),
          "the ledger row says suspended"
        )
        expect(yield* sql`SELECT status, awaiting FROM outc_runs WHERE execution_id = ${quick}`).toEqual([
          { status: "suspended", awaiting: ["go"] }
        ])
        yield* engine.deferredDone(Go, { workflowName: Waits.name, executionId: quick, deferredName: Go.name, exit: Exit.void })
        expect(yield* Fiber.join(waits)).toBe("quick went")
      }).pipe(Effect.scoped))

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
