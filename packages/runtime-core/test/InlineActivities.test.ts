/**
 * Activities on the durable engine run in their run's fiber and record one
 * exit row each (`InlineActivities`): a replay returns the recorded success or
 * typed failure without running the body again, and when two executions of a
 * step race, the first recorded exit is what both return.
 */
import { EntityId, Sharding } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { Context, Effect, Either, Exit, Fiber, Layer, Ref, Schema } from "effect"
import { Migrations, TablePrefix, TransactionalActivity, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"
import { noteCommitModes } from "./fixtures/commit-modes.js"
import { recordingClient } from "./fixtures/recording-client.js"

const prefix = TablePrefix.unsafeMake("inl")

/** How many times activity bodies ran in this process. */
class Runs extends Context.Tag("test/Runs")<Runs, Ref.Ref<number>>() {}

const Go = DurableDeferred.make("go")

const Echo = Workflow.make({
  name: "Echo",
  payload: { id: Schema.String, text: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

const Replayed = Workflow.make({
  name: "Replayed",
  payload: { id: Schema.String, fail: Schema.Boolean },
  success: Schema.String,
  idempotencyKey: (p) => p.id
})

const Transactional = Workflow.make({
  name: "Transactional",
  payload: { id: Schema.String },
  success: Schema.Number,
  idempotencyKey: (p) => p.id
})

const Repeated = Workflow.make({
  name: "Repeated",
  payload: { id: Schema.String },
  success: Schema.Array(Schema.Number),
  idempotencyKey: (p) => p.id
})

const Raced = Workflow.make({ name: "Raced", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })

const RunsLive = Layer.effect(Runs, Ref.make(0))
const Dependencies = Layer.merge(RunsLive, Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient))

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Replayed, {
    dependencies: Dependencies,
    signals: [Go],
    execute: ({ fail }) =>
      Effect.gen(function*() {
        const first = yield* Activity.make({
          name: "count",
          success: Schema.Number,
          error: Schema.String,
          execute: Effect.flatMap(Runs, (runs) => Ref.updateAndGet(runs, (n) => n + 1)).pipe(
            Effect.flatMap((n) => fail ? Effect.fail(`failed on run ${n}`) : Effect.succeed(n))
          )
        }).pipe(Effect.either)
        // suspends the run: what comes after is a replay
        yield* DurableDeferred.await(Go)
        return Either.match(first, { onLeft: (e) => `error: ${e}`, onRight: (n) => `value: ${n}` })
      })
  }),
  WorkflowLayer.make(Repeated, {
    dependencies: Dependencies,
    signals: [Go],
    execute: () =>
      Effect.gen(function*() {
        const counted = (name: string) =>
          Activity.make({
            name,
            success: Schema.Number,
            execute: Effect.flatMap(Runs, (runs) => Ref.updateAndGet(runs, (n) => n + 1))
          })
        // two steps in parallel first (they share one read of the run's records), then one step
        // twice: the second is the first's recorded exit, in this execution and in the replay
        const [a, b] = yield* Effect.all([counted("a"), counted("b")], { concurrency: 2 })
        const once = yield* counted("once")
        const again = yield* counted("once")
        yield* DurableDeferred.await(Go)
        return [a, b, once, again]
      })
  }),
  WorkflowLayer.make(Raced, {
    dependencies: Dependencies,
    execute: () =>
      Activity.make({
        name: "raced",
        success: Schema.Number,
        // another execution of this very step records its exit first
        execute: Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const instance = yield* WorkflowEngine.WorkflowInstance
          yield* Effect.orDie(sql`INSERT INTO inl_activity_exits (execution_id, activity, attempt, exit, started_at)
            VALUES (${instance.executionId}, 'raced', 1, '{"_tag":"Success","value":41}'::jsonb, now())`)
          return 42
        })
      })
  }),
  WorkflowLayer.make(Transactional, {
    dependencies: Dependencies,
    signals: [Go],
    execute: ({ id }) =>
      Effect.gen(function*() {
        const n = yield* TransactionalActivity.make({
          name: "bump",
          success: Schema.Number,
          execute: Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* Effect.flatMap(Runs, (runs) => Ref.update(runs, (n) => n + 1))
            const [row] = yield* sql<{ n: number }>`INSERT INTO inl_counter (id, n) VALUES (${id}, 1)
              ON CONFLICT (id) DO UPDATE SET n = inl_counter.n + 1 RETURNING n`
            return row!.n
          })
        })
        yield* DurableDeferred.await(Go)
        return n
      })
  }),
  WorkflowLayer.make(Echo, {
    dependencies: Layer.empty,
    execute: ({ text }) => Activity.make({ name: "echo", success: Schema.String, execute: Effect.succeed(text) })
  }),
  RunsLive // one counter: layers are shared within a build
)

