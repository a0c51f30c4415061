/**
 * The fixes runtime-core applies to its Effect dependencies with pnpm's
 * `patchedDependencies` (root package.json, `patches/`): each test fails on
 * the unpatched package.
 */
import { Reactivity } from "@effect/experimental"
import { SqlClient, Statement } from "@effect/sql"
import type { SqlConnection } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Activity, Workflow, WorkflowEngine } from "@effect/workflow"
import { Context, Effect, Exit, Fiber, Layer, Option, Schedule, Schema, Scope, Stream, TestClock } from "effect"
import Pg from "pg"
import { AppRuntime, TablePrefix, WorkflowLayer } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

describe("patches/@effect__workflow@0.19.1.patch", () => {
  it("Activity.make shares one exit schema per (success, error) pair, so Schema's parser cache is hit", () => {
    const Failure = Schema.String
    const make = () => Activity.make({ name: "step", success: Schema.Number, error: Failure, execute: Effect.succeed(1) })
    expect(make().exitSchema).toBe(make().exitSchema)
    // the default (void, never) pair too: most activities declare neither
    expect(Activity.make({ name: "a", execute: Effect.void }).exitSchema)
      .toBe(Activity.make({ name: "b", execute: Effect.void }).exitSchema)
    // a different pair gets its own schema
    expect(Activity.make({ name: "c", success: Schema.String, execute: Effect.succeed("") }).exitSchema)
      .not.toBe(make().exitSchema)
  })

  it.effect("the shared exit schema still decodes each activity's own result", () =>
    Effect.gen(function*() {
      const activity = Activity.make({ name: "s", success: Schema.NumberFromString, execute: Effect.succeed(2) })
      // the engine decodes a stored step result (encoded: "2") with the activity's exit schema
      const decode = Schema.decode(activity.exitSchema)
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
    }))

  it.effect("an activity's first attempt runs without the interrupt-retry machinery; an interrupted attempt is still retried", () =>
    Effect.gen(function*() {
      // per attempt: did the retry schedule provide its iteration metadata (Effect.retry does, to every attempt)?
      const provided: Array<boolean> = []
      const Steps = Workflow.make({ name: "Steps", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })
      const layer = Steps.toLayer(({ id }) =>
        Activity.make({
          name: "step",
          success: Schema.Number,
          execute: Effect.flatMap(Effect.context<never>(), (context) => {
            provided.push(context.unsafeMap.has(Schedule.CurrentIterationMetadata.key))
            // "interrupted" is interrupted on its first attempt
            return id === "interrupted" && provided.length === 1 ? Effect.interrupt : Effect.succeed(provided.length)
          })
        })
      ).pipe(Layer.provideMerge(WorkflowEngine.layerMemory))
      expect(yield* Steps.execute({ id: "plain" }).pipe(Effect.provide(layer))).toBe(1)
      expect(provided).toEqual([false])
      provided.length = 0
      const retried = Steps.execute({ id: "interrupted" }).pipe(Effect.provide(layer), Effect.fork)
      const fiber = yield* retried
      // the interrupt-retry policy waits 100 ms before the second attempt
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(2)
      expect(provided).toEqual([false, true])
    }))
})

/** A `pg` pool that records the text of every query its clients send. */
const recordingPool = (url: string, statements: Array<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({ connectionString: url, max: 10 })
      pool.on("connect", (client) => {
        const query = client.query.bind(client) as (...args: Array<unknown>) => unknown
        ;(client as { query: unknown }).query = (...args: Array<unknown>) => {
          const first = args[0]
          statements.push(typeof first === "string" ? first : String((first as { text?: string })?.text ?? ""))
          return query(...args)
        }
      })
      return pool
    }),
    (pool) => Effect.promise(() => pool.end())
  )

const Once = Workflow.make({ name: "Once", payload: { id: Schema.String }, idempotencyKey: ({ id }) => id })

describe("patches/@effect__cluster@0.60.2.patch", () => {
  it.scopedLive("on Postgres, SqlMessageStorage saves a reply and marks its request processed in one statement, with its companion", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("patch_reply")
      const statements: Array<string> = []
      const client = Layer.scopedContext(Effect.map(
        PgClient.fromPool({ acquire: recordingPool(db.url, statements) }),
        (pg) => Context.make(PgClient.PgClient, pg).pipe(Context.add(SqlClient.SqlClient, pg))
      )).pipe(Layer.provide(Reactivity.layer))
      const runtime = AppRuntime.layer({
        prefix: TablePrefix.unsafeMake("patch"),
        migrations: [],
        workflows: WorkflowLayer.make(Once, {
          dependencies: Layer.empty,
          execute: () => Activity.make({ name: "step", success: Schema.Number, execute: Effect.succeed(1) })
        })
      })
      yield* Once.execute({ id: "a" }).pipe(Effect.provide(runtime.pipe(Layer.provideMerge(client))))
      const replies = statements.filter((s) => /UPDATE "patch_cluster_messages" SET processed = TRUE, last_reply_id/.test(s))
      // the run's reply at least (its activity's outcome is runtime-core's own row: InlineActivities)
      expect(replies.length).toBeGreaterThanOrEqual(1)
      for (const s of replies) {
        expect(s).toMatch(/^WITH (companion AS \(INSERT INTO "patch_runs" .*\), )?request AS \(UPDATE .* INSERT INTO "patch_cluster_replies"/s)
      }
      // the run's reply carries the runs ledger's final write (`replyCompanion`, RunOutcomes)
      expect(replies.filter((s) => s.startsWith(`WITH companion AS (INSERT INTO "patch_runs"`))).toHaveLength(1)
      // which is not written on its own
      expect(statements.filter((s) => /^\s*INSERT INTO "patch_runs" \(execution_id, workflow, status, result/.test(s))).toHaveLength(0)
    }), 60_000)
})

/** A connection whose every statement answers whether it ran with a Scope in its context. */
const scopeReporting: SqlConnection.Connection = {
  execute: () => Effect.map(Effect.serviceOption(Scope.Scope), (scope) => [{ scoped: Option.isSome(scope) }]),
  executeRaw: () => Effect.succeed([]),
  executeStream: () => Stream.empty,
  executeValues: () => Effect.succeed([]),
  executeUnprepared: () => Effect.succeed([])
}

const clientOn = (acquirer: SqlConnection.Connection.Acquirer) =>
  SqlClient.make({ acquirer, compiler: Statement.makeCompilerSqlite(), spanAttributes: [] }).pipe(
    Effect.provide(Reactivity.layer)
  )

describe("patches/@effect__sql@0.52.1.patch", () => {
  it.effect("a statement on a plain connection (PgClient's acquirer) runs without a Scope of its own; other acquirers keep theirs", () =>
    Effect.gen(function*() {
      const plain = yield* clientOn(Effect.succeed(scopeReporting))
      expect(yield* plain`SELECT 1`).toEqual([{ scoped: false }])
      expect(yield* plain.withoutTransforms()`SELECT 1`).toEqual([{ scoped: false }])
      // in a transaction the statement uses the transaction's connection, still without a Scope of its own
      // (BEGIN and COMMIT go through executeUnprepared)
      expect(yield* plain.withTransaction(plain`SELECT 1`)).toEqual([{ scoped: false }])
      // an acquirer that is an effect (a driver that checks a connection out and back in) keeps its Scope
      const effectful = yield* clientOn(Effect.suspend(() => Effect.succeed(scopeReporting)))
      expect(yield* effectful`SELECT 1`).toEqual([{ scoped: true }])
    }))
})
