/**
 * The HTTP surface every app serves, as `@effect/platform` HttpApi groups, so
 * that each domain's API (and the clients derived from it) includes them:
 *
 * - `GET  /health`                          mode, prefix, database reachable (liveness)
 * - `GET  /ready`                           a working member of its app's cluster (readiness)
 * - `POST /runs/{workflow}`                 start a run: 202 {executionId}, idempotent
 * - `GET  /runs/{workflow}/{executionId}`   status with result or error
 * - `GET  /runs?workflow=&status=&limit=`   recent runs, newest first
 * - `POST /runs/{workflow}/{executionId}/signals/{name}`  complete a deferred the
 *   workflow declared as a signal, with the JSON body as its value
 * - `POST /runs/{workflow}/{executionId}/cancel`   cancel a running or suspended run (a cancelled
 *   one: idempotent, its interrupt is sent again)
 * - `POST /runs/{workflow}/{executionId}/resume`   resume a suspended run now
 * - `POST /runs/{workflow}/{executionId}/retry`    a failed or cancelled run again, as a new linked run
 * - `GET  /runs/{workflow}/{executionId}/steps`    its activities, sleeps, signals and child runs
 *
 * Operator routes (cancel, resume, retry and signals) answer 401 without
 * `Authorization: Bearer <token>` when the app has an operator token
 * (`DURAFLOW_OPERATOR_TOKEN`); an action that does not apply to the run's
 * status (cancelling a succeeded or failed run, signalling a finished one) is a 409 `RunConflict`
 * with the reason.
 *
 * The start, status and signal routes are typed per workflow (`workflowsGroup`,
 * as @effect/workflow's `WorkflowProxy.toHttpApiGroup` does): one endpoint per
 * workflow with its own payload, success, error and signal schemas, so the
 * OpenAPI document says what each workflow takes and a client built from the
 * API checks payloads at compile time. `make` assembles an app's API from its
 * workflows. A body that does not match the workflow's payload schema is a 400
 * with the schema's issues; an unknown workflow a 404; a database that is down
 * a 503; the answers every route may give (`RequestGuard`) are declared on the
 * whole API.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Context, Schema } from "effect"
import * as Readiness from "./internal/Readiness.js"
import * as RequestGuard from "./RequestGuard.js"
import { InvalidCursor, Run, RunStatus } from "./internal/RunStore.js"

export { InvalidCursor, Run, RunStatus }

/**
 * One problem with a payload. Named `PayloadIssue`: a schema named `Issue`
 * would share its OpenAPI component with @effect/platform's own `Issue` (which
 * has a `_tag`), and the published 400 schema would not match the body sent.
 */
export class PayloadIssue extends Schema.Class<PayloadIssue>("PayloadIssue")({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
}) {}

export class MalformedPayload extends Schema.TaggedError<MalformedPayload>()("MalformedPayload", {
  workflow: Schema.String,
  message: Schema.String,
  issues: Schema.Array(PayloadIssue)
}, HttpApiSchema.annotations({ status: 400 })) {}

export class UnknownWorkflow extends Schema.TaggedError<UnknownWorkflow>()("UnknownWorkflow", {
  workflow: Schema.String,
  known: Schema.Array(Schema.String),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  workflow: Schema.String,
  executionId: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

export class UnknownSignal extends Schema.TaggedError<UnknownSignal>()("UnknownSignal", {
  workflow: Schema.String,
  signal: Schema.String,
  known: Schema.Array(Schema.String),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/** The action does not apply to the run as it is now (its `status`), e.g. a signal to a finished run. */
export class RunConflict extends Schema.TaggedError<RunConflict>()("RunConflict", {
  workflow: Schema.String,
  executionId: Schema.String,
  status: RunStatus,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409, description: "The action does not apply to the run's status" })) {}

/** An operator route without the operator token (`Authorization: Bearer <DURAFLOW_OPERATOR_TOKEN>`). */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 401, description: "Missing or wrong operator token (Authorization: Bearer)" })) {}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

export class Health extends Schema.Class<Health>("Health")({
  status: Schema.Literal("ok", "degraded"),
  mode: Schema.Literal("durable", "memory"),
  prefix: Schema.String,
  /** null: the app runs without a database (`AppRuntime.layerMemory`). */
  database: Schema.NullOr(Schema.Struct({ reachable: Schema.Boolean, latencyMs: Schema.optional(Schema.Number) }))
}) {}

export class Unhealthy extends Schema.TaggedError<Unhealthy>()("Unhealthy", {
  health: Health
}, HttpApiSchema.annotations({ status: 503 })) {}

