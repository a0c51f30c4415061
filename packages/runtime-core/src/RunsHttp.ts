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
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpApi from "@effect/platform/HttpApi"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import { SqlClient } from "@effect/sql"
import { WorkflowEngine } from "@effect/workflow"
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Cause, Config, Context, Duration, Effect, Exit, Layer, Option, ParseResult, Redacted, Schema } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import * as Database from "./Database.js"
import * as Permits from "./internal/Permits.js"
import * as Readiness from "./internal/Readiness.js"
import type * as RequestGuard from "./RequestGuard.js"
import * as Retry from "./Retry.js"
import * as RunSteps from "./internal/RunSteps.js"
import * as TransientRetry from "./internal/TransientRetry.js"
import { isFinished, type RetryLink, Run, RunStore } from "./internal/RunStore.js"
import {
  Health,
  type HealthGroup,
  MalformedPayload,
  PayloadIssue,
  Route,
  RunConflict,
  RunNotFound,
  type RunsGroup,
  ServiceUnavailable,
  Unauthorized,
  Unhealthy,
  UnknownSignal,
  UnknownWorkflow
} from "./RunsApi.js"
import * as RunsApi from "./RunsApi.js"
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

/**
 * What a request waits for (a start's transaction; a signal's delivery, a cancel's
 * interrupt, a resume, which the engine retries while the storage or another runner
 * is away: `TransientRetry`, up to a minute), bounded by `START_DEADLINE`: past it,
 * `late()`, a 503. All of them are idempotent: sending the request again is safe.
 */
const withinDeadline = (late: () => ServiceUnavailable) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    // the answer does not wait for an interrupted statement or transaction to end
    Effect.disconnect,
    Effect.timeoutFail({ duration: START_DEADLINE, onTimeout: late })
  )

/** `withinDeadline` for an engine call: its 503 says it may still take effect. */
const engineCallWithinDeadline = (what: string) =>
  withinDeadline(() =>
    new ServiceUnavailable({
      message: `${what} did not complete within ${Duration.format(START_DEADLINE)}; it may still take effect, retry later`
    })
  )

const runNotFound = (workflow: string, executionId: string) =>
  new RunNotFound({ workflow, executionId, message: `No run ${executionId} of ${workflow}` })

const conflict = (run: Run, message: string) =>
  new RunConflict({ workflow: run.workflow, executionId: run.executionId, status: run.status, message })

/**
 * `DURAFLOW_OPERATOR_TOKEN`: when set (and not empty), the operator routes (cancel,
 * resume, retry and signals) need `Authorization: Bearer <token>`; unset, they are open.
 */
export const operatorTokenConfig: Config.Config<Option.Option<Redacted.Redacted>> = Config.option(
  Config.redacted("DURAFLOW_OPERATOR_TOKEN")
).pipe(Config.map(Option.filter((token) => Redacted.value(token).trim() !== "")))

/** Checks a request for the operator token (compared in constant time), when one is configured. */
const makeOperatorGuard = Effect.map(operatorTokenConfig, (token) => {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest()
  const expected = Option.map(token, (t) => digest(Redacted.value(t).trim()))
  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, Unauthorized> =>
    Effect.suspend(() => {
      if (Option.isNone(expected)) return Effect.void
      const given = /^Bearer\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")?.[1]
      return given !== undefined && timingSafeEqual(digest(given), expected.value)
        ? Effect.void
        : Effect.fail(
          new Unauthorized({ message: "This route needs the operator token: Authorization: Bearer <DURAFLOW_OPERATOR_TOKEN>" })
        )
    })
})

/** The suffix of a retry's execution id: `<first run's id>-retry-<n>` for the n-th retry. */
const RETRY_SUFFIX = /-retry-\d+$/

/**
 * The execution id of the retry of `run`. Workflows derive execution ids from the
 * payload's idempotency key, so the same payload again would give the old id and no
 * new run: a retry's id is the first run's id with `-retry-<n>` (n = attempt - 1).
 * Deterministic, so two retries of one run racing start one new run.
 */
