/**
 * Upgrades (issue 15, items 2 and 3) on the durable engine, real Postgres.
 * Build 1.0.0 leaves suspended runs behind (after an activity, a received
 * signal, with a pending durable clock); `UpgradeCheck.check` then passes a
 * compatible build (additive changes) and fails builds that renamed an
 * activity, changed a payload field's type, removed a workflow, dropped a
 * received or awaited signal, naming each stranded run, its step and the reason. Then
 * build 2.0.0 resumes a run: the ledger shows who started it and who resumed it.
 */
import { SqlClient } from "@effect/sql"
import { Activity, DurableClock, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer, Redacted, Schedule, Schema, Scope } from "effect"
import { AppRuntime, Database, TablePrefix, UpgradeCheck, WorkflowLayer } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("upg")

// ---- build 1.0.0 ----
const Reserve = UpgradeCheck.activity({ name: "reserve", success: Schema.Struct({ sku: Schema.String }) })
const Approve = DurableDeferred.make("approve", { success: Schema.Boolean })
const Order = Workflow.make({
  name: "Order",
  payload: { id: Schema.String, qty: Schema.Number },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})
const First = DurableDeferred.make("first", { success: Schema.String })
const Second = DurableDeferred.make("second", { success: Schema.String })
const TwoStep = Workflow.make({ name: "TwoStep", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: ({ id }) => id })
const Remind = Workflow.make({ name: "Remind", payload: { id: Schema.String }, idempotencyKey: ({ id }) => id })

const orderExecute = ({ id }: { readonly id: string }) =>
  Effect.gen(function*() {
    const reserved = yield* Activity.make({ ...Reserve, execute: Effect.succeed({ sku: `sku-${id}` }) })
    const approved = yield* DurableDeferred.await(Approve)
    return `${reserved.sku}:${approved}`
  })

const build1 = Layer.mergeAll(
  WorkflowLayer.make(Order, { dependencies: Layer.empty, signals: [Approve], execute: orderExecute }),
  WorkflowLayer.make(TwoStep, {
    dependencies: Layer.empty,
    signals: [First, Second],
    execute: () => Effect.zipWith(DurableDeferred.await(First), DurableDeferred.await(Second), (a, b) => a + b)
  }),
  WorkflowLayer.make(Remind, { dependencies: Layer.empty, execute: () => DurableClock.sleep({ name: "later", duration: "1 hour" }) })
)

const registry1 = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, { activities: [Reserve], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])

// ---- candidate builds ----
/** Additive: an optional payload field, a new activity after the old ones. Compatible. */
const OrderAdditive = Workflow.make({
  name: "Order",
  payload: { id: Schema.String, qty: Schema.Number, note: Schema.optional(Schema.String) },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})
const Notify = UpgradeCheck.activity({ name: "notify" })
const compatible = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(OrderAdditive, { activities: [Reserve, Notify], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])
const renamedActivity = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, { activities: [{ ...Reserve, name: "reserve-stock" }], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])
const OrderQtyText = Workflow.make({
  name: "Order",
  payload: { id: Schema.String, qty: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})
const changedPayload = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(OrderQtyText, { activities: [Reserve], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])
const removedWorkflow = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, { activities: [Reserve], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] })
])
const droppedSignal = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, { activities: [Reserve], signals: [Approve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [Second] }),
  UpgradeCheck.workflow(Remind)
])
/** `approve`, which the Order runs await (not yet delivered), is gone. */
const droppedAwaited = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, { activities: [Reserve] }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])
const changedResult = UpgradeCheck.registry(prefix, [
  UpgradeCheck.workflow(Order, {
    activities: [{ ...Reserve, success: Schema.Struct({ sku: Schema.Number }) }],
    signals: [Approve]
  }),
  UpgradeCheck.workflow(TwoStep, { signals: [First, Second] }),
  UpgradeCheck.workflow(Remind)
])

const app = (url: string, version: string, workflows: Layer.Layer<never, never, any>) =>
  Layer.build(
    AppRuntime.layer({
      prefix,
      migrations: [],
      workflows,
      version,
      sharding: { entityMessagePollInterval: Duration.millis(500), shardLockRefreshInterval: Duration.seconds(1) }
    }).pipe(
      Layer.provideMerge(Database.layer({ url: Redacted.make(url), applicationName: `upg-${version}` })),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
    )
  )

const waitUntil = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean, what: string) =>
  read.pipe(
    Effect.filterOrFail(check, () => new Error(`timed out waiting for ${what}`)),
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds")))
  )

const stranded = (report: UpgradeCheck.Report) =>
  Object.fromEntries(report.runs.filter((r) => !r.resumable).map((r) => [r.executionId, r.problems.map((p) => p.step)]))

describe("the app version", () => {
  const read = (env: Record<string, string>, declared?: string) =>
    AppRuntime.versionConfig(declared).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )
  it.effect("is APP_VERSION, else the version the app declares, else unknown", () =>
    Effect.gen(function*() {
      expect(yield* read({ APP_VERSION: "build-42" }, "1.2.3")).toBe("build-42")
      expect(yield* read({}, "1.2.3")).toBe("1.2.3")
      expect(yield* read({ APP_VERSION: "  " }, "1.2.3")).toBe("1.2.3")
      expect(yield* read({})).toBe("unknown")
    }))
})