export const Started = Schema.Struct({ executionId: Schema.String })
export const Delivered = Schema.Struct({ delivered: Schema.Literal(true) })
export const Resumed = Schema.Struct({ resumed: Schema.Literal(true) })
/** The new run a retry started, and the run it retries. */
export const Retried = Schema.Struct({ executionId: Schema.String, retryOf: Schema.String, attempt: Schema.Int })

/** One attempt of an activity: when it started and ended, and how. */
export class ActivityAttempt extends Schema.Class<ActivityAttempt>("ActivityAttempt")({
  attempt: Schema.Int,
  startedAt: Schema.String,
  endedAt: Schema.optional(Schema.String),
  outcome: Schema.Literal("running", "succeeded", "failed", "suspended"),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Unknown)
}) {}

export class ActivityStep extends Schema.TaggedClass<ActivityStep>()("Activity", {
  name: Schema.String,
  attempts: Schema.Array(ActivityAttempt)
}) {}

/** A durable sleep (`DurableClock.sleep`): when it was scheduled and when it wakes (or woke) the run. */
export class SleepStep extends Schema.TaggedClass<SleepStep>()("Sleep", {
  name: Schema.String,
  scheduledAt: Schema.optional(Schema.String),
  wakeUpAt: Schema.String,
  woken: Schema.Boolean
}) {}

/** A signal (a `DurableDeferred`): awaited by the run, received (with its value) or both. */
export class SignalStep extends Schema.TaggedClass<SignalStep>()("Signal", {
  name: Schema.String,
  /** Known for runs the memory engine runs; the durable engine does not store awaits. */
  awaited: Schema.optional(Schema.Boolean),
  received: Schema.Boolean,
  receivedAt: Schema.optional(Schema.String),
  value: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Unknown)
}) {}

export class ChildRunStep extends Schema.TaggedClass<ChildRunStep>()("ChildRun", {
  workflow: Schema.String,
  executionId: Schema.String,
  startedAt: Schema.optional(Schema.String)
}) {}

export const Step = Schema.Union(ActivityStep, SleepStep, SignalStep, ChildRunStep)
export type Step = typeof Step.Type

/**
 * A run's steps in the order they began. `source` says where they were read:
 * `engine-storage` (the durable engine's own tables, complete and durable) or
 * `process-memory` (the memory engine: what this process saw, gone on restart).
 */
export class RunSteps extends Schema.Class<RunSteps>("RunSteps")({
  workflow: Schema.String,
  executionId: Schema.String,
  source: Schema.Literal("engine-storage", "process-memory"),
  steps: Schema.Array(Step)
}) {}

const WorkflowName = Schema.String.pipe(Schema.maxLength(200))
const ExecutionId = Schema.String.pipe(Schema.maxLength(200))
const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500))

/**
 * The operator routes in the OpenAPI document: a bearer token (`operatorToken`),
 * optional (`{}`) because an app without `DURAFLOW_OPERATOR_TOKEN` needs none.
 */
const operatorSecurity = { security: [{ operatorToken: [] }, {}] }

const withOperatorScheme = (spec: Record<string, any>): Record<string, any> => ({
  ...spec,
  components: {
    ...spec.components,
    securitySchemes: {
      ...spec.components?.securitySchemes,
      operatorToken: {
        type: "http",
        scheme: "bearer",
        description: "The app's DURAFLOW_OPERATOR_TOKEN; needed by cancel, resume, retry and signals when the app has one"
      }
    }
  }
})

/** A time in ISO 8601 that Postgres can hold (years 1 to 9999). */
const Instant = Schema.Date.pipe(
  Schema.filter((d) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999, { message: () => "a date between years 1 and 9999" })
)

const RunPath = Schema.Struct({ workflow: WorkflowName, executionId: ExecutionId })

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Health).addError(Unhealthy))
  .add(Readiness.endpoint)
{}

/** Reading runs of any workflow (the ledger stores JSON: result and error are untyped here). */
export class RunsGroup extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.get("get", "/runs/:workflow/:executionId")
      .setPath(RunPath)
      .addSuccess(Run)
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.get("list", "/runs")
      .setUrlParams(Schema.Struct({
        workflow: Schema.optional(WorkflowName),
        status: Schema.optional(RunStatus),
        limit: Schema.optional(Limit),
        /** The `cursor` of the last run of the previous page. */
        cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
        /** Started at or after (ISO 8601). */
        since: Schema.optional(Instant),
        /** Started before (ISO 8601). */
        until: Schema.optional(Instant)
      }))
      .addSuccess(Schema.Array(Run))
      .addError(InvalidCursor, { status: 400 })
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.post("cancel", "/runs/:workflow/:executionId/cancel")
      .setPath(RunPath)
      .annotate(OpenApi.Override, operatorSecurity)
      .addSuccess(Run)
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(RunConflict)
      .addError(Unauthorized)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.post("resume", "/runs/:workflow/:executionId/resume")
      .setPath(RunPath)
      .annotate(OpenApi.Override, operatorSecurity)
      .addSuccess(Resumed, { status: 202 })
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(RunConflict)
      .addError(Unauthorized)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.post("retry", "/runs/:workflow/:executionId/retry")
      .setPath(RunPath)
      .annotate(OpenApi.Override, operatorSecurity)
      .addSuccess(Retried, { status: 202 })
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(RunConflict)
      .addError(Unauthorized)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.get("steps", "/runs/:workflow/:executionId/steps")
      .setPath(RunPath)
      .addSuccess(RunSteps)
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(ServiceUnavailable)
  )
{}

