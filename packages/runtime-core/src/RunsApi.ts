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
 *
 * A body that does not match the workflow's payload schema is a 400 with the
 * schema's issues; an unknown workflow a 404; a database that is down a 503.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import * as Readiness from "./Readiness.js"
import { Run, RunStatus } from "./RunStore.js"

export { Run, RunStatus }

export class Issue extends Schema.Class<Issue>("Issue")({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
}) {}

export class MalformedPayload extends Schema.TaggedError<MalformedPayload>()("MalformedPayload", {
  workflow: Schema.String,
  message: Schema.String,
  issues: Schema.Array(Issue)
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

const WorkflowName = Schema.String.pipe(Schema.maxLength(200))
const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500))

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Health).addError(Unhealthy))
  .add(Readiness.endpoint)
{}

export class RunsGroup extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.post("start", "/runs/:workflow")
      .setPath(Schema.Struct({ workflow: WorkflowName }))
      .setPayload(Schema.Unknown)
      .addSuccess(Started, { status: 202 })
      .addError(MalformedPayload)
      .addError(UnknownWorkflow)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.get("get", "/runs/:workflow/:executionId")
      .setPath(Schema.Struct({ workflow: WorkflowName, executionId: Schema.String.pipe(Schema.maxLength(200)) }))
      .addSuccess(Run)
      .addError(UnknownWorkflow)
      .addError(RunNotFound)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.post("signal", "/runs/:workflow/:executionId/signals/:signal")
      .setPath(Schema.Struct({
        workflow: WorkflowName,
        executionId: Schema.String.pipe(Schema.maxLength(200)),
        signal: Schema.String.pipe(Schema.maxLength(200))
      }))
      .setPayload(Schema.Unknown)
      .addSuccess(Schema.Struct({ delivered: Schema.Literal(true) }), { status: 202 })
      .addError(MalformedPayload)
      .addError(UnknownWorkflow)
      .addError(UnknownSignal)
      .addError(RunNotFound)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.get("list", "/runs")
      .setUrlParams(Schema.Struct({
        workflow: Schema.optional(WorkflowName),
        status: Schema.optional(RunStatus),
        limit: Schema.optional(Limit)
      }))
      .addSuccess(Schema.Array(Run))
      .addError(ServiceUnavailable)
  )
{}

/** The API of an app with no domain routes; domains add their own group to these two. */
export class WorkflowApi extends HttpApi.make("workflows").add(HealthGroup).add(RunsGroup) {}