export const retryExecutionId = (run: { readonly executionId: string; readonly attempt?: number | undefined }) => {
  const attempt = (run.attempt ?? 1) + 1
  return { executionId: `${run.executionId.replace(RETRY_SUFFIX, "")}-retry-${attempt - 1}`, attempt }
}

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
    onSome: Database.maxConnections
  })
  // a burst of starts waits here: `Permits`, FIFO at O(1) per turn (Effect's semaphore is O(n²) in waiters)
  const turns = yield* Permits.make(Math.max(1, poolSize - 2))
  return (workflow: Workflow.Any, executionId: string, payload: unknown, raw: unknown, retry?: RetryLink) => {
    // schemas registered at runtime carry no static context: the cast only says so
    const execute = engine.execute(workflow as Workflow.Workflow<string, any, any, any>, {
      executionId,
      payload,
      discard: true
    }) as Effect.Effect<string>
    const record = Effect.zipRight(
      store.running(workflow.name, executionId, raw, retry),
      retry === undefined ? Effect.void : store.retried(workflow.name, retry.of, executionId)
    )
    const attempt = Option.isSome(maybeSql) && runtime.mode === "durable"
      ? turns.withPermit(maybeSql.value.withTransaction(Effect.gen(function*() {
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
      Effect.retry({ schedule: Retry.start, while: TransientRetry.isTransient }),
      Effect.unsandbox,
      withinDeadline(() => notStarted(workflow.name, "deadline passed")),
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

/**
 * Completes a signal of a run the ledger knows and that may still read it: a
 * finished or cancelled run is a 409. A run that has not reached its await yet
 * may be signalled (the deferred keeps the value until the await reads it);
 * a signal the workflow does not declare has no route (404 `UnknownSignal`).
 */
const makeSignal = Effect.gen(function*() {
  const store = yield* RunStore
  const engine = yield* WorkflowEngine.WorkflowEngine
  return (entry: Entry, deferred: DurableDeferred.Any, executionId: string, body: unknown) =>
    Effect.gen(function*() {
      const value = yield* decodePayload(entry.name, deferred.successSchema, body)
      const run = yield* store.get(entry.name, executionId).pipe(Effect.catchAll(unavailable))
      if (Option.isNone(run)) return yield* runNotFound(entry.name, executionId)
      if (isFinished(run.value.status)) {
        return yield* conflict(run.value, `Run ${executionId} is ${run.value.status}: it reads no more signals`)
      }
      yield* engine.deferredDone(deferred as DurableDeferred.DurableDeferred<Schema.Schema.Any>, {
        workflowName: entry.name,
        executionId,
        deferredName: deferred.name,
        exit: Exit.succeed(value)
      }).pipe(engineCallWithinDeadline(`Signal ${deferred.name} to ${executionId}`)) as Effect.Effect<void, ServiceUnavailable>
      return { delivered: true as const }
    })
})

/** The workflows' engine, for runs whose schemas it already decoded with (the cast only says so). */
type AnyWorkflow = Workflow.Workflow<string, any, any, any>

/**
 * The `runs` group's handlers for `api` (any API that includes `RunsGroup`):
 * reading runs, and the operator's actions on one run.
 *
 * - cancel: the ledger says `cancelled` first (final: no transition overwrites
 *   it), then the engine interrupts the run (`WorkflowEngine.interrupt`; an
 *   active run is interrupted where it runs, `DeferredWake`). Whatever runs it
 *   again later (a signal, a clock, a resume, a restart) finds it cancelled and
 *   ends it at once (`WorkflowLayer`). Cancelling a cancelled run sends the
 *   interrupt again and answers the run: a cancel that answered 503 (its
 *   interrupt did not complete in time) is safe to send again.
 * - resume: a suspended run runs again now (`WorkflowEngine.resume`).
 * - retry: a failed or cancelled run's payload starts a new run, linked both
 *   ways (`retryOf` / `retriedBy`) and started like any run (atomically with its
 *   ledger row); retrying the same run again answers the same new run.
 */
export const layerRuns = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>
) =>
  HttpApiBuilder.group(api as unknown as HttpApi.HttpApi<Id, typeof RunsGroup, ApiE, ApiR>, "runs", (handlers) =>
    Effect.gen(function*() {
      const registry = yield* WorkflowRegistry
      const store = yield* RunStore
      const engine = yield* WorkflowEngine.WorkflowEngine
      const runtime = yield* WorkflowRuntime
      const maybeSql = yield* Effect.serviceOption(SqlClient.SqlClient)
      const stepLog = yield* Effect.serviceOption(RunSteps.StepLog)
      const guard = yield* makeOperatorGuard.pipe(Effect.orDie)
      const start = yield* makeStart
      const find = (name: string, executionId: string) =>
        Effect.gen(function*() {
          const entry = yield* lookup(registry, name)
          const run = yield* store.get(entry.name, executionId).pipe(Effect.catchAll(unavailable))
          if (Option.isNone(run)) return yield* runNotFound(entry.name, executionId)
          return { entry, run: run.value }
        })
      return handlers
        .handle("get", ({ path }) => Effect.map(find(path.workflow, path.executionId), ({ run }) => run))
        .handle("list", ({ urlParams }) =>
          store.list(urlParams).pipe(Effect.catchTag("SqlError", unavailable)))
        .handle("cancel", ({ path, request }) =>
          Effect.gen(function*() {
            yield* guard(request)
            const { entry, run } = yield* find(path.workflow, path.executionId)
            const notCancellable = (now: Run) =>
              conflict(now, `Run ${now.executionId} is ${now.status}: only a running or suspended run can be cancelled`)
            // cancelled already (here, or by a concurrent cancel): the interrupt is sent again
            // (idempotent), so a cancel whose interrupt did not complete in time (a 503) can be resent
            if (run.status !== "cancelled") {
              if (isFinished(run.status)) return yield* notCancellable(run)
              const cancelled = yield* store.cancel(entry.name, run.executionId).pipe(Effect.catchAll(unavailable))
              if (!cancelled) {
                // not by this request: it finished, or was cancelled, meanwhile
                const now = (yield* find(entry.name, run.executionId)).run
                if (now.status !== "cancelled") return yield* notCancellable(now)
              }
            }
            yield* engine.interrupt(entry.workflow as AnyWorkflow, run.executionId).pipe(
              engineCallWithinDeadline(`Interrupting ${run.executionId}`)
            )
            return (yield* find(entry.name, run.executionId)).run
          }))
        .handle("resume", ({ path, request }) =>
          Effect.gen(function*() {
            yield* guard(request)
            const { entry, run } = yield* find(path.workflow, path.executionId)
            if (run.status !== "suspended") {
              return yield* conflict(run, `Run ${run.executionId} is ${run.status}: only a suspended run can be resumed`)
            }
            yield* engine.resume(entry.workflow as AnyWorkflow, run.executionId).pipe(
              engineCallWithinDeadline(`Resuming ${run.executionId}`)
            )
            return { resumed: true as const }
          }))
        .handle("retry", ({ path, request }) =>
          Effect.gen(function*() {
            yield* guard(request)
            const { entry, run } = yield* find(path.workflow, path.executionId)
            if (run.status !== "failed" && run.status !== "cancelled") {
              return yield* conflict(run, `Run ${run.executionId} is ${run.status}: only a failed or cancelled run can be retried`)
            }
            const next = retryExecutionId(run)
            if (run.retriedBy !== undefined) {
              // already retried: the same answer again
              return { executionId: run.retriedBy, retryOf: run.executionId, attempt: next.attempt }
            }
            const payload = yield* Schema.decodeUnknown(entry.workflow.payloadSchema as unknown as Schema.Schema<unknown, unknown>)(
              run.payload
            ).pipe(
              Effect.mapError(() => conflict(run, `Run ${run.executionId} has no payload this app can decode: it cannot be retried`))
            )
            yield* start(entry.workflow, next.executionId, payload, run.payload, {
              of: run.executionId,
              attempt: next.attempt
            })
            return { executionId: next.executionId, retryOf: run.executionId, attempt: next.attempt }
          }))
        .handle("steps", ({ path }) =>
          Effect.gen(function*() {
            const { entry, run } = yield* find(path.workflow, path.executionId)
            if (runtime.mode === "durable" && Option.isSome(maybeSql)) {
              return yield* RunSteps.fromStorage(runtime.prefix, entry.name, run.executionId).pipe(
                Effect.provideService(SqlClient.SqlClient, maybeSql.value),
                Effect.catchAll(unavailable)
              )
            }
            return Option.flatMap(stepLog, (log) => log.read(entry.name, run.executionId)).pipe(
              Option.getOrElse(() =>
                new RunsApi.RunSteps({ workflow: entry.name, executionId: run.executionId, source: "process-memory", steps: [] })
              )
            )
          }))
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
      const guard = yield* makeOperatorGuard.pipe(Effect.orDie)
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
              guard(request).pipe(
                Effect.zipRight(readJson(workflow.name, request)),
                Effect.flatMap((body) => signal(entry, deferred, path.executionId, body))
              )
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
