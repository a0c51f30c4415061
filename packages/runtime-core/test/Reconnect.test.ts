/**
 * A running app whose connections are killed (`pg_terminate_backend`, as an
 * operator or a failover would) reconnects by itself: shard locks are taken
 * again on a new session and workflows keep completing.
 */
import { SqlClient } from "@effect/sql"
import { Activity, Workflow } from "@effect/workflow"
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import { Database, TablePrefix, WorkflowRuntime } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("reconnect")
const space = TablePrefix.lockSpace(prefix)

const Echo = Workflow.make({ name: "Echo", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })
const EchoLayer = Echo.toLayer(({ id }) => Activity.make({ name: "echo", success: Schema.String, execute: Effect.succeed(id) }))

const heldLocks = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND classid = ${space}::oid AND objsubid = 2`).pipe(Effect.map((rows) => rows[0].n))

describe("reconnect", () => {
  layer(TestDatabase.layer("reconnect"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("workflows keep completing after every app connection is terminated", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const admin = yield* SqlClient.SqlClient
        const app = yield* Layer.build(
          EchoLayer.pipe(
            Layer.provideMerge(WorkflowRuntime.layerDurable(prefix, {
              sharding: {
                shardLockRefreshInterval: Duration.seconds(1),
                entityMessagePollInterval: Duration.millis(500)
              }
            })),
            Layer.provide(Database.layer({ url: Redacted.make(db.url), applicationName: "reconnect-app" }))
          )
        )
        const run = (id: string) => Echo.execute({ id }).pipe(Effect.provide(app), Effect.timeout("30 seconds"))
        expect(yield* run("before")).toBe("before")
        const before = yield* heldLocks
        expect(before).toBeGreaterThan(0)

        const killed = yield* admin<{ n: number }>`SELECT count(pg_terminate_backend(pid))::int AS n
          FROM pg_stat_activity WHERE application_name = 'reconnect-app'`
        expect(killed[0].n).toBeGreaterThan(0)

        expect(yield* run("after")).toBe("after")
        // the shard locks are back, on a new session
        const after = yield* heldLocks.pipe(
          Effect.filterOrFail((n) => n === before),
          Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("20 seconds"))),
          Effect.orElse(() => heldLocks)
        )
        expect(after).toBe(before)
      }))
  })
})
