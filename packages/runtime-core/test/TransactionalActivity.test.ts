/**
 * Transactional activities: the body's writes and the recorded result commit
 * together, so a replay returns the committed result without running the body,
 * a failed body leaves nothing, and racing executions commit once.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Migrations, TablePrefix, TransactionalActivity } from "../src/index.js"
import * as RuntimeTables from "../src/internal/RuntimeTables.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("txn")

const Setup = Layer.mergeAll(
  RuntimeTables.layer(prefix),
  Migrations.layer(prefix, [{ id: 1, name: "counter", sql: (t) => `CREATE TABLE ${t("effects")} (k text PRIMARY KEY, n int NOT NULL)` }])
)

const bump = (k: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`INSERT INTO txn_effects (k, n) VALUES (${k}, 1)
      ON CONFLICT (k) DO UPDATE SET n = txn_effects.n + 1 RETURNING n`).pipe(Effect.map((rows) => rows[0].n))

const count = (k: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT n FROM txn_effects WHERE k = ${k}`).pipe(
    Effect.map((rows) => rows[0]?.n ?? 0)
  )

const Result = Schema.Struct({ n: Schema.Number, at: Schema.DateFromString })

describe("TransactionalActivity", () => {
  layer(
    Layer.provideMerge(Layer.merge(TransactionalActivity.layer(prefix), Setup), TestDatabase.layer("txn")),
    { timeout: 60_000, excludeTestServices: true }
  )((it) => {
    it.effect("a replay returns the committed result and does not run the body again", () =>
      Effect.gen(function*() {
        const ledger = yield* TransactionalActivity.ActivityLedger
        const key = { executionId: "e1", activity: "bump", attempt: 1 }
        const body = Effect.map(bump("a"), (n) => ({ n, at: new Date() }))
        const first = yield* ledger.once(key, Result, body)
        const replay = yield* ledger.once(key, Result, body)
        expect(replay).toEqual(first)
        expect(yield* count("a")).toBe(1)
        // another attempt is another key: it runs
        const retried = yield* ledger.once({ ...key, attempt: 2 }, Result, body)
        expect(retried.n).toBe(2)
      }))

    it.effect("a failing body commits nothing, neither its writes nor a result", () =>
      Effect.gen(function*() {
        const ledger = yield* TransactionalActivity.ActivityLedger
        const sql = yield* SqlClient.SqlClient
        const key = { executionId: "e2", activity: "bump", attempt: 1 }
        const failure = yield* Effect.flip(ledger.once(key, Result, Effect.zipRight(bump("b"), Effect.fail("boom" as const))))
        expect(failure).toBe("boom")
        expect(yield* count("b")).toBe(0)
        expect(yield* sql`SELECT 1 FROM txn_activity_results WHERE execution_id = 'e2'`).toEqual([])
        // the next try runs the body for real
        yield* ledger.once(key, Result, Effect.map(bump("b"), (n) => ({ n, at: new Date() })))
        expect(yield* count("b")).toBe(1)
      }))

    it.effect("two executions racing on one key commit the writes once and agree on the result", () =>
      Effect.gen(function*() {
        const ledger = yield* TransactionalActivity.ActivityLedger
        const key = { executionId: "e3", activity: "bump", attempt: 1 }
        const slow = Effect.map(bump("c"), (n) => ({ n, at: new Date() })).pipe(Effect.zipLeft(Effect.sleep("300 millis")))
        const [x, y] = yield* Effect.all([ledger.once(key, Result, slow), ledger.once(key, Result, slow)], {
          concurrency: 2
        })
        expect(x).toEqual(y)
        expect(yield* count("c")).toBe(1)
      }))
  })
})
