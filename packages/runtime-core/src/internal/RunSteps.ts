/**
 * A run's steps (`GET /runs/{workflow}/{executionId}/steps`): its activities
 * with every attempt, its durable sleeps, the signals it received and the
 * child runs it started.
 *
 * - Durable engine: activities from `<prefix>_activity_exits`, one row per
 *   finished attempt with its start, end and exit (`InlineActivities`; an
 *   `activity` request to the run's entity, as a build before it stored one,
 *   is read too); the rest from the engine's own storage, the
 *   `<prefix>_cluster_messages` and `_replies` tables `SqlMessageStorage`
 *   writes: a durable sleep is a request
 *   to the `Workflow/-/DurableClock` entity with its wake-up time (answered
 *   when it fired); a signal is a `deferred` request (`{name, exit}`); a child
 *   run is a `run` request whose payload names this run as its parent. Times
 *   are those of the message and reply ids (snowflakes carry their creation
 *   time, to the millisecond). What the engine does not store is not shown:
 *   which signal a suspended run is waiting for (an await writes nothing).
 * - Memory engine: what this process saw, recorded by the engine wrapper
 *   (`StepLog`): the same kinds of steps, plus the signals the run awaited;
 *   gone on restart, like the memory engine's runs.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option } from "effect"
import {
  ActivityAttempt,
  ActivityStep,
  ChildRunStep,
  RunSteps,
  SignalStep,
  SleepStep,
  type Step
} from "../RunsApi.js"
import * as TablePrefix from "../TablePrefix.js"
import { CLOCK_ENTITY, internalDeferred, PARENT_KEY, parse, workflowEntityType } from "./EngineStorage.js"

/** The cluster's snowflake epoch (`@effect/cluster/Snowflake`): ids carry their creation time. */
const SNOWFLAKE_EPOCH = Date.UTC(2025, 0, 1)
const timeOf = (id: string) => new Date(Number(BigInt(id) >> 22n) + SNOWFLAKE_EPOCH).toISOString()


/** An encoded `Workflow.Result` inside an encoded reply exit, as an attempt's outcome. */
const outcomeOf = (reply: any): Pick<ActivityAttempt, "outcome" | "result" | "error"> => {
  if (reply === undefined) return { outcome: "running" }
  if (reply._tag !== "Success") return { outcome: "failed", error: reply.cause }
  const result = reply.value
  if (result?._tag === "Suspended") return { outcome: "suspended" }
  const exit = result?.exit
  if (exit?._tag === "Success") return { outcome: "succeeded", result: exit.value }
  // an encoded Cause: a typed failure is { _tag: "Fail", error }
  const cause = exit?.cause
  return { outcome: "failed", error: cause?._tag === "Fail" ? cause.error : cause }
}

/** The steps with each activity's attempts (in order) at its first attempt's place. */
const resolve = (
  steps: ReadonlyArray<Step | { readonly activity: string }>,
  activities: ReadonlyMap<string, ReadonlyArray<ActivityAttempt>>
): Array<Step> =>
  steps.map((s) =>
    "activity" in s
      ? new ActivityStep({
        name: s.activity,
        attempts: [...(activities.get(s.activity) ?? [])].sort((a, b) => a.attempt - b.attempt)
      })
      : s
  )

interface MessageRow {
  readonly id: string
  readonly entity_type: string
  readonly tag: string | null
  readonly payload: string | null
  readonly reply_id: string | null
  readonly reply: string | null
}

