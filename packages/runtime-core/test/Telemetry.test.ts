/**
 * Logs and telemetry of workflow runs (issue 14, items 3 and 4), in process:
 * - every line a workflow (and its activities) writes carries `app`,
 *   `workflow` and `executionId`; a failed run is logged once, at its end, not
 *   per activity retry; `LOG_FORMAT=json` writes one JSON object per line;
 * - the `OTEL_*` settings: nothing is exported when no endpoint is set;
 * - a run interrupted by a shutdown and replayed by the next process (durable
 *   engine, same database), or suspended on a signal and resumed by it, stays in
 *   the trace of the request that started it: the engine stores the parent span
 *   with the run's message and re-delivers that message to resume it.
 * The OTLP export across two real app processes is `tooling/e2e/test/Telemetry.e2e.test.ts`.
 */
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Effect,
  Exit,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Schema,
  Tracer
} from "effect"
import { Database, Logging, TablePrefix, Telemetry, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("tele")

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  readonly cause: string
}

const capture = () => {
  const lines: Array<Line> = []
  const logger = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, cause, logLevel, message }) => {
      lines.push({
        cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
        level: logLevel.label,
        message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
  )
  return { lines, logger }
}

class Boom extends Schema.TaggedError<Boom>()("Boom", { reason: Schema.String }) {}

const Chatty = Workflow.make({
  name: "Chatty",
  payload: { id: Schema.String, fail: Schema.Boolean },
  success: Schema.String,
  error: Boom,
  idempotencyKey: ({ id }) => id
})

const ChattyLayer = WorkflowLayer.make(Chatty, {
  dependencies: Layer.empty,
  execute: ({ fail, id }) =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`starting ${id}`)
      const step = Activity.make({
        name: "step",
        success: Schema.String,
        error: Boom,
        execute: Effect.gen(function*() {
          yield* Effect.logInfo("in the activity")
          return fail ? yield* new Boom({ reason: "always" }) : "ok"
        })
      })
      // three attempts in all: a failing run fails once, at its end
      return yield* step.pipe(Activity.retry({ times: 2 }))
    })
})

const memory = ChattyLayer.pipe(Layer.provideMerge(WorkflowRuntime.layerMemory(prefix)))

describe("logs of workflow runs", () => {
  it.live("every line a run writes carries app, workflow and executionId", () =>
    Effect.gen(function*() {
      const { lines, logger } = capture()
      const payload = { id: "a1", fail: false }
      const executionId = yield* Chatty.executionId(payload)
      const result = yield* Chatty.execute(payload).pipe(Effect.provide(memory), Effect.provide(logger))
      expect(result).toBe("ok")
      const mine = lines.filter((l) => l.message === "starting a1" || l.message === "in the activity")
      expect(mine.length).toBe(2)
      for (const line of mine) {
        expect(line.annotations).toMatchObject({ app: "tele", workflow: "Chatty", executionId })
      }
      expect(lines.filter((l) => l.level === "ERROR")).toEqual([])
    }))

  it.live("a failed run is logged once, with its error, whatever its activity retried", () =>
    Effect.gen(function*() {
      const { lines, logger } = capture()
      const spans: Array<Recorded> = []
      const payload = { id: "f1", fail: true }
      const executionId = yield* Chatty.executionId(payload)
      const exit = yield* Chatty.execute(payload).pipe(
        Effect.provide(memory),
        Effect.provide(logger),
        Effect.provide(recordingTracer(spans)),
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      // one span per attempt, each saying how it ended
      const attempts = spans.filter((s) => s.name === "activity.attempt step")
      expect(attempts.map((s) => s.attributes.get("activity.attempt"))).toEqual([1, 2, 3])
      for (const a of attempts) expect(a.attributes.get("activity.outcome")).toBe("failure")
      const run = spans.find((s) => s.name === "workflow.run Chatty")
      expect(run?.attributes.get("workflow.execution_id")).toBe(executionId)
      // the activity ran three times
      expect(lines.filter((l) => l.message === "in the activity").length).toBe(3)
      const errors = lines.filter((l) => l.level === "ERROR")
      expect(errors.length, JSON.stringify(lines, null, 2)).toBe(1)
      expect(errors[0]!.message).toContain("Run failed")
      expect(errors[0]!.cause).toContain("Boom")
      expect(errors[0]!.annotations).toMatchObject({ app: "tele", workflow: "Chatty", executionId })
    }))

  it.live("LOG_FORMAT=json writes one parseable JSON object per line, with the annotations", () =>
    Effect.gen(function*() {
      const written: Array<string> = []
      const original = console.log
      console.log = (...args: Array<unknown>) => {
        written.push(args.map(String).join(" "))
      }
      const json = Logging.layerConfig.pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["LOG_FORMAT", "json"], ["LOG_LEVEL", "info"]]))))
      )
      yield* Chatty.execute({ id: "j1", fail: false }).pipe(
        Effect.provide(memory),
        Effect.provide(json),
        Effect.ensuring(Effect.sync(() => {
          console.log = original
        }))
      )
      const ours = written.filter((l) => l.includes("in the activity") || l.includes("starting j1"))
      expect(ours.length).toBe(2)
      for (const line of written) expect(() => JSON.parse(line), line).not.toThrow()
      for (const line of ours) {
        const parsed = JSON.parse(line)
        expect(parsed).toMatchObject({ logLevel: "INFO", annotations: { app: "tele", workflow: "Chatty" } })
        expect(typeof parsed.annotations.executionId).toBe("string")
      }
    }))

  it.effect("LOG_LEVEL and LOG_FORMAT are checked", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) =>
        Layer.build(Logging.layerConfig).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      yield* withEnv({})
      yield* withEnv({ LOG_LEVEL: "Debug", LOG_FORMAT: "pretty" })
      expect((yield* Effect.flip(withEnv({ LOG_LEVEL: "loud" })))._tag).toBe("InvalidRuntimeConfig")
      expect((yield* Effect.flip(withEnv({ LOG_FORMAT: "xml" })))._tag).toBe("InvalidRuntimeConfig")
    }))
})

