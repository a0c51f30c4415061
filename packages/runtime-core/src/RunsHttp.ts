/**
 * Handlers for the `health`, `runs` and `workflows` groups of `RunsApi`, for
 * any app API that includes them. Payloads are decoded with the workflow's
 * own schema BEFORE anything is written, so a malformed request persists
 * nothing.
 *
 * A start is atomic: with the durable engine, the ledger row and the
 * engine's persisted request commit in ONE transaction (the engine saves the
 * request in the calling fiber, so it joins the transaction), and a
 * `pg_notify` in the same transaction wakes every replica when it commits, so
 * the run starts promptly wherever its shard lives. The whole start has a
 * deadline (`START_DEADLINE`): past it, or when the engine's write fails, the
 * answer is a 503 and nothing is left behind.
 */
import { HttpApiBuilder, HttpRouter, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import type { HttpApi, HttpApiGroup } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { WorkflowEngine } from "@effect/workflow"
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Cause, Context, Duration, Effect, Exit, Layer, Option, ParseResult, Schema } from "effect"
import * as Readiness from "./internal/Readiness.js"
import type * as RequestGuard from "./RequestGuard.js"
import * as Retry from "./Retry.js"
import { Run, RunStore } from "./internal/RunStore.js"
import {
  Health,
  type HealthGroup,
  MalformedPayload,
  PayloadIssue,
  Route,
  RunNotFound,
  type RunsGroup,
  ServiceUnavailable,
  Unhealthy,
  UnknownSignal,
  UnknownWorkflow
} from "./RunsApi.js"
import * as TablePrefix from "./TablePrefix.js"
import { type Entry, WorkflowRegistry } from "./internal/WorkflowRegistry.js"
import { WorkflowRuntime } from "./WorkflowRuntime.js"

/** The API declares workflows (or signals) the app does not register, or the reverse: a route would lie. */
export class ApiMismatch extends Schema.TaggedError<ApiMismatch>()("ApiMismatch", { message: Schema.String }) {}

/** How long a start may take, ledger and engine together; past it: 503, nothing written. */
export const START_DEADLINE = Duration.seconds(10)

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
            new PayloadIssue({
              path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
              message: i.message.slice(0, 500)
            })
          )
        })
      })
    )
  })

const unknownWorkflow = (registry: WorkflowRegistry["Type"], name: string) =>
  new UnknownWorkflow({
    workflow: name,
    known: registry.names(),
    message: `No workflow named ${JSON.stringify(name)}; this app runs: ${registry.names().join(", ") || "none"}`
  })

/**
 * The request body as JSON, for a workflow's routes (which read it themselves so
 * that every problem is a `MalformedPayload` naming the workflow). A body with no
 * content type is read as JSON, as the platform does; `RequestGuard` refused
 * other types.
 */
const readJson = (workflow: string, request: HttpServerRequest.HttpServerRequest) =>
  request.text.pipe(
    Effect.catchAll((e) =>
      // the guard's limit: its 413 is given by `RequestGuard.errors`
      /maxBytes/.test(String((e.cause as Error | undefined)?.message)) ? Effect.die(e) : Effect.succeed(undefined)
    ),
    Effect.flatMap((text) => {
      if (text !== undefined) {
        try {
          return Effect.succeed(text === "" ? null : JSON.parse(text) as unknown)
        } catch {
          // reported below
        }
      }
      return Effect.fail(new MalformedPayload({ workflow, message: "The request body is not valid JSON", issues: [] }))
    })
  )

const isTransient = (cause: Cause.Cause<unknown>) => {
  const tag = (Cause.squash(cause) as { _tag?: string } | undefined)?._tag
  return tag === "PersistenceError" || tag === "SqlError"
}

const notStarted = (workflow: string, why: string) =>
  new ServiceUnavailable({ message: `Could not start ${workflow} (${why}); nothing was recorded, retry later` })

/**
 * Records and requests a run as one unit (see the module comment). In memory mode
 * (no database, or the in-process engine) there is no transaction to share: the
 * engine goes first and the ledger after, so a failed ledger write leaves no
 * phantom run (the workflow records itself as running when it starts).
 */
