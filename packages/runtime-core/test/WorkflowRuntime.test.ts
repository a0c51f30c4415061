import { SqlClient } from "@effect/sql"
import { Activity, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Database, TablePrefix, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

class Greeter extends Context.Tag("test/Greeter")<Greeter, { readonly greet: (name: string) => string }>() {}

const Greet = Workflow.make({
  name: "Greet",
  payload: { name: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ name }) => name
})

const GreetLayer = WorkflowLayer.make(Greet, {
  dependencies: Layer.succeed(Greeter, { greet: (name) => `hello ${name}` }),
  execute: ({ name }) =>
    Activity.make({
      name: "greet",
      success: Schema.String,
      execute: Effect.map(Greeter, (g) => g.greet(name))
    })
})

const prefix = TablePrefix.unsafeMake("rt")

const withEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("WorkflowRuntime", () => {
  it.effect("memory mode runs workflows with no database at all", () =>
    Effect.gen(function*() {
      expect(yield* Greet.execute({ name: "ada" })).toBe("hello ada")
      const runtime = yield* WorkflowRuntime.WorkflowRuntime
      expect(runtime).toEqual({ mode: "memory", prefix: "rt" })
    }).pipe(Effect.provide(GreetLayer.pipe(Layer.provideMerge(WorkflowRuntime.layerMemory(prefix))))))

  it.effect("WORKFLOW_MODE is validated with a clear message", () =>
    Effect.gen(function*() {
      expect(yield* WorkflowRuntime.parseMode(Option.none())).toBe("durable")
      expect(yield* WorkflowRuntime.parseMode(Option.some(" Memory "))).toBe("memory")
      const error = yield* Effect.flip(WorkflowRuntime.parseMode(Option.some("fast")))
      expect(error.message).toBe(`Invalid configuration WORKFLOW_MODE: must be one of "durable", "memory", got "fast"`)
      const fromLayer = yield* Effect.flip(
        Layer.build(WorkflowRuntime.layerConfig(prefix)).pipe(
          Effect.provide(Layer.succeed(SqlClient.SqlClient, {} as SqlClient.SqlClient)),
          Effect.provide(withEnv({ WORKFLOW_MODE: "sometimes" })),
          Effect.scoped
        )
      )
      expect(fromLayer._tag).toBe("InvalidRuntimeConfig")
    }))

  it.live("a database that is down fails startup naming host and port", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Database.layerConfig()).pipe(
        Effect.provide(withEnv({
          DATABASE_URL: "postgres://postgres@127.0.0.1:1/app",
          DATABASE_CONNECT_TIMEOUT: "300 millis"
        })),
        Effect.scoped
      ))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toMatch(/^Postgres at 127\.0\.0\.1:1 \(database "app"\) is unavailable: .*ECONNREFUSED/)
    }), { timeout: 20_000 })

  it.effect("DATABASE_URL missing or malformed is a typed config error", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(Layer.build(Database.layerConfig()).pipe(Effect.provide(withEnv({})), Effect.scoped))
      expect(missing.message).toMatch(/DATABASE_URL: is not set/)
      const bad = yield* Effect.flip(
        Layer.build(Database.layerConfig()).pipe(Effect.provide(withEnv({ DATABASE_URL: "mysql://x/y" })), Effect.scoped)
      )
      expect(bad.message).toMatch(/DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL/)
    }))

  it.effect("a pool size that is not a whole number of at least 1 is a typed config error, before any connection", () =>
    Effect.gen(function*() {
      // a server that is not there: the error comes before any attempt to reach it
      const url = "postgres://postgres@127.0.0.1:1/app"
      for (const size of ["0", "-1", "ten", "2.5"]) {
        const error = yield* Effect.flip(
          Layer.build(Database.layerConfig()).pipe(
            Effect.provide(withEnv({ DATABASE_URL: url, DATABASE_POOL_MAX: size })),
            Effect.scoped
          )
        )
        expect(error._tag).toBe("InvalidRuntimeConfig")
        expect(error.message).toBe(
          `Invalid configuration DATABASE_POOL_MAX: must be a whole number of connections, at least 1, got ${
            JSON.stringify(size)
          }`
        )
      }
      const programmatic = yield* Effect.flip(
        Layer.build(Database.layer({ url: Redacted.make(url), maxConnections: -1 })).pipe(Effect.scoped)
      )
      expect(programmatic.message).toBe(
        `Invalid configuration maxConnections: must be a whole number of connections, at least 1, got "-1"`
      )
      expect(yield* Database.parseMaxConnections(" 20 ")).toBe(20)
    }))

  it.live("an empty pool size is the default: startup goes on to reach the server", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Database.layerConfig()).pipe(
        Effect.provide(withEnv({
          DATABASE_URL: "postgres://postgres@127.0.0.1:1/app",
          DATABASE_POOL_MAX: " ",
          DATABASE_CONNECT_TIMEOUT: "300 millis"
        })),
        Effect.scoped
      ))
      expect(error._tag).toBe("DatabaseUnavailable")
    }), { timeout: 20_000 })

  describe("durable mode", () => {
    layer(TestDatabase.layer("runtime"), { timeout: 60_000, excludeTestServices: true })((it) => {
      it.scoped("runs workflows on prefixed cluster tables and is chosen by default", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const runtime = yield* Layer.build(
            GreetLayer.pipe(Layer.provideMerge(WorkflowRuntime.layerConfig(prefix)), Layer.provide(withEnv({})))
          )
          const engine = Context.get(runtime, WorkflowEngine.WorkflowEngine)
          expect(Context.get(runtime, WorkflowRuntime.WorkflowRuntime).mode).toBe("durable")
          const result = yield* engine.execute(Greet, { executionId: "e1", payload: { name: "grace" } })
          expect(result).toBe("hello grace")
          const tables = (yield* sql<{ relname: string }>`
            SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1`)
            .map((r) => r.relname)
          expect(tables).toEqual([
            "rt_activity_exits",
            "rt_activity_results",
            "rt_cluster_locks",
            "rt_cluster_messages",
            "rt_cluster_migrations",
            "rt_cluster_replies",
            "rt_cluster_runners",
            "rt_runs",
            "rt_runtime_migrations",
            "rt_schedules"
          ])
          // the activity's outcome is one row of runtime-core's (InlineActivities), not a cluster message
          expect(yield* sql`SELECT activity, attempt, exit FROM rt_activity_exits WHERE execution_id = 'e1'`).toEqual([
            { activity: "greet", attempt: 1, exit: { _tag: "Success", value: "hello grace" } }
          ])
        }))
    })
  })
})