/** Steps of a run of the durable engine, from the app's cluster tables. */
export const fromStorage = (
  prefix: TablePrefix.TablePrefix,
  workflow: string,
  executionId: string
): Effect.Effect<RunSteps, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const cluster = TablePrefix.clusterPrefix(prefix)
    const messages = sql(`${cluster}_messages`)
    const replies = sql(`${cluster}_replies`)
    const entity = workflowEntityType(workflow)
    const rows = yield* sql<MessageRow>`
      SELECT m.id::text AS id, m.entity_type, m.tag, m.payload, r.id::text AS reply_id, r.payload AS reply
      FROM ${messages} m LEFT JOIN ${replies} r ON r.request_id = m.id AND r.kind = 0
      WHERE m.kind = 0 AND (
        (m.entity_id = ${executionId} AND m.entity_type IN (${entity}, ${CLOCK_ENTITY}))
        OR (m.tag = 'run' AND m.entity_type LIKE 'Workflow/%' AND m.payload LIKE ${`%"${PARENT_KEY}"%${executionId}%`})
      )
      ORDER BY m.id`
    // an activity's place is its first attempt's; its attempts are filled in below
    const steps: Array<Step | { readonly activity: string }> = []
    // when each step happened, to merge the engine's messages with the recorded activity exits
    const times: Array<string> = []
    const activities = new Map<string, Array<ActivityAttempt>>()
    const push = (step: Step | { readonly activity: string }, at: string) => {
      steps.push(step)
      times.push(at)
    }
    for (const row of rows) {
      const payload = parse(row.payload)
      const reply = parse(row.reply)
      if (row.entity_type === CLOCK_ENTITY && payload?.workflowName === workflow) {
        push(
          new SleepStep({
            name: String(payload.name),
            scheduledAt: timeOf(row.id),
            wakeUpAt: new Date(Number(payload.wakeUp)).toISOString(),
            woken: row.reply_id !== null
          }),
          timeOf(row.id)
        )
      } else if (row.tag === "activity" && row.entity_type === entity) {
        const name = String(payload?.name)
        let attempts = activities.get(name)
        if (attempts === undefined) {
          attempts = []
          activities.set(name, attempts)
          push({ activity: name }, timeOf(row.id))
        }
        attempts.push(
          new ActivityAttempt({
            attempt: Number(payload?.attempt),
            startedAt: timeOf(row.id),
            ...(row.reply_id === null ? {} : { endedAt: timeOf(row.reply_id) }),
            ...outcomeOf(reply)
          })
        )
      } else if (row.tag === "deferred" && row.entity_type === entity && !internalDeferred(String(payload?.name))) {
        const exit = payload?.exit
        push(
          new SignalStep({
            name: String(payload?.name),
            received: true,
            receivedAt: timeOf(row.id),
            ...(exit?._tag === "Success" ? { value: exit.value } : { error: exit?.cause })
          }),
          timeOf(row.id)
        )
      } else if (row.tag === "run" && payload?.[PARENT_KEY]?.executionId === executionId) {
        push(
          new ChildRunStep({
            workflow: row.entity_type.slice("Workflow/".length),
            executionId: "",
            startedAt: timeOf(row.id)
          }),
          timeOf(row.id)
        )
      }
    }
    // activities run in the run's fiber (`InlineActivities`) and record one exit row per
    // finished attempt: an attempt in progress shows once it ends
    const exits = yield* sql<{ activity: string; attempt: number; exit: unknown; started_at: Date; finished_at: Date }>`
      SELECT activity, attempt, exit, started_at, finished_at FROM ${sql(TablePrefix.table(prefix, "activity_exits"))}
      WHERE execution_id = ${executionId} ORDER BY started_at, attempt`
    for (const row of exits) {
      let attempts = activities.get(row.activity)
      if (attempts === undefined) {
        attempts = []
        activities.set(row.activity, attempts)
        push({ activity: row.activity }, new Date(row.started_at).toISOString())
      }
      const exit = typeof row.exit === "string" ? parse(row.exit) : row.exit
      attempts.push(
        new ActivityAttempt({
          attempt: Number(row.attempt),
          startedAt: new Date(row.started_at).toISOString(),
          endedAt: new Date(row.finished_at).toISOString(),
          ...outcomeOf({ _tag: "Success", value: { _tag: "Complete", exit } })
        })
      )
    }
    // in the order they happened (a stable sort keeps the engine's order for equal times)
    const order = steps.map((_, i) => i).sort((a, b) => times[a]!.localeCompare(times[b]!))
    const ordered = order.map((i) => steps[i]!)
    steps.splice(0, steps.length, ...ordered)
    // the child's execution id is its entity id: read it for the child rows found above
    const children = steps.filter((s): s is ChildRunStep => "_tag" in s && s._tag === "ChildRun")
    if (children.length > 0) {
      const ids = yield* sql<{ entity_type: string; entity_id: string; id: string }>`
        SELECT entity_type, entity_id, id::text AS id FROM ${messages}
        WHERE kind = 0 AND tag = 'run' AND entity_type LIKE 'Workflow/%'
          AND payload LIKE ${`%"${PARENT_KEY}"%${executionId}%`} ORDER BY id`
      let i = 0
      for (let s = 0; s < steps.length; s++) {
        const step = steps[s]!
        if (!("_tag" in step) || step._tag !== "ChildRun") continue
        const child = ids[i++]
        if (child !== undefined) {
          steps[s] = new ChildRunStep({
            workflow: step.workflow,
            executionId: child.entity_id,
            startedAt: timeOf(child.id)
          })
        }
      }
    }
    return new RunSteps({ workflow, executionId, source: "engine-storage", steps: resolve(steps, activities) })
  })

// ---------------------------------------------------------------------------------------------------------------
// The memory engine's steps

interface Recorded {
  readonly steps: Array<Step | { readonly activity: string }>
  readonly activities: Map<string, Array<ActivityAttempt>>
  readonly signals: Map<string, SignalStep>
}