const Durable = Workflows.pipe(
  Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
  Layer.provideMerge(Migrations.layer(prefix, [{ id: 1, name: "counter", sql: (t) => `CREATE TABLE ${t("counter")} (id text PRIMARY KEY, n int NOT NULL)` }])),
  Layer.provideMerge(TestDatabase.layer("inline_activities"))
)

/**
 * Starts `workflow` and waits until the run suspends on `Go` (its reply says Suspended);
 * `signal` completes `Go`, after which `fiber` ends with the replay's result.
 */
const suspendedOnGo = <Name extends string, P extends Workflow.AnyStructSchema, S extends Schema.Schema.Any, E extends Schema.Schema.All>(
  workflow: Workflow.Workflow<Name, P, S, E>,
  payload: P["Type"]
) =>
  Effect.gen(function*() {
    const engine = yield* WorkflowEngine.WorkflowEngine
    const executionId = yield* workflow.executionId(payload)
    const fiber = yield* Effect.fork(workflow.execute(payload))
    while ((yield* engine.poll(workflow, executionId))?._tag !== "Suspended") yield* Effect.sleep("50 millis")
    const signal = engine.deferredDone(Go, { workflowName: workflow.name, executionId, deferredName: Go.name, exit: Exit.void })
    return { executionId, fiber, signal }
  })

/** Runs the workflow until it suspends on `Go`, signals it, and returns the replay's result. */
const runWithReplay = (payload: { readonly id: string; readonly fail: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { executionId, fiber, signal } = yield* suspendedOnGo(Replayed, payload)
    // suspended: the activity's exit is recorded
    const recorded = yield* sql<{ exit: unknown }>`SELECT exit FROM inl_activity_exits WHERE execution_id = ${executionId}`
    yield* signal
    return { result: yield* Fiber.join(fiber), recorded: recorded.map((r) => r.exit) }
  })

