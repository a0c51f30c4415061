/**
 * Transactional activities: the body's writes and the recorded result commit
 * together, so a replay returns the committed result without running the body,
 * a failed body leaves nothing, and racing executions commit once.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { WorkflowEngine, Workflow } from "@effect/workflow"
import { Effect, Layer, Schema } from "effect"
import Pg from "pg"
import { AppRuntime, Migrations, TablePrefix, TransactionalActivity, WorkflowLayer } from "../src/index.js"
import * as RuntimeTables from "../src/internal/RuntimeTables.js"
import { TestDatabase } from "../src/testing/index.js"
import { recordingClient } from "./fixtures/recording-client.js"

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

const Note = Workflow.make({
  name: "Note",
  payload: { id: Schema.String, text: Schema.String, race: Schema.Boolean },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

/**
 * Writes `text` in the transaction and returns it; with `race`, another execution of
 * this step commits its exit ("theirs") on its own connection first.
 */
const noteLayer = (url: string) =>
  WorkflowLayer.make(Note, {
    dependencies: Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient),
    execute: ({ id, race, text }) =>
      TransactionalActivity.make({
        name: "note",
        success: Schema.String,
        execute: Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO dur_notes (id, text) VALUES (${id}, ${text})`
          if (race) {
            const instance = yield* WorkflowEngine.WorkflowInstance
            yield* Effect.promise(async () => {
              const other = new Pg.Client({ connectionString: url })
              other.on("error", () => undefined)
              await other.connect()
              await other.query(
                `INSERT INTO dur_activity_exits (execution_id, activity, attempt, exit, started_at)
                 VALUES ($1, 'note', 1, '{"_tag":"Success","value":"theirs"}'::jsonb, now())`,
                [instance.executionId]
              )
              await other.end()
            })
          }
          return text
        })
      })
  })

describe("TransactionalActivity on the durable engine", () => {
  it.scopedLive("a step is BEGIN, its body, and its exit row with COMMIT in one round trip; any text round-trips; a racing execution's committed exit wins", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("txn_durable")
      const statements: Array<string> = []
      const runtime = AppRuntime.layer({
        prefix: TablePrefix.unsafeMake("dur"),
        migrations: [{ id: 1, name: "notes", sql: (t) => `CREATE TABLE ${t("notes")} (id text PRIMARY KEY, text text NOT NULL)` }],
        workflows: noteLayer(db.url)
      }).pipe(Layer.provideMerge(recordingClient(db.url, statements)))
      const context = yield* Layer.build(runtime)
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const text = `it's \\"quoted\\" \\\\ back\\slash, ünïcödé 漢字, a\nnewline and E'' too`
        statements.length = 0
        expect(yield* Note.execute({ id: "a", text, race: false })).toBe(text)
        const executionId = yield* Note.executionId({ id: "a", text, race: false })
        expect(yield* sql`SELECT exit FROM dur_activity_exits WHERE execution_id = ${executionId}`).toEqual([
          { exit: { _tag: "Success", value: text } }
        ])
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'a'`).toEqual([{ text }])
        // the step's exit row is written once, in the same query as its COMMIT
        const exitWrites = statements.filter((s) => /INSERT INTO "dur_activity_exits"/.test(s))
        expect(exitWrites).toHaveLength(1)
        expect(exitWrites[0]).toMatch(/^INSERT INTO "dur_activity_exits" .*;\nCOMMIT$/s)

        // another execution committed this step's exit first: ours rolls back (its note too)
        // and returns theirs
        expect(yield* Note.execute({ id: "b", text: "ours", race: true })).toBe("theirs")
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'b'`).toEqual([])
      }).pipe(Effect.provide(context))
    }), 60_000)
})
