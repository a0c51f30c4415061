/**
 * A signal wins a race it arrives first in (issue 9, item 4; upstream
 * Effect-TS/effect#7176): a `DurableDeferred` completed while its run is
 * active, racing a longer timeout or activity, resumes the run with the
 * signal's value, on the memory engine and on the durable one. And a run that
 * is never signalled still ends with its other branch.
 */
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Queue, Schema, TestClock } from "effect"
import { fileURLToPath } from "node:url"
import { TablePrefix, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { TestDatabase, TestProcess } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("sig")

const Decision = DurableDeferred.make("decision", { success: Schema.String })

/** Receives the execution id when a run's long branch starts: the run is then active. */
class Started extends Context.Tag("test/Started")<Started, Queue.Queue<string>>() {}
const announce = (id: string) => Effect.flatMap(Started, (q) => Queue.offer(q, id))

const OrTimeout = Workflow.make({
  name: "OrTimeout",
  payload: { id: Schema.String, timeoutMs: Schema.Number },
  success: Schema.String,
  idempotencyKey: (p) => p.id
})
const OrActivity = Workflow.make({
  name: "OrActivity",
  payload: { id: Schema.String, activityMs: Schema.Number },
  success: Schema.String,
  idempotencyKey: (p) => p.id
})

const StartedLive = Layer.effect(Started, Queue.unbounded<string>())
const Workflows = Layer.mergeAll(
  WorkflowLayer.make(OrTimeout, {
    dependencies: StartedLive,
    signals: [Decision],
    // the timeout is an in-memory sleep: the run stays active while it waits
    execute: ({ id, timeoutMs }) =>
      Effect.race(
        DurableDeferred.await(Decision),
        announce(id).pipe(Effect.zipRight(Effect.sleep(timeoutMs)), Effect.as("timeout"))
      )
  }),
  WorkflowLayer.make(OrActivity, {
    dependencies: StartedLive,
    signals: [Decision],
    execute: ({ activityMs, id }) =>
      DurableDeferred.raceAll({
        name: "decide",
        success: Schema.String,
        error: Schema.Never,
        effects: [
          DurableDeferred.await(Decision),
          Activity.make({
            name: "slow",
            success: Schema.String,
            execute: announce(id).pipe(Effect.zipRight(Effect.sleep(activityMs)), Effect.as("activity"))
          })
        ]
      })
  })
, StartedLive) // one queue: layers are shared within a build

const signal = (workflow: Workflow.Any, executionId: string, value: string) =>
  Effect.flatMap(WorkflowEngine.WorkflowEngine, (engine) =>
    engine.deferredDone(Decision, {
      workflowName: workflow.name,
      executionId,
      deferredName: Decision.name,
      exit: Exit.succeed(value)
    }))

/** Starts a run and returns once its long branch is running. */
const startActive = <A, R>(run: Effect.Effect<A, never, R>, id: string) =>
  Effect.gen(function*() {
    const started = yield* Started
    const fiber = yield* Effect.fork(run)
    while ((yield* Queue.take(started)) !== id) {
      // another run's announcement (a replay announces again); keep waiting for ours
    }
    return fiber
  })

describe("signals racing other branches", () => {
  describe("memory engine", () => {
    const Memory = Workflows.pipe(Layer.provideMerge(WorkflowRuntime.layerMemory(prefix)))

    it.effect("a signal sent at 0.5 s beats a 3 s in-memory timeout", () =>
      Effect.gen(function*() {
        const payload = { id: "m1", timeoutMs: 3000 }
        const executionId = yield* OrTimeout.executionId(payload)
        const fiber = yield* startActive(OrTimeout.execute(payload), "m1")
        yield* TestClock.adjust("500 millis")
        yield* signal(OrTimeout, executionId, "approved")
        yield* TestClock.adjust("5 seconds")
        expect(yield* Fiber.join(fiber)).toBe("approved")
      }).pipe(Effect.provide(Memory)))

    it.effect("raceAll: a signal sent at 1 s beats an 8 s activity", () =>
      Effect.gen(function*() {
        const payload = { id: "m2", activityMs: 8000 }
        const executionId = yield* OrActivity.executionId(payload)
        const fiber = yield* startActive(OrActivity.execute(payload), "m2")
        yield* TestClock.adjust("1 second")
        yield* signal(OrActivity, executionId, "approved")
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.join(fiber)).toBe("approved")
      }).pipe(Effect.provide(Memory)))

    it.effect("without a signal the timeout still wins", () =>
      Effect.gen(function*() {
        const fiber = yield* startActive(OrTimeout.execute({ id: "m3", timeoutMs: 3000 }), "m3")
        yield* TestClock.adjust("5 seconds")
        expect(yield* Fiber.join(fiber)).toBe("timeout")
      }).pipe(Effect.provide(Memory)))
  })

  describe("durable engine", () => {
    // Real time here (the cluster polls and retries on the clock). The other branch is long
    // enough that the signal, sent half a second after the run is seen active, arrives first
    // even on a loaded machine; before the fix that branch won every time.
    const LONG = 15_000
    const Durable = Workflows.pipe(
      Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
      Layer.provideMerge(TestDatabase.layer("signals"))
    )

    layer(Durable, { timeout: 90_000, excludeTestServices: true })((it) => {
      it.effect("a signal sent at 0.5 s beats an in-memory timeout", () =>
        Effect.gen(function*() {
          const payload = { id: "d1", timeoutMs: LONG }
          const executionId = yield* OrTimeout.executionId(payload)
          const fiber = yield* startActive(OrTimeout.execute(payload), "d1")
          yield* Effect.sleep("500 millis")
          yield* signal(OrTimeout, executionId, "approved")
          expect(yield* Fiber.join(fiber)).toBe("approved")
        }), { timeout: 60_000 })

      it.effect("raceAll: a signal sent at 1 s beats a long activity", () =>
        Effect.gen(function*() {
          const payload = { id: "d2", activityMs: LONG }
          const executionId = yield* OrActivity.executionId(payload)
          const fiber = yield* startActive(OrActivity.execute(payload), "d2")
          yield* Effect.sleep("1 second")
          yield* signal(OrActivity, executionId, "approved")
          expect(yield* Fiber.join(fiber)).toBe("approved")
        }), { timeout: 60_000 })

      it.effect("a signal sent right as the run starts wins too", () =>
        Effect.gen(function*() {
          const payload = { id: "d3", timeoutMs: LONG }
          const executionId = yield* OrTimeout.executionId(payload)
          const fiber = yield* startActive(OrTimeout.execute(payload), "d3")
          yield* signal(OrTimeout, executionId, "early")
          expect(yield* Fiber.join(fiber)).toBe("early")
        }), { timeout: 60_000 })

      it.effect("a signal from another process (one that holds no shards) wins too", () =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          // longer: the other process needs a few seconds to start
          const payload = { id: "d5", timeoutMs: 2 * LONG }
          const executionId = yield* OrTimeout.executionId(payload)
          const fiber = yield* startActive(OrTimeout.execute(payload), "d5")
          const client = yield* TestProcess.spawnTs(fileURLToPath(new URL("./fixtures/signal-client.ts", import.meta.url)), {
            env: {
              DATABASE_URL: db.url,
              PREFIX: prefix,
              WORKFLOW: OrTimeout.name,
              DEFERRED: Decision.name,
              EXECUTION_ID: executionId,
              VALUE: "from afar"
            }
          })
          yield* client.waitForEvent("signalled")
          expect(yield* Fiber.join(fiber)).toBe("from afar")
        }).pipe(Effect.scoped), { timeout: 90_000 })

      it.effect("raceAll without a signal: the activity wins", () =>
        Effect.gen(function*() {
          const fiber = yield* startActive(OrActivity.execute({ id: "d4", activityMs: 300 }), "d4")
          expect(yield* Fiber.join(fiber)).toBe("activity")
        }), { timeout: 60_000 })
    })
  })
})
