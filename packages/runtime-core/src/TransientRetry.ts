/**
 * Retries the engine's storage writes that fail for a moment.
 *
 * When Postgres drops the app's connections (a failover, `pg_terminate_backend`,
 * a restart), the pool only learns that an idle connection is dead when a query
 * fails on it, so the first request after the loss fails with a
 * `PersistenceError`, surfacing as a 500 or a failed start. Starting a run,
 * completing a deferred, resuming and interrupting are idempotent (keyed by
 * execution id and deferred name), so they are simply tried again, with
 * backoff, for a few seconds.
 */
import { WorkflowEngine } from "@effect/workflow"
import { Cause, Effect, Layer, Schedule } from "effect"

const isTransient = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause) as { _tag?: string } | undefined
  return error?._tag === "PersistenceError" || error?._tag === "SqlError"
}

const schedule = Schedule.exponential("100 millis", 2).pipe(Schedule.upTo("10 seconds"))

export const retry = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(Effect.sandbox, Effect.retry({ schedule, while: isTransient }), Effect.unsandbox)

/** The engine below, with its idempotent storage writes retried. */
export const layer: Layer.Layer<WorkflowEngine.WorkflowEngine, never, WorkflowEngine.WorkflowEngine> = Layer.effect(
  WorkflowEngine.WorkflowEngine,
  Effect.map(WorkflowEngine.WorkflowEngine, (engine) =>
    WorkflowEngine.WorkflowEngine.of({
      ...engine,
      // a retried execute re-sends the same request (deduplicated by execution id) and
      // waits for the same run; it never starts a second one
      execute: (workflow, options) => retry(engine.execute(workflow, options)),
      deferredDone: (deferred, options) => retry(engine.deferredDone(deferred, options)),
      resume: (workflow, executionId) => retry(engine.resume(workflow, executionId)),
      interrupt: (workflow, executionId) => retry(engine.interrupt(workflow, executionId))
    }))
)
