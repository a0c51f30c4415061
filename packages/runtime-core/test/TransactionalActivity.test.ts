/**
 * Transactional activities: the body's writes and the recorded result commit
 * together, so a replay returns the committed result without running the body,
 * a failed body leaves nothing, and racing executions commit once.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { WorkflowEngine, Workflow } from "@effect/workflow"
import { Effect, Either, Layer, Schema } from "effect"
import Pg from "pg"
import { AppRuntime, Database, Migrations, TablePrefix, TransactionalActivity, WorkflowLayer } from "../src/index.js"
import * as RuntimeTables from "../src/internal/RuntimeTables.js"
import { TestDatabase } from "../src/testing/index.js"
import { recordingClient, recordingPool } from "./fixtures/recording-client.js"

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
  payload: {
    id: Schema.String,
    text: Schema.String,
    mode: Schema.Literal("write", "race", "fail", "nothing", "blob", "blob-fail", "lone", "wrapped", "rows", "async")
  },
  success: Schema.String,
  error: Schema.String,
  idempotencyKey: ({ id }) => id
})

/** A string whose encoding takes a turn of the clock: `Schema.encodeEither` cannot, `Schema.encode` can. */
const EncodedLater = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (s) => Effect.succeed(s),
  encode: (s) => Effect.as(Effect.sleep("1 millis"), s)
})

/**
 * The step, by `mode`: "write" writes `text` in the transaction and returns it; "race" too,
 * but another execution of this step commits its exit ("theirs") on its own connection
 * first; "fail" writes, then fails; "nothing" writes nothing; "blob" writes a bytea (a
 * parameter pg binds as binary, so it cannot travel with BEGIN); "blob-fail" writes it, then
 * fails; "async" writes, with a success schema that encodes only asynchronously (its exit row is
 * computed after the body, by an effect).
 */
