/**
 * Handlers for the `health` and `runs` groups of `RunsApi`, for any app API
 * that includes them. Payloads are decoded with the workflow's own schema
 * BEFORE anything is written, so a malformed request persists nothing.
 */
import { HttpApiBuilder } from "@effect/platform"
import type { HttpApi, HttpApiGroup } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { WorkflowEngine } from "@effect/workflow"
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Effect, Exit, Layer, Option, ParseResult, Schema } from "effect"
import * as Readiness from "./Readiness.js"
import { RunStore } from "./RunStore.js"
import {
  Health,
  type HealthGroup,
  Issue,
  MalformedPayload,
  RunNotFound,
  type RunsGroup,
  ServiceUnavailable,
  Unhealthy,
  UnknownSignal,
  UnknownWorkflow
} from "./RunsApi.js"
import { WorkflowRegistry } from "./WorkflowRegistry.js"
import { WorkflowRuntime } from "./WorkflowRuntime.js"

/** Maps a failed database request to a 503 (logged): for handlers of any app's routes. */
export const unavailable = (e: unknown) =>
  Effect.logError("Database request failed", e).pipe(
    Effect.zipRight(new ServiceUnavailable({ message: "The database is unavailable; retry later" }))
  )

const runNotFound = (workflow: string, executionId: string) =>
  new RunNotFound({ workflow, executionId, message: `No run ${executionId} of ${workflow}` })

const lookup = (registry: WorkflowRegistry["Type"], name: string) =>
  Option.match(registry.get(name), {
    onNone: () =>
      Effect.fail(
        new UnknownWorkflow({
          workflow: name,
          known: registry.names(),
          message: `No workflow named ${JSON.stringify(name)}; this app runs: ${registry.names().join(", ") || "none"}`
        })
      ),
    onSome: Effect.succeed
  })

const MAX_DEPTH = 64
const MAX_ISSUES = 20
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why Postgres (jsonb, text) could not store this JSON value, if it could not. */
const unstorable = (value: unknown): string | undefined => {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (depth > MAX_DEPTH) return `it is nested deeper than ${MAX_DEPTH} levels`
    if (typeof v === "string") {
      if (v.includes("\u0000")) return "a string contains a NUL character"
      if (LONE_SURROGATE.test(v)) return "a string contains an unpaired UTF-16 surrogate"
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        if (k.includes("\u0000") || LONE_SURROGATE.test(k)) return "a key contains a NUL or unpaired surrogate"
        stack.push([child, depth + 1])
      }
    }
  }
  return undefined
}

/** Decodes a request body with a workflow's (or signal's) schema; all issues, excess keys rejected. */
const decodePayload = (workflow: string, schema: Schema.Schema.All, payload: unknown) =>
  Effect.suspend(() => {
    if (payload instanceof Uint8Array) {
      // a body without a JSON content type arrives raw: refuse it whole, not byte by byte
      return Effect.fail(new MalformedPayload({ workflow, message: "The request body must be a JSON object", issues: [] }))
    }
    const problem = unstorable(payload)
    if (problem !== undefined) {
      return Effect.fail(new MalformedPayload({ workflow, message: `Invalid payload for ${workflow}: ${problem}`, issues: [] }))
    }
    return Schema.decodeUnknown(schema as Schema.Schema<unknown, unknown, never>)(payload, {
      onExcessProperty: "error",
      errors: "all"
    }).pipe(
      Effect.mapError((error) => {
        const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
        return new MalformedPayload({
          workflow,
          message: `Invalid payload for ${workflow}: ${issues.length} issue(s); ` +
            issues.slice(0, 3).map((i) => `${i.path.join(".") || "(body)"}: ${i.message.slice(0, 200)}`).join("; "),
          issues: issues.slice(0, MAX_ISSUES).map((i) =>
            new Issue({
              path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
              message: i.message.slice(0, 500)
            })
          )
        })
      })
    )
  })

