/**
 * The HTTP surface every app serves, against a real server and a real database:
 * start (idempotent), status, listing, health, and the errors for bad input,
 * which must persist nothing.
 */
import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Activity, Workflow } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Schedule, Schema, Logger, LogLevel } from "effect"
import { AppRuntime, AppServer, RunsApi, TablePrefix, WorkflowLayer } from "../src/index.js"
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

const prefix = TablePrefix.unsafeMake("httpapp")

const App = AppServer.layer(RunsApi.make("httpapp", [Shout]), { groups: Layer.empty, port: 0 }).pipe(
  Layer.provideMerge(AppRuntime.layer({ prefix, migrations: [], workflows: ShoutLayer })),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", "durable"]])))),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)) // one INFO line per request is noise here
)

const request = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const address = server.address as HttpServer.TcpAddress
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${address.port}${path}`, init)
      const text = await response.text()
      return { status: response.status, body: text ? JSON.parse(text) : undefined }
    })
  })

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
        expect(unknown.body).toMatchObject({ _tag: "UnknownWorkflow", workflow: "Nope", known: ["Shout"] })
        const noRun = yield* request("/runs/Shout/does-not-exist")
        expect(noRun.status).toBe(404)
        const badLimit = yield* request("/runs?limit=0")
        expect(badLimit.status).toBe(400)
        const badStatus = yield* request("/runs?status=exploded")
        expect(badStatus.status).toBe(400)
        expect(yield* runCount).toBe(before)
      }))

    it.effect("serves its OpenAPI document", () =>
      Effect.gen(function*() {
        const doc = yield* request("/openapi.json")
        expect(doc.status).toBe(200)
        expect(Object.keys(doc.body.paths).sort()).toEqual([
          "/health",
          "/ready",
          "/runs",
          "/runs/Shout",
          "/runs/Shout/{executionId}",
          "/runs/{workflow}/{executionId}"
        ])
      }))
  })
})
