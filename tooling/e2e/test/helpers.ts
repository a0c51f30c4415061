/**
 * Helpers for the end-to-end suites: start the apps as real processes (by file
 * path, never by importing their code), talk to them over HTTP with a small
 * typed client, poll for run outcomes, and read table row counts.
 */
import { KnowledgeModel } from "@duraflow/knowledge"
import { OntologyModel } from "@duraflow/ontology"
import { TestProcess } from "@duraflow/runtime-core/testing"
import { SqlClient, type SqlError } from "@effect/sql"
import { Data, Duration, Effect, Exit, ParseResult, Schema, type Scope } from "effect"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"

// ---------------------------------------------------------------------------------------------------------------
// Errors

export class E2EError extends Data.TaggedError("E2EError")<{ readonly message: string }> {}

const fail = (message: string) => Effect.fail(new E2EError({ message }))

// ---------------------------------------------------------------------------------------------------------------
// Processes

const appDir = (name: string) => fileURLToPath(new URL(`../../../apps/${name}/`, import.meta.url))

export const Apps = {
  ontology: { dir: appDir("ontology-server"), entry: "src/main.ts" },
  knowledge: { dir: appDir("knowledge-server"), entry: "src/main.ts" }
} as const
export type AppName = keyof typeof Apps

/** A port nobody listens on right now (the OS picks it). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = createServer()
  server.unref()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * The engine mode of apps whose test does not pin one: the test run's `WORKFLOW_MODE`
 * (each CI matrix cell sets it), default durable.
 */
export const defaultMode: "durable" | "memory" =
  process.env.WORKFLOW_MODE?.trim().toLowerCase() === "memory" ? "memory" : "durable"

export interface StartOptions {
  readonly databaseUrl: string
  readonly port: number
  readonly mode?: "durable" | "memory"
  /** knowledge only */
  readonly ontologyUrl?: string
}

export interface RunningApp {
  readonly label: string
  readonly port: number
  readonly baseUrl: string
  readonly process: TestProcess.TestProcess
  readonly client: Client
}

/**
 * The processes of one test. Each started app is remembered (with its output
 * lines) so that a failing test can print every app's log, including apps
 * that were killed on purpose before the failure.
 */
export class AppSet {
  private readonly started: Array<RunningApp> = []

  /** Starts an app under tsx and waits for `Listening on http://...:<port>`; killed at scope end. */
  start(app: AppName, options: StartOptions): Effect.Effect<RunningApp, TestProcess.TestProcessError, Scope.Scope> {
    return Effect.gen(this, function*() {
      const label = `${app}#${this.started.filter((a) => a.label.startsWith(`${app}#`)).length + 1}`
      const process = yield* TestProcess.spawnTs(Apps[app].dir + Apps[app].entry, {
        cwd: Apps[app].dir,
        env: {
          DATABASE_URL: options.databaseUrl,
          PORT: String(options.port),
          WORKFLOW_MODE: options.mode ?? defaultMode,
          ONTOLOGY_URL: options.ontologyUrl,
          // inherited values must not leak into the apps
          TEST_DATABASE_URL: undefined
        }
      })
      const baseUrl = `http://127.0.0.1:${options.port}`
      const running: RunningApp = { label, port: options.port, baseUrl, process, client: client(baseUrl) }
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

/**
 * Runs a test body with a fresh `AppSet`; when the body fails (an assertion,
 * a timeout or an error), every app's output is printed to stderr.
 */
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

/** Starts the ontology and knowledge apps (in parallel) on one database. */
export const startBoth = (
  apps: AppSet,
  databaseUrl: string,
  options: { readonly mode?: "durable" | "memory" } = {}
) =>
  Effect.gen(function*() {
    const [ontologyPort, knowledgePort] = yield* Effect.all([freePort, freePort])
    if (ontologyPort === knowledgePort) return yield* fail("the OS handed out the same port twice")
    const mode = options.mode ?? defaultMode
    const [ontology, knowledge] = yield* Effect.all([
      apps.start("ontology", { databaseUrl, port: ontologyPort, mode }),
      apps.start("knowledge", {
        databaseUrl,
        port: knowledgePort,
        mode,
        ontologyUrl: `http://127.0.0.1:${ontologyPort}`
      })
    ], { concurrency: 2 })
    return { ontology, knowledge }
  })

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface HttpResult {
  readonly status: number
  readonly text: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: unknown
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** One HTTP request; `body` is sent as JSON, `rawBody` as is (with a JSON content type). */
export const request = (
  method: "GET" | "POST",
  url: string,
  options: { readonly body?: unknown; readonly rawBody?: string } = {}
): Effect.Effect<HttpResult, E2EError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
      const response = await fetch(url, {
        method,
        signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]),
        ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } })
      })
      const text = await response.text()
      return { status: response.status, text, json: parseJson(text) }
    },
    catch: (e) => new E2EError({ message: `${method} ${url} failed: ${e instanceof Error ? e.message : String(e)}` })
  })