describe("OTEL_* settings", () => {
  const settings = (env: Record<string, string>) =>
    Telemetry.settingsConfig("knowledge").pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

  it.effect("no endpoint: nothing exported, no exporter layer", () =>
    Effect.gen(function*() {
      const s = yield* settings({})
      expect(Option.isNone(s.tracesUrl) && Option.isNone(s.metricsUrl)).toBe(true)
      expect(Telemetry.layer(s)).toBe(Layer.empty)
      expect(s.serviceName).toBe("knowledge")
    }))

  it.effect("an endpoint: /v1/traces and /v1/metrics under it; per-signal endpoints, none, service name, headers", () =>
    Effect.gen(function*() {
      const s = yield* settings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_SERVICE_NAME: "kn",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20x,x-team=data",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test"
      })
      expect(s.tracesUrl).toEqual(Option.some("http://collector:4318/v1/traces"))
      expect(s.metricsUrl).toEqual(Option.some("http://collector:4318/v1/metrics"))
      expect(s.serviceName).toBe("kn")
      expect(s.headers).toEqual({ authorization: "Bearer x", "x-team": "data" })
      expect(s.resourceAttributes).toEqual({ "deployment.environment": "test" })
      expect(s.protocol).toBe("http/protobuf")

      const only = yield* settings({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/v1/traces",
        OTEL_METRICS_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json"
      })
      expect(only.tracesUrl).toEqual(Option.some("http://t/v1/traces"))
      expect(Option.isNone(only.metricsUrl)).toBe(true)
      expect(only.protocol).toBe("http/json")

      const off = yield* settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" })
      expect(Option.isNone(off.tracesUrl) && Option.isNone(off.metricsUrl)).toBe(true)

      expect((yield* Effect.flip(settings({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })))._tag).toBe("InvalidRuntimeConfig")
      expect((yield* Effect.flip(settings({ OTEL_TRACES_EXPORTER: "zipkin" })))._tag).toBe("InvalidRuntimeConfig")
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// A run replayed after a restart stays in its trace

interface Recorded {
  readonly name: string
  readonly traceId: string
  readonly attributes: ReadonlyMap<string, unknown>
}

/** The native tracer, recording every span it starts. */
const recordingTracer = (spans: Array<Recorded>) =>
  Layer.unwrapEffect(Effect.map(Effect.tracer, (native) =>
    Layer.setTracer(Tracer.make({
      context: native.context,
      span: (...args) => {
        const span = native.span(...args)
        spans.push({ name: span.name, traceId: span.traceId, attributes: span.attributes })
        return span
      }
    }))))

/** Phase 1 blocks in the activity (until the "process" stops); phase 2 finishes it. */
let blocking = true

const Slow = Workflow.make({
  name: "Slow",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

const SlowLayer = WorkflowLayer.make(Slow, {
  dependencies: Layer.empty,
  execute: () =>
    Activity.make({
      name: "wait",
      success: Schema.String,
      execute: Effect.suspend(() => blocking ? Effect.never : Effect.succeed("done"))
    })
})

const Approval = DurableDeferred.make("approval", { success: Schema.String })

const Waits = Workflow.make({
  name: "Waits",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

const WaitsLayer = WorkflowLayer.make(Waits, {
  dependencies: Layer.empty,
  signals: [Approval],
  execute: () => DurableDeferred.await(Approval)
})

describe("traces across a restart", () => {
  it.live("a run interrupted by a shutdown is replayed by the next process in the trace of its start", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("telemetry_restart")
      // the same database for both "processes"
      const sqlLayer = Database.layer({ url: Redacted.make(db.url), applicationName: "duraflow-test" })
      const quiet = Logger.minimumLogLevel(LogLevel.Error)
      const process = (spans: Array<Recorded>) =>
        SlowLayer.pipe(
          Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
          Layer.provide(sqlLayer),
          Layer.provide(recordingTracer(spans)),
          Layer.provide(quiet)
        )
      const origin = Tracer.externalSpan({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", sampled: true })
      const payload = { id: "r1" }
      const executionId = yield* Slow.executionId(payload)

      // first process: start the run under the request's span; it blocks in its activity; shut down
      const first: Array<Recorded> = []
      yield* Effect.gen(function*() {
        yield* Slow.execute(payload, { discard: true }).pipe(Effect.withParentSpan(origin))
        yield* Eventually.some(
          Effect.sync(() => Option.fromNullable(first.find((s) => s.name === "activity.attempt wait"))),
          "the activity to start",
          { timeout: "60 seconds" }
        )
      }).pipe(Effect.provide(process(first)), Effect.scoped)
      const firstRun = first.find((s) => s.name === "workflow.run Slow")
      expect(firstRun?.traceId).toBe(origin.traceId)

      // second process on the same database: the engine replays the stored run; it finishes
      blocking = false
      const second: Array<Recorded> = []
      yield* Effect.gen(function*() {
        yield* Eventually.some(
          Slow.poll(executionId).pipe(Effect.map((r) => Option.filter(Option.fromNullable(r), (r) => r._tag === "Complete"))),
          "the replayed run to finish",
          { timeout: "60 seconds" }
        )
      }).pipe(Effect.provide(process(second)), Effect.scoped)
      const replayed = second.filter((s) => s.name === "workflow.run Slow")
      expect(replayed.length).toBeGreaterThan(0)
      for (const span of replayed) {
        expect(span.traceId).toBe(origin.traceId)
        expect(span.attributes.get("workflow.execution_id")).toBe(executionId)
      }
      const attempts = second.filter((s) => s.name === "activity.attempt wait")
      expect(attempts.length).toBeGreaterThan(0)
      for (const span of attempts) expect(span.traceId).toBe(origin.traceId)
    }).pipe(Effect.scoped), { timeout: 120_000 })
  it.live("a run suspended on a signal resumes in the trace of its start, not the signal's", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("telemetry_signal")
      const sqlLayer = Database.layer({ url: Redacted.make(db.url), applicationName: "duraflow-test" })
      const spans: Array<Recorded> = []
      const app = WaitsLayer.pipe(
        Layer.provideMerge(WorkflowRuntime.layerDurable(prefix)),
        Layer.provide(sqlLayer),
        Layer.provide(recordingTracer(spans)),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
      )
      const origin = Tracer.externalSpan({ traceId: "1af7651916cd43dd8448eb211c80319c", spanId: "c7ad6b7169203331", sampled: true })
      const signaller = Tracer.externalSpan({ traceId: "2af7651916cd43dd8448eb211c80319c", spanId: "d7ad6b7169203331", sampled: true })
      const payload = { id: "s1" }
      const executionId = yield* Waits.executionId(payload)
      yield* Effect.gen(function*() {
        yield* Waits.execute(payload, { discard: true }).pipe(Effect.withParentSpan(origin))
        yield* Eventually.some(
          Waits.poll(executionId).pipe(Effect.map((r) => Option.filter(Option.fromNullable(r), (r) => r._tag === "Suspended"))),
          "the run to suspend",
          { timeout: "60 seconds" }
        )
        const engine = yield* WorkflowEngine.WorkflowEngine
        yield* engine.deferredDone(Approval, {
          workflowName: Waits.name,
          executionId,
          deferredName: Approval.name,
          exit: Exit.succeed("yes")
        }).pipe(Effect.withParentSpan(signaller))
        yield* Eventually.some(
          Waits.poll(executionId).pipe(Effect.map((r) => Option.filter(Option.fromNullable(r), (r) => r._tag === "Complete"))),
          "the run to finish",
          { timeout: "60 seconds" }
        )
      }).pipe(Effect.provide(app), Effect.scoped)
      const runs = spans.filter((s) => s.name === "workflow.run Waits")
      expect(runs.length).toBeGreaterThanOrEqual(2) // the first execution and the resumed one
      for (const span of runs) expect(span.traceId).toBe(origin.traceId)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