// ---------------------------------------------------------------------------------------------------------------
// Typed workflow endpoints

/** What a typed endpoint serves, read by `RunsHttp` to route it to the workflow. */
export class Route extends Context.Tag("@duraflow/runtime-core/RunsApi/Route")<Route, {
  readonly workflow: string
  readonly kind: "start" | "status" | "signal"
  readonly signal?: string | undefined
}>() {}

/** A workflow with the deferreds outsiders may complete, keyed by their names. */
export interface WorkflowRoutes<
  W extends Workflow.Any,
  S extends Record<string, DurableDeferred.Any>
> {
  readonly workflow: W
  readonly signals: S
}

/**
 * `workflow` with its signals, for `workflowsGroup`; each key must be the
 * deferred's own name (the route and the engine know it by that name).
 */
export const withSignals = <W extends Workflow.Any, const S extends Record<string, DurableDeferred.Any>>(
  workflow: W,
  signals: S
): WorkflowRoutes<W, S> => {
  for (const [key, deferred] of Object.entries(signals)) {
    if (key !== deferred.name) {
      throw new Error(`Signal key ${JSON.stringify(key)} of ${workflow.name} must be its deferred's name, ${JSON.stringify(deferred.name)}`)
    }
  }
  return { workflow, signals }
}

export type Declared = Workflow.Any | WorkflowRoutes<Workflow.Any, Record<string, DurableDeferred.Any>>

/** The error a stored failed run carries when it died of a defect rather than a typed error. */
export const Defect = Schema.Struct({ defect: Schema.String })

/** A run of one workflow, as its status route answers: result and error in the workflow's own schemas. */
export interface RunOf<P, A, E> {
  readonly workflow: string
  readonly executionId: string
  readonly status: RunStatus
  readonly payload?: P | undefined
  readonly result?: A | undefined
  readonly error?: E | typeof Defect.Type | undefined
  readonly retryOf?: string | undefined
  readonly retriedBy?: string | undefined
  readonly attempt?: number | undefined
  readonly startedBy?: string | undefined
  readonly resumedBy?: ReadonlyArray<string> | undefined
  readonly awaiting?: ReadonlyArray<string> | undefined
  readonly createdAt: string
  readonly updatedAt: string
}

/** The schema of `RunOf` for `workflow`. */
export const runOf = (workflow: Workflow.Any) =>
  Schema.Struct({
    workflow: Schema.Literal(workflow.name),
    executionId: Schema.String,
    status: RunStatus,
    payload: Schema.optional(workflow.payloadSchema),
    result: Schema.optional(workflow.successSchema),
    error: Schema.optional(Schema.Union(workflow.errorSchema, Defect)),
    retryOf: Schema.optional(Schema.String),
    retriedBy: Schema.optional(Schema.String),
    attempt: Schema.optional(Schema.Int),
    startedBy: Schema.optional(Schema.String),
    resumedBy: Schema.optional(Schema.Array(Schema.String)),
    awaiting: Schema.optional(Schema.Array(Schema.String)),
    createdAt: Schema.String,
    updatedAt: Schema.String
  }).annotations({ identifier: `${workflow.name}Run` })

type WorkflowOf<D> = D extends WorkflowRoutes<infer W, any> ? W : D
type SignalsOf<D> = D extends WorkflowRoutes<any, infer S> ? S : {}

type SignalEndpoints<Name extends string, S> = {
  [K in keyof S & string]: S[K] extends DurableDeferred.DurableDeferred<infer A, any> ? HttpApiEndpoint.HttpApiEndpoint<
      `${Name}.signal.${K}`,
      "POST",
      { readonly executionId: string },
      never,
      A["Type"],
      never,
      typeof Delivered.Type,
      MalformedPayload | RunNotFound | RunConflict | Unauthorized | ServiceUnavailable,
      A["Context"],
      never
    >
    : never
}[keyof S & string]

