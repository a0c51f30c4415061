/**
 * A completed `DurableDeferred` wakes the run that awaits it, even while that
 * run is still active (a signal wins a race it arrives first in).
 *
 * `DurableDeferred.await` on a deferred that is not done suspends only its own
 * fiber. In `Effect.race` or `DurableDeferred.raceAll` the run stays active
 * while another branch (a timeout, an activity) goes on, and @effect/workflow
 * 0.19 never wakes it when the deferred completes (Effect-TS/effect#7176, fixed
 * in Effect 4 only): the memory engine's resume ignores a run that is still
 * active, and the cluster engine hands the completion to the workflow's entity
 * only after the run's handler has returned. So the other branch always won.
 *
 * As in the upstream fix, replay is the wake. This wrapper tracks the runs
 * active in this process and the deferreds each has awaited. Completing one of
 * those marks the run suspended and interrupts it; the engine then runs it
 * again, and the replayed await finds the completion and wins the race:
 *
 * - cluster: the completion's message waits on the workflow's entity (one
 *   request at a time) until the interrupted run's Suspended reply is stored,
 *   then resumes the run, and is answered before the replay starts;
 * - memory: the completion found the run active and resumed nothing, so the
 *   wrapper resumes the run once the interrupted one has settled.
 *
 * A completion that lands while the run is active but has not awaited it yet
 * is kept for that execution and read by the await: the cluster engine answers
 * it only after the run, so the run could not read it from storage.
 *
 * On the cluster engine the completion's message resumes the preempted run.
 * Now and then the run's request was not delivered again after that resume:
 * a storage read in flight returned it while the runner still counted it as
 * processed (fixed by the @effect/cluster patch, `Sharding.reset`; see
 * ARCHITECTURE section 8). As a guard for a resume that finds the run not yet
 * suspended, the wrapper watches each run it preempts: while no replay has
 * started and the run's stored reply is still Suspended, it resumes the run
 * again, once a second, for at most 30 s.
 *
 * Completions made through this process's engine wake an active run here;
 * those made by another process of the app reach it through `WakeUps`, which
 * calls `completedElsewhere`. Completions from within the run itself
 * (`raceAll` recording its winner, an activity) never preempt it.
 */
import { WorkflowEngine } from "@effect/workflow"
import type { Workflow } from "@effect/workflow"
import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import { defectMessage } from "../RuntimeError.js"
import { makeStepLog, StepLog } from "./RunSteps.js"

/** Wakes active runs for completions this process's engine did not see. */
export class DeferredWake extends Context.Tag("@duraflow/runtime-core/DeferredWake")<DeferredWake, {
  /**
   * Another process completed `deferredName` of this execution (its message is
   * already stored): preempt the run if it is active here and awaits it.
   */
  readonly completedElsewhere: (workflowName: string, executionId: string, deferredName: string) => Effect.Effect<void>
  /**
   * The run was cancelled (by this process or another): if it is active here, its fiber is
   * interrupted as the engine's own interruption does it (the run is stored complete,
   * interrupted, and not resumed). Does not wait for the run to unwind.
   */
  readonly cancelled: (workflowName: string, executionId: string) => Effect.Effect<void>
}>() {}

type Instance = WorkflowEngine.WorkflowInstance["Type"]

interface ActiveRun {
  readonly workflow: Workflow.Workflow<string, Workflow.AnyStructSchema, Schema.Schema.Any, Schema.Schema.All>
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  readonly instance: Instance
  /** The run's own instances: its root and the copies `DurableDeferred.into` (raceAll) gives its branches. */
  readonly instances: Set<Instance>
  /** Deferreds the run has read (awaited); completing one of them from outside preempts it. */
  readonly awaited: Set<string>
  /** Deferreds the run has read a result of: nothing to wake for. */
  readonly resolved: Set<string>
  preempted: Map<Instance, boolean> | undefined
}

const keyOf = (workflowName: string, executionId: string) => `${workflowName}\u0000${executionId}`

/** A value as JSON for the step log, through its schema when it has one. */
const encoded = (schema: Schema.Schema.All, value: unknown): unknown =>
  Option.getOrElse(
    Schema.encodeUnknownOption(schema as Schema.Schema<unknown, unknown>)(value),
    () => String(value)
  )