const noteLayer = (url: string) =>
  WorkflowLayer.make(Note, {
    dependencies: Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient),
    execute: ({ id, mode, text }) =>
      mode === "lone" || mode === "wrapped" || mode === "rows" ? statementNote(id, mode, text) : TransactionalActivity.make({
        name: "note",
        success: mode === "async" ? EncodedLater : Schema.String,
        error: Schema.String,
        execute: Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          if (mode === "nothing") return text
          if (mode === "blob" || mode === "blob-fail") {
            yield* sql`INSERT INTO dur_blobs (id, data) VALUES (${id}, ${Buffer.from(text)})`
          } else {
            yield* sql`INSERT INTO dur_notes (id, text) VALUES (${id}, ${text})`
          }
          if (mode === "fail" || mode === "blob-fail") return yield* Effect.fail("boom")
          if (mode === "race") {
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

/**
 * The step's body as one statement: "lone" is the statement itself (no result); "wrapped" is
 * the same statement inside another effect, "rows" the statement with its rows as the
 * result: neither can go with the exit row, so both take the general path.
 */
const statementNote = (id: string, mode: "lone" | "wrapped" | "rows", text: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const insert = sql<{ id: string }>`INSERT INTO dur_notes (id, text) VALUES (${id}, ${text}) RETURNING id`
    if (mode === "rows") {
      const rows = yield* TransactionalActivity.make({
        name: "note",
        success: Schema.Array(Schema.Struct({ id: Schema.String })),
        execute: insert
      })
      return rows.map((row) => row.id).join()
    }
    yield* TransactionalActivity.make({ name: "note", execute: mode === "lone" ? insert : Effect.asVoid(insert) })
    return text
  })

// the same steps on a pool `Database` built (its connections taken directly: `PoolConnection`)
// and on a client built elsewhere (its connections reserved through @effect/sql)
// (`batched`: a step's first and last statements go as batches, their parameters bound)
const clients = [
  [
    "on a Database pool",
    (url: string, statements: Array<string>, bound: Array<string>) =>
      Database.layerFromPool(recordingPool(url, statements, 10, bound)),
    true
  ],
  ["on a client built elsewhere", recordingClient, false]
] as const

describe.each(clients)("TransactionalActivity on the durable engine, %s", (_, client, batched) => {
  it.scopedLive("a step is BEGIN with its first statement, then its exit row with COMMIT (on a Database pool, writes held back go with the exit row: one query); any text round-trips; whatever fails rolls back", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("txn_durable")
      const statements: Array<string> = []
      // the same texts with their values written in
      const bound: Array<string> = []
      const runtime = AppRuntime.layer({
        prefix: TablePrefix.unsafeMake("dur"),
        migrations: [{
          id: 1,
          name: "notes",
          sql: (t) =>
            `CREATE TABLE ${t("notes")} (id text PRIMARY KEY, text text NOT NULL);
             CREATE TABLE ${t("blobs")} (id text PRIMARY KEY, data bytea NOT NULL)`
        }],
        workflows: noteLayer(db.url)
      }).pipe(Layer.provideMerge(client(db.url, statements, bound)))
      const context = yield* Layer.build(runtime)
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        /** The INSERT of note `id`, its values written in. */
        const noteInsert = (id: string) => new RegExp(`INSERT INTO dur_notes \\(id, text\\) VALUES \\('${id}'`)
        /** What a run's step sent: statements matching `body`, and its exit row's. */
        const stepStatements = (executionId: string, body: RegExp) =>
          bound.filter((s) => body.test(s) || (s.includes(`INSERT INTO "dur_activity_exits"`) && s.includes(executionId)))
        const text = `it's \\"quoted\\" \\\\ back\\slash, ünïcödé 漢字, a\nnewline, $1 -- /* and E'' too`
        const a = { id: "a", text, mode: "write" } as const
        expect(yield* Note.execute(a)).toBe(text)
        const executionId = yield* Note.executionId(a)
        expect(yield* sql`SELECT exit FROM dur_activity_exits WHERE execution_id = ${executionId}`).toEqual([
          { exit: { _tag: "Success", value: text } }
        ])
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'a'`).toEqual([{ text }])
        // on a Database pool, one round trip: the body's INSERT (it reads nothing of its answer:
        // held back, `WriteBehind`) with the exit row, one batch, the values bound, no BEGIN and no
        // COMMIT (one implicit transaction); elsewhere two: BEGIN with the INSERT, then the exit
        // row with COMMIT, one query each, the values written in
        const sent = stepStatements(executionId, /INSERT INTO dur_notes/)
        if (batched) {
          expect(sent).toHaveLength(1)
          expect(sent[0]).toMatch(/^INSERT INTO dur_notes \(id, text\) VALUES \('a', +E?'it''s .*;\nINSERT INTO "dur_activity_exits" /s)
          expect(statements.filter((s) => s.startsWith("INSERT INTO dur_notes"))[0]).toMatch(
            /^INSERT INTO dur_notes \(id, text\) VALUES \(\$1, \$2\);\nINSERT INTO "dur_activity_exits" /
          )
        } else {
          expect(sent).toHaveLength(2)
          expect(sent[0]).toMatch(/^BEGIN;\nINSERT INTO dur_notes \(id, text\) VALUES \('a', +E?'it''s /)
          expect(sent[1]).toMatch(/^INSERT INTO "dur_activity_exits" .*;\nCOMMIT$/s)
        }

        // another execution committed this step's exit first: ours rolls back (its note too)
        // and returns theirs
        expect(yield* Note.execute({ id: "b", text: "ours", mode: "race" })).toBe("theirs")
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'b'`).toEqual([])

        // a body that fails after its first statement: that statement is rolled back (on a
        // Database pool the write held back is sent first, with BEGIN, then rolled back: had it
        // failed, the step would run again without holding writes back)
        expect(yield* Effect.flip(Note.execute({ id: "c", text: "c", mode: "fail" }))).toBe("boom")
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'c'`).toEqual([])
        expect(bound.filter((s) => /^BEGIN;\nINSERT INTO dur_notes \(id, text\) VALUES \('c'/.test(s))).toHaveLength(1)

        // a body that sends nothing begins nothing: its exit row is one statement, alone
        const d = { id: "d", text: "d", mode: "nothing" } as const
        expect(yield* Note.execute(d)).toBe("d")
        const dSent = stepStatements(yield* Note.executionId(d), /^$/)
        expect(dSent).toHaveLength(1)
        expect(dSent[0]).toMatch(/^INSERT INTO "dur_activity_exits" [^;]*$/s)

        // a bytea: on a Database pool it is held back as any write (bound) and goes with the exit
        // row; elsewhere it cannot be written in, and is sent with bound parameters after BEGIN
        // on its own; atomic all the same
        expect(yield* Note.execute({ id: "e", text: "bytes", mode: "blob" })).toBe("bytes")
        expect(yield* sql`SELECT convert_from(data, 'UTF8') AS data FROM dur_blobs WHERE id = 'e'`).toEqual([
          { data: "bytes" }
        ])
        expect(statements.filter((s) => /INSERT INTO dur_blobs/.test(s))[0]).toMatch(
          batched ? /^INSERT INTO dur_blobs .*\$2\);\nINSERT INTO "dur_activity_exits" /s : /^INSERT INTO dur_blobs .*\$2\)$/
        )
        expect(yield* Effect.flip(Note.execute({ id: "f", text: "bytes", mode: "blob-fail" }))).toBe("boom")
        expect(yield* sql`SELECT id FROM dur_blobs WHERE id = 'f'`).toEqual([])

        // a body that is one statement with no result: the statement and its exit row in one
        // round trip (one implicit transaction), no BEGIN, no COMMIT
        const g = { id: "g", text: "it's g", mode: "lone" } as const
        expect(yield* Note.execute(g)).toBe("it's g")
        const gSent = stepStatements(yield* Note.executionId(g), noteInsert("g"))
        expect(gSent).toHaveLength(1)
        expect(gSent[0]).toMatch(
          /^INSERT INTO dur_notes \(id, text\) VALUES \('g', 'it''s g'\) RETURNING id;\nINSERT INTO "dur_activity_exits" [^;]*$/s
        )
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'g'`).toEqual([{ text: "it's g" }])
        expect(yield* sql`SELECT exit FROM dur_activity_exits WHERE execution_id = ${yield* Note.executionId(g)}`)
          .toEqual([{ exit: { _tag: "Success" } }])

        // another execution recorded the step first: the exit row fails, the statement's write
        // is rolled back with it, and the step returns the recorded exit
        const h = { id: "h", text: "h", mode: "lone" } as const
        yield* sql`INSERT INTO dur_activity_exits (execution_id, activity, attempt, exit, started_at)
          VALUES (${yield* Note.executionId(h)}, 'note', 1, '{"_tag":"Success"}'::jsonb, now())`
        expect(yield* Note.execute(h)).toBe("h")
        const hSent = stepStatements(yield* Note.executionId(h), noteInsert("h"))
        expect(hSent.filter((s) => /^INSERT INTO dur_notes .*;\nINSERT INTO "dur_activity_exits"/s.test(s)))
          .toHaveLength(1)
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'h'`).toEqual([])

        // the same statement inside another effect, or with its rows as the result: the
        // general path (BEGIN with the statement, then the exit row with COMMIT)
        for (const [id, mode, result] of [["i", "wrapped", "i"], ["j", "rows", "j"]] as const) {
          const run = { id, text: id, mode } as const
          expect(yield* Note.execute(run)).toBe(result)
          const sentFor = stepStatements(yield* Note.executionId(run), noteInsert(id))
          expect(sentFor).toHaveLength(2)
          expect(sentFor[0]).toMatch(/^BEGIN;\nINSERT INTO dur_notes/)
          expect(sentFor[1]).toMatch(/;\nCOMMIT$/)
          expect(yield* sql`SELECT text FROM dur_notes WHERE id = ${id}`).toEqual([{ text: id }])
        }

        // a result whose schema encodes only asynchronously: its exit row is encoded after the
        // body (an effect of its own) and still goes with COMMIT, in the same transaction
        const k = { id: "k", text: "k", mode: "async" } as const
        expect(yield* Note.execute(k)).toBe("k")
        const kSent = stepStatements(yield* Note.executionId(k), noteInsert("k"))
        if (batched) {
          expect(kSent).toHaveLength(1)
          expect(kSent[0]).toMatch(/^INSERT INTO dur_notes .*;\nINSERT INTO "dur_activity_exits" /s)
        } else {
          expect(kSent).toHaveLength(2)
          expect(kSent[0]).toMatch(/^BEGIN;\nINSERT INTO dur_notes/)
          expect(kSent[1]).toMatch(/^INSERT INTO "dur_activity_exits" .*;\nCOMMIT$/s)
        }
        expect(yield* sql`SELECT exit FROM dur_activity_exits WHERE execution_id = ${yield* Note.executionId(k)}`)
          .toEqual([{ exit: { _tag: "Success", value: "k" } }])
        expect(yield* sql`SELECT text FROM dur_notes WHERE id = 'k'`).toEqual([{ text: "k" }])
      }).pipe(Effect.provide(context))
    }), 60_000)
})

/**
 * An app runtime (prefix `prefix`, one table: `table`'s DDL) on a fresh database `database`,
 * its `Database` on a recording pool of `max` connections, built in the test's scope: its
 * context, the texts its connections sent, and in `bound` the same texts with their values
 * written in.
 */
const onRecordingPool = <E, R>(
  database: string,
  prefix: string,
  table: { readonly name: string; readonly sql: (t: (name: string) => string) => string },
  workflows: AppRuntime.Options<E, R>["workflows"],
  max: number
) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make(database)
    const statements: Array<string> = []
    const bound: Array<string> = []
    const runtime = AppRuntime.layer({
      prefix: TablePrefix.unsafeMake(prefix),
      migrations: [{ id: 1, ...table }],
      workflows
    }).pipe(Layer.provideMerge(Database.layerFromPool(recordingPool(db.url, statements, max, bound))))
    const context = yield* Layer.build(runtime)
    return { context, statements, bound }
  })

const Tally = Workflow.make({
  name: "Tally",
  payload: { id: Schema.String, reject: Schema.Boolean },
  success: Schema.Number,
  error: Schema.String,
  idempotencyKey: ({ id }) => id
})

/**
 * Three transactional steps, each a body of its own (not a lone statement) that upserts the
 * key `<id>-<step>` and returns its count; with `reject`, step 2's write breaks a CHECK and
 * the step fails with "rejected".
 */
const tallyLayer = WorkflowLayer.make(Tally, {
  dependencies: Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient),
  execute: ({ id, reject }) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      let total = 0
      for (const step of [1, 2, 3]) {
        const n = step === 2 && reject ? -1 : 1
        total += yield* TransactionalActivity.make({
          name: `step-${step}`,
          success: Schema.Number,
          error: Schema.String,
          execute: sql<{ n: number }>`INSERT INTO rel_counts (k, n) VALUES (${`${id}-${step}`}, ${n})
            ON CONFLICT (k) DO UPDATE SET n = rel_counts.n + 1 RETURNING n`.pipe(
            Effect.map((rows) => rows[0]!.n),
            Effect.catchIf((e) => (e.cause as { code?: string })?.code === "23514", () => Effect.fail("rejected"))
          )
        })
      }
      return total
    })
})

describe("TransactionalActivity on a busy Database pool", () => {
  it.scopedLive("steps waiting for a connection go with other steps' COMMITs; each commits once, a failing one alone fails, once", () =>
    Effect.gen(function*() {
      const { bound, context, statements } = yield* onRecordingPool("txn_relay", "rel", {
        name: "counts",
        sql: (t) => `CREATE TABLE ${t("counts")} (k text PRIMARY KEY, n int NOT NULL CHECK (n > 0))`
      }, tallyLayer, 3)
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const runs = Array.from({ length: 60 }, (_, i) => ({ id: `r${i}`, reject: i % 6 === 5 }))
        const outcomes = yield* Effect.all(runs.map((run) => Effect.either(Tally.execute(run))), {
          concurrency: "unbounded"
        })
        for (const [i, run] of runs.entries()) {
          expect(outcomes[i]).toEqual(run.reject ? Either.left("rejected") : Either.right(3))
        }
        // every step that succeeded wrote once; a rejected step wrote nothing, and its run went no further
        const counts = new Map((yield* sql<{ k: string; n: number }>`SELECT k, n FROM rel_counts`).map((r) => [r.k, r.n]))
        for (const run of runs) {
          expect([1, 2, 3].map((step) => counts.get(`${run.id}-${step}`))).toEqual(
            run.reject ? [1, undefined, undefined] : [1, 1, 1]
          )
        }
        // the relay carried steps: a COMMIT and the next transaction's BEGIN in one query
        expect(statements.filter((s) => /;\nCOMMIT;\nBEGIN;\nINSERT INTO rel_counts/.test(s)).length).toBeGreaterThan(0)
        // among them rejected ones: their own statement failed after the COMMIT it went with (that
        // step committed), and the error was theirs at once: each rejected statement went once
        expect(bound.filter((s) => /;\nCOMMIT;\nBEGIN;\nINSERT INTO rel_counts \(k, n\) VALUES \('r\d+-2', '-1'\)/.test(s)).length)
          .toBeGreaterThan(0)
        for (const run of runs.filter((r) => r.reject)) {
          expect(bound.filter((s) => s.includes(`INSERT INTO rel_counts (k, n) VALUES ('${run.id}-2', '-1')`))).toHaveLength(1)
        }
      }).pipe(Effect.provide(context))
    }), 120_000)
})

const Entry = Workflow.make({
  name: "Entry",
  payload: { id: Schema.String, mode: Schema.Literal("writes", "duplicate", "fail-after") },
  success: Schema.Number,
  error: Schema.String,
  idempotencyKey: ({ id }) => id
})

/** How many times each run's step body ran, by run id. */
const entryBodies = new Map<string, number>()

/**
 * One transactional step whose body is an effect of several statements, by `mode`: "writes"
 * inserts `<id>`, adds 10, reads it back (its result) and doubles it; "duplicate" inserts the
 * key "taken", which exists, and turns the unique violation into the typed error "exists";
 * "fail-after" inserts `<id>`, then fails with "nope".
 */
const entryLayer = WorkflowLayer.make(Entry, {
  dependencies: Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient),
  execute: ({ id, mode }) =>
    TransactionalActivity.make({
      name: "entry",
      success: Schema.Number,
      error: Schema.String,
      execute: Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        entryBodies.set(id, (entryBodies.get(id) ?? 0) + 1)
        if (mode === "duplicate") {
          return yield* sql`INSERT INTO wb_entries (k, n) VALUES (${"taken"}, 1)`.pipe(
            Effect.as(1),
            Effect.catchIf((e) => (e.cause as { code?: string })?.code === "23505", () => Effect.fail("exists"))
          )
        }
        yield* sql`INSERT INTO wb_entries (k, n) VALUES (${id}, 1)`
        if (mode === "fail-after") return yield* Effect.fail("nope")
        yield* sql`UPDATE wb_entries SET n = n + 10 WHERE k = ${id}`
        const [row] = yield* sql<{ n: number }>`SELECT n FROM wb_entries WHERE k = ${id}`
        yield* sql`UPDATE wb_entries SET n = n * 2 WHERE k = ${id}`
        return row!.n
      })
    })
})

describe("TransactionalActivity on a Database pool, writes held back", () => {
  it.scopedLive("a write goes with the next statement the body reads or with the exit row, in order; a held write that fails runs the step again as sent, where the body sees its error", () =>
    Effect.gen(function*() {
      const { bound, context } = yield* onRecordingPool("txn_behind", "wb", {
        name: "entries",
        sql: (t) => `CREATE TABLE ${t("entries")} (k text PRIMARY KEY, n int NOT NULL)`
      }, entryLayer, 10)
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const entry = (k: string) => sql<{ n: number }>`SELECT n FROM wb_entries WHERE k = ${k}`
        const exitOf = (executionId: string) =>
          sql<{ exit: unknown }>`SELECT exit FROM wb_activity_exits WHERE execution_id = ${executionId}`

        // the SELECT sees the writes before it (they went with it, after BEGIN, in order); the
        // write after it goes with the exit row and COMMIT: two round trips for four statements
        const writes = { id: "w", mode: "writes" } as const
        const wFrom = bound.length
        expect(yield* Entry.execute(writes)).toBe(11)
        const wSent = bound.slice(wFrom).filter((s) => s.includes("wb_entries") && s.includes("'w'"))
        expect(yield* entry("w")).toEqual([{ n: 22 }])
        expect(yield* exitOf(yield* Entry.executionId(writes))).toEqual([{ exit: { _tag: "Success", value: 11 } }])
        expect(wSent).toHaveLength(2)
        expect(wSent[0]).toMatch(
          /^BEGIN;\nINSERT INTO wb_entries \(k, n\) VALUES \('w', '?1'?\);\nUPDATE wb_entries SET n = n \+ 10 WHERE k = 'w';\nSELECT n FROM wb_entries WHERE k = 'w'$/
        )
        expect(wSent[1]).toMatch(/^UPDATE wb_entries SET n = n \* 2 WHERE k = 'w';\nINSERT INTO "wb_activity_exits" .*;\nCOMMIT$/s)
        expect(entryBodies.get("w")).toBe(1)

        // the held INSERT fails with its exit row (nothing commits); the step runs again with
        // every statement sent as the body sends it, and the body turns the violation into its
        // typed error where it sent the INSERT
        yield* sql`INSERT INTO wb_entries (k, n) VALUES ('taken', 1)`
        const duplicate = { id: "d", mode: "duplicate" } as const
        const dFrom = bound.length
        expect(yield* Effect.flip(Entry.execute(duplicate))).toBe("exists")
        const dSent = bound.slice(dFrom).filter((s) => s.includes("INSERT INTO wb_entries (k, n) VALUES ('taken'"))
        expect(entryBodies.get("d")).toBe(2)
        expect(dSent).toHaveLength(2)
        expect(dSent[0]).toMatch(/^INSERT INTO wb_entries .*;\nINSERT INTO "wb_activity_exits" /s)
        expect(dSent[1]).toMatch(/^INSERT INTO wb_entries \(k, n\) VALUES \('taken', '?1'?\)$/)
        expect(yield* entry("taken")).toEqual([{ n: 1 }])
        expect(yield* exitOf(yield* Entry.executionId(duplicate))).toEqual([
          { exit: { _tag: "Failure", cause: { _tag: "Fail", error: "exists" } } }
        ])

        // a body that fails after a held write: the write is sent (with BEGIN) to learn that it
        // would have succeeded, then rolled back; the body's own failure stands, the body ran once
        const failAfter = { id: "f", mode: "fail-after" } as const
        const fFrom = bound.length
        expect(yield* Effect.flip(Entry.execute(failAfter))).toBe("nope")
        const fSent = bound.slice(fFrom).filter((s) => s.includes("VALUES ('f'"))
        expect(entryBodies.get("f")).toBe(1)
        expect(yield* entry("f")).toEqual([])
        expect(fSent).toEqual([
          expect.stringMatching(/^BEGIN;\nINSERT INTO wb_entries \(k, n\) VALUES \('f', '?1'?\)$/)
        ])
      }).pipe(Effect.provide(context))
    }), 60_000)
})