/** The endpoints `workflowsGroup` derives from each declared workflow (distributed over a union of them). */
export type Endpoints<D> = D extends unknown ? EndpointsOf<D> : never

type EndpointsOf<D> = WorkflowOf<D> extends Workflow.Workflow<infer Name, infer P, infer A, infer E> ?
    | HttpApiEndpoint.HttpApiEndpoint<
      Name,
      "POST",
      never,
      never,
      P["Type"],
      never,
      typeof Started.Type,
      MalformedPayload | ServiceUnavailable,
      P["Context"],
      never
    >
    | HttpApiEndpoint.HttpApiEndpoint<
      `${Name}.status`,
      "GET",
      { readonly executionId: string },
      never,
      never,
      never,
      RunOf<P["Type"], A["Type"], E["Type"]>,
      RunNotFound | ServiceUnavailable,
      P["Context"] | A["Context"] | E["Context"],
      never
    >
    | SignalEndpoints<Name, SignalsOf<D>>
  : never

/**
 * One endpoint per workflow and per signal, typed by the workflow's schemas
 * (the paths are the generic ones with the name filled in):
 *
 * - `<Name>`: `POST /runs/<Name>` with the workflow's payload: 202 {executionId}
 * - `<Name>.status`: `GET /runs/<Name>/{executionId}`: the run, with result and error typed
 * - `<Name>.signal.<signal>`: `POST /runs/<Name>/{executionId}/signals/<signal>` with the
 *   deferred's value
 *
 * Payloads are checked strictly by the server (no unknown keys, all issues).
 */
export const workflowsGroup = <const Ws extends ReadonlyArray<Declared>>(
  workflows: Ws
): HttpApiGroup.HttpApiGroup<"workflows", Endpoints<Ws[number]>> => {
  let group = HttpApiGroup.make("workflows") as unknown as HttpApiGroup.HttpApiGroup<"workflows", any>
  const seen = new Set<string>()
  for (const declared of workflows) {
    const { signals, workflow } = "workflow" in declared ? declared : { workflow: declared, signals: {} }
    if (seen.has(workflow.name)) throw new Error(`Workflow ${workflow.name} is declared twice`)
    seen.add(workflow.name)
    const route = (kind: "start" | "status" | "signal", signal?: string) => Route.of({ workflow: workflow.name, kind, signal })
    group = group
      .add(
        HttpApiEndpoint.post(workflow.name, `/runs/${workflow.name}`)
          .setPayload(workflow.payloadSchema)
          .addSuccess(Started, { status: 202 })
          .addError(MalformedPayload)
          .addError(ServiceUnavailable)
          .annotateContext(workflow.annotations)
          .annotate(Route, route("start"))
      )
      .add(
        HttpApiEndpoint.get(`${workflow.name}.status`, `/runs/${workflow.name}/:executionId`)
          .setPath(Schema.Struct({ executionId: ExecutionId }))
          .addSuccess(runOf(workflow))
          .addError(RunNotFound)
          .addError(ServiceUnavailable)
          .annotateContext(workflow.annotations)
          .annotate(Route, route("status"))
      )
    for (const deferred of Object.values(signals)) {
      group = group.add(
        HttpApiEndpoint.post(
          `${workflow.name}.signal.${deferred.name}`,
          `/runs/${workflow.name}/:executionId/signals/${deferred.name}`
        )
          .setPath(Schema.Struct({ executionId: ExecutionId }))
          .setPayload(deferred.successSchema)
          .addSuccess(Delivered, { status: 202 })
          .annotate(OpenApi.Override, operatorSecurity)
          .addError(MalformedPayload)
          .addError(RunNotFound)
          .addError(RunConflict)
          .addError(Unauthorized)
          .addError(ServiceUnavailable)
          .annotate(Route, route("signal", deferred.name))
      )
    }
  }
  return group as any
}

/**
 * An app's API: health, runs and its workflows' typed endpoints, with the
 * answers any route may give (`RequestGuard`: 400 MalformedRequest, 413, 415,
 * 500 InternalError) declared on every endpoint. Domains add their own groups.
 */
export const make = <const Id extends string, const Ws extends ReadonlyArray<Declared>>(id: Id, workflows: Ws) =>
  HttpApi.make(id)
    .add(HealthGroup)
    .add(RunsGroup)
    .add(workflowsGroup(workflows))
    .addError(RequestGuard.MalformedRequest)
    .addError(RequestGuard.PayloadTooLarge)
    .addError(RequestGuard.UnsupportedMediaType)
    .addError(RequestGuard.InternalError)
    .annotate(OpenApi.Transform, withOperatorScheme)