const makeStart = Effect.gen(function*() {
  const store = yield* RunStore
  const engine = yield* WorkflowEngine.WorkflowEngine
  const runtime = yield* WorkflowRuntime
  const maybeSql = yield* Effect.serviceOption(SqlClient.SqlClient)
  const channel = TablePrefix.wakeChannel(runtime.prefix)
  // A start holds a pooled connection for its transaction, and the engine call inside it
  // waits for a NOTIFY that `WakeUps` sends on another pooled connection: if starts held
  // every connection, each would wait for the others until the deadline. Starts leave two
  // connections to the rest of the app; more wait for a turn (within their deadline).
  const poolSize = Option.match(maybeSql, {
    onNone: () => 2,
    onSome: (sql) => (sql as unknown as Partial<PgClient.PgClient>).config?.maxConnections ?? 10
  })
  const turns = yield* Effect.makeSemaphore(Math.max(1, poolSize - 2))
  return (workflow: Workflow.Any, executionId: string, payload: unknown, raw: unknown) => {
    // schemas registered at runtime carry no static context: the cast only says so
    const execute = engine.execute(workflow as Workflow.Workflow<string, any, any, any>, {
      executionId,
      payload,
      discard: true
    }) as Effect.Effect<string>
    const record = store.running(workflow.name, executionId, raw)
    const attempt = Option.isSome(maybeSql) && runtime.mode === "durable"
      ? turns.withPermits(1)(maybeSql.value.withTransaction(Effect.gen(function*() {
        const sql = maybeSql.value
        // a lock or a stuck write must not hold the transaction past the deadline
        yield* sql.unsafe(`SET LOCAL statement_timeout = ${Duration.toMillis(START_DEADLINE)}`)
        yield* record
        yield* execute
        // delivered when the transaction commits, when the request is visible: every
        // replica (this one included) then reads it from storage, wherever the shard is
        yield* sql`SELECT pg_notify(${channel}, 'wake')`
      })))
      : Effect.zipRight(execute, record)
    return attempt.pipe(
      // a connection found dead at BEGIN: the whole transaction again (both writes are idempotent)
      Effect.sandbox,
      Effect.retry({ schedule: Retry.start, while: isTransient }),
      Effect.unsandbox,
      // the answer does not wait for an interrupted transaction to roll back
      Effect.disconnect,
      Effect.timeoutFail({ duration: START_DEADLINE, onTimeout: () => notStarted(workflow.name, "deadline passed") }),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause as Cause.Cause<never>)
          : Effect.logError(`Starting ${workflow.name} ${executionId} failed`, cause).pipe(
            Effect.zipRight(Effect.fail(
              Cause.failureOption(cause).pipe(
                Option.filter((e): e is ServiceUnavailable => e instanceof ServiceUnavailable),
                Option.getOrElse(() => notStarted(workflow.name, "the database refused it"))
              )
            ))
          )
      )
    )
  }
})

/** Completes a signal of a run the ledger knows. */
const makeSignal = Effect.gen(function*() {
  const store = yield* RunStore
  const engine = yield* WorkflowEngine.WorkflowEngine
  return (entry: Entry, deferred: DurableDeferred.Any, executionId: string, body: unknown) =>
    Effect.gen(function*() {
      const value = yield* decodePayload(entry.name, deferred.successSchema, body)
      const run = yield* store.get(entry.name, executionId).pipe(Effect.catchAll(unavailable))
      if (Option.isNone(run)) return yield* runNotFound(entry.name, executionId)
      yield* engine.deferredDone(deferred as DurableDeferred.DurableDeferred<Schema.Schema.Any>, {
        workflowName: entry.name,
        executionId,
        deferredName: deferred.name,
        exit: Exit.succeed(value)
      }) as Effect.Effect<void>
      return { delivered: true as const }
    })
})

/** The `runs` group's handlers for `api` (any API that includes `RunsGroup`). */
export const layerRuns = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
) =>
  HttpApiBuilder.group(api as unknown as HttpApi.HttpApi<Id, typeof RunsGroup, ApiE, ApiR>, "runs", (handlers) =>
    Effect.gen(function*() {
      const registry = yield* WorkflowRegistry
      const store = yield* RunStore
      return handlers
        .handle("get", ({ path }) =>
          Effect.gen(function*() {
            const { workflow } = yield* lookup(registry, path.workflow)
            const run = yield* store.get(workflow.name, path.executionId).pipe(Effect.catchAll(unavailable))
            return yield* Option.match(run, {
              onNone: () => Effect.fail(runNotFound(workflow.name, path.executionId)),
              onSome: Effect.succeed
            })
          }))
        .handle("list", ({ urlParams }) => store.list(urlParams).pipe(Effect.catchAll(unavailable)))
    }))

const declaredRoutes = (api: HttpApi.HttpApi.Any) => {
  const group = (api as unknown as HttpApi.HttpApi.AnyWithProps).groups["workflows"]
  return group === undefined
    ? []
    : Object.values(group.endpoints).map((endpoint) => ({
      endpoint,
      route: Context.unsafeGet(endpoint.annotations as Context.Context<Route>, Route)
    }))
}

/** The API's workflows must be exactly the app's, with signals the app declared: checked at startup. */
const checkDeclared = (api: HttpApi.HttpApi.Any, registry: WorkflowRegistry["Type"]) =>
  Effect.gen(function*() {
    const routes = declaredRoutes(api).map((r) => r.route)
    const declared = [...new Set(routes.map((r) => r.workflow))].sort()
    const registered = registry.names()
    if (declared.join("\n") !== registered.join("\n")) {
      return yield* new ApiMismatch({
        message: `The API declares workflows [${declared.join(", ")}] but the app registers [${registered.join(", ")}]`
      })
    }
    for (const route of routes) {
      const entry = Option.getOrThrow(registry.get(route.workflow))
      if (route.kind === "signal" && !entry.signals.has(route.signal!)) {
        return yield* new ApiMismatch({
          message: `The API declares signal ${route.signal} of ${route.workflow}, which its WorkflowLayer does not declare`
        })
      }
    }
  })

