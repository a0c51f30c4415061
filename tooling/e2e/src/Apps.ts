/**
 * The apps as real processes, for the end-to-end suites and the figures of
 * `@duraflow/faults`: start them by file path (never by importing their code),
 * talk to them with the clients `HttpApiClient` derives from their exported
 * APIs, poll for run outcomes and replica readiness, and read table row counts.
 * Raw HTTP (`send`) is for requests the typed clients cannot send on purpose:
 * malformed bodies, headers, paths.
 */
import { KnowledgeApi, SampleDocuments } from "@duraflow/knowledge"
import { OntologyApi, SampleOntology } from "@duraflow/ontology"
import { Database, RequestGuard, RunsApi } from "@duraflow/runtime-core"
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { SqlClient, type SqlError } from "@effect/sql"
import { Data, Duration, Effect, Exit, Layer, ParseResult, Predicate, Redacted, Schedule, Schema, type Scope } from "effect"
import { request as httpRequest } from "node:http"
import { fileURLToPath } from "node:url"

export class E2EError extends Data.TaggedError("E2EError")<{ readonly message: string }> {}

// ---------------------------------------------------------------------------------------------------------------
// Processes and their typed clients

const appDir = (name: string) => fileURLToPath(new URL(`../../../apps/${name}/`, import.meta.url))

/** How a client changes its requests (e.g. the operator token: `HttpClient.mapRequest(bearerToken(...))`). */
type Transform = (client: HttpClient.HttpClient) => HttpClient.HttpClient

export const Apps = {
  ontology: {
    dir: appDir("ontology-server"),
    client: (baseUrl: string, transformClient?: Transform) =>
      HttpApiClient.make(OntologyApi.OntologyApi, { baseUrl, ...(transformClient ? { transformClient } : {}) })
  },
  knowledge: {
    dir: appDir("knowledge-server"),
    client: (baseUrl: string, transformClient?: Transform) =>
      HttpApiClient.make(KnowledgeApi.KnowledgeApi, { baseUrl, ...(transformClient ? { transformClient } : {}) })
  }
} as const
export type AppName = keyof typeof Apps
/** The client of an app's exported API (both have the runtime's `health` and `runs` groups). */
export type AppClient<K extends AppName> = Effect.Effect.Success<ReturnType<typeof Apps[K]["client"]>>

/** A port nobody listens on right now (the OS picks it). */
export const freePort = TestProcess.freePort

/** The engine mode of apps whose test does not pin one: the test run's `WORKFLOW_MODE`, default durable. */
export const defaultMode: "durable" | "memory" =
  process.env.WORKFLOW_MODE?.trim().toLowerCase() === "memory" ? "memory" : "durable"

export interface StartOptions {
  readonly databaseUrl: string
  readonly port: number
  readonly mode?: "durable" | "memory"
  /** knowledge only */
  readonly ontologyUrl?: string | undefined
  /** `DURAFLOW_OPERATOR_TOKEN`: the operator routes (cancel, resume, retry, signals) then need it */
  readonly operatorToken?: string | undefined
  /** More environment (e.g. `OTEL_*`, `LOG_FORMAT`); `undefined` unsets a variable. */
  readonly env?: Record<string, string | undefined> | undefined
}

export interface RunningApp<K extends AppName = AppName> {
  readonly label: string
  readonly port: number
  readonly baseUrl: string
  readonly process: TestProcess.TestProcess
  readonly client: AppClient<K>
}

/**
 * The processes of one test. Each started app is remembered (with its output
 * lines) so that a failing test can print every app's log, including apps
 * that were killed on purpose before the failure.
 */
export class AppSet {
  private readonly started: Array<RunningApp> = []

  /** Starts an app under tsx and waits for `Listening on http://...:<port>`; killed at scope end. */
  start<K extends AppName>(app: K, options: StartOptions): Effect.Effect<RunningApp<K>, TestProcess.TestProcessError, Scope.Scope> {
    return Effect.gen(this, function*() {
      const label = `${app}#${this.started.filter((a) => a.label.startsWith(`${app}#`)).length + 1}`
      const process = yield* TestProcess.spawnTs(`${Apps[app].dir}src/main.ts`, {
        cwd: Apps[app].dir,
        env: {
          DATABASE_URL: options.databaseUrl,
          PORT: String(options.port),
          WORKFLOW_MODE: options.mode ?? defaultMode,
          ONTOLOGY_URL: options.ontologyUrl,
          DURAFLOW_OPERATOR_TOKEN: options.operatorToken,
          // inherited values must not leak into the apps
          TEST_DATABASE_URL: undefined,
          ...options.env
        }
      })
      const baseUrl = `http://127.0.0.1:${options.port}`
      const makeClient = Apps[app].client as (baseUrl: string) => Effect.Effect<AppClient<K>, never, HttpClient.HttpClient>
      const client = yield* makeClient(baseUrl).pipe(Effect.provide(FetchHttpClient.layer))
      const running: RunningApp<K> = { label, port: options.port, baseUrl, process, client }
      this.started.push(running)
      yield* process.waitFor((l) => l.includes(`Listening on http://`) && l.includes(`:${options.port}`), "120 seconds")
      return running
    })
  }