/** What the memory engine's runs did, as this process saw it (see the module comment). */
export class StepLog extends Context.Tag("@duraflow/runtime-core/StepLog")<StepLog, {
  readonly activityStarted: (workflow: string, executionId: string, name: string, attempt: number) => void
  readonly activityEnded: (
    workflow: string,
    executionId: string,
    name: string,
    attempt: number,
    outcome: Pick<ActivityAttempt, "outcome" | "result" | "error">
  ) => void
  readonly sleep: (workflow: string, executionId: string, name: string, wakeUpAt: Date) => void
  readonly signal: (
    workflow: string,
    executionId: string,
    name: string,
    change: { readonly awaited?: boolean; readonly received?: { readonly value?: unknown; readonly error?: unknown } }
  ) => void
  readonly child: (workflow: string, executionId: string, childWorkflow: string, childExecutionId: string) => void
  readonly read: (workflow: string, executionId: string) => Option.Option<RunSteps>
}>() {}

export const makeStepLog = () => {
  const runs = new Map<string, Recorded>()
  const now = () => new Date().toISOString()
  const of = (workflow: string, executionId: string) => {
    const key = `${workflow}\u0000${executionId}`
    let run = runs.get(key)
    if (run === undefined) {
      run = { steps: [], activities: new Map(), signals: new Map() }
      runs.set(key, run)
    }
    return run
  }
  return StepLog.of({
    activityStarted: (workflow, executionId, name, attempt) => {
      const run = of(workflow, executionId)
      let attempts = run.activities.get(name)
      if (attempts === undefined) {
        attempts = []
        run.activities.set(name, attempts)
        run.steps.push({ activity: name })
      }
      // a replay finds a finished attempt's result without running it again: nothing new
      if (attempts.some((a) => a.attempt === attempt && a.outcome !== "suspended")) return
      const i = attempts.findIndex((a) => a.attempt === attempt)
      const started = new ActivityAttempt({ attempt, startedAt: now(), outcome: "running" })
      if (i >= 0) attempts[i] = started
      else attempts.push(started)
    },
    activityEnded: (workflow, executionId, name, attempt, outcome) => {
      const attempts = of(workflow, executionId).activities.get(name)
      const i = attempts?.findIndex((a) => a.attempt === attempt && a.outcome === "running") ?? -1
      if (attempts === undefined || i < 0) return
      attempts[i] = new ActivityAttempt({ ...attempts[i]!, endedAt: now(), ...outcome })
    },
    sleep: (workflow, executionId, name, wakeUpAt) => {
      const run = of(workflow, executionId)
      if (run.steps.some((s) => "_tag" in s && s._tag === "Sleep" && s.name === name)) return
      run.steps.push(new SleepStep({ name, scheduledAt: now(), wakeUpAt: wakeUpAt.toISOString(), woken: false }))
    },
    signal: (workflow, executionId, name, change) => {
      const run = of(workflow, executionId)
      if (name.startsWith("DurableClock/")) {
        const sleep = name.slice("DurableClock/".length)
        if (change.received === undefined) return
        const i = run.steps.findIndex((s) => "_tag" in s && s._tag === "Sleep" && s.name === sleep)
        if (i >= 0) run.steps[i] = new SleepStep({ ...(run.steps[i] as SleepStep), woken: true })
        return
      }
      if (internalDeferred(name)) return
      const previous = run.signals.get(name)
      const next = new SignalStep({
        name,
        awaited: (previous?.awaited ?? false) || change.awaited === true,
        received: (previous?.received ?? false) || change.received !== undefined,
        ...(previous?.receivedAt === undefined ? {} : { receivedAt: previous.receivedAt }),
        ...(previous?.value === undefined ? {} : { value: previous.value }),
        ...(previous?.error === undefined ? {} : { error: previous.error }),
        ...(change.received === undefined || previous?.received
          ? {}
          : { receivedAt: now(), ...change.received })
      })
      run.signals.set(name, next)
      const i = run.steps.findIndex((s) => "_tag" in s && s._tag === "Signal" && s.name === name)
      if (i >= 0) run.steps[i] = next
      else run.steps.push(next)
    },
    child: (workflow, executionId, childWorkflow, childExecutionId) => {
      const run = of(workflow, executionId)
      // a replay starts its children again (idempotently): listed once
      if (run.steps.some((s) => "_tag" in s && s._tag === "ChildRun" && s.executionId === childExecutionId)) return
      run.steps.push(new ChildRunStep({ workflow: childWorkflow, executionId: childExecutionId, startedAt: now() }))
    },
    read: (workflow, executionId) =>
      Option.map(
        Option.fromNullable(runs.get(`${workflow}\u0000${executionId}`)),
        (run) =>
          new RunSteps({ workflow, executionId, source: "process-memory", steps: resolve(run.steps, run.activities) })
      )
  })
}

export const layerStepLog: Layer.Layer<StepLog> = Layer.sync(StepLog, makeStepLog)