describe("InlineActivities", () => {
  layer(Durable, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("runs recording at once share INSERTs (GroupCommit); each records and returns its own exit", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // quotes, backslashes, non-ASCII and JSON-looking text survive the grouped statement's JSON
        const text = (i: number) => `run ${i}: "quoted" \\ back, ünïcødé ✓, {"json": [${i}]}`
        const ids = Array.from({ length: 60 }, (_, i) => i)
        const results = yield* Effect.all(ids.map((i) => Echo.execute({ id: `echo-${i}`, text: text(i) })), {
          concurrency: "unbounded"
        })
        expect(results).toEqual(ids.map(text))
        const rows = yield* sql<{ execution_id: string; exit: { _tag: string; value: string } }>`
          SELECT execution_id, exit FROM inl_activity_exits WHERE activity = 'echo'`
        expect(rows).toHaveLength(60)
        const byExecution = new Map(rows.map((r) => [r.execution_id, r.exit]))
        for (const i of ids) {
          const executionId = yield* Echo.executionId({ id: `echo-${i}`, text: text(i) })
          expect(byExecution.get(executionId)).toEqual({ _tag: "Success", value: text(i) })
        }
      }))

    it.effect("a replay returns the recorded success and does not run the body again", () =>
      Effect.gen(function*() {
        const { recorded, result } = yield* runWithReplay({ id: "ok", fail: false })
        expect(recorded).toEqual([{ _tag: "Success", value: 1 }])
        expect(result).toBe("value: 1")
        expect(yield* Ref.get(yield* Runs)).toBe(1)
      }))

    it.effect("a typed failure is recorded and replayed as the same failure", () =>
      Effect.gen(function*() {
        const before = yield* Ref.get(yield* Runs)
        const { recorded, result } = yield* runWithReplay({ id: "fail", fail: true })
        const message = `failed on run ${before + 1}`
        expect(recorded).toEqual([{ _tag: "Failure", cause: { _tag: "Fail", error: message } }])
        expect(result).toBe(`error: ${message}`)
        expect(yield* Ref.get(yield* Runs)).toBe(before + 1)
      }))

    it.effect("a transactional activity commits its exit row with its writes; a replay runs neither again", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const before = yield* Ref.get(yield* Runs)
        const { executionId, fiber, signal } = yield* suspendedOnGo(Transactional, { id: "t" })
        expect(yield* sql`SELECT exit FROM inl_activity_exits WHERE execution_id = ${executionId}`).toEqual([
          { exit: { _tag: "Success", value: 1 } }
        ])
        // the exit row is the only record: nothing in the ActivityLedger's table
        expect(yield* sql`SELECT 1 FROM inl_activity_results WHERE execution_id = ${executionId}`).toEqual([])
        yield* signal
        expect(yield* Fiber.join(fiber)).toBe(1)
        expect(yield* Ref.get(yield* Runs)).toBe(before + 1)
        expect(yield* sql`SELECT n FROM inl_counter WHERE id = 't'`).toEqual([{ n: 1 }])
      }))

    it.effect("a plain step's exit commits without waiting for the WAL flush; a transactional one's with its writes, synchronously", () =>
      Effect.gen(function*() {
        // each exit row notes the commit mode of the transaction that wrote it
        const notes = yield* noteCommitModes("inl_activity_exits", ["execution_id", "activity"])
        const modeOf = (executionId: string) =>
          Effect.map(notes, (rows) => rows.filter((r) => r.execution_id === executionId).map((r) => `${r.activity}: ${r.mode}`))

        expect(yield* Echo.execute({ id: "mode", text: "x" })).toBe("x")
        expect(yield* modeOf(yield* Echo.executionId({ id: "mode", text: "x" }))).toEqual(["echo: off"])
        const { executionId, fiber, signal } = yield* suspendedOnGo(Transactional, { id: "mode" })
        yield* signal
        yield* Fiber.join(fiber)
        expect(yield* modeOf(executionId)).toEqual(["bump: on"])
      }))

    it.effect("a transactional step an earlier build committed (ActivityLedger only) does not run again", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const before = yield* Ref.get(yield* Runs)
        const executionId = yield* Transactional.executionId({ id: "legacy" })
        yield* sql`INSERT INTO inl_activity_results (execution_id, activity, attempt, result)
          VALUES (${executionId}, 'bump', 1, '7'::jsonb)`
        // the earlier build started the run: its start message exists and a storage read delivers
        // it. Modelled by a start saved in a SQL transaction (as the runs API saves one): never
        // taken for a run started here just now, it is read as any other (a start saved here
        // outside a transaction is a new run, with nothing recorded, and is not read)
        yield* sql.withTransaction(Transactional.execute({ id: "legacy" }, { discard: true }))
        const { fiber, signal } = yield* suspendedOnGo(Transactional, { id: "legacy" })
        yield* signal
        expect(yield* Fiber.join(fiber)).toBe(7)
        expect(yield* Ref.get(yield* Runs)).toBe(before)
        expect(yield* sql`SELECT n FROM inl_counter WHERE id = 'legacy'`).toEqual([])
      }))

    it.effect("a step called twice in one execution runs once; parallel first steps run once each", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const before = yield* Ref.get(yield* Runs)
        const { executionId, fiber, signal } = yield* suspendedOnGo(Repeated, { id: "rep" })
        expect(yield* Ref.get(yield* Runs)).toBe(before + 3)
        const rows = yield* sql<{ activity: string }>`SELECT activity FROM inl_activity_exits
          WHERE execution_id = ${executionId} ORDER BY activity`
        expect(rows.map((r) => r.activity)).toEqual(["a", "b", "once"])
        yield* signal
        const [a, b, once, again] = yield* Fiber.join(fiber)
        expect([a, b].sort()).toEqual([before + 1, before + 2])
        expect(once).toBe(before + 3)
        expect(again).toBe(once)
        // the replay ran no body again
        expect(yield* Ref.get(yield* Runs)).toBe(before + 3)
      }))

    it.effect("two executions of one step: the first recorded exit wins", () =>
      Effect.gen(function*() {
        expect(yield* Raced.execute({ id: "r" })).toBe(41)
      }))
  })
})

describe("InlineActivities: the first execution of a run started here", () => {
  it.scopedLive("reads no recorded steps (there are none); a replay reads them once and returns them", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("inline_first")
      const statements: Array<string> = []
      const context = yield* Layer.build(Workflows.pipe(
        Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
        Layer.provideMerge(Migrations.layer(prefix, [{ id: 1, name: "counter", sql: (t) => `CREATE TABLE ${t("counter")} (id text PRIMARY KEY, n int NOT NULL)` }])),
        Layer.provideMerge(recordingClient(db.url, statements))
      ))
      yield* Effect.gen(function*() {
        const reads = () => statements.filter((s) => /FROM "inl_activity_exits" WHERE execution_id/.test(s)).length
        // a start is handed over at once only once the runner holds the run's shard (just after
        // start-up, it is not: the storage read delivers it then, and it reads as any other)
        const sharding = yield* Sharding.Sharding
        const shard = sharding.getShardId(EntityId.make(yield* Replayed.executionId({ id: "first", fail: false })), "default")
        yield* Eventually.until(Effect.sync(() => sharding.hasShardId(shard)), "the runner holds the run's shard")
        const { fiber, signal } = yield* suspendedOnGo(Replayed, { id: "first", fail: false })
        // the first execution ran its step without reading: it was started here just now
        expect(reads()).toBe(0)
        yield* signal
        // the replay read the record once and returned the step's recorded value
        expect(yield* Fiber.join(fiber)).toMatch(/^value: \d+$/)
        expect(reads()).toBe(1)
        expect(yield* Ref.get(yield* Runs)).toBe(1)
      }).pipe(Effect.provide(context))
    }), 60_000)
})