  /** Every started app's output, labelled, for failure reports. */
  logs(): string {
    return this.started
      .map((a) => `----- ${a.label} (pid ${a.process.pid}, port ${a.port}) -----\n${a.process.lines.join("\n")}`)
      .join("\n")
  }
}

/** Runs a test body with a fresh `AppSet`; when the body fails, every app's output is printed to stderr. */
export const withApps = <A, E, R>(body: (apps: AppSet) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const apps = new AppSet()
    return body(apps).pipe(
      Effect.onExit((exit) =>
        Exit.isFailure(exit)
          ? Effect.sync(() => console.error(`\n===== app logs (test failed) =====\n${apps.logs()}\n===== end of app logs =====`))
          : Effect.void
      )
    )
  })

/** Starts `count` replicas of an app (each on a free port) on one database. */
export const startReplicas = <K extends AppName>(
  apps: AppSet,
  app: K,
  count: number,
  options: Omit<StartOptions, "port">
) => Effect.forEach(Array.from({ length: count }), () => Effect.flatMap(freePort, (port) => apps.start(app, { ...options, port })), { concurrency: count })

/** The client of an app's API that sends `Authorization: Bearer <token>` (for the operator routes). */
export const operatorClient = <K extends AppName>(app: RunningApp<K>, app_: K, token: string): Effect.Effect<AppClient<K>> =>
  (Apps[app_].client as (baseUrl: string, transform: Transform) => Effect.Effect<AppClient<K>, never, HttpClient.HttpClient>)(
    app.baseUrl,
    HttpClient.mapRequest(HttpClientRequest.bearerToken(token))
  ).pipe(Effect.provide(FetchHttpClient.layer))

/** Starts the ontology and knowledge apps (in parallel) on one database. */
export const startBoth = (
  apps: AppSet,
  databaseUrl: string,
  options: {
    readonly mode?: "durable" | "memory"
    readonly operatorToken?: string | undefined
    /** per app: more environment */
    readonly env?: { readonly ontology?: Record<string, string | undefined>; readonly knowledge?: Record<string, string | undefined> }
  } = {}
) =>
  Effect.gen(function*() {
    const [ontologyPort, knowledgePort] = yield* Effect.all([freePort, freePort])
    if (ontologyPort === knowledgePort) return yield* new E2EError({ message: "the OS handed out the same port twice" })
    const mode = options.mode ?? defaultMode
    const [ontology, knowledge] = yield* Effect.all([
      apps.start("ontology", { databaseUrl, port: ontologyPort, mode, operatorToken: options.operatorToken, env: options.env?.ontology }),
      apps.start("knowledge", {
        databaseUrl,
        port: knowledgePort,
        mode,
        ontologyUrl: `http://127.0.0.1:${ontologyPort}`,
        operatorToken: options.operatorToken,
        env: options.env?.knowledge
      })
    ], { concurrency: 2 })
    return { ontology, knowledge }
  })

// ---------------------------------------------------------------------------------------------------------------
// Polling: runs and replicas

/**
 * Repeats `effect` (with short sleeps) until `done` holds for its value, and
 * returns that value; fails after `timeout` with the last value seen.
 */
export const poll = <A, E, R>(
  what: string,
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  options: { readonly timeout?: Duration.DurationInput; readonly interval?: Duration.DurationInput } = {}
): Effect.Effect<A, E | E2EError, R> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.timeout ?? "60 seconds")
    const deadline = Date.now() + Duration.toMillis(timeout)
    for (;;) {
      const value = yield* effect
      if (done(value)) return value
      if (Date.now() > deadline) {
        return yield* new E2EError({
          message: `timed out after ${Duration.format(timeout)} waiting for ${what}; last value: ${JSON.stringify(value).slice(0, 3000)}`
        })
      }
      yield* Effect.sleep(options.interval ?? "250 millis")
    }
  })

const isUnavailable = (e: unknown) => Predicate.isTagged(e, "ServiceUnavailable")

