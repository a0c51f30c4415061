/**
 * The operator's actions on runs (issue 13, items 1 and 2), over HTTP through
 * the typed client, on the durable engine (real Postgres) and the memory
 * engine: cancel (final: nothing revives the run), resume, retry (a new linked
 * run), signals to finished runs (409), cursor pagination with filters, a
 * run's steps, and the operator token (401 without it).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import { Activity, DurableClock, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Exit, Layer, Logger, LogLevel, Schedule, Schema } from "effect"
import { AppRuntime, AppServer, RunsApi, TablePrefix, WorkflowLayer } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

const TOKEN = "s3cret-operator-token"

class Failed extends Schema.TaggedError<Failed>()("Failed", { reason: Schema.String }) {}

/** What a test breaks and repairs: ids whose activity fails, and how often the flaky one has failed. */
class Switches extends Context.Tag("test/Switches")<Switches, {
  readonly broken: Set<string>
  readonly failures: Map<string, number>
}>() {}
// one for the file: the tests flip them from outside the app (ids differ per engine)
const switches = { broken: new Set<string>(), failures: new Map<string, number>() }
const SwitchesLive = Layer.succeed(Switches, switches)

const Go = DurableDeferred.make("go", { success: Schema.Struct({ word: Schema.String }) })

/** Waits for `go`, then answers its word. */
const Wait = Workflow.make({
  name: "Wait",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

/** Fails while its id is broken. */
const Fragile = Workflow.make({
  name: "Fragile",
  payload: { id: Schema.String },
  success: Schema.String,
  error: Failed,
  idempotencyKey: ({ id }) => id
})

/** The same, but suspended on failure (an operator repairs and resumes it). */
const Patient = Workflow.make({
  name: "Patient",
  payload: { id: Schema.String },
  success: Schema.String,
  error: Failed,
  idempotencyKey: ({ id }) => id
}).annotate(Workflow.SuspendOnFailure, true)

/** An activity that fails twice and succeeds on its third attempt, a durable sleep, then `go`. */
const Steps = Workflow.make({
  name: "Steps",
  payload: { id: Schema.String },
  success: Schema.String,
  error: Failed,
  idempotencyKey: ({ id }) => id
})

/** Busy in an activity for a minute (it notes when it starts and when it is interrupted). */
const Busy = Workflow.make({
  name: "Busy",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})
const busy = { started: new Set<string>(), interrupted: new Set<string>() }

/** Runs `Child` and answers its result. */
const Parent = Workflow.make({
  name: "Parent",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})
const Child = Workflow.make({
  name: "Child",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => `child-${id}`
})

/** Dies (a bug): its record names the defect without a stack. */
const Crash = Workflow.make({
  name: "Crash",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

const attemptWhileBroken = (id: string) =>
  Activity.make({
    name: "attempt",
    success: Schema.String,
    error: Failed,
    execute: Effect.flatMap(Switches, (s) => s.broken.has(id) ? new Failed({ reason: "broken" }) : Effect.succeed(`ok ${id}`))
  })

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Wait, {
    dependencies: Layer.empty,
    signals: [Go],
    execute: () => Effect.map(DurableDeferred.await(Go), ({ word }) => word)
  }),
  WorkflowLayer.make(Fragile, { dependencies: SwitchesLive, execute: ({ id }) => attemptWhileBroken(id) }),
  WorkflowLayer.make(Busy, {
    dependencies: Layer.empty,
    execute: ({ id }) =>
      Activity.make({
        name: "work",
        success: Schema.String,
        execute: Effect.sync(() => busy.started.add(id)).pipe(
          Effect.zipRight(Effect.sleep("60 seconds")),
          Effect.as("worked"),
          Effect.onInterrupt(() => Effect.sync(() => busy.interrupted.add(id)))
        )
      })
  }),
  WorkflowLayer.make(Parent, { dependencies: Layer.empty, execute: ({ id }) => Child.execute({ id }) }),
  WorkflowLayer.make(Child, { dependencies: Layer.empty, execute: ({ id }) => Effect.succeed(`child of ${id}`) }),
  WorkflowLayer.make(Crash, {
    dependencies: Layer.empty,
    execute: () => Effect.die(new Error("secret internals at /srv/app.ts:42"))
  }),
  WorkflowLayer.make(Patient, { dependencies: SwitchesLive, execute: ({ id }) => attemptWhileBroken(id) }),
  WorkflowLayer.make(Steps, {
    dependencies: SwitchesLive,
    signals: [Go],
    execute: ({ id }) =>
      Effect.gen(function*() {
        yield* Activity.make({
          name: "flaky",
          success: Schema.Number,
          error: Failed,
          execute: Effect.gen(function*() {
            const s = yield* Switches
            const n = (s.failures.get(id) ?? 0) + 1
            s.failures.set(id, n)
            return n < 3 ? yield* new Failed({ reason: `failure ${n}` }) : n
          })
        }).pipe(Activity.retry({ times: 3 }))
        yield* DurableClock.sleep({ name: "nap", duration: "1 second", inMemoryThreshold: Duration.zero })
        const { word } = yield* DurableDeferred.await(Go)
        return word
      })
  })
).pipe(Layer.provide(SwitchesLive))

const Api = RunsApi.make("actions", [RunsApi.withSignals(Wait, { go: Go }), Fragile, Patient, Busy, Parent, Child, Crash, RunsApi.withSignals(Steps, { go: Go })])

const config = (mode: "durable" | "memory") =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", mode], ["DURAFLOW_OPERATOR_TOKEN", TOKEN]])))

const quiet = Logger.minimumLogLevel(LogLevel.Warning)

const prefix = TablePrefix.unsafeMake("actions")

const Durable = AppServer.layer(Api, { groups: Layer.empty, port: 0 }).pipe(
  Layer.provideMerge(AppRuntime.layer({ prefix, migrations: [], workflows: Workflows })),
  Layer.provideMerge(TestDatabase.layer("run_actions")),
  Layer.provide(config("durable")),
  Layer.provide(quiet)
)

const Memory = AppServer.layer(Api, { groups: Layer.empty, port: 0 }).pipe(
  Layer.provideMerge(AppRuntime.layerMemory({ prefix, workflows: Workflows })),
  Layer.provide(config("memory")),
  Layer.provide(quiet)
)

const baseUrl = Effect.map(HttpServer.HttpServer, (s) => `http://127.0.0.1:${(s.address as HttpServer.TcpAddress).port}`)

/** The typed client; `authorized` sends the operator token. */
const client = (authorized: boolean) =>
  Effect.flatMap(baseUrl, (url) =>
    HttpApiClient.make(Api, {
      baseUrl: url,
      transformClient: authorized ? HttpClient.mapRequest(HttpClientRequest.bearerToken(TOKEN)) : undefined
    })).pipe(Effect.provide(FetchHttpClient.layer))

const untilStatus = (workflow: string, executionId: string, status: RunsApi.RunStatus) =>
  Effect.flatMap(client(false), (c) =>
    c.runs.get({ path: { workflow, executionId } }).pipe(
      Effect.filterOrFail((run) => run.status === status, (run) => new Error(`${executionId} is ${run.status}, not ${status}`)),
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
    ))

const failureTag = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.map(Effect.either(effect), (e) => Either.isLeft(e) ? (e.left as { _tag: string })._tag : "success")

/** The cases shared by both engines. */
const actions = (
  it: Vitest.MethodsNonLive<HttpServer.HttpServer | WorkflowEngine.WorkflowEngine, true>,
  mode: "durable" | "memory"
) => {
  const id = (name: string) => `${mode}-${name}`

  it.effect("without the operator token: 401 on actions and signals; starts and reads stay open", () =>
    Effect.gen(function*() {
      const open = yield* client(false)
      const { executionId } = yield* open.workflows.Wait({ payload: { id: id("guard") } })
      yield* untilStatus("Wait", executionId, "suspended")
      const path = { workflow: "Wait", executionId }
      expect(yield* failureTag(open.runs.cancel({ path }))).toBe("Unauthorized")
      expect(yield* failureTag(open.runs.resume({ path }))).toBe("Unauthorized")
      expect(yield* failureTag(open.runs.retry({ path }))).toBe("Unauthorized")
      expect(yield* failureTag(open.workflows["Wait.signal.go"]({ path: { executionId }, payload: { word: "x" } }))).toBe(
        "Unauthorized"
      )
      const wrong = yield* Effect.flatMap(baseUrl, (url) =>
        HttpApiClient.make(Api, { baseUrl: url, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken("nope")) })
      ).pipe(Effect.provide(FetchHttpClient.layer))
      expect(yield* failureTag(wrong.runs.cancel({ path }))).toBe("Unauthorized")
      // nothing happened to the run
      expect((yield* open.runs.get({ path })).status).toBe("suspended")
      expect(yield* open.workflows["Wait.status"]({ path: { executionId } })).toMatchObject({ status: "suspended" })
      // with it: delivered
      const operator = yield* client(true)
      expect(yield* operator.workflows["Wait.signal.go"]({ path: { executionId }, payload: { word: "fine" } })).toEqual({
        delivered: true
      })
      expect((yield* untilStatus("Wait", executionId, "succeeded")).result).toBe("fine")
    }))

  it.effect("cancel a suspended run: cancelled, and nothing revives it (signal, resume, the engine itself)", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Wait({ payload: { id: id("cancel") } })
      yield* untilStatus("Wait", executionId, "suspended")
      const path = { workflow: "Wait", executionId }
      const cancelled = yield* operator.runs.cancel({ path })
      expect(cancelled.status).toBe("cancelled")
      // idempotent: cancelled again (its interrupt sent again), the same cancelled run
      expect(yield* operator.runs.cancel({ path })).toMatchObject({ executionId, status: "cancelled" })
      expect(yield* failureTag(operator.runs.resume({ path }))).toBe("RunConflict")
      const signal = yield* Effect.either(operator.workflows["Wait.signal.go"]({ path: { executionId }, payload: { word: "late" } }))
      expect(Either.isLeft(signal) && signal.left).toMatchObject({ _tag: "RunConflict", status: "cancelled" })
      // below the HTTP checks: the engine itself completes the deferred and resumes the run
      const engine = yield* WorkflowEngine.WorkflowEngine
      yield* engine.deferredDone(Go, { workflowName: "Wait", executionId, deferredName: Go.name, exit: Exit.succeed({ word: "sneaky" }) })
      yield* engine.resume(Wait, executionId)
      // the engine ends the run (interrupted) and the ledger keeps it cancelled
      const ended = yield* engine.poll(Wait, executionId).pipe(
        Effect.filterOrFail((r) => r?._tag === "Complete"),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
      )
      expect(ended?._tag === "Complete" && Exit.isInterrupted(ended.exit)).toBe(true)
      const run = yield* operator.runs.get({ path })
      expect(run.status).toBe("cancelled")
      expect(run.result).toBeUndefined()
      // a cancel sent again once the run has ended: still the cancelled run, nothing revived
      expect(yield* operator.runs.cancel({ path })).toMatchObject({ status: "cancelled" })
      const after = yield* engine.poll(Wait, executionId)
      expect(after?._tag === "Complete" && Exit.isInterrupted(after.exit)).toBe(true)
    }))

  it.effect("cancel a running run: its activity is interrupted, the engine ends it, the ledger keeps it cancelled", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Busy({ payload: { id: id("busy") } })
      yield* Effect.sync(() => busy.started.has(id("busy"))).pipe(
        Effect.filterOrFail((started) => started),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("30 seconds")))
      )
      expect((yield* operator.runs.get({ path: { workflow: "Busy", executionId } })).status).toBe("running")
      expect((yield* operator.runs.cancel({ path: { workflow: "Busy", executionId } })).status).toBe("cancelled")
      const engine = yield* WorkflowEngine.WorkflowEngine
      const ended = yield* engine.poll(Busy, executionId).pipe(
        Effect.filterOrFail((r) => r?._tag === "Complete"),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
      )
      expect(ended?._tag === "Complete" && Exit.isInterrupted(ended.exit)).toBe(true)
      yield* Effect.sync(() => busy.interrupted.has(id("busy"))).pipe(
        Effect.filterOrFail((interrupted) => interrupted),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("30 seconds")))
      )
      expect((yield* operator.runs.get({ path: { workflow: "Busy", executionId } })).status).toBe("cancelled")
    }))

  it.effect("retry a failed run: a new linked run with the same payload; again: the same new run", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      switches.broken.add(id("retry"))
      const { executionId } = yield* operator.workflows.Fragile({ payload: { id: id("retry") } })
      const failed = yield* untilStatus("Fragile", executionId, "failed")
      expect(failed.error).toEqual({ _tag: "Failed", reason: "broken" })
      // the same start again is idempotent: the old failed run, nothing new
      expect((yield* operator.workflows.Fragile({ payload: { id: id("retry") } })).executionId).toBe(executionId)

      switches.broken.delete(id("retry"))
      const path = { workflow: "Fragile", executionId }
      const retried = yield* operator.runs.retry({ path })
      expect(retried).toEqual({ executionId: `${executionId}-retry-1`, retryOf: executionId, attempt: 2 })
      expect(yield* operator.runs.retry({ path })).toEqual(retried)
      const done = yield* untilStatus("Fragile", retried.executionId, "succeeded")
      expect(done).toMatchObject({ result: `ok ${id("retry")}`, retryOf: executionId, attempt: 2, payload: { id: id("retry") } })
      expect(yield* operator.runs.get({ path })).toMatchObject({ status: "failed", retriedBy: retried.executionId })
      // the typed status route shows the links too
      expect(yield* operator.workflows["Fragile.status"]({ path: { executionId: retried.executionId } })).toMatchObject({
        retryOf: executionId
      })
      // only failed or cancelled runs are retried
      expect(yield* failureTag(operator.runs.retry({ path: { workflow: "Fragile", executionId: retried.executionId } }))).toBe(
        "RunConflict"
      )
    }))

  it.effect("retry a cancelled run; a retry of a retry counts on", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Wait({ payload: { id: id("again") } })
      yield* untilStatus("Wait", executionId, "suspended")
      yield* operator.runs.cancel({ path: { workflow: "Wait", executionId } })
      const first = yield* operator.runs.retry({ path: { workflow: "Wait", executionId } })
      yield* untilStatus("Wait", first.executionId, "suspended")
      yield* operator.runs.cancel({ path: { workflow: "Wait", executionId: first.executionId } })
      const second = yield* operator.runs.retry({ path: { workflow: "Wait", executionId: first.executionId } })
      expect(second).toEqual({ executionId: `${executionId}-retry-2`, retryOf: first.executionId, attempt: 3 })
      yield* untilStatus("Wait", second.executionId, "suspended")
      yield* operator.workflows["Wait.signal.go"]({ path: { executionId: second.executionId }, payload: { word: "third" } })
      expect((yield* untilStatus("Wait", second.executionId, "succeeded")).result).toBe("third")
    }))

  it.effect("resume a run suspended on failure once its cause is repaired", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      switches.broken.add(id("resume"))
      const { executionId } = yield* operator.workflows.Patient({ payload: { id: id("resume") } })
      yield* untilStatus("Patient", executionId, "suspended")
      switches.broken.delete(id("resume"))
      expect(yield* operator.runs.resume({ path: { workflow: "Patient", executionId } })).toEqual({ resumed: true })
      expect((yield* untilStatus("Patient", executionId, "succeeded")).result).toBe(`ok ${id("resume")}`)
      expect(yield* failureTag(operator.runs.resume({ path: { workflow: "Patient", executionId } }))).toBe("RunConflict")
    }))

  it.effect("a signal to a finished run is a 409 with the reason; an unknown run a 404", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Wait({ payload: { id: id("finished") } })
      yield* operator.workflows["Wait.signal.go"]({ path: { executionId }, payload: { word: "once" } })
      yield* untilStatus("Wait", executionId, "succeeded")
      const again = yield* Effect.either(operator.workflows["Wait.signal.go"]({ path: { executionId }, payload: { word: "twice" } }))
      expect(Either.isLeft(again) && again.left).toMatchObject({
        _tag: "RunConflict",
        status: "succeeded",
        message: expect.stringContaining("succeeded")
      })
      const nope = { path: { workflow: "Wait", executionId: "nope" } }
      expect(yield* failureTag(operator.runs.cancel(nope))).toBe("RunNotFound")
      expect(yield* failureTag(operator.runs.resume(nope))).toBe("RunNotFound")
      expect(yield* failureTag(operator.runs.retry(nope))).toBe("RunNotFound")
      expect(yield* failureTag(operator.runs.steps(nope))).toBe("RunNotFound")
    }))

  it.effect("the steps of a run: an activity that retried, a durable sleep, a signal", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Steps({ payload: { id: id("steps") } })
      yield* untilStatus("Steps", executionId, "suspended").pipe(
        Effect.zipRight(Effect.flatMap(operator.runs.steps({ path: { workflow: "Steps", executionId } }), (s) =>
          s.steps.some((step) => step._tag === "Sleep" && step.woken) ? Effect.void : Effect.fail(new Error("not woken yet")))),
        Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("30 seconds")))
      )
      yield* operator.workflows["Steps.signal.go"]({ path: { executionId }, payload: { word: "done" } })
      yield* untilStatus("Steps", executionId, "succeeded")
      const { source, steps } = yield* operator.runs.steps({ path: { workflow: "Steps", executionId } })
      expect(source).toBe(mode === "durable" ? "engine-storage" : "process-memory")
      expect(steps.map((s) => s._tag)).toEqual(["Activity", "Sleep", "Signal"])
      const [activity, sleep, signal] = steps as [RunsApi.ActivityStep, RunsApi.SleepStep, RunsApi.SignalStep]
      expect(activity.name).toBe("flaky")
      expect(activity.attempts.map((a) => [a.attempt, a.outcome])).toEqual([[1, "failed"], [2, "failed"], [3, "succeeded"]])
      expect(activity.attempts[0]!.error).toEqual({ _tag: "Failed", reason: "failure 1" })
      expect(activity.attempts[2]!.result).toBe(3)
      for (const a of activity.attempts) expect(Date.parse(a.endedAt!)).toBeGreaterThanOrEqual(Date.parse(a.startedAt))
      expect(sleep).toMatchObject({ name: "nap", woken: true })
      expect(Date.parse(sleep.wakeUpAt)).toBeGreaterThan(Date.parse(activity.attempts[0]!.startedAt))
      expect(signal).toMatchObject({ name: "go", received: true, value: { word: "done" } })
    }))

  it.effect("the steps of a run that started a child run name the child", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Parent({ payload: { id: id("parent") } })
      expect((yield* untilStatus("Parent", executionId, "succeeded")).result).toBe(`child of ${id("parent")}`)
      const childId = yield* Child.executionId({ id: id("parent") })
      const { steps } = yield* operator.runs.steps({ path: { workflow: "Parent", executionId } })
      expect(steps).toEqual([expect.objectContaining({ _tag: "ChildRun", workflow: "Child", executionId: childId })])
      expect((yield* operator.runs.get({ path: { workflow: "Child", executionId: childId } })).status).toBe("succeeded")
    }))

  it.effect("a run that died records the defect without a stack trace, and can be retried", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const { executionId } = yield* operator.workflows.Crash({ payload: { id: id("crash") } })
      const failed = yield* untilStatus("Crash", executionId, "failed")
      expect(failed.error).toEqual({ defect: "Error: secret internals at /srv/app.ts:42" })
      expect(JSON.stringify(failed)).not.toMatch(/\n\s+at /)
      const retried = yield* operator.runs.retry({ path: { workflow: "Crash", executionId } })
      expect((yield* untilStatus("Crash", retried.executionId, "failed")).retryOf).toBe(executionId)
    }))

  it.effect("cursor pagination: every run exactly once, newest first; filters by workflow, status and time", () =>
    Effect.gen(function*() {
      const operator = yield* client(true)
      const before = new Date()
      const started = yield* Effect.forEach(
        Array.from({ length: 7 }, (_, i) => i),
        (i) => operator.workflows.Wait({ payload: { id: id(`page-${i}`) } }),
        { concurrency: 1 }
      )
      const all = yield* operator.runs.list({ urlParams: { limit: 500 } })
      const pages: Array<ReadonlyArray<RunsApi.Run>> = []
      let cursor: string | undefined
      do {
        const page = yield* operator.runs.list({ urlParams: { limit: 3, ...(cursor ? { cursor } : {}) } })
        pages.push(page)
        cursor = page.length === 3 ? page[2]!.cursor : undefined
      } while (cursor !== undefined)
      const paged = pages.flat().map((r) => r.executionId)
      expect(paged).toEqual(all.map((r) => r.executionId))
      expect(new Set(paged).size).toBe(paged.length)
      // newest first
      const times = pages.flat().map((r) => Date.parse(r.createdAt))
      expect(times).toEqual([...times].sort((a, b) => b - a))

      const ours = started.map((s) => s.executionId)
      const since = yield* operator.runs.list({ urlParams: { workflow: "Wait", since: before, limit: 500 } })
      expect(since.map((r) => r.executionId).sort()).toEqual([...ours].sort())
      const until = yield* operator.runs.list({ urlParams: { until: before, limit: 500 } })
      expect(until.filter((r) => ours.includes(r.executionId))).toEqual([])
      const failed = yield* operator.runs.list({ urlParams: { status: "failed", limit: 500 } })
      expect(failed.every((r) => r.status === "failed")).toBe(true)
      expect(yield* failureTag(operator.runs.list({ urlParams: { cursor: "not-a-cursor" } }))).toBe("InvalidCursor")
      // leave nothing suspended for the next case
      yield* Effect.forEach(ours, (executionId) => operator.runs.cancel({ path: { workflow: "Wait", executionId } }))
    }))
}

