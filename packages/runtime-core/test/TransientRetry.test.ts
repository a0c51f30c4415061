/**
 * `TransientRetry`: the engine's idempotent calls are tried again after a failure
 * that passes (the storage's, or a runner's socket going away, as during a rolling
 * deploy), and not after any other.
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import { WorkflowEngine } from "@effect/workflow"
import { Cause, Effect, Exit, Fiber, Layer, TestClock } from "effect"
import * as TransientRetry from "../src/internal/TransientRetry.js"

/** An engine whose `execute` fails with `failure` (as a defect, as the cluster's client reports it) `times` times, then answers. */
const engineFailing = (failure: unknown, times: number) => {
  let calls = 0
  const engine = WorkflowEngine.WorkflowEngine.of({
    execute: () =>
      Effect.suspend(() => ++calls <= times ? Effect.die(failure) : Effect.succeed("execution-id")) as never
  } as unknown as WorkflowEngine.WorkflowEngine["Type"])
  return { engine, calls: () => calls }
}

/** `execute` through TransientRetry's engine over `engine`, the test clock moved on until it ends. */
const executeThrough = (engine: WorkflowEngine.WorkflowEngine["Type"]) =>
  Effect.gen(function*() {
    const retrying = yield* WorkflowEngine.WorkflowEngine.pipe(
      Effect.provide(TransientRetry.layer.pipe(Layer.provide(Layer.succeed(WorkflowEngine.WorkflowEngine, engine))))
    )
    const fiber = yield* Effect.fork(
      Effect.exit(retrying.execute({} as never, { executionId: "x", payload: {}, discard: true } as never))
    )
    yield* TestClock.adjust("5 minutes")
    return yield* Fiber.join(fiber)
  })

describe("TransientRetry", () => {
  it.effect("a start that met a runner's socket closing (write EPIPE) is sent again, and answers", () =>
    Effect.gen(function*() {
      const epipe = new Socket.SocketGenericError({ reason: "Write", cause: new Error("write EPIPE") })
      const { calls, engine } = engineFailing(epipe, 2)
      expect(yield* executeThrough(engine)).toEqual(Exit.succeed("execution-id"))
      expect(calls()).toBe(3)
    }))

  it.effect("any other defect is not retried", () =>
    Effect.gen(function*() {
      const { calls, engine } = engineFailing(new Error("a bug"), 1)
      const exit = yield* executeThrough(engine)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(calls()).toBe(1)
    }))

  it("counts the storage's failures and a runner's going away as transient, nothing else", () => {
    const tagged = (_tag: string) => Cause.fail({ _tag })
    for (const tag of ["PersistenceError", "SqlError", "SocketError", "RunnerUnavailable"]) {
      expect(TransientRetry.isTransient(tagged(tag))).toBe(true)
    }
    for (const tag of ["MalformedMessage", "EntityNotAssignedToRunner", "ParseError"]) {
      expect(TransientRetry.isTransient(tagged(tag))).toBe(false)
    }
  })
})
