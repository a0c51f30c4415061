/**
 * Workflow layers with their dependencies provided BEFORE registration.
 *
 * `Workflow.toLayer(handler)` leaves the activities' services as requirements
 * of the returned layer; providing them later is easy to get wrong, and a
 * workflow resumed by the engine then fails at run time with a missing
 * service. `WorkflowLayer.make` takes the dependencies up front and types the
 * handler against exactly what they provide, so a handler (or one of its
 * activities) that needs a service the dependencies do not provide is a
 * compile-time error at the call site.
 *
 * It also registers the workflow in the `WorkflowRegistry` and records each
 * execution in the `RunStore`, when the app provides them (the runs HTTP API
 * does); without them it is a plain pre-provided `toLayer`. Each execution
 * first writes (and so reads) its ledger status: a run an operator cancelled
 * ends at once, whatever made the engine run it again. The first execution of
 * a run this process started just now writes it beside its body instead: no
 * operator can have cancelled a run whose ledger row does not exist yet.
 */
import { Workflow, WorkflowEngine } from "@effect/workflow"
import type { DurableDeferred } from "@effect/workflow"
import { Cause, Context, Effect, Exit, Fiber, Layer, Metric, Option, Schema } from "effect"
import type { Scope } from "effect"
import * as InlineActivities from "./internal/InlineActivities.js"
import { RunOutcomes } from "./internal/RunOutcomes.js"
import { type Outcome, RunStore } from "./internal/RunStore.js"
import { WorkflowRegistry } from "./internal/WorkflowRegistry.js"
import * as Retry from "./Retry.js"
import { defectMessage } from "./RuntimeError.js"
import { Metrics } from "./Telemetry.js"
import { WorkflowRuntime } from "./WorkflowRuntime.js"

/** What the engine itself provides to a running workflow. */
export type EngineProvided<Name extends string> =
  | WorkflowEngine.WorkflowEngine
  | WorkflowEngine.WorkflowInstance
  | Workflow.Execution<Name>
  | Scope.Scope

const encodeJson = (schema: Schema.Schema.All, value: unknown): Effect.Effect<unknown> =>
  Schema.encodeUnknown(schema as Schema.Schema<unknown, unknown, never>)(value).pipe(
    Effect.orElseSucceed(() => String(value))
  )

