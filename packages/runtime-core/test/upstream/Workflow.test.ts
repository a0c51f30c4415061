/**
 * Ported from Effect-TS/effect, @effect/workflow 0.19.1 (tag `@effect/workflow@0.19.1`,
 * commit fcfef3aa4fb0341f01ec69e7e3f5a33a60921a55): every case of
 * `packages/workflow/test/WorkflowEngine.test.ts` and `packages/workflow/test/Activity.test.ts`
 * (the only test files at that version), run on runtime-core's durable engine
 * (`WorkflowRuntime.layerDurable` on a real Postgres) instead of
 * `WorkflowEngine.layerMemory` / no engine (issue 12, item 3). What was adapted:
 *
 * - Engine: upstream's `WorkflowEngine.layerMemory` -> the durable engine,
 *   one per test on its own table prefix in this file's database.
 * - `TestClock.adjust("1 day" / "1 hour")` -> real time: the durable sleeps
 *   are 1 s, with `inMemoryThreshold: Duration.zero` so that they still take
 *   the durable-clock path their day / hour took upstream (checked: the
 *   clock's envelope is stored), and the test waits for the run's result.
 * - Cases that called `Workflow.intoResult` / `DurableDeferred.into` by hand
 *   (an instance built with `WorkflowInstance.initial`, a stub engine that
 *   records `deferredDone`) run the same effect as the body of a registered
 *   workflow, so the engine applies `intoResult` itself, and observe the same
 *   properties through the engine: the run's stored result (`poll`), the
 *   instance's `suspended` flag as the body sees it, and the completions
 *   recorded (the deferred's stored `deferred` envelopes instead of the stub's
 *   `exits` array).
 * - Activity.test.ts ran `activity.execute` without an engine; here the
 *   activity runs in a workflow (so on the engine's activity entity), under
 *   its default interrupt retry policy, in real time (about 11 s of backoff).
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import { Activity, DurableClock, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import type { TablePrefix } from "../../src/index.js"
import { Eventually, TestDatabase } from "../../src/testing/index.js"
import { durableEngine, freshPrefix, journal, REQUEST } from "./harness.js"

/** Upstream's "1 day" / "1 hour" durable sleeps, elapsed in real time here. */
const SLEEP = Duration.seconds(1)