/**
 * What the API documents for a 503 ("nothing was recorded, retry later"), done
 * as a client does it: retry `ServiceUnavailable` with backoff (about 30 s in
 * all), running `on503` for each such answer; any other error, or the last 503,
 * fails. A start is idempotent by execution id, so a retried start runs once.
 */
export const retryUnavailable = (on503: Effect.Effect<void> = Effect.void) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  self.pipe(
    Effect.tapError((e) => isUnavailable(e) ? on503 : Effect.void),
    Effect.retry({
      while: isUnavailable,
      schedule: Schedule.exponential("250 millis", 1.5).pipe(Schedule.jittered, Schedule.upTo("30 seconds"))
    })
  )

/** The execution id of a `202` start: `client.workflows.X({ payload }).pipe(executionId)`. */
export const executionId = Effect.map((started: typeof RunsApi.Started.Type) => started.executionId)

const terminal = (run: RunsApi.Run) => run.status === "succeeded" || run.status === "failed" || run.status === "cancelled"

/** Polls `GET /runs/{workflow}/{executionId}` until the run is succeeded, failed or cancelled. */
export const awaitRun = (app: RunningApp, workflow: string, executionId: string, timeout: Duration.DurationInput = "120 seconds") =>
  poll(`run ${workflow}/${executionId} to finish`, app.client.runs.get({ path: { workflow, executionId } }), terminal, { timeout })

/** Polls `GET /runs?limit=500` until every one of `ids` is succeeded or failed. */
export const awaitRuns = (app: RunningApp, ids: ReadonlyArray<string>, timeout: Duration.DurationInput = "150 seconds") =>
  poll(
    `${ids.length} runs to finish`,
    Effect.map(app.client.runs.list({ urlParams: { limit: 500 } }), (all) => all.filter((r) => ids.includes(r.executionId))),
    (found) => found.length === ids.length && found.every(terminal),
    { timeout, interval: "500 millis" }
  )

/** `/ready` of one replica, whether ready (200) or not (503); undefined when it does not answer. */
export const readiness = (app: RunningApp) =>
  app.client.health.ready().pipe(
    Effect.catchTag("NotReady", (e) => Effect.succeed(e.readiness)),
    Effect.orElseSucceed(() => undefined)
  )

/** Waits until every replica is ready and sees all `replicas.length` runners, holding all 300 shards between them. */
export const allReady = (replicas: ReadonlyArray<RunningApp>) =>
  poll(
    `${replicas.length} replicas to be ready and share the shards`,
    Effect.forEach(replicas, readiness),
    (rs) =>
      rs.every((r) => r?.ready === true && r.runner?.runners === replicas.length && r.runner.shards > 0) &&
      rs.reduce((n, r) => n + (r?.runner?.shards ?? 0), 0) === 300,
    { timeout: "120 seconds", interval: "100 millis" }
  )

// ---------------------------------------------------------------------------------------------------------------
// The samples

export const ONTOLOGY_ID = "news"
const ns = SampleOntology.namespace
/** The sample ontology's class of each NER kind. */
export const classOfKind = { person: `${ns}Person`, organization: `${ns}Organization`, place: `${ns}Place` } as const
/** The first `n` sample documents, typed with the sample ontology. */
export const sampleDocuments = (n: number) => SampleDocuments.documents.slice(0, n).map((d) => ({ ...d, ontologyId: ONTOLOGY_ID }))

/** Publishes the sample ontology as `news` and waits for its run. */
export const publishSample = (ontology: RunningApp<"ontology">) =>
  ontology.client.workflows.PublishOntology({ payload: { ontologyId: ONTOLOGY_ID, turtle: SampleOntology.turtle } }).pipe(
    executionId,
    Effect.flatMap((id) => awaitRun(ontology, "PublishOntology", id))
  )

// ---------------------------------------------------------------------------------------------------------------
// Raw HTTP

export interface RawRequest {
  readonly method: string
  /** The request target exactly as written on the request line; U+0080..U+00FF stand for single raw bytes. */
  readonly target: string
  /** Sent in this order, duplicates included; `host`, `connection` and `content-length` are added. */
  readonly headers?: ReadonlyArray<readonly [string, string]>
  readonly body?: Buffer | undefined
}

export interface RawResponse {
  readonly status: number
  /** The first 64 KiB of the body. */
  readonly body: string
}

/**
 * One request on a fresh connection, exactly as given (node:http); rejects when the connection stays
 * silent for `timeoutMs` (generous: it tells an app that never answers from one that is slow).
 */