/** Wraps a handler so that the run's status lands in the RunStore (when there is one). */
const tracked = <A, E, R>(
  workflow: Workflow.Any,
  payload: unknown,
  executionId: string,
  run: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.all([Effect.serviceOption(RunStore), Effect.serviceOption(RunOutcomes)]), ([store, outcomes]) => {
    if (Option.isNone(store)) return run
    const runs = store.value
    // On the durable engine the final status commits with the run's reply (`RunOutcomes`):
    // one commit for both, and they cannot disagree. Otherwise it is written here.
    const finishedStatement = runs.finishedStatement
    const requestId = Option.isSome(outcomes) && finishedStatement !== undefined
      ? outcomes.value.take(workflow.name, executionId)
      : undefined
    const finished = (outcome: Outcome) =>
      requestId !== undefined && Option.isSome(outcomes) && finishedStatement !== undefined
        ? Effect.sync(() => outcomes.value.file(requestId, finishedStatement(workflow.name, executionId, outcome)))
        : runs.finished(workflow.name, executionId, outcome)
    // The ledger must not miss a transition because a connection broke at that moment:
    // retry for a while (writes are idempotent upserts), then give up loudly, never failing the run.
    const record = <X>(write: Effect.Effect<X, unknown>) =>
      write.pipe(
        Retry.retrying({ schedule: Retry.ledger }),
        Effect.catchAllCause((cause) => Effect.logWarning("Could not record workflow run status", cause))
      )
    // A cancelled run ends at once whenever the engine runs it again (a replay after a signal,
    // a clock, a resume, a restart): marked interrupted, the engine stores it as complete
    // (interrupted) and never resumes it again.
    const unlessCancelled = Effect.flatMap(
      runs.status(workflow.name, executionId).pipe(Retry.retrying({ schedule: Retry.ledger }), Effect.orElseSucceed(() => Option.none())),
      (status) =>
        Option.contains(status, "cancelled")
          ? Effect.flatMap(Effect.serviceOption(WorkflowEngine.WorkflowInstance), (instance) => {
            if (Option.isSome(instance)) {
              instance.value.interrupted = true
              instance.value.suspended = false
            }
            return Effect.interrupt
          })
          : run
    )
    // what this execution waited for and did not get (signals, clocks): recorded with `suspended`,
    // so that operators and upgrade checks know what a suspended run awaits (the engine keeps no record)
    const awaiting = new Set<string>()
    const watched = Effect.flatMap(WorkflowEngine.WorkflowEngine, (engine) =>
      Effect.provideService(
        run,
        WorkflowEngine.WorkflowEngine,
        WorkflowEngine.WorkflowEngine.of({
          ...engine,
          deferredResult: (deferred) =>
            Effect.tap(engine.deferredResult(deferred), (exit) =>
              Effect.sync(() => {
                if (deferred.name === "Workflow/InterruptSignal") return
                if (exit === undefined) awaiting.add(deferred.name)
                else awaiting.delete(deferred.name)
              }))
        })
      )) as Effect.Effect<A, E, R>
    const writeRunning = record(Effect.flatMap(encodeJson(workflow.payloadSchema, payload), (p) =>
      runs.running(workflow.name, executionId, p)))
    const afterwards = (exit: Exit.Exit<A, E>) =>
      Exit.match(exit, {
        onSuccess: (value) =>
          record(Effect.flatMap(encodeJson(workflow.successSchema, value), (result) =>
            finished({ status: "succeeded", result }))),
        onFailure: (cause) =>
          Effect.flatMap(Effect.serviceOption(WorkflowEngine.WorkflowInstance), (instance) => {
            if (Cause.isInterruptedOnly(cause)) {
              // suspended (sleep, deferred) or shut down: it will resume later
              return Option.isSome(instance) && instance.value.suspended
                ? record(runs.suspended(workflow.name, executionId, [...awaiting]))
                : Effect.void
            }
            // a workflow annotated SuspendOnFailure is suspended by the engine when it fails:
            // an operator fixes the cause and resumes it (POST .../resume)
            if (Context.get(workflow.annotations, Workflow.SuspendOnFailure)) {
              return record(runs.suspended(workflow.name, executionId))
            }
            const error = Option.match(Cause.failureOption(cause), {
              // no stack in the record: it is served by the runs API (the log has the cause, `observed`)
              onNone: () => Effect.succeed({ defect: defectMessage(cause) }),
              onSome: (e) => encodeJson(workflow.errorSchema, e)
            })
            return record(Effect.flatMap(error, (e) =>
              finished({ status: "failed", error: e })))
          })
      })
    return Effect.flatMap(Effect.serviceOption(WorkflowEngine.WorkflowInstance), (instance) => {
      // The first execution of a run this process started just now: only its start message
      // exists, so no operator can have cancelled or finished it, and its body does not wait
      // for the running write (one round trip less before its first step). The writes after
      // the body (suspended, the outcome) wait for it, so they land after it. The write
      // yields once first: the body's first statement goes ahead of it and the two are in
      // flight together, where the write's own client work would delay the step. It is not
      // interruptible: a body that suspends at once ends this execution by interruption, which
      // interrupted the write too while it waited for its turn in the grouped statement; the
      // `suspended` update after it then found no row, and the run had none in the ledger.
      if (Option.isSome(instance) && InlineActivities.isFirstExecution(instance.value)) {
        return Effect.flatMap(Effect.fork(Effect.uninterruptible(Effect.zipRight(Effect.yieldNow(), writeRunning))), (running) =>
          Effect.onExit(watched, (exit) => Effect.zipRight(Fiber.await(running), afterwards(exit))))
      }
      // the running write says whether the run is running now; only when it is not (finished or
      // cancelled already) is the status read, so a plain execution costs no extra round trip
      return Effect.flatMap(writeRunning, (running) => Effect.onExit(running === true ? watched : unlessCancelled, afterwards))
    })
  })

/** A workflow's run metrics, tagged once (a tagged metric is a new key each time it is made). */
const runMetrics = new Map<string, ReturnType<typeof tagRunMetrics>>()
const tagRunMetrics = (workflow: string) => {
  const tagged = <T extends Metric.Metric<any, any, any>>(metric: T): T => Metric.tagged(metric, "workflow", workflow) as T
  return {
    started: tagged(Metrics.runsStarted),
    inFlight: tagged(Metrics.runsInFlight),
    succeeded: tagged(Metrics.runsSucceeded),
    failed: tagged(Metrics.runsFailed)
  }
}
const metricsOf = (workflow: string) => {
  let metrics = runMetrics.get(workflow)
  if (metrics === undefined) {
    metrics = tagRunMetrics(workflow)
    runMetrics.set(workflow, metrics)
  }
  return metrics
}