describe("UpgradeCheck and versions", () => {
  layer(TestDatabase.layer("upgrades"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("a compatible build passes; renamed activities, changed payloads, removed workflows fail by run", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const scope = yield* Scope.make()
        const v1 = yield* app(db.url, "1.0.0", build1).pipe(Scope.extend(scope))
        const ids = yield* Effect.gen(function*() {
          const engine = yield* WorkflowEngine.WorkflowEngine
          const o1 = yield* Order.execute({ id: "o1", qty: 2 }, { discard: true })
          const o2 = yield* Order.execute({ id: "o2", qty: 5 }, { discard: true })
          const two = yield* TwoStep.execute({ id: "t1" }, { discard: true })
          yield* engine.deferredDone(First, { workflowName: TwoStep.name, executionId: two, deferredName: First.name, exit: Exit.succeed("a") })
          const remind = yield* Remind.execute({ id: "r1" }, { discard: true })
          return { o1, o2, two, remind }
        }).pipe(Effect.provide(v1))
        const all = Object.values(ids)
        yield* waitUntil(
          AppRuntime.listRuns({ limit: 10 }).pipe(Effect.provide(v1)),
          (runs) => all.every((id) => runs.some((r) => r.executionId === id && r.status === "suspended")),
          "every run suspended"
        )
        // TwoStep has read `first` and waits on `second`
        yield* waitUntil(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql`SELECT 1 FROM upg_cluster_messages WHERE tag = 'deferred' AND entity_id = ${ids.two}`),
          (rows) => rows.length > 0,
          "the signal stored"
        )
        // the ledger says what each suspended run awaits
        const suspended = yield* AppRuntime.listRuns({ limit: 10 }).pipe(Effect.provide(v1))
        const awaits = Object.fromEntries(suspended.map((r) => [r.executionId, r.awaiting]))
        expect(awaits).toEqual({
          [ids.o1]: ["approve"],
          [ids.o2]: ["approve"],
          [ids.two]: ["second"],
          [ids.remind]: ["DurableClock/later"]
        })
        yield* Scope.close(scope, Exit.void)

        const same = yield* UpgradeCheck.check(registry1)
        expect(same.ok).toBe(true)
        expect(same.runs.map((r) => r.executionId).sort()).toEqual([...all].sort())
        expect(same.runs.every((r) => r.startedBy === "1.0.0")).toBe(true)
        expect((yield* UpgradeCheck.check(compatible)).ok).toBe(true)

        const renamed = yield* UpgradeCheck.check(renamedActivity)
        expect(renamed.ok).toBe(false)
        expect(stranded(renamed)).toEqual({ [ids.o1]: ["activity reserve"], [ids.o2]: ["activity reserve"] })
        expect(UpgradeCheck.describe(renamed)).toContain(
          `Order/${ids.o1} (suspended) activity reserve: completed by the run, but Order declares no activity reserve ` +
            "in this build (renamed or removed)"
        )
        const payload = yield* UpgradeCheck.check(changedPayload)
        expect(stranded(payload)).toEqual({ [ids.o1]: ["payload"], [ids.o2]: ["payload"] })
        expect(payload.runs.find((r) => r.executionId === ids.o1)!.problems[0]!.reason).toContain("qty")
        const removed = yield* UpgradeCheck.check(removedWorkflow)
        // the pending durable clock is named too
        expect(stranded(removed)).toEqual({ [ids.remind]: ["workflow", "clock later"] })
        expect(removed.stranded).toBe(1)
        expect(stranded(yield* UpgradeCheck.check(droppedSignal))).toEqual({ [ids.two]: ["signal first"] })
        expect(stranded(yield* UpgradeCheck.check(droppedAwaited))).toEqual({
          [ids.o1]: ["signal approve"],
          [ids.o2]: ["signal approve"]
        })
        expect(stranded(yield* UpgradeCheck.check(changedResult))).toEqual({
          [ids.o1]: ["activity reserve"],
          [ids.o2]: ["activity reserve"]
        })
      }))

    it.scoped("a run shows the version that started it and the one that resumed it after a restart", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        // the runs of the test above, left suspended by 1.0.0; 2.0.0 starts and resumes one
        const v2 = yield* app(db.url, "2.0.0", build1)
        const o1 = yield* Order.executionId({ id: "o1", qty: 2 })
        yield* Effect.flatMap(WorkflowEngine.WorkflowEngine, (engine) =>
          engine.deferredDone(Approve, { workflowName: Order.name, executionId: o1, deferredName: Approve.name, exit: Exit.succeed(true) })
        ).pipe(Effect.provide(v2))
        const runs = yield* waitUntil(
          AppRuntime.listRuns({ workflow: "Order", limit: 10 }).pipe(Effect.provide(v2)),
          (runs) => runs.some((r) => r.executionId === o1 && r.status === "succeeded"),
          "o1 to finish on 2.0.0"
        )
        const done = runs.find((r) => r.executionId === o1)!
        expect(done.startedBy).toBe("1.0.0")
        expect(done.resumedBy).toEqual(["2.0.0"])
        expect(done.result).toBe("sku-o1:true")
        // a run 2.0.0 starts itself: started by 2.0.0, resumed by nobody else
        yield* Order.execute({ id: "o3", qty: 1 }, { discard: true }).pipe(Effect.provide(v2))
        const o3 = yield* Order.executionId({ id: "o3", qty: 1 })
        const fresh = yield* waitUntil(
          AppRuntime.listRuns({ workflow: "Order", limit: 10 }).pipe(Effect.provide(v2)),
          (runs) => runs.some((r) => r.executionId === o3 && r.status === "suspended"),
          "o3 suspended"
        )
        expect(fresh.find((r) => r.executionId === o3)).toMatchObject({ startedBy: "2.0.0", resumedBy: [] })
      }))
  })
})