describe("WorkflowEngine (upstream @effect/workflow 0.19.1)", () => {
  layer(TestDatabase.layer("upstream_workflow"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("works with TestClock", () =>
      withWorkflows((prefix) =>
        Effect.gen(function*() {
          const executionId = yield* LongWorkflow.execute({ id: "test-1" }, { discard: true })

          // upstream: TestClock.adjust("1 day")
          yield* Eventually.until(Effect.map(LongWorkflow.poll(executionId), (r) => r?._tag === "Complete"), "the run completed")

          expect(yield* LongWorkflow.poll(executionId))
            .toEqual(new Workflow.Complete({ exit: Exit.void }))
          // the sleep went through the durable clock, as the day-long one did
          assert.isTrue(yield* hasClock(prefix, executionId))
        })
      ))

    it.effect("nested workflows", () =>
      withWorkflows((prefix) =>
        Effect.gen(function*() {
          const executionId = yield* ParentWorkflow.execute({ id: "parent-1" }, { discard: true })

          // upstream: TestClock.adjust("1 hour")
          yield* Eventually.until(Effect.map(ParentWorkflow.poll(executionId), (r) => r?._tag === "Complete"), "the parent completed")

          expect(yield* ParentWorkflow.poll(executionId))
            .toEqual(new Workflow.Complete({ exit: Exit.void }))
          assert.isTrue(yield* hasClock(prefix, yield* ChildWorkflow.executionId({ id: "child-1" })))
        })
      ))

    it.effect("does not squash workflow failures after suspension", () =>
      withWorkflows(() =>
        Effect.gen(function*() {
          // upstream: Workflow.intoResult(Effect.fail("boom")) with `instance.suspended = true`
          const payload = { id: "workflow-failure", body: "fail-after-suspended" as const }
          const error = yield* Effect.flip(TestWorkflow.execute(payload))
          assert.strictEqual(error, "boom")

          const result = yield* TestWorkflow.poll(yield* TestWorkflow.executionId(payload))
          assert.deepStrictEqual(result, new Workflow.Complete({ exit: Exit.fail("boom") }))
        })
      ))

    it.effect("removes suspension interrupts from mixed workflow failures", () =>
      withWorkflows(() =>
        Effect.gen(function*() {
          // upstream: Workflow.intoResult(Effect.failCause(Cause.parallel(Cause.fail("boom"), Cause.interrupt(FiberId.none))))
          const payload = { id: "mixed-workflow-failure", body: "mixed-failure" as const }
          const error = yield* Effect.flip(TestWorkflow.execute(payload))
          assert.strictEqual(error, "boom")

          const result = yield* TestWorkflow.poll(yield* TestWorkflow.executionId(payload))
          assert.deepStrictEqual(result, new Workflow.Complete({ exit: Exit.fail("boom") }))
        })
      ))

    it.effect("DurableDeferred.into isolates inner suspension from failure recording", () =>
      withWorkflows((prefix) =>
        Effect.gen(function*() {
          const flags = yield* Flags
          const payload = { id: "deferred-failure", body: "into-failure" as const }
          const executionId = yield* TestWorkflow.executionId(payload)
          expect(yield* TestWorkflow.execute(payload)).toBe(0)

          // upstream: assert.isFalse(instance.suspended)
          assert.isFalse(flags.get("suspended-after-into"))
          // upstream: assert.deepStrictEqual(exits, [Exit.fail("boom")]) -- the completions the engine received
          assert.deepStrictEqual(yield* completions(prefix, executionId, "deferred-failure"), [Exit.fail("boom")])
        })
      ))

    it.effect("DurableDeferred.into propagates interrupt-only suspension to the parent", () =>
      withWorkflows((prefix) =>
        Effect.gen(function*() {
          const flags = yield* Flags
          const payload = { id: "deferred-suspended", body: "into-suspended" as const }
          const executionId = yield* TestWorkflow.executionId(payload)
          yield* TestWorkflow.execute(payload, { discard: true })
          // the run suspends (its instance is suspended and the body was interrupted)
          yield* Eventually.until(
            Effect.map(TestWorkflow.poll(executionId), (r) => r?._tag === "Suspended"),
            "the run suspended"
          )

          // upstream: assert.isTrue(instance.suspended)
          assert.isTrue(flags.get("suspended-after-into"))
          // upstream: assert.deepStrictEqual(exits, [])
          assert.deepStrictEqual(yield* completions(prefix, executionId, "deferred-suspended"), [])
        })
      ))
  })
})

describe("Activity (upstream @effect/workflow 0.19.1)", () => {
  layer(TestDatabase.layer("upstream_activity"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("bounds retries after interruption", () =>
      withWorkflows(() =>
        Effect.gen(function*() {
          attempts = 0
          // upstream: `activity.execute` forked, TestClock.adjust("1 day"), joined
          const exit = yield* InterruptingWorkflow.execute({ id: "interrupting" }).pipe(Effect.exit)

          assert(Exit.isFailure(exit))
          assert.strictEqual(attempts, 11)
          assert.include(String(Cause.squash(exit.cause)), "retry attempts exhausted")
        })
      ), { timeout: 60_000 })
  })
})

class Flags extends Effect.Service<Flags>()("Flags", {
  sync: () => new Map<string, boolean | string>()
}) {}

const TestWorkflow = Workflow.make({
  name: "TestWorkflow",
  payload: {
    id: Schema.String,
    body: Schema.Literal("fail-after-suspended", "mixed-failure", "into-failure", "into-suspended")
  },
  idempotencyKey: ({ id }) => id,
  success: Schema.Number,
  error: Schema.String
})

const TestWorkflowLayer = TestWorkflow.toLayer(Effect.fnUntraced(function*({ body, id }) {
  const flags = yield* Flags
  const instance = yield* WorkflowEngine.WorkflowInstance
  switch (body) {
    case "fail-after-suspended": {
      instance.suspended = true
      return yield* Effect.fail("boom")
    }
    case "mixed-failure": {
      const cause = Cause.parallel(Cause.fail("boom"), Cause.interrupt(FiberId.none))
      return yield* Effect.failCause(cause)
    }
    case "into-failure":
    case "into-suspended": {
      const deferred = DurableDeferred.make(id, {
        success: Schema.Number,
        error: Schema.String
      })
      const exit = yield* DurableDeferred.into(
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) =>
          Effect.zipRight(
            Effect.sync(() => {
              instance.suspended = true
            }),
            body === "into-failure" ? Effect.fail("boom") : Effect.interrupt
          )),
        deferred
      ).pipe(Effect.exit)
      flags.set("suspended-after-into", instance.suspended)
      // the suspension (if any) propagates: the run ends as the body's exit says
      return body === "into-failure" ? 0 : yield* exit
    }
  }
}))