/** Decodes a response body with `schema` after checking the status. */
export const expectJson = <A, I>(
  schema: Schema.Schema<A, I>,
  result: HttpResult,
  status: number,
  what: string
): Effect.Effect<A, E2EError> =>
  result.status !== status
    ? fail(`${what}: expected HTTP ${status}, got ${result.status}: ${result.text.slice(0, 2000)}`)
    : Schema.decodeUnknown(schema)(result.json).pipe(
      Effect.mapError((e) =>
        new E2EError({
          message: `${what}: unexpected body ${result.text.slice(0, 2000)}\n${ParseResult.TreeFormatter.formatErrorSync(e)}`
        })
      )
    )

// The documented response shapes.
export const RunStatus = Schema.Literal("running", "suspended", "succeeded", "failed")
export const Run = Schema.Struct({
  workflow: Schema.String,
  executionId: Schema.String,
  status: RunStatus,
  payload: Schema.optional(Schema.Unknown),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Unknown),
  createdAt: Schema.String,
  updatedAt: Schema.String
})
export type Run = typeof Run.Type
export const Started = Schema.Struct({ executionId: Schema.String })
export const Health = Schema.Struct({
  status: Schema.Literal("ok", "degraded"),
  mode: Schema.Literal("durable", "memory"),
  prefix: Schema.String,
  database: Schema.Struct({ reachable: Schema.Boolean, latencyMs: Schema.optional(Schema.Number) })
})
export const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
})
export const MalformedPayload = Schema.Struct({
  _tag: Schema.Literal("MalformedPayload"),
  workflow: Schema.String,
  message: Schema.String,
  issues: Schema.Array(Issue)
})
export type MalformedPayload = typeof MalformedPayload.Type
export const TaggedError = Schema.Struct({ _tag: Schema.String, message: Schema.String })

