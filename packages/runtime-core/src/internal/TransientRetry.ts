/**
 * Retries the engine's storage writes that fail for a moment.
 *
 * When Postgres drops the app's connections (a failover, `pg_terminate_backend`,
 * a restart), the pool only learns that an idle connection is dead when a query
 * fails on it, so the first request after the loss fails with a
 * `PersistenceError`, surfacing as a 500 or a failed start. Starting a run,
 * completing a deferred, resuming and interrupting are idempotent (keyed by
 * execution id and deferred name), so they are simply tried again, with
 * backoff, for up to a minute; so are the engine's storage calls made from
 * inside running workflows (below).
 */
import { WorkflowEngine } from "@effect/workflow"
import { Cause, Effect, Layer } from "effect"
import * as Retry from "../Retry.js"

const tagOf = (cause: Cause.Cause<unknown>) => (Cause.squash(cause) as { _tag?: string } | undefined)?._tag

/**
 * Failures worth trying again: the storage's (`PersistenceError`, `SqlError`), and
 * another runner's going away while a message was sent to it (`SocketError` on the
 * runners' socket, `RunnerUnavailable`): during a rolling deploy a start routed to the
 * replica being stopped met `write EPIPE`; once the runner is gone its shards move.
 */
export const isTransient = (cause: Cause.Cause<unknown>): boolean => {
  const tag = tagOf(cause)
  return tag === "PersistenceError" || tag === "SqlError" || tag === "SocketError" || tag === "RunnerUnavailable"
}

export const retry = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Retry.retryingCause<E, unknown>({ schedule: Retry.storage, while: isTransient })(effect)

/**
 * Inside a running workflow the engine gives up on storage after about two
 * seconds (three quick retries, then a defect that fails the run). Its reads
 * and writes there are keyed (activity name, deferred name, clock name), so
 * they are retried as long as the storage itself is what failed; an
 * activity's own failure is returned as it is.
 */
const retryStorage = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Retry.retryingCause<E, unknown>({ schedule: Retry.storage, while: (c) => tagOf(c) === "PersistenceError" })(effect)

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
      interrupt: (workflow, executionId) => retry(engine.interrupt(workflow, executionId)),
      activityExecute: (activity, attempt) => retryStorage(engine.activityExecute(activity, attempt)),
      deferredResult: (deferred) => retryStorage(engine.deferredResult(deferred)),
      scheduleClock: (workflow, options) => retryStorage(engine.scheduleClock(workflow, options)),
      poll: (workflow, executionId) => retryStorage(engine.poll(workflow, executionId))
    }))
)
