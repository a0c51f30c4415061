/**
 * A run's entity lives while the run has something to do (`RunEntities` and the
 * @effect/cluster patch, "release when idle"): a finished or suspended run holds
 * no entity, and the next message for it builds one again. Without them every
 * finished run's entity stayed in memory for a minute or more.
 */
import { Entity, Sharding } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import { describe, expect, layer } from "@effect/vitest"
import { Activity, DurableClock, DurableDeferred, Workflow } from "@effect/workflow"
import { Effect, Exit, Layer, Schema } from "effect"
import { TablePrefix, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("ent")

const Steps = Workflow.make({ name: "Steps", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })
const Go = DurableDeferred.make("go", { success: Schema.String })
const Waiting = Workflow.make({ name: "Waiting", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })
const Sleeping = Workflow.make({ name: "Sleeping", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })

/** An app's own entity, registered on the runtime's Sharding (not through the engine). */
const Counter = Entity.make("Counter", [Rpc.make("Add", { payload: { n: Schema.Number }, success: Schema.Number })])
const CounterLive = Counter.toLayer(Effect.sync(() => {
  let total = 0
  return { Add: ({ payload }) => Effect.sync(() => (total += payload.n)) }
}))

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Steps, {
    dependencies: Layer.empty,
    execute: () =>
      Effect.gen(function*() {
        const a = yield* Activity.make({ name: "a", success: Schema.Number, execute: Effect.succeed(1) })
        const b = yield* Activity.make({ name: "b", success: Schema.Number, execute: Effect.succeed(2) })
        return a + b
      })
  }),
  WorkflowLayer.make(Waiting, { dependencies: Layer.empty, signals: [Go], execute: () => DurableDeferred.await(Go) }),
  WorkflowLayer.make(Sleeping, {
    dependencies: Layer.empty,
    execute: () => DurableClock.sleep({ name: "nap", duration: "1 second" }).pipe(Effect.as("rested"))
  })
)

const Durable = Layer.mergeAll(Workflows, CounterLive).pipe(
  Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
  Layer.provideMerge(TestDatabase.layer("run_entities"))
)

const activeEntities = Effect.flatMap(Sharding.Sharding, (sharding) => sharding.activeEntityCount)

/**
 * Waits until `count` entities are in memory and returns the count then (the wait gives up
 * after 30 s; without the release they stay for a minute).
 */
const entitiesBecome = (count: number) =>
  Effect.zipRight(
    Eventually.until(Effect.map(activeEntities, (n) => n === count), `${count} entities in memory`),
    activeEntities
  )

describe("RunEntities", () => {
  layer(Durable, { timeout: 90_000, excludeTestServices: true })((it) => {
    it.effect("finished runs hold no entity: each is released once its reply is sent", () =>
      Effect.gen(function*() {
        const results = yield* Effect.forEach(["a", "b", "c", "d", "e"], (id) => Steps.execute({ id }), {
          concurrency: "unbounded"
        })
        expect(results).toEqual([3, 3, 3, 3, 3])
        expect(yield* entitiesBecome(0)).toBe(0)
        // a finished run asked again answers from storage, and is released again
        expect(yield* Steps.execute({ id: "a" })).toBe(3)
        expect(yield* entitiesBecome(0)).toBe(0)
      }))

    it.effect("a suspended run holds no entity; its signal builds one again and the run completes", () =>
      Effect.gen(function*() {
        const executionId = yield* Waiting.executionId({ id: "w1" })
        yield* Waiting.execute({ id: "w1" }, { discard: true })
        // suspended: its stored result says so, and nothing of it stays in memory
        yield* Eventually.until(Effect.map(Waiting.poll(executionId), (result) => result?._tag === "Suspended"), "the run suspended")
        expect(yield* entitiesBecome(0)).toBe(0)
        const token = DurableDeferred.tokenFromExecutionId(Go, { workflow: Waiting, executionId })
        yield* DurableDeferred.done(Go, { token, exit: Exit.succeed("approved") })
        expect(yield* Waiting.execute({ id: "w1" })).toBe("approved")
        expect(yield* entitiesBecome(0)).toBe(0)
      }))

    it.effect("a durable sleep: the run and its clock are released while it waits, and it wakes", () =>
      Effect.gen(function*() {
        expect(yield* Sleeping.execute({ id: "s1" })).toBe("rested")
        expect(yield* entitiesBecome(0)).toBe(0)
      }))

    it.effect("an app's own entity keeps the configured idle time", () =>
      Effect.gen(function*() {
        const client = yield* Counter.client
        expect(yield* client("c1").Add({ n: 2 })).toBe(2)
        expect(yield* Steps.execute({ id: "after-counter" })).toBe(3)
        // the run's entity goes; the counter stays, with its state
        expect(yield* entitiesBecome(1)).toBe(1)
        expect(yield* client("c1").Add({ n: 3 })).toBe(5)
      }))
  })
})