export interface Client {
  readonly baseUrl: string
  readonly get: (path: string) => Effect.Effect<HttpResult, E2EError>
  readonly post: (path: string, body: unknown) => Effect.Effect<HttpResult, E2EError>
  readonly postRaw: (path: string, rawBody: string) => Effect.Effect<HttpResult, E2EError>
  readonly health: Effect.Effect<typeof Health.Type, E2EError>
  /** POST /runs/{workflow}, expecting 202 {executionId}. */
  readonly start: (workflow: string, payload: unknown) => Effect.Effect<string, E2EError>
  readonly run: (workflow: string, executionId: string) => Effect.Effect<Run, E2EError>
  readonly runs: (query?: string) => Effect.Effect<ReadonlyArray<Run>, E2EError>
  /** Polls until the run is succeeded or failed (or `timeout` passes). */
  readonly awaitRun: (workflow: string, executionId: string, timeout?: Duration.DurationInput) => Effect.Effect<Run, E2EError>
  /** Polls `GET /runs?limit=500` until every one of `ids` is succeeded or failed. */
  readonly awaitRuns: (
    ids: ReadonlyArray<string>,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<ReadonlyArray<Run>, E2EError>
  readonly document: (documentId: string) => Effect.Effect<KnowledgeModel.DocumentView, E2EError>
  readonly entities: (query: string) => Effect.Effect<ReadonlyArray<KnowledgeModel.EntityView>, E2EError>
  readonly ontology: (ontologyId: string) => Effect.Effect<OntologyModel.OntologyView, E2EError>
}

const terminal = (run: Run) => run.status === "succeeded" || run.status === "failed"

/** A typed client for one app. */
export const client = (baseUrl: string): Client => {
  const get = (path: string) => request("GET", baseUrl + path)
  const post = (path: string, body: unknown) => request("POST", baseUrl + path, { body })
  const postRaw = (path: string, rawBody: string) => request("POST", baseUrl + path, { rawBody })
  const run = (workflow: string, executionId: string) =>
    Effect.flatMap(
      get(`/runs/${workflow}/${executionId}`),
      (r) => expectJson(Run, r, 200, `run ${workflow}/${executionId}`)
    )
  const runs = (query = "") =>
    Effect.flatMap(get(`/runs${query === "" ? "" : `?${query}`}`), (r) => expectJson(Schema.Array(Run), r, 200, "runs"))
  return {
    baseUrl,
    get,
    post,
    postRaw,
    health: Effect.flatMap(get("/health"), (r) => expectJson(Health, r, 200, "health")),
    start: (workflow, payload) =>
      post(`/runs/${workflow}`, payload).pipe(
        Effect.flatMap((r) => expectJson(Started, r, 202, `start ${workflow}`)),
        Effect.map((s) => s.executionId)
      ),
    run,
    runs,
    awaitRun: (workflow, executionId, timeout = "120 seconds") =>
      poll(`run ${workflow}/${executionId} to finish`, run(workflow, executionId), terminal, { timeout }),
    awaitRuns: (ids, timeout = "150 seconds") =>
      poll(
        `${ids.length} runs to finish`,
        Effect.map(runs("limit=500"), (all) => all.filter((r) => ids.includes(r.executionId))),
        (found) => found.length === ids.length && found.every(terminal),
        { timeout, interval: "500 millis" }
      ),
    document: (documentId) =>
      Effect.flatMap(
        get(`/documents/${encodeURIComponent(documentId)}`),
        (r) => expectJson(KnowledgeModel.DocumentView, r, 200, `document ${documentId}`)
      ),
    entities: (query) =>
      Effect.flatMap(
        get(`/entities?${query}`),
        (r) => expectJson(Schema.Array(KnowledgeModel.EntityView), r, 200, `entities ?${query}`)
      ),
    ontology: (ontologyId) =>
      Effect.flatMap(
        get(`/ontologies/${encodeURIComponent(ontologyId)}`),
        (r) => expectJson(OntologyModel.OntologyView, r, 200, `ontology ${ontologyId}`)
      )
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Polling

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
    const interval = options.interval ?? "250 millis"
    const deadline = Date.now() + Duration.toMillis(timeout)
    for (;;) {
      const value = yield* effect
      if (done(value)) return value
      if (Date.now() > deadline) {
        return yield* fail(
          `timed out after ${Duration.format(timeout)} waiting for ${what}; last value: ${
            JSON.stringify(value).slice(0, 3000)
          }`
        )
      }
      yield* Effect.sleep(interval)
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// Database

/** Names of the ordinary and partitioned tables in schema public. */
export const tableNames: Effect.Effect<ReadonlyArray<string>, SqlError.SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ relname: string }>`
      SELECT relname FROM pg_class
      WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace
      ORDER BY relname`
).pipe(Effect.map((rows) => rows.map((r) => r.relname)))

/**
 * Domain data tables: `ontology_*` / `knowledge_*` minus the tables runtime-core owns under each prefix
 * (runs ledger, activity results, migration ledgers) and the engine's `*_cluster_*` tables.
 */
export const isDomainTable = (name: string): boolean =>
  /^(ontology|knowledge)_/.test(name) &&
  !/^(ontology|knowledge)_(runs|activity_results|migrations|runtime_migrations|cluster_.*)$/.test(name)

/** `table -> row count` for every public table passing `filter`. */
export const rowCounts = (
  filter: (table: string) => boolean = () => true
): Effect.Effect<Record<string, number>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const names = (yield* tableNames).filter(filter)
    const counts: Record<string, number> = {}
    for (const name of names) {
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(name)}`
      counts[name] = row?.n ?? 0
    }
    return counts
  })
