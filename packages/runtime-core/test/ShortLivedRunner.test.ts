/**
 * A durable runner stopped right after it started (a short test, a process
 * that fails at startup) is not taken for a second live process with its
 * address: `ShardLockStorage.register` may still be in flight when Sharding
 * unregisters at shutdown, and used to log "Runner address ... is in use by
 * another live process" as an ERROR (found by the ported upstream suites in
 * test/upstream, whose engines live for a fraction of a second).
 */
import { DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, Schema } from "effect"
import { TablePrefix, WorkflowRuntime } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

const Noop = Workflow.make({ name: "Noop", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Ping = DurableDeferred.make("ping")

describe("a runner stopped right after it started", () => {
  layer(TestDatabase.layer("short_lived"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("logs no address conflict", () =>
      Effect.gen(function*() {
        const errors: Array<string> = []
        const capture = Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) => {
            if (logLevel._tag === "Error" || logLevel._tag === "Fatal") errors.push(String(message))
          })
        )
        // before the fix about one start/stop in three logged the conflict
        for (let i = 0; i < 20; i++) {
          const prefix = TablePrefix.unsafeMake(`short_${i}`)
          yield* Effect.gen(function*() {
            const engine = yield* WorkflowEngine.WorkflowEngine
            yield* engine.register(Noop, () => Effect.void)
            const executionId = yield* Noop.executionId({ id: "x" })
            yield* DurableDeferred.done(Ping, {
              token: DurableDeferred.tokenFromExecutionId(Ping, { workflow: Noop, executionId }),
              exit: Exit.void
            })
          }).pipe(Effect.scoped, Effect.provide(WorkflowRuntime.layerDurable(prefix).pipe(Layer.provide(capture))))
        }
        expect(errors).toEqual([])
      }))
  })
})