/** The exits recorded for `deferredName` of one execution: its stored `deferred` envelopes, decoded. */
const completions = (prefix: TablePrefix.TablePrefix, executionId: string, deferredName: string) =>
  Effect.gen(function*() {
    const decode = Schema.decodeUnknown(Schema.Exit({ success: Schema.Number, failure: Schema.String, defect: Schema.Defect }))
    const rows = (yield* journal(prefix)).filter((r) =>
      Number(r.kind) === REQUEST && r.entity_id === executionId && r.tag === "deferred"
    )
    const exits: Array<Exit.Exit<number, string>> = []
    for (const row of rows) {
      const payload = JSON.parse(row.payload!) as { name: string; exit: unknown }
      if (payload.name === deferredName) exits.push(yield* Effect.orDie(decode(payload.exit)))
    }
    return exits
  })

/** Whether a durable clock was scheduled for the execution (its envelope is stored). */
const hasClock = (prefix: TablePrefix.TablePrefix, executionId: string) =>
  Effect.map(journal(prefix), (rows) =>
    rows.some((r) => r.entity_type === "Workflow/-/DurableClock" && r.entity_id === executionId))

const LongWorkflow = Workflow.make({
  name: "LongWorkflow",
  payload: {
    id: Schema.String
  },
  idempotencyKey: ({ id }) => id
})

const LongWorkflowLayer = LongWorkflow.toLayer(Effect.fnUntraced(function*() {
  yield* DurableClock.sleep({
    name: "LongWorkflow sleep",
    duration: SLEEP, // upstream: "1 day"
    inMemoryThreshold: Duration.zero
  })
}))

const ChildWorkflow = Workflow.make({
  name: "ChildWorkflow",
  payload: {
    id: Schema.String
  },
  idempotencyKey: ({ id }) => id
})

const ChildWorkflowLayer = ChildWorkflow.toLayer(Effect.fnUntraced(function*() {
  yield* DurableClock.sleep({
    name: "ChildWorkflow sleep",
    duration: SLEEP, // upstream: "1 hour"
    inMemoryThreshold: Duration.zero
  })
}))

const ParentWorkflow = Workflow.make({
  name: "ParentWorkflow",
  payload: {
    id: Schema.String
  },
  idempotencyKey: ({ id }) => id
})
const ParentWorkflowLayer = ParentWorkflow.toLayer(Effect.fnUntraced(function*() {
  yield* ChildWorkflow.execute({ id: "child-1" })
}))

// Activity.test.ts: the activity interrupts itself on every attempt
let attempts = 0
const interrupting = Activity.make({
  name: "interrupting",
  execute: Effect.suspend(() => {
    attempts++
    return Effect.interrupt
  })
})

const InterruptingWorkflow = Workflow.make({
  name: "InterruptingWorkflow",
  payload: { id: Schema.String },
  idempotencyKey: ({ id }) => id
})
const InterruptingWorkflowLayer = InterruptingWorkflow.toLayer(() => interrupting)

const Workflows = (prefix: TablePrefix.TablePrefix) =>
  Layer.mergeAll(
    LongWorkflowLayer,
    ChildWorkflowLayer,
    ParentWorkflowLayer,
    TestWorkflowLayer,
    InterruptingWorkflowLayer
  ).pipe(
    Layer.provideMerge(Flags.Default),
    Layer.provideMerge(durableEngine(prefix)),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )

/** Upstream's `Effect.provide(... Layer.provideMerge(WorkflowEngine.layerMemory))`: a fresh engine on fresh tables. */
const withWorkflows = <A, E, R>(body: (prefix: TablePrefix.TablePrefix) => Effect.Effect<A, E, R>) => {
  const prefix = freshPrefix("wfe")
  return body(prefix).pipe(Effect.provide(Workflows(prefix)))
}