/** The `runs` group's handlers for `api` (any API that includes `RunsGroup`). */
export const layerRuns = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
) =>
  HttpApiBuilder.group(api as unknown as HttpApi.HttpApi<Id, typeof RunsGroup, ApiE, ApiR>, "runs", (handlers) =>
    Effect.gen(function*() {
      const registry = yield* WorkflowRegistry
      const store = yield* RunStore
      const engine = yield* WorkflowEngine.WorkflowEngine
      return handlers
        .handle("start", ({ path, payload }) =>
          Effect.gen(function*() {
            const { workflow } = yield* lookup(registry, path.workflow)
            const decoded = yield* decodePayload(workflow.name, workflow.payloadSchema, payload)
            const executionId = yield* workflow.executionId(decoded)
            yield* store.running(workflow.name, executionId, payload).pipe(Effect.catchAll(unavailable))
            // schemas registered at runtime carry no static context: the cast only says so
            yield* (engine.execute(workflow as Workflow.Workflow<string, any, any, any>, {
              executionId,
              payload: decoded,
              discard: true
            }) as Effect.Effect<string>)
            return { executionId }
          }))
        .handle("get", ({ path }) =>
          Effect.gen(function*() {
            const { workflow } = yield* lookup(registry, path.workflow)
            const run = yield* store.get(workflow.name, path.executionId).pipe(Effect.catchAll(unavailable))
            return yield* Option.match(run, {
              onNone: () => Effect.fail(runNotFound(workflow.name, path.executionId)),
              onSome: Effect.succeed
            })
          }))
        .handle("signal", ({ path, payload }) =>
          Effect.gen(function*() {
            const entry = yield* lookup(registry, path.workflow)
            const deferred = entry.signals.get(path.signal)
            if (!deferred) {
              return yield* new UnknownSignal({
                workflow: entry.name,
                signal: path.signal,
                known: Array.from(entry.signals.keys()),
                message: `${entry.name} has no signal ${JSON.stringify(path.signal)}`
              })
            }
            const value = yield* decodePayload(entry.name, deferred.successSchema, payload)
            const run = yield* store.get(entry.name, path.executionId).pipe(Effect.catchAll(unavailable))
            if (Option.isNone(run)) return yield* runNotFound(entry.name, path.executionId)
            yield* engine.deferredDone(deferred as DurableDeferred.DurableDeferred<Schema.Schema.Any>, {
              workflowName: entry.name,
              executionId: path.executionId,
              deferredName: deferred.name,
              exit: Exit.succeed(value)
            }) as Effect.Effect<void>
            return { delivered: true as const }
          }))
        .handle("list", ({ urlParams }) => store.list(urlParams).pipe(Effect.catchAll(unavailable)))
    }))

/** The `health` group's handler: a round trip to the database (if the app has one), with its latency. */
export const layerHealth = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
) =>
  HttpApiBuilder.group(api as unknown as HttpApi.HttpApi<Id, typeof HealthGroup, ApiE, ApiR>, "health", (handlers) =>
    Effect.gen(function*() {
      const runtime = yield* WorkflowRuntime
      // a runtime without a database (AppRuntime.layerMemory) is healthy with nothing to reach
      const maybeSql = yield* Effect.serviceOption(SqlClient.SqlClient)
      const readiness = yield* Readiness.make
      return handlers.handle("health", () =>
        Effect.gen(function*() {
          if (Option.isNone(maybeSql)) {
            return new Health({ status: "ok", mode: runtime.mode, prefix: runtime.prefix, database: null })
          }
          const sql = maybeSql.value
          const start = performance.now()
          const reachable = yield* sql`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.isSuccess)
          const health = new Health({
            status: reachable ? "ok" : "degraded",
            mode: runtime.mode,
            prefix: runtime.prefix,
            database: reachable
              ? { reachable, latencyMs: Math.round((performance.now() - start) * 10) / 10 }
              : { reachable }
          })
          return reachable ? health : yield* new Unhealthy({ health })
        })).handle("ready", () => readiness.handle)
    }))

/** Both groups' handlers. */
export const layer = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
) => Layer.merge(layerRuns(api), layerHealth(api))