export const send = (port: number, req: RawRequest, timeoutMs = 30_000): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const headers = ["host", `127.0.0.1:${port}`, "connection", "close", ...(req.headers ?? []).flat()]
    if (req.body !== undefined) headers.push("content-length", String(req.body.length))
    let settled = false
    let responded = false
    const settle = (f: () => void) => {
      if (!settled) {
        settled = true
        f()
      }
    }
    const r = httpRequest({ host: "127.0.0.1", port, method: req.method, path: req.target, headers, agent: false, timeout: timeoutMs })
    r.on("response", (res) => {
      responded = true
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (chunk: Buffer) => {
        if (size < 65_536) {
          chunks.push(chunk)
          size += chunk.length
        }
      })
      res.on("end", () => settle(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") })))
      res.on("error", (e) => settle(() => reject(e)))
      res.on("aborted", () => settle(() => reject(new Error("response aborted"))))
    })
    r.on("timeout", () => r.destroy(new Error(`no response within ${timeoutMs} ms`)))
    r.on("error", (e) => {
      // a server that answers before reading the whole body may reset the upload: the response still counts
      if (responded) return
      const code = (e as NodeJS.ErrnoException).code
      // an upload over the body limit is refused (413) before it is read; Node's client then reports the cut-off upload
      if ((code === "EPIPE" || code === "ECONNRESET") && (req.body?.length ?? 0) > RequestGuard.MAX_BODY_BYTES) {
        settle(() => resolve({ status: 413, body: "(upload cut off after the server refused it)" }))
        return
      }
      settle(() => reject(e))
    })
    r.end(req.body)
  })

/** `send` of a JSON body (a string is sent as is) to one app, as an Effect. */
export const raw = (app: RunningApp, method: "GET" | "POST", target: string, body?: unknown) =>
  Effect.tryPromise({
    try: () =>
      send(app.port, {
        method,
        target,
        ...(body === undefined ? {} : {
          headers: [["content-type", "application/json"]],
          body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8")
        })
      }),
    catch: (e) => new E2EError({ message: `${method} ${app.baseUrl}${target} failed: ${String(e)}` })
  })

/** Decodes a raw response body with `schema` after checking the status. */
export const expectJson = <A, I>(schema: Schema.Schema<A, I>, response: RawResponse, status: number, what: string) =>
  Effect.gen(function*() {
    if (response.status !== status) {
      return yield* new E2EError({ message: `${what}: expected HTTP ${status}, got ${response.status}: ${response.body.slice(0, 2000)}` })
    }
    return yield* Schema.decodeUnknown(Schema.parseJson(schema))(response.body).pipe(
      Effect.mapError((e) => new E2EError({ message: `${what}: ${ParseResult.TreeFormatter.formatErrorSync(e)}` }))
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// Database

/** Runs `body` on a database of its own (dropped after), with a SqlClient on it. */
export const onFreshDatabase = <A, E, R>(suite: string, body: (url: string) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make(suite)
    const client = yield* Layer.build(Database.layer({ url: Redacted.make(db.url), applicationName: `e2e-${suite}` }))
    return yield* body(db.url).pipe(Effect.provide(client))
  })

/** Names of the ordinary and partitioned tables in schema public. */
export const tableNames: Effect.Effect<ReadonlyArray<string>, SqlError.SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ relname: string }>`
    SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace ORDER BY relname`
).pipe(Effect.map((rows) => rows.map((r) => r.relname)))

/**
 * Domain data tables: `ontology_*` / `knowledge_*` minus the tables runtime-core owns under each prefix
 * (runs ledger, activity results, migration ledgers) and the engine's `*_cluster_*` tables.
 */
export const isDomainTable = (name: string): boolean =>
  /^(ontology|knowledge)_/.test(name) &&
  !/^(ontology|knowledge)_(runs|activity_exits|activity_results|migrations|runtime_migrations|cluster_.*)$/.test(name)

/** `table -> row count` for every public table passing `filter`. */
export const rowCounts = (filter: (table: string) => boolean = () => true) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const counts: Record<string, number> = {}
    for (const name of (yield* tableNames).filter(filter)) {
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(name)}`
      counts[name] = row?.n ?? 0
    }
    return counts
  })

/** `status -> count` of an app's runs ledger. */
export const statusCounts = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM ${sql(`${prefix}_runs`)} GROUP BY 1`).pipe(
      Effect.map((rows): Record<string, number> => Object.fromEntries(rows.map((r) => [r.status, r.n])))
    )

/** Polls the runs ledger until `n` runs succeeded (or one failed). */
export const allSucceeded = (prefix: string, n: number, timeout: Duration.DurationInput = "180 seconds") =>
  poll(`${n} ${prefix} runs to succeed`, statusCounts(prefix), (c) => (c.succeeded ?? 0) >= n || (c.failed ?? 0) > 0, {
    timeout,
    interval: "500 millis"
  })
