/**
 * The HTTP surface every app serves, against a real server and a real database:
 * start (idempotent), status, listing, health, signals, and the errors for bad
 * input, which must persist nothing; every answer has a JSON body and is
 * documented in /openapi.json for its route; a start is atomic.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpServer from "@effect/platform/HttpServer"
import { SqlClient } from "@effect/sql"
import { Activity, DurableDeferred, Workflow } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Schedule, Schema, Logger, LogLevel } from "effect"
import { request as httpRequest } from "node:http"
import { AppRuntime, AppServer, RequestGuard, RunsApi, TablePrefix, WorkflowLayer } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

class Shouting extends Context.Tag("test/Shouting")<Shouting, { readonly loud: (s: string) => string }>() {}

class Rejected extends Schema.TaggedError<Rejected>()("Rejected", { reason: Schema.String }) {}

const Shout = Workflow.make({
  name: "Shout",
  payload: { id: Schema.String, text: Schema.String.pipe(Schema.minLength(1)), times: Schema.Int },
  success: Schema.Struct({ text: Schema.String }),
  error: Rejected,
  idempotencyKey: ({ id }) => id
})

const ShoutLayer = WorkflowLayer.make(Shout, {
  dependencies: Layer.succeed(Shouting, { loud: (s) => s.toUpperCase() }),
  execute: ({ text, times }) =>
    Activity.make({
      name: "shout",
      success: Schema.Struct({ text: Schema.String }),
      error: Rejected,
      execute: Effect.flatMap(Shouting, (s) =>
        times < 0 ? new Rejected({ reason: "times must not be negative" }) : Effect.succeed({ text: s.loud(text).repeat(times) }))
    })
})

const Go = DurableDeferred.make("go", { success: Schema.Struct({ word: Schema.String }) })

const Wait = Workflow.make({
  name: "Wait",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

const WaitLayer = WorkflowLayer.make(Wait, {
  dependencies: Layer.empty,
  signals: [Go],
  execute: () => Effect.map(DurableDeferred.await(Go), ({ word }) => word)
})

/** A domain route with a bug: its defect must become a 500 with an error id, nothing more. */
class BuggyGroup extends HttpApiGroup.make("buggy").add(HttpApiEndpoint.get("boom", "/boom").addSuccess(Schema.String)) {}

const prefix = TablePrefix.unsafeMake("httpapp")

const Api = RunsApi.make("httpapp", [Shout, RunsApi.withSignals(Wait, { go: Go })]).add(BuggyGroup)

const Buggy = HttpApiBuilder.group(Api, "buggy", (handlers) =>
  handlers.handle("boom", () => Effect.die(new Error("secret internals at /srv/app.ts:42"))))

const App = AppServer.layer(Api, { groups: Buggy, port: 0, info: { title: "httpapp", version: "1.2.3" } }).pipe(
  Layer.provideMerge(AppRuntime.layer({ prefix, migrations: [], workflows: Layer.merge(ShoutLayer, WaitLayer) })),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", "durable"]])))),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)) // one INFO line per request is noise here
)

const port = Effect.map(HttpServer.HttpServer, (server) => (server.address as HttpServer.TcpAddress).port)

const request = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const p = yield* port
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${p}${path}`, init)
      const text = await response.text()
      return {
        status: response.status,
        contentType: response.headers.get("content-type"),
        allow: response.headers.get("allow"),
        text,
        body: text ? JSON.parse(text) : undefined
      }
    })
  })

/** A POST whose body is sent chunked (no content-length), `chunks` pieces of `chunk`. */
const postChunked = (path: string, chunk: string, chunks: number) =>
  Effect.flatMap(port, (p) =>
    Effect.async<{ status: number; body: any }, Error>((resume) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port: p,
        path,
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" }
      }, (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (c) => text += c)
        res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined })))
      })
      req.on("error", (e) => resume(Effect.fail(e)))
      let sent = 0
      const write = () => {
        while (sent < chunks) {
          sent++
          if (!req.write(chunk)) return void req.once("drain", write)
        }
        req.end()
      }
      write()
    }))

const post = (path: string, body: string) =>
  request(path, { method: "POST", body, headers: { "content-type": "application/json" } })

const waitForStatus = (path: string, status: string) =>
  request(path).pipe(
    Effect.filterOrFail((r) => r.body?.status === status),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout("20 seconds")
  )

const runCount = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM httpapp_runs`)
  .pipe(Effect.map((r) => r[0].n))