const make = (options: { readonly resumeAfterPreempt: boolean; readonly log?: StepLog["Type"] | undefined }) =>
  Effect.gen(function*() {
    const engine = yield* WorkflowEngine.WorkflowEngine
    const log = options.log
    const active = new Map<string, ActiveRun>()
    // encoded exits of completions that reached an active run, per execution; kept while
    // its runs suspend (the replay may read them), dropped once a run of it ends otherwise
    const pending = new Map<string, Map<string, unknown>>()
    // runs started per execution, counted only for executions a watcher waits on to be replayed
    const starts = new Map<string, number>()
    const scope = yield* Effect.scope

    /** The active run `instance` belongs to: its root or a raceAll branch, not an activity's own instance. */
    const runOf = (instance: Instance) => {
      const run = active.get(keyOf(instance.workflow.name, instance.executionId))
      return run && run.instance.activityState === instance.activityState ? run : undefined
    }

    const track = <A, E, R>(
      workflow: ActiveRun["workflow"],
      outer: WorkflowEngine.WorkflowEngine["Type"],
      body: Effect.Effect<A, E, R>
    ) =>
      Effect.withFiberRuntime<A, E, R | WorkflowEngine.WorkflowInstance>((fiber) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) => {
          const key = keyOf(workflow.name, instance.executionId)
          const run: ActiveRun = {
            workflow,
            fiber: fiber as Fiber.RuntimeFiber<unknown, unknown>,
            instance,
            instances: new Set([instance]),
            awaited: new Set(),
            resolved: new Set(),
            preempted: undefined
          }
          active.set(key, run)
          const watched = starts.get(key)
          if (watched !== undefined) starts.set(key, watched + 1)
          return body.pipe(
            // the memory engine provides itself to the run: the run must use this wrapper
            Effect.provideService(WorkflowEngine.WorkflowEngine, outer),
            Effect.onExit((exit) =>
              Effect.sync(() => {
                if (active.get(key) === run) active.delete(key)
                // preempted too late: the run ended on its own, so it is not suspended after all
                if (run.preempted && !(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))) {
                  for (const [i, suspended] of run.preempted) i.suspended = suspended
                }
                if (!instance.suspended) pending.delete(key)
              })
            )
          )
        })
      )

    const preempt = (run: ActiveRun, executionId: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (run.preempted || run.fiber.unsafePoll()) return
        // every instance of the run is marked, so no raceAll branch records the interruption
        // as its result, and the engine stores the run as suspended
        run.preempted = new Map(Array.from(run.instances, (i) => [i, i.suspended]))
        for (const i of run.instances) i.suspended = true
        yield* Fiber.interrupt(run.fiber)
        if (!options.resumeAfterPreempt) return yield* Effect.forkIn(ensureReplayed(run, executionId), scope)
        // the interrupted run reports Suspended a few steps after its body ended
        for (let i = 0; i < 10_000; i++) {
          if ((yield* engine.poll(run.workflow, executionId)) !== undefined) break
          yield* Effect.yieldNow()
        }
        yield* engine.resume(run.workflow, executionId)
      }) as Effect.Effect<void> // the run's schemas are ones the engine already decoded with

    /** Resumes the preempted run again while it sits suspended and no replay of it has started. */
    const ensureReplayed = (run: ActiveRun, executionId: string): Effect.Effect<void> => {
      const key = keyOf(run.workflow.name, executionId)
      if (starts.has(key)) return Effect.void // a watcher of this execution is already running
      starts.set(key, 0)
      const replayed = () => (starts.get(key) ?? 0) > 0
      return Effect.gen(function*() {
        for (let i = 0; i < 30 && !replayed(); i++) {
          yield* Effect.sleep("1 second")
          if (replayed()) return
          const result = yield* engine.poll(run.workflow, executionId)
          if (result === undefined) continue // not stored yet, or cleared by a resume on its way
          if (result._tag === "Complete") return
          yield* Effect.logInfo("preempted run not replayed yet: resuming it again").pipe(
            Effect.annotateLogs({ workflow: run.workflow.name, executionId })
          )
          yield* engine.resume(run.workflow, executionId)
        }
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("could not check that a preempted run resumed", cause)),
        Effect.ensuring(Effect.sync(() => starts.delete(key)))
      ) as Effect.Effect<void>
    }

    const cancelActive = (workflowName: string, executionId: string) =>
      Effect.suspend(() => {
        const run = active.get(keyOf(workflowName, executionId))
        if (!run || run.fiber.unsafePoll()) return Effect.void
        run.preempted = undefined
        for (const i of run.instances) {
          i.interrupted = true
          i.suspended = false
        }
        return Effect.asVoid(Fiber.interruptFork(run.fiber))
      })

    const wakes = (run: ActiveRun, deferredName: string) =>
      run.awaited.has(deferredName) && !run.resolved.has(deferredName)

    const wrapped = WorkflowEngine.WorkflowEngine.of({
      ...engine,
      register: (workflow, execute) =>
        Effect.flatMap(WorkflowEngine.WorkflowEngine, (outer) =>
          engine.register(workflow, (payload, executionId) =>
            track(workflow as unknown as ActiveRun["workflow"], outer, execute(payload, executionId)))),

      deferredResult: (deferred) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) => {
          const run = runOf(instance)
          if (!run) return engine.deferredResult(deferred)
          // registered before the read: a completion landing during it preempts the run
          run.instances.add(instance)
          run.awaited.add(deferred.name)
          const key = keyOf(instance.workflow.name, instance.executionId)
          const early = pending.get(key)?.get(deferred.name)
          const read = early === undefined
            ? engine.deferredResult(deferred)
            : Effect.orDie(Schema.decodeUnknown(deferred.exitSchema)(early)) as Effect.Effect<Exit.Exit<any, any>>
          return Effect.tap(read, (exit) => {
            if (exit !== undefined) run.resolved.add(deferred.name)
            // a clock the memory engine completed itself is seen here, when the replay reads it
            log?.signal(instance.workflow.name, instance.executionId, deferred.name, {
              awaited: true,
              ...(exit === undefined ? {} : { received: {} })
            })
          })
        }),

      ...(log === undefined ? {} : {
        // a run starting a child: the caller's instance is in context
        execute: (workflow, options) =>
          Effect.flatMap(Effect.serviceOption(WorkflowEngine.WorkflowInstance), (caller) => {
            if (Option.isSome(caller) && caller.value.executionId !== options.executionId) {
              log.child(caller.value.workflow.name, caller.value.executionId, workflow.name, options.executionId)
            }
            return engine.execute(workflow, options)
          }),
        scheduleClock: (workflow, options) =>
          Effect.zipLeft(
            engine.scheduleClock(workflow, options),
            Effect.sync(() =>
              log.sleep(
                workflow.name,
                options.executionId,
                options.clock.name,
                new Date(Date.now() + Duration.toMillis(options.clock.duration))
              )
            )
          )
      }),

      interrupt: (workflow, executionId) =>
        Effect.zipRight(cancelActive(workflow.name, executionId), engine.interrupt(workflow, executionId)),

      activityExecute: (activity, attempt) =>
        Effect.flatMap(WorkflowEngine.WorkflowInstance, (instance) => {
          runOf(instance)?.instances.add(instance)
          if (log === undefined) return engine.activityExecute(activity, attempt)
          const [workflowName, executionId] = [instance.workflow.name, instance.executionId]
          log.activityStarted(workflowName, executionId, activity.name, attempt)
          return Effect.tap(engine.activityExecute(activity, attempt), (result) =>
            Effect.sync(() =>
              log.activityEnded(
                workflowName,
                executionId,
                activity.name,
                attempt,
                result._tag === "Suspended"
                  ? { outcome: "suspended" }
                  : Exit.match(result.exit, {
                    onSuccess: (value) => ({ outcome: "succeeded", result: encoded(activity.successSchema, value) }),
                    onFailure: (cause) =>
                      Option.match(Cause.failureOption(cause), {
                        onNone: () => ({ outcome: "failed", error: { defect: defectMessage(cause) } }),
                        onSome: (e) => ({ outcome: "failed", error: encoded(activity.errorSchema, e) })
                      })
                  })
              )
            ))
        }),

      deferredDone: (deferred, done) =>
        Effect.flatMap(Effect.serviceOption(WorkflowEngine.WorkflowInstance), (caller) => {
          const key = keyOf(done.workflowName, done.executionId)
          const inside = Option.isSome(caller) && caller.value.executionId === done.executionId
          log?.signal(done.workflowName, done.executionId, done.deferredName, {
            received: Exit.match(done.exit as Exit.Exit<unknown, unknown>, {
              onSuccess: (value) => ({ value: encoded(deferred.successSchema, value) }),
              onFailure: (cause) => ({ error: encoded(deferred.errorSchema, Cause.squash(cause)) })
            })
          })
          return Effect.zipRight(
            engine.deferredDone(deferred, done),
            Effect.suspend(() => {
              const run = active.get(key)
              if (!run || inside) return Effect.void
              return Effect.flatMap(
                Effect.option(Schema.encode(deferred.exitSchema)(done.exit) as Effect.Effect<unknown, unknown>),
                (encoded) => {
                  if (Option.isSome(encoded)) {
                    const byName = pending.get(key) ?? new Map<string, unknown>()
                    pending.set(key, byName.set(done.deferredName, encoded.value))
                  }
                  return wakes(run, done.deferredName) ? preempt(run, done.executionId) : Effect.void
                }
              )
            })
          )
        })
    })

    const service = DeferredWake.of({
      completedElsewhere: (workflowName, executionId, deferredName) =>
        Effect.suspend(() => {
          const run = active.get(keyOf(workflowName, executionId))
          // no value to keep: the replay reads it from storage, where the cluster
          // engine has answered the completion before it replays the run
          return run && wakes(run, deferredName) ? preempt(run, executionId) : Effect.void
        }),
      cancelled: cancelActive
    })
    return Context.make(WorkflowEngine.WorkflowEngine, wrapped).pipe(Context.add(DeferredWake, service))
  })

/** Wraps `ClusterWorkflowEngine`: the completion's own message resumes the preempted run. */
export const layer: Layer.Layer<WorkflowEngine.WorkflowEngine | DeferredWake, never, WorkflowEngine.WorkflowEngine> =
  Layer.scopedContext(make({ resumeAfterPreempt: false }))

/** Wraps `WorkflowEngine.layerMemory`: the wrapper resumes the preempted run itself. */
export const layerMemory: Layer.Layer<
  WorkflowEngine.WorkflowEngine | DeferredWake | StepLog,
  never,
  WorkflowEngine.WorkflowEngine
> = Layer.scopedContext(Effect.gen(function*() {
  // the memory engine keeps its state private: its runs' steps are recorded here (RunSteps)
  const log = makeStepLog()
  const context = yield* make({ resumeAfterPreempt: true, log })
  return Context.add(context, StepLog, log)
}))