/**
 * The `workflows` group's handlers (`RunsApi.workflowsGroup`): each endpoint
 * routed to its workflow by its `Route` annotation. Bodies are read here, not
 * by the platform, so that excess keys are refused and every problem is a
 * `MalformedPayload` with all its issues.
 */
export const layerWorkflows = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
): Layer.Layer<
  HttpApiGroup.ApiGroup<Id, "workflows">,
  ApiMismatch,
  WorkflowRegistry | RunStore | WorkflowEngine.WorkflowEngine | WorkflowRuntime
> => {
  if (declaredRoutes(api).length === 0) {
    // no typed workflows: the app must register none either
    return Layer.effectDiscard(Effect.flatMap(WorkflowRegistry, (registry) => checkDeclared(api, registry))) as any
  }
  // the group is built at run time from the API: its handlers are typed by `RunsApi.Endpoints`, not here
  return (HttpApiBuilder.group as any)(api, "workflows", (handlers: any) =>
    Effect.gen(function*() {
      const registry = yield* WorkflowRegistry
      const store = yield* RunStore
      yield* checkDeclared(api, registry)
      const start = yield* makeStart
      const signal = yield* makeSignal
      for (const { endpoint, route } of declaredRoutes(api)) {
        const entry = Option.getOrThrow(registry.get(route.workflow))
        const workflow = entry.workflow
        if (route.kind === "start") {
          handlers = handlers.handleRaw(endpoint.name, ({ request }: { request: HttpServerRequest.HttpServerRequest }) =>
            Effect.gen(function*() {
              const body = yield* readJson(workflow.name, request)
              const decoded = yield* decodePayload(workflow.name, workflow.payloadSchema, body)
              const executionId = yield* workflow.executionId(decoded)
              yield* start(workflow, executionId, decoded, body)
              return { executionId }
            }))
        } else if (route.kind === "status") {
          handlers = handlers.handleRaw(endpoint.name, ({ path }: { path: { executionId: string } }) =>
            Effect.gen(function*() {
              const run = yield* store.get(workflow.name, path.executionId).pipe(Effect.catchAll(unavailable))
              if (Option.isNone(run)) return yield* runNotFound(workflow.name, path.executionId)
              // the ledger holds the encoded result and error: sent as stored
              return HttpServerResponse.unsafeJson(Schema.encodeSync(Run)(run.value))
            }))
        } else {
          const deferred = entry.signals.get(route.signal!)!
          handlers = handlers.handleRaw(
            endpoint.name,
            ({ path, request }: { path: { executionId: string }; request: HttpServerRequest.HttpServerRequest }) =>
              Effect.flatMap(readJson(workflow.name, request), (body) => signal(entry, deferred, path.executionId, body))
          )
        }
      }
      return handlers
    })) as any
}

/** Paths of the routes below, for `RequestGuard.errors` (405 vs 404). */
export const fallbackRoutes: RequestGuard.Routes = [
  { method: "POST", path: "/runs/:workflow" },
  { method: "POST", path: "/runs/:workflow/:executionId/signals/:signal" }
]

/**
 * Starting or signalling a workflow the API does not type (the typed routes are
 * static paths and win): a JSON 404 naming what this app runs. Not part of any
 * endpoint, hence not in the OpenAPI document.
 */
export const layerFallback: Layer.Layer<never, never, WorkflowRegistry> = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const registry = yield* WorkflowRegistry
    const notFound = (error: UnknownWorkflow | UnknownSignal) =>
      HttpServerResponse.unsafeJson(Schema.encodeSync(Schema.Union(UnknownWorkflow, UnknownSignal))(error), { status: 404 })
    const param = (name: string) =>
      Effect.map(HttpRouter.RouteContext, ({ params }) => String(params[name] ?? "").slice(0, 200))
    yield* router.post(
      "/runs/:workflow",
      Effect.map(param("workflow"), (workflow) => notFound(unknownWorkflow(registry, workflow)))
    )
    yield* router.post(
      "/runs/:workflow/:executionId/signals/:signal",
      Effect.gen(function*() {
        const name = yield* param("workflow")
        const signal = yield* param("signal")
        return notFound(Option.match(registry.get(name), {
          onNone: () => unknownWorkflow(registry, name),
          onSome: (entry) =>
            new UnknownSignal({
              workflow: entry.name,
              signal,
              known: Array.from(entry.signals.keys()),
              message: `${entry.name} has no signal ${JSON.stringify(signal)}`
            })
        }))
      })
    )
  })
)

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
) => Layer.mergeAll(layerRuns(api), layerHealth(api), layerWorkflows(api), layerFallback)