describe("run actions", () => {
  describe("durable engine", () => {
    layer(Durable, { timeout: 120_000, excludeTestServices: true })((it) => {
      actions(it, "durable")

      it.effect("every status the new routes send is documented for them", () =>
        Effect.gen(function*() {
          const url = yield* baseUrl
          const doc = yield* Effect.promise(() => fetch(`${url}/openapi.json`).then((r) => r.json() as Promise<any>))
          // the operator routes declare the (optional) bearer token
          expect(doc.components.securitySchemes.operatorToken).toMatchObject({ type: "http", scheme: "bearer" })
          for (const route of ["cancel", "resume", "retry"]) {
            expect(doc.paths[`/runs/{workflow}/{executionId}/${route}`].post.security).toEqual([{ operatorToken: [] }, {}])
          }
          expect(doc.paths["/runs/Wait/{executionId}/signals/go"].post.security).toEqual([{ operatorToken: [] }, {}])
          expect(doc.paths["/runs/Wait"].post.security).toEqual([])
          const cases: Array<[route: string, method: string, path: string, token: boolean]> = [
            ["/runs/{workflow}/{executionId}/cancel", "post", "/runs/Wait/nope/cancel", true],
            ["/runs/{workflow}/{executionId}/cancel", "post", "/runs/Wait/nope/cancel", false],
            ["/runs/{workflow}/{executionId}/cancel", "post", "/runs/Nope/nope/cancel", true],
            ["/runs/{workflow}/{executionId}/resume", "post", "/runs/Wait/nope/resume", false],
            ["/runs/{workflow}/{executionId}/retry", "post", "/runs/Wait/nope/retry", false],
            ["/runs/{workflow}/{executionId}/steps", "get", "/runs/Wait/nope/steps", false],
            ["/runs/Wait/{executionId}/signals/go", "post", "/runs/Wait/nope/signals/go", false],
            ["/runs", "get", "/runs?cursor=bad", false],
            ["/runs", "get", "/runs?since=yesterday", false]
          ]
          for (const [route, method, path, token] of cases) {
            const response = yield* Effect.promise(() =>
              fetch(`${url}${path}`, {
                method: method.toUpperCase(),
                headers: {
                  "content-type": "application/json",
                  ...(token ? { authorization: `Bearer ${TOKEN}` } : {})
                },
                ...(method === "post" ? { body: JSON.stringify({ word: "w" }) } : {})
              }).then(async (r) => ({ status: r.status, text: await r.text() }))
            )
            const documented = Object.keys(doc.paths[route][method].responses)
            expect(documented, `${method} ${path} answered ${response.status}`).toContain(String(response.status))
            expect(JSON.parse(response.text)).toHaveProperty("_tag")
          }
        }))
    })
  })

  describe("memory engine", () => {
    layer(Memory, { timeout: 60_000, excludeTestServices: true })((it) => {
      actions(it, "memory")
    })
  })
})
