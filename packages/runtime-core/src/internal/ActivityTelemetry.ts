/**
 * What each activity attempt shows an operator: an `activity.attempt <name>`
 * span with `activity.attempt` and `activity.outcome` (success, failure,
 * defect, suspended), and its duration in `duraflow.activity.duration`
 * (`Telemetry.Metrics`). The durable engine wraps only attempts whose body
 * runs (`InlineActivities`: a replayed step, answered from its record, has
 * none); the memory engine is wrapped here (`layerMemory`).
 */
import { Workflow, WorkflowEngine } from "@effect/workflow"
import { Cause, Effect, Exit, Layer, Metric, Option } from "effect"
import { Metrics } from "../Telemetry.js"

/** How an attempt ended, as its span and the duration metric say. */
const outcomeOf = (result: Workflow.Result<unknown, unknown>): "success" | "failure" | "defect" | "suspended" =>
  result._tag === "Suspended"
    ? "suspended"
    : Exit.isSuccess(result.exit)
    ? "success"
    : Option.isSome(Cause.failureOption(result.exit.cause))
    ? "failure"
    : "defect"

/**
 * The duration histogram per (workflow, activity, outcome), made once: a tagged
 * metric is a new key each time it is made, hashed again on every update.
 */
const durations = new Map<string, Metric.Metric.Histogram<number>>()
const durationOf = (workflow: string, activity: string, outcome: string): Metric.Metric.Histogram<number> => {
  const key = `${workflow}\u0000${activity}\u0000${outcome}`
  let metric = durations.get(key)
  if (metric === undefined) {
    metric = Metrics.activityDuration.pipe(
      Metric.tagged("workflow", workflow),
      Metric.tagged("activity", activity),
      Metric.tagged("outcome", outcome)
    )
    durations.set(key, metric)
  }
  return metric
}

/**
 * One `activity.attempt <name>` span per attempt whose body runs (a replayed
 * step, answered from its record, has none), with `activity.outcome`, and the
 * attempt's duration in `duraflow.activity.duration`.
 */
export const observeAttempt = (workflow: string, executionId: string, activity: string, attempt: number) =>
<E, R>(self: Effect.Effect<Workflow.Result<unknown, unknown>, E, R>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const result = yield* self
    const outcome = outcomeOf(result)
    yield* Effect.annotateCurrentSpan("activity.outcome", outcome)
    yield* Metric.update(durationOf(workflow, activity, outcome), Date.now() - started)
    return result
  }).pipe(Effect.withSpan(`activity.attempt ${activity}`, {
    kind: "internal",
    captureStackTrace: false,
    attributes: {
      "workflow.name": workflow,
      "workflow.execution_id": executionId,
      "activity.name": activity,
      "activity.attempt": attempt
    }
  }))

/** Wraps the engine in context (the memory engine): every activity attempt is observed. */
export const layerMemory: Layer.Layer<WorkflowEngine.WorkflowEngine, never, WorkflowEngine.WorkflowEngine> = Layer.effect(
  WorkflowEngine.WorkflowEngine,
  Effect.map(WorkflowEngine.WorkflowEngine, (engine) =>
    WorkflowEngine.WorkflowEngine.of({
      ...engine,
      activityExecute: (activity, attempt) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) =>
          engine.activityExecute(activity, attempt).pipe(
            observeAttempt(instance.workflow.name, instance.executionId, activity.name, attempt)
          ))
    }))
)