/**
 * Wraps an execution in what an operator watches: a `workflow.run <name>` span
 * (its parent is the engine's span for the message that started or resumed the
 * run, so every execution of a run is in the trace of its start), the log
 * annotations `app`, `workflow` and `executionId` on every line it writes, the
 * run metrics (`Telemetry.Metrics`), and one log line at its end when it failed
 * (with the cause; retried activities log nothing per attempt). Suspensions and
 * shutdowns (interruptions) are not endings.
 */
const observed = <A, E, R>(
  workflow: Workflow.Any,
  executionId: string,
  run: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(WorkflowRuntime), (runtime) => {
    const app = Option.map(runtime, (r) => r.prefix as string)
    const annotations: Record<string, string> = {
      ...(Option.isSome(app) ? { app: app.value } : {}),
      workflow: workflow.name,
      executionId
    }
    const metrics = metricsOf(workflow.name)
    return Metric.increment(metrics.started).pipe(
      Effect.zipRight(Metric.increment(metrics.inFlight)),
      Effect.zipRight(Effect.onExit(run, (exit) =>
        Metric.incrementBy(metrics.inFlight, -1).pipe(Effect.zipRight(Exit.match(exit, {
          onSuccess: () => Metric.increment(metrics.succeeded),
          onFailure: (cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.void
              : Context.get(workflow.annotations, Workflow.SuspendOnFailure)
              ? Effect.logWarning("Run failed and is suspended until an operator resumes it", cause)
              : Metric.increment(metrics.failed).pipe(
                Effect.zipRight(Effect.logError(`Run failed`, cause))
              )
        }))))),
      Effect.annotateLogs(annotations),
      Effect.withSpan(`workflow.run ${workflow.name}`, {
        kind: "internal",
        captureStackTrace: false,
        attributes: { "workflow.name": workflow.name, "workflow.execution_id": executionId, ...(Option.isSome(app) ? { "duraflow.app": app.value } : {}) }
      })
    )
  })

export const make = <
  Name extends string,
  Payload extends Workflow.AnyStructSchema,
  Success extends Schema.Schema.Any,
  Error extends Schema.Schema.All,
  ROut,
  E,
  RIn
>(
  workflow: Workflow.Workflow<Name, Payload, Success, Error>,
  options: {
    /** Everything the handler and its activities need. */
    readonly dependencies: Layer.Layer<ROut, E, RIn>
    /**
     * Deferreds of this workflow that outsiders may complete through
     * `POST /runs/{workflow}/{executionId}/signals/{name}`.
     */
    readonly signals?: ReadonlyArray<DurableDeferred.Any> | undefined
    /** May only require what `dependencies` provides (checked by the compiler). */
    readonly execute: (
      payload: Payload["Type"],
      executionId: string
    ) => Effect.Effect<Success["Type"], Error["Type"], NoInfer<ROut> | EngineProvided<Name>>
  }
): Layer.Layer<
  never,
  E,
  WorkflowEngine.WorkflowEngine | RIn | Payload["Context"] | Success["Context"] | Error["Context"]
> => {
  const registered = workflow.toLayer((payload, executionId) =>
    observed(
      workflow as Workflow.Any,
      executionId,
      tracked(workflow as Workflow.Any, payload, executionId, options.execute(payload, executionId))
    )
  ) as Layer.Layer<
    never,
    never,
    WorkflowEngine.WorkflowEngine | ROut | Payload["Context"] | Success["Context"] | Error["Context"]
  >
  const registry = Layer.effectDiscard(
    Effect.flatMap(Effect.serviceOption(WorkflowRegistry), (r) =>
      Option.isSome(r) ? r.value.register(workflow as Workflow.Any, options.signals) : Effect.void)
  )
  return Layer.merge(Layer.provide(registered, options.dependencies), registry) as Layer.Layer<
    never,
    E,
    WorkflowEngine.WorkflowEngine | RIn | Payload["Context"] | Success["Context"] | Error["Context"]
  >
}