const rowsOf = (table: "httpapp_runs" | "httpapp_cluster_messages", like: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    table === "httpapp_runs"
      ? sql<{ n: number }>`SELECT count(*)::int AS n FROM httpapp_runs WHERE payload::text LIKE ${like}`
      : sql<{ n: number }>`SELECT count(*)::int AS n FROM httpapp_cluster_messages WHERE payload::text LIKE ${like}`).pipe(
    Effect.map((r) => r[0]!.n)
  )

/** A schema of the OpenAPI document with its `$ref` followed. */
const resolve = (doc: any, schema: any): any =>
  schema.$ref ? resolve(doc, doc.components.schemas[schema.$ref.split("/").pop()]) : schema

describe("runs HTTP API", () => {
  layer(Layer.provideMerge(App, TestDatabase.layer("runs_http")), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("health reports mode, prefix and a reachable database", () =>
      Effect.gen(function*() {
        const health = yield* request("/health")
        expect(health.status).toBe(200)
        expect(health.body).toMatchObject({ status: "ok", mode: "durable", prefix: "httpapp", database: { reachable: true } })
      }))

    it.effect("starting a run is idempotent and its result can be read", () =>
      Effect.gen(function*() {
        const first = yield* post("/runs/Shout", JSON.stringify({ id: "a", text: "hi", times: 2 }))
        expect(first.status).toBe(202)
        const again = yield* post("/runs/Shout", JSON.stringify({ id: "a", text: "hi", times: 2 }))
        expect(again).toEqual(first)
        const { executionId } = first.body
        const done = yield* waitForStatus(`/runs/Shout/${executionId}`, "succeeded")
        expect(done.body).toMatchObject({ workflow: "Shout", executionId, status: "succeeded", result: { text: "HIHI" } })
        const list = yield* request("/runs?workflow=Shout")
        expect(list.body.map((r: any) => r.executionId)).toEqual([executionId])
        // one run shows its payload; the list leaves payloads out
        expect(done.body.payload).toEqual({ id: "a", text: "hi", times: 2 })
        expect(list.body[0].payload).toBeUndefined()
      }))

    it.effect("a failing run reports its typed error", () =>
      Effect.gen(function*() {
        const started = yield* post("/runs/Shout", JSON.stringify({ id: "neg", text: "x", times: -1 }))
        const failed = yield* waitForStatus(`/runs/Shout/${started.body.executionId}`, "failed")
        expect(failed.body.error).toEqual({ _tag: "Rejected", reason: "times must not be negative" })
        const onlyFailed = yield* request("/runs?status=failed")
        expect(onlyFailed.body.map((r: any) => r.executionId)).toEqual([started.body.executionId])
        const newestFirst = yield* request("/runs?limit=2")
        expect(newestFirst.body[0].executionId).toBe(started.body.executionId)
      }))

    it.effect("bad input gets 400/404 with the reason and persists nothing", () =>
      Effect.gen(function*() {
        const before = yield* runCount
        const missing = yield* post("/runs/Shout", JSON.stringify({ id: "b", times: 1 }))
        expect(missing.status).toBe(400)
        expect(missing.body._tag).toBe("MalformedPayload")
        expect(missing.body.issues).toContainEqual({ path: ["text"], message: "is missing" })
        const wrongType = yield* post("/runs/Shout", JSON.stringify({ id: "b", text: "", times: 1.5 }))
        expect(wrongType.status).toBe(400)
        expect(wrongType.body.issues.map((i: any) => i.path[0]).sort()).toEqual(["text", "times"])
        const extra = yield* post("/runs/Shout", JSON.stringify({ id: "b", text: "x", times: 1, admin: true }))
        expect(extra.status).toBe(400)
        const badJson = yield* post("/runs/Shout", "{not json")
        expect(badJson.status).toBe(400)
        const unknown = yield* post("/runs/Nope", JSON.stringify({}))
        expect(unknown.status).toBe(404)
        expect(unknown.body).toMatchObject({ _tag: "UnknownWorkflow", workflow: "Nope", known: ["Shout", "Wait"] })
        const noRun = yield* request("/runs/Shout/does-not-exist")
        expect(noRun.status).toBe(404)
        const badLimit = yield* request("/runs?limit=0")
        expect(badLimit.status).toBe(400)
        const badStatus = yield* request("/runs?status=exploded")
        expect(badStatus.status).toBe(400)
        expect(yield* runCount).toBe(before)
      }))

    it.effect("serves its OpenAPI document: typed workflow routes, every answer, title and version from the app", () =>
      Effect.gen(function*() {
        const doc = yield* request("/openapi.json")
        expect(doc.status).toBe(200)
        expect(doc.body.info).toMatchObject({ title: "httpapp", version: "1.2.3" })
        expect(Object.keys(doc.body.paths).sort()).toEqual([
          "/boom",
          "/health",
          "/ready",
          "/runs",
          "/runs/Shout",
          "/runs/Shout/{executionId}",
          "/runs/Wait",
          "/runs/Wait/{executionId}",
          "/runs/Wait/{executionId}/signals/go",
          "/runs/{workflow}/{executionId}",
          "/runs/{workflow}/{executionId}/cancel",
          "/runs/{workflow}/{executionId}/resume",
          "/runs/{workflow}/{executionId}/retry",
          "/runs/{workflow}/{executionId}/steps"
        ])
        // what Shout takes, from its own payload schema
        const start = doc.body.paths["/runs/Shout"].post
        const payload = resolve(doc.body, start.requestBody.content["application/json"].schema)
        expect(Object.keys(payload.properties).sort()).toEqual(["id", "text", "times"])
        expect(payload.required.sort()).toEqual(["id", "text", "times"])
        expect(payload.additionalProperties).toBe(false)
        expect(Object.keys(start.responses).sort()).toEqual(["202", "400", "413", "415", "500", "503"])
        // the signal's value schema
        const signal = doc.body.paths["/runs/Wait/{executionId}/signals/go"].post
        expect(Object.keys(resolve(doc.body, signal.requestBody.content["application/json"].schema).properties)).toEqual(["word"])
        // the published 400 is the body that is sent: issues without a _tag
        const issue = doc.body.components.schemas.PayloadIssue
        expect(issue.required.sort()).toEqual(["message", "path"])
        const malformed = yield* post("/runs/Shout", JSON.stringify({ id: "x", times: 1 }))
        expect(malformed.body.issues[0]).toEqual({ path: ["text"], message: "is missing" })
      }))

    it.effect("typed routes: start, status with the typed result, signals", () =>
      Effect.gen(function*() {
        const started = yield* post("/runs/Wait", JSON.stringify({ id: "w1" }))
        expect(started.status).toBe(202)
        const { executionId } = started.body
        const status = yield* request(`/runs/Wait/${executionId}`)
        expect(status.status).toBe(200)
        expect(status.body).toMatchObject({ workflow: "Wait", executionId, payload: { id: "w1" } })

        const malformed = yield* post(`/runs/Wait/${executionId}/signals/go`, JSON.stringify({ wrd: "x" }))
        expect(malformed.status).toBe(400)
        expect(malformed.body._tag).toBe("MalformedPayload")
        const noRun = yield* post(`/runs/Wait/nope/signals/go`, JSON.stringify({ word: "x" }))
        expect(noRun.body).toMatchObject({ _tag: "RunNotFound" })
        const noSignal = yield* post(`/runs/Wait/${executionId}/signals/stop`, JSON.stringify({ word: "x" }))
        expect(noSignal.status).toBe(404)
        expect(noSignal.body).toMatchObject({ _tag: "UnknownSignal", known: ["go"] })

        const delivered = yield* post(`/runs/Wait/${executionId}/signals/go`, JSON.stringify({ word: "hello" }))
        expect(delivered).toMatchObject({ status: 202, body: { delivered: true } })
        const done = yield* waitForStatus(`/runs/Wait/${executionId}`, "succeeded")
        expect(done.body.result).toBe("hello")
      }))

    it.effect("every answer has a JSON body; a wrong method is a 405 with Allow; a defect a 500 with an error id", () =>
      Effect.gen(function*() {
        const isJson = (r: { contentType: string | null }) => expect(r.contentType).toMatch(/^application\/json/)

        const noRoute = yield* request("/nowhere")
        expect(noRoute).toMatchObject({ status: 404, body: { _tag: "NotFound" } })
        isJson(noRoute)

        const wrongMethod = yield* request("/health", { method: "DELETE" })
        expect(wrongMethod).toMatchObject({ status: 405, allow: "GET", body: { _tag: "MethodNotAllowed", allowed: ["GET"] } })
        isJson(wrongMethod)
        const getStart = yield* request("/runs/Shout/x/signals/go")
        expect(getStart).toMatchObject({ status: 405, allow: "POST" })

        const badJson = yield* post("/runs/Shout", "{not json")
        expect(badJson).toMatchObject({ status: 400, body: { _tag: "MalformedPayload", workflow: "Shout" } })
        isJson(badJson)

        const longId = yield* request(`/runs/Shout/${"x".repeat(300)}`)
        expect(longId).toMatchObject({ status: 400, body: { _tag: "MalformedRequest" } })
        isJson(longId)
        const badLimit = yield* request("/runs?limit=many")
        expect(badLimit).toMatchObject({ status: 400, body: { _tag: "HttpApiDecodeError" } })
        isJson(badLimit)
        const badParam = yield* request(`/runs/Shout/%E0%A4%A`)
        expect([400, 404]).toContain(badParam.status)
        isJson(badParam)

        const nul = yield* request("/runs?workflow=%00")
        expect(nul).toMatchObject({ status: 400, body: { _tag: "MalformedRequest" } })
        const form = yield* request("/runs/Shout", { method: "POST", body: "a=1", headers: { "content-type": "text/plain" } })
        expect(form).toMatchObject({ status: 415, body: { _tag: "UnsupportedMediaType" } })
        isJson(form)
        const big = yield* post("/runs/Shout", JSON.stringify({ id: "big", text: "x".repeat(RequestGuard.MAX_BODY_BYTES), times: 1 }))
        expect(big).toMatchObject({ status: 413, body: { _tag: "PayloadTooLarge" } })
        isJson(big)

        const boom = yield* request("/boom")
        expect(boom.status).toBe(500)
        isJson(boom)
        expect(boom.body).toMatchObject({ _tag: "InternalError", errorId: expect.stringMatching(/^[0-9a-f-]{36}$/) })
        expect(boom.text).not.toMatch(/secret internals|app\.ts|\bat /)
      }))

    it.effect("a chunked body over 4 MiB gets a 413; a chunked body under it is read", () =>
      Effect.gen(function*() {
        const before = yield* runCount
        const tooBig = yield* postChunked("/runs/Shout", "[" + "1,".repeat(32 * 1024), 80) // 5 MiB
        expect(tooBig).toMatchObject({ status: 413, body: { _tag: "PayloadTooLarge" } })
        const body = JSON.stringify({ id: "chunked", text: "c", times: 1 })
        const ok = yield* postChunked("/runs/Shout", body, 1)
        expect(ok.status).toBe(202)
        expect(yield* runCount).toBe(before + 1)
      }))

    it.effect("every status the server sends for a route is documented for that route", () =>
      Effect.gen(function*() {
        const doc = (yield* request("/openapi.json")).body
        const json = { "content-type": "application/json" }
        const body = (value: unknown) => ({ method: "POST", body: JSON.stringify(value), headers: json })
        const cases: Array<[route: string, method: string, url: string, init?: RequestInit]> = [
          ["/health", "get", "/health"],
          ["/health", "get", "/health?x=%00"],
          ["/health", "get", "/health", { headers: { "content-type": "text/csv" } }],
          ["/ready", "get", "/ready"],
          ["/runs", "get", "/runs?limit=2"],
          ["/runs", "get", "/runs?limit=0"],
          ["/runs", "get", "/runs?status=exploded"],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "doc", text: "d", times: 1 })],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "doc", text: "d", times: 1 })],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "doc" })],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "doc", text: "d", times: 1, extra: 1 })],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "doc\u0000", text: "d", times: 1 })],
          ["/runs/Shout", "post", "/runs/Shout", { method: "POST", body: "{", headers: json }],
          ["/runs/Shout", "post", "/runs/Shout", { method: "POST", body: "x", headers: { "content-type": "text/plain" } }],
          ["/runs/Shout", "post", "/runs/Shout", body({ id: "x".repeat(RequestGuard.MAX_BODY_BYTES) })],
          ["/runs/Shout/{executionId}", "get", "/runs/Shout/nope"],
          ["/runs/Shout/{executionId}", "get", `/runs/Shout/${"y".repeat(201)}`],
          ["/runs/Wait/{executionId}/signals/go", "post", "/runs/Wait/nope/signals/go", body({ word: "w" })],
          ["/runs/Wait/{executionId}/signals/go", "post", "/runs/Wait/nope/signals/go", body({})],
          ["/runs/Wait/{executionId}/signals/go", "post", "/runs/Wait/nope/signals/go", { method: "POST", body: "[", headers: json }],
          ["/runs/{workflow}/{executionId}", "get", "/runs/Nope/x"],
          ["/runs/{workflow}/{executionId}", "get", "/runs/Wait/x/"],
          ["/runs/{workflow}/{executionId}", "get", `/runs/${"n".repeat(201)}/x`],
          ["/runs/{workflow}/{executionId}/cancel", "post", "/runs/Wait/nope/cancel", { method: "POST" }],
          ["/runs/{workflow}/{executionId}/cancel", "post", "/runs/Nope/nope/cancel", { method: "POST" }],
          ["/runs/{workflow}/{executionId}/resume", "post", "/runs/Wait/nope/resume", { method: "POST" }],
          ["/runs/{workflow}/{executionId}/retry", "post", "/runs/Wait/nope/retry", { method: "POST" }],
          ["/runs/{workflow}/{executionId}/steps", "get", "/runs/Wait/nope/steps"],
          ["/runs", "get", "/runs?cursor=bad"],
          ["/boom", "get", "/boom"]
        ]
        const seen = new Set<string>()
        for (const [route, method, url, init] of cases) {
          const response = yield* request(url, init)
          const documented = Object.keys(doc.paths[route][method].responses)
          expect(documented, `${method.toUpperCase()} ${url} answered ${response.status}`).toContain(String(response.status))
          seen.add(String(response.status))
        }
        // the battery reaches the statuses it is about
        expect([...seen].sort()).toEqual(expect.arrayContaining(["200", "202", "400", "404", "413", "415", "500"]))
      }))

    it.effect("more concurrent starts than pooled connections all start", () =>
      Effect.gen(function*() {
        const answers = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, i) => i),
          (i) => post("/runs/Shout", JSON.stringify({ id: `many-${i}`, text: "m", times: 1 })),
          { concurrency: "unbounded" }
        )
        expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202))
        yield* Effect.forEach(answers, (a) => waitForStatus(`/runs/Shout/${a.body.executionId}`, "succeeded"))
      }))

    it.effect("a start whose engine write fails answers 503 and leaves nothing; the same start later runs", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE FUNCTION httpapp_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'refused by the test'; END $$`)
        yield* sql.unsafe(`CREATE TRIGGER httpapp_refuse BEFORE INSERT ON httpapp_cluster_messages
          FOR EACH ROW EXECUTE FUNCTION httpapp_refuse()`)
        const payload = JSON.stringify({ id: "atomic-1", text: "a", times: 1 })
        const refused = yield* post("/runs/Shout", payload).pipe(
          Effect.ensuring(sql.unsafe(`DROP TRIGGER httpapp_refuse ON httpapp_cluster_messages`).pipe(Effect.orDie))
        )
        expect(refused).toMatchObject({ status: 503, body: { _tag: "ServiceUnavailable" } })
        expect(yield* rowsOf("httpapp_runs", "%atomic-1%")).toBe(0)
        expect(yield* rowsOf("httpapp_cluster_messages", "%atomic-1%")).toBe(0)

        const started = yield* post("/runs/Shout", payload)
        expect(started.status).toBe(202)
        const done = yield* waitForStatus(`/runs/Shout/${started.body.executionId}`, "succeeded")
        expect(done.body.result).toEqual({ text: "A" })
        expect(yield* post("/runs/Shout", payload)).toEqual(started)
      }))

    it.effect("a signal held up by a lock answers 503 by the deadline; sent again, it is delivered", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const started = yield* post("/runs/Wait", JSON.stringify({ id: "held-signal" }))
        expect(started.status).toBe(202)
        const { executionId } = started.body
        const signal = JSON.stringify({ word: "late" })
        // the engine's tables locked for longer than the deadline, from another session: the
        // delivery waits on the lock (no error the engine would give up on)
        const blocked = yield* sql.withTransaction(
          Effect.zipRight(
            sql`LOCK TABLE httpapp_cluster_messages, httpapp_cluster_replies IN EXCLUSIVE MODE`,
            post(`/runs/Wait/${executionId}/signals/go`, signal)
          )
        )
        expect(blocked).toMatchObject({ status: 503, body: { _tag: "ServiceUnavailable" } })
        const delivered = yield* post(`/runs/Wait/${executionId}/signals/go`, signal)
        expect(delivered).toMatchObject({ status: 202, body: { delivered: true } })
        const done = yield* waitForStatus(`/runs/Wait/${executionId}`, "succeeded")
        expect(done.body.result).toBe("late")
      }))

    it.effect("a start held up by a lock answers 503 by its deadline and leaves nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const payload = JSON.stringify({ id: "atomic-2", text: "b", times: 1 })
        // the engine's table locked for longer than the deadline, from another session
        const blocked = yield* sql.withTransaction(
          Effect.zipRight(sql`LOCK TABLE httpapp_cluster_messages IN EXCLUSIVE MODE`, post("/runs/Shout", payload))
        )
        expect(blocked).toMatchObject({ status: 503, body: { _tag: "ServiceUnavailable" } })
        expect(yield* rowsOf("httpapp_runs", "%atomic-2%")).toBe(0)
        expect(yield* rowsOf("httpapp_cluster_messages", "%atomic-2%")).toBe(0)
        const started = yield* post("/runs/Shout", payload)
        expect(started.status).toBe(202)
        yield* waitForStatus(`/runs/Shout/${started.body.executionId}`, "succeeded")
      }))
  })
})
