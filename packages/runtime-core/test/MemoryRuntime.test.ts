/**
 * Memory mode needs no database: with WORKFLOW_MODE=memory and no DATABASE_URL,
 * an app whose workflows need no SQL starts, serves runs over HTTP (start,
 * idempotent restart, status, list) and reports its health without Postgres.
 * An app whose domain keeps data in Postgres is told, by name, that it still
 * needs DATABASE_URL. The in-memory runs ledger keeps the table's rules.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { Activity, Workflow } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, Option, Schedule, Schema } from "effect"
import { AppRuntime, AppServer, RunsApi, TablePrefix, TransactionalActivity, WorkflowLayer } from "../src/index.js"
import * as RunStore from "../src/internal/RunStore.js"

const prefix = TablePrefix.unsafeMake("memapp")

const Greet = Workflow.make({
  name: "Greet",
  payload: { id: Schema.String, name: Schema.String },
  success: Schema.Struct({ greeting: Schema.String, steps: Schema.Number }),
  idempotencyKey: ({ id }) => id
})

const GreetLayer = WorkflowLayer.make(Greet, {
  dependencies: Layer.empty,
  execute: ({ name }) =>
    Effect.gen(function*() {
      const greeting = yield* Activity.make({ name: "greet", success: Schema.String, execute: Effect.succeed(`hello ${name}`) })
      // a transactional activity works too: its ledger is in memory
      const steps = yield* TransactionalActivity.make({ name: "count", success: Schema.Number, execute: Effect.succeed(2) })
      return { greeting, steps }
    })
})

// only WORKFLOW_MODE: no DATABASE_URL anywhere (the process environment is not consulted)
const memoryOnly = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", "memory"]])))

const App = AppServer.layer(RunsApi.make("memapp", [Greet]), { groups: Layer.empty, port: 0 }).pipe(
  Layer.provideMerge(AppRuntime.layerConfigWithoutSql({ prefix, workflows: GreetLayer })),
  Layer.provide(memoryOnly),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
)

const request = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const { port } = server.address as HttpServer.TcpAddress
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, init)
      const text = await response.text()
      return { status: response.status, body: text ? JSON.parse(text) : undefined }
    })
  })

const start = (payload: unknown) =>
  request("/runs/Greet", { method: "POST", body: JSON.stringify(payload), headers: { "content-type": "application/json" } })

describe("memory mode without a database", () => {
  layer(App, { timeout: 30_000, excludeTestServices: true })((it) => {
    it.effect("health reports memory mode and no database", () =>
      Effect.gen(function*() {
        const health = yield* request("/health")
        expect(health).toEqual({ status: 200, body: { status: "ok", mode: "memory", prefix: "memapp", database: null } })
      }))

    it.effect("runs start, finish and are listed; the same payload again is the same run", () =>
      Effect.gen(function*() {
        const started = yield* start({ id: "g1", name: "Ada" })
        expect(started.status).toBe(202)
        const again = yield* start({ id: "g1", name: "Ada" })
        expect(again).toEqual(started)
        const executionId = started.body.executionId as string
        const done = yield* request(`/runs/Greet/${executionId}`).pipe(
          Effect.filterOrFail((r) => r.body?.status === "succeeded"),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("20 seconds")
        )
        expect(done.body).toMatchObject({
          workflow: "Greet",
          executionId,
          status: "succeeded",
          payload: { id: "g1", name: "Ada" },
          result: { greeting: "hello Ada", steps: 2 }
        })
        const list = yield* request("/runs?workflow=Greet")
        expect(list.body.map((r: { executionId: string }) => r.executionId)).toEqual([executionId])
        const malformed = yield* start({ id: "g2" })
        expect(malformed.status).toBe(400)
      }))
  })

  it.effect("an app whose domain keeps data in Postgres is told it still needs DATABASE_URL", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(AppRuntime.layerConfig({ prefix, migrations: [], workflows: GreetLayer })).pipe(
        Effect.scoped,
        Effect.flip,
        Effect.provide(memoryOnly)
      )
      expect(error).toMatchObject({ _tag: "InvalidRuntimeConfig", key: "DATABASE_URL" })
      expect(error.message).toContain("WORKFLOW_MODE=memory")
    }))
})

describe("RunStore.layerMemory", () => {
  it.effect("keeps the ledger's rules: transitions, no downgrade of a finished run, newest first without payloads", () =>
    Effect.gen(function*() {
      const store = yield* RunStore.RunStore
      yield* store.running("W", "a", { n: 1 })
      yield* store.suspended("W", "a")
      expect(Option.map(yield* store.get("W", "a"), (r) => r.status)).toEqual(Option.some("suspended"))
      yield* store.suspended("Other", "a") // another workflow's id: untouched
      yield* store.running("W", "a", { n: 1 })
      yield* store.finished("W", "a", { status: "succeeded", result: 42 })
      yield* store.running("W", "a", { n: 1 }) // a replay never downgrades a finished run
      const a = Option.getOrThrow(yield* store.get("W", "a"))
      expect(a).toMatchObject({ status: "succeeded", payload: { n: 1 }, result: 42 })
      expect(a.error).toBeUndefined()
      expect(yield* store.get("Other", "a")).toEqual(Option.none())

      yield* store.running("V", "b", { n: 2 })
      yield* store.finished("W", "c", { status: "failed", error: { reason: "x" } })
      expect((yield* store.list({})).map((r) => [r.executionId, r.status, r.payload])).toEqual([
        ["c", "failed", undefined],
        ["b", "running", undefined],
        ["a", "succeeded", undefined]
      ])
      expect((yield* store.list({ workflow: "W", status: "failed" })).map((r) => r.executionId)).toEqual(["c"])
      expect((yield* store.list({ limit: 1 })).map((r) => r.executionId)).toEqual(["c"])
    }).pipe(Effect.provide(RunStore.layerMemory)))
})

it.effect("TransactionalActivity.layerMemory: a replay returns the recorded result without running the body", () =>
  Effect.gen(function*() {
    const ledger = yield* TransactionalActivity.ActivityLedger
    let runs = 0
    const body = Effect.sync(() => ++runs)
    const key = { executionId: "e", activity: "a", attempt: 1 }
    expect(yield* ledger.once(key, Schema.Number, body)).toBe(1)
    expect(yield* ledger.once(key, Schema.Number, body)).toBe(1)
    expect(yield* ledger.once({ ...key, attempt: 2 }, Schema.Number, body)).toBe(2)
    expect(runs).toBe(2)
  }).pipe(Effect.provide(TransactionalActivity.layerMemory)))
