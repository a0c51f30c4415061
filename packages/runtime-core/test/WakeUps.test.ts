/**
 * Durable timers and signals resume their workflow promptly, without waiting
 * for the engine's storage poll: the poll is set to an hour here, longer than
 * any test may run, so a run that completes at all was woken up, whatever the
 * machine's load (no wall-clock bound is asserted; the latencies are figures,
 * printed by `tooling/faults` `figures`): a durable sleep, a signal sent over
 * the HTTP route, and a deferred completed by another (client-only) process.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { DurableClock, DurableDeferred, Workflow } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, Schedule, Schema, Logger, LogLevel } from "effect"
import { fileURLToPath } from "node:url"
import { AppRuntime, AppServer, RunsApi, TablePrefix, WorkflowLayer } from "../src/index.js"
import { TestDatabase, TestProcess } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("wake")
const POLL = Duration.hours(1)

const Approval = DurableDeferred.make("approval", { success: Schema.String })

const Nap = Workflow.make({ name: "Nap", payload: { id: Schema.String, ms: Schema.Number }, idempotencyKey: (p) => p.id })
const Approve = Workflow.make({
  name: "Approve",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: (p) => p.id
})

const Child = Workflow.make({
  name: "Child",
  payload: { id: Schema.String, n: Schema.Number },
  success: Schema.Number,
  idempotencyKey: (p) => `${p.id}-${p.n}`
})
const Parent = Workflow.make({
  name: "Parent",
  payload: { id: Schema.String },
  success: Schema.Number,
  idempotencyKey: (p) => p.id
})

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Child, { dependencies: Layer.empty, execute: ({ n }) => Effect.succeed(n * 10) }),
  WorkflowLayer.make(Parent, {
    dependencies: Layer.empty,
    // three children awaited one after another: upstream (Effect-TS/effect#6294) reports every
    // await after the first waiting for the storage poll; here none may
    execute: ({ id }) =>
      Effect.gen(function*() {
        let sum = 0
        for (let n = 1; n <= 3; n++) sum += yield* Child.execute({ id, n })
        return sum
      })
  }),
  WorkflowLayer.make(Nap, {
    dependencies: Layer.empty,
    execute: ({ ms }) =>
      DurableClock.sleep({ name: "nap", duration: Duration.millis(ms), inMemoryThreshold: Duration.zero })
  }),
  WorkflowLayer.make(Approve, {
    dependencies: Layer.empty,
    signals: [Approval],
    execute: () => DurableDeferred.await(Approval)
  })
)

const Api = RunsApi.make("wakeups", [Child, Parent, Nap, RunsApi.withSignals(Approve, { approval: Approval })])

const App = AppServer.layer(Api, { groups: Layer.empty, port: 0 }).pipe(
  Layer.provideMerge(AppRuntime.layer({
    prefix,
    migrations: [],
    workflows: Workflows,
    sharding: { entityMessagePollInterval: POLL }
  })),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", "durable"]])))),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)) // one INFO line per request is noise here
)

const http = (path: string, init?: RequestInit) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const { port } = server.address as HttpServer.TcpAddress
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        ...init,
        headers: { "content-type": "application/json" }
      })
      const text = await response.text()
      return { status: response.status, body: text ? JSON.parse(text) : undefined }
    })
  })

const start = (workflow: string, payload: unknown) =>
  Effect.map(http(`/runs/${workflow}`, { method: "POST", body: JSON.stringify(payload) }), (r) => {
    expect(r.status).toBe(202)
    return r.body.executionId as string
  })

const waitFor = (workflow: string, id: string, status: string) =>
  http(`/runs/${workflow}/${id}`).pipe(
    Effect.filterOrFail((r) => r.body?.status === status),
    Effect.retry(Schedule.spaced("25 millis")),
    // a deadline against hanging, far below the poll: not a speed bound
    Effect.timeout("45 seconds"),
    Effect.map((r) => r.body)
  )

describe("prompt wake-ups", () => {
  layer(Layer.provideMerge(App, TestDatabase.layer("wakeups")), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("a durable sleep ends on time, not at the next storage poll", () =>
      Effect.gen(function*() {
        const started = Date.now()
        const id = yield* start("Nap", { id: "n1", ms: 1500 })
        yield* waitFor("Nap", id, "succeeded")
        // never early; that it ended at all (the poll is an hour away) shows it was not left to the poll
        expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
      }))

    it.effect("child workflows awaited one after another resume their parent promptly", () =>
      Effect.gen(function*() {
        const id = yield* start("Parent", { id: "p1" })
        const done = yield* waitFor("Parent", id, "succeeded")
        expect(done.result).toBe(60)
      }))

    it.effect("a signal over HTTP resumes the run; bad signals are rejected", () =>
      Effect.gen(function*() {
        const id = yield* start("Approve", { id: "a1" })
        yield* waitFor("Approve", id, "suspended")
        const unknown = yield* http(`/runs/Approve/${id}/signals/nope`, { method: "POST", body: "\"x\"" })
        expect(unknown.status).toBe(404)
        expect(unknown.body).toMatchObject({ _tag: "UnknownSignal", known: ["approval"] })
        const wrongType = yield* http(`/runs/Approve/${id}/signals/approval`, { method: "POST", body: "42" })
        expect(wrongType.status).toBe(400)
        const noRun = yield* http(`/runs/Approve/missing/signals/approval`, { method: "POST", body: "\"x\"" })
        expect(noRun.status).toBe(404)
        const sent = yield* http(`/runs/Approve/${id}/signals/approval`, { method: "POST", body: "\"yes\"" })
        expect(sent).toEqual({ status: 202, body: { delivered: true } })
        const done = yield* waitFor("Approve", id, "succeeded")
        expect(done.result).toBe("yes")
      }))

    it.effect("a deferred completed by another process resumes the run promptly", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const id = yield* start("Approve", { id: "a2" })
        yield* waitFor("Approve", id, "suspended")
        const client = yield* TestProcess.spawnTs(fileURLToPath(new URL("./fixtures/signal-client.ts", import.meta.url)), {
          env: { DATABASE_URL: db.url, PREFIX: prefix, EXECUTION_ID: id, VALUE: "from afar" }
        })
        yield* client.waitForEvent("signalled")
        const done = yield* waitFor("Approve", id, "succeeded")
        expect(done.result).toBe("from afar")
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })
})
