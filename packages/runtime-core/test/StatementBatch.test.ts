/**
 * Several statements in one round trip (`StatementBatch`): one implicit
 * transaction, their parameters bound, named statements parsed once per
 * session; after an error the session's record of what it has parsed stays
 * right (no "already exists", no "does not exist" later), a session that lost
 * its statements goes on unnamed, and a value that cannot be sent fails the
 * batch before anything is sent.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import pg from "pg"
import * as PreparedStatements from "../src/internal/PreparedStatements.js"
import * as StatementBatch from "../src/internal/StatementBatch.js"
import { TestDatabase } from "../src/testing/index.js"

/** One session on a fresh database, naming every parameterized text from its first send. */
const session = Effect.gen(function*() {
  const db = yield* TestDatabase.make("statement_batch")
  const client = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const created = new pg.Client({ connectionString: db.url })
      created.on("error", () => undefined)
      await created.connect()
      return created
    }),
    (client) => Effect.promise(() => client.end())
  )
  PreparedStatements.install(client, new PreparedStatements.Registry({ threshold: 1 }))
  yield* Effect.promise(() => client.query("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL CHECK (n > 0))"))
  return client
})

interface Answer {
  readonly error: (Error & { code?: string }) | undefined
  readonly rows: ReadonlyArray<ReadonlyArray<unknown>>
  readonly completed: number
}

const send = (client: pg.Client, steps: ReadonlyArray<StatementBatch.Step>) =>
  Effect.async<Answer>((resume) =>
    StatementBatch.send(client, steps, (error, results, completed) =>
      resume(Effect.succeed({ error, rows: results.map((r) => r.rows), completed })))
  )

const query = <A = Record<string, unknown>>(client: pg.Client, text: string, values: Array<unknown> = []) =>
  Effect.map(Effect.promise(() => client.query(text, values)), (result) => result.rows as Array<A>)

const prepared = (client: pg.Client) =>
  Effect.map(query<{ statement: string }>(client, "SELECT statement FROM pg_prepared_statements ORDER BY statement"), (rows) =>
    rows.map((row) => row.statement))

const insert = (id: number, n: number): StatementBatch.Step => ({
  text: "INSERT INTO items (id, n) VALUES ($1, $2) RETURNING id, n",
  values: [id, n]
})
const bump = (id: number): StatementBatch.Step => ({ text: "UPDATE items SET n = n + 1 WHERE id = $1", values: [id] })

const ids = (client: pg.Client) =>
  Effect.map(query<{ id: number; n: number }>(client, "SELECT id, n FROM items ORDER BY id"), (rows) => rows)

describe("StatementBatch", () => {
  it.scoped("its statements answer in order, one result each; named ones are parsed once per session", () =>
    Effect.gen(function*() {
      const client = yield* session
      const first = yield* send(client, [insert(1, 1), bump(1), StatementBatch.bare("SELECT 42 AS answer")])
      expect(first.error).toBeUndefined()
      expect(first.rows).toEqual([[{ id: 1, n: 1 }], [], [{ answer: 42 }]])
      expect(first.completed).toBe(3)
      // the two parameterized texts are the session's named statements now; sent again, they
      // are not parsed again (a second Parse of a name would fail: "already exists")
      expect(yield* prepared(client)).toHaveLength(2)
      const second = yield* send(client, [insert(2, 1), bump(2), bump(2)])
      expect(second.error).toBeUndefined()
      expect(yield* ids(client)).toEqual([{ id: 1, n: 2 }, { id: 2, n: 3 }])
      // the same text sent alone, as @effect/sql-pg sends it, goes by the same name: parsed already
      const alone = yield* Effect.async<pg.QueryResult>((resume) =>
        client.query(bump(1).text, [1], (error: Error | undefined, result: pg.QueryResult) =>
          resume(error ? Effect.die(error) : Effect.succeed(result)))
      )
      expect(alone.rowCount).toBe(1)
      expect(yield* prepared(client)).toHaveLength(2)
      expect(yield* ids(client)).toEqual([{ id: 1, n: 3 }, { id: 2, n: 3 }])
    }), 60_000)

  it.scoped("one implicit transaction: a failing statement undoes the ones before it; `completed` says which failed", () =>
    Effect.gen(function*() {
      const client = yield* session
      // the third breaks the CHECK: the first two are rolled back with it
      const failed = yield* send(client, [insert(1, 1), bump(1), insert(2, -1), bump(1)])
      expect(failed.error?.code).toBe("23514")
      expect(failed.completed).toBe(2)
      expect(yield* ids(client)).toEqual([])
      // the session answers as before, and what it parsed before the error is known: sent again,
      // nothing fails for a name parsed twice or not at all
      const again = yield* send(client, [insert(1, 1), bump(1), insert(2, 1), bump(2)])
      expect(again.error).toBeUndefined()
      expect(yield* ids(client)).toEqual([{ id: 1, n: 2 }, { id: 2, n: 2 }])
      // its own BEGIN and COMMIT: the first transaction commits, the second fails alone
      const two = yield* send(client, [
        StatementBatch.bare("BEGIN"),
        bump(1),
        StatementBatch.bare("COMMIT"),
        StatementBatch.bare("BEGIN"),
        insert(3, -1)
      ])
      expect(two.error?.code).toBe("23514")
      expect(two.completed).toBe(4)
      // the second transaction is open and aborted: the session refuses statements until ROLLBACK
      // (asked by a statement: pg's transaction status is updated only at the next ReadyForQuery)
      const refused = yield* Effect.flip(Effect.tryPromise(() => client.query("SELECT 1")))
      expect((refused.error as { code?: string }).code).toBe("25P02")
      yield* query(client, "ROLLBACK")
      expect(yield* ids(client)).toEqual([{ id: 1, n: 3 }, { id: 2, n: 2 }])
    }), 60_000)

  it.scoped("BEGIN and COMMIT are named once per session and not described; a step whose rows are not read answers none", () =>
    Effect.gen(function*() {
      const client = yield* session
      const quiet = (step: StatementBatch.Step): StatementBatch.Step => ({ ...step, rows: false })
      const first = yield* send(client, [StatementBatch.begin, insert(1, 1), quiet(bump(1)), StatementBatch.commit])
      expect(first.error).toBeUndefined()
      expect(first.rows).toEqual([[], [{ id: 1, n: 1 }], [], []])
      // named by their own names, parsed once: sent again (twice in one batch), nothing is parsed twice
      expect(yield* prepared(client)).toEqual(["BEGIN", "COMMIT", bump(1).text, insert(1, 1).text].sort())
      const again = yield* send(client, [
        StatementBatch.begin,
        quiet(bump(1)),
        StatementBatch.commit,
        StatementBatch.begin,
        quiet(insert(2, 1)),
        StatementBatch.commit
      ])
      expect(again.error).toBeUndefined()
      // an INSERT ... RETURNING not described answers no rows, though it wrote its row
      expect(again.rows).toEqual([[], [], [], [], [], []])
      expect(yield* ids(client)).toEqual([{ id: 1, n: 3 }, { id: 2, n: 1 }])
      expect(yield* prepared(client)).toHaveLength(4)
      // a session that lost them fails once, then sends them unnamed
      yield* query(client, "DISCARD ALL")
      const lost = yield* send(client, [StatementBatch.begin, quiet(bump(2)), StatementBatch.commit])
      expect(lost.error?.code).toBe("26000")
      const unnamed = yield* send(client, [StatementBatch.begin, quiet(bump(2)), StatementBatch.commit])
      expect(unnamed.error).toBeUndefined()
      expect(yield* ids(client)).toEqual([{ id: 1, n: 3 }, { id: 2, n: 2 }])
      expect(yield* prepared(client)).toEqual([])
    }), 60_000)

  it.scoped("a statement that does not parse fails its batch at once; the names after it are parsed when next sent", () =>
    Effect.gen(function*() {
      const client = yield* session
      const broken = yield* send(client, [insert(1, 1), { text: "UPDATE items SET n = WHERE id = $1", values: [1] }, bump(1)])
      expect(broken.error?.code).toBe("42601")
      expect(broken.completed).toBe(1)
      // the INSERT was parsed (and rolled back); the UPDATE after the error never was
      expect(yield* prepared(client)).toHaveLength(1)
      const after = yield* send(client, [insert(1, 1), bump(1)])
      expect(after.error).toBeUndefined()
      expect(yield* ids(client)).toEqual([{ id: 1, n: 2 }])
      expect(yield* prepared(client)).toHaveLength(2)
    }), 60_000)

  it.scoped("a session that lost its statements (DISCARD ALL): the batch fails once, then its statements go unnamed", () =>
    Effect.gen(function*() {
      const client = yield* session
      expect((yield* send(client, [insert(1, 1), bump(1)])).error).toBeUndefined()
      yield* query(client, "DISCARD ALL")
      const lost = yield* send(client, [insert(2, 1), bump(2)])
      expect(lost.error?.code).toBe("26000")
      expect(yield* ids(client)).toEqual([{ id: 1, n: 2 }])
      const unnamed = yield* send(client, [insert(2, 1), bump(2)])
      expect(unnamed.error).toBeUndefined()
      expect(yield* ids(client)).toEqual([{ id: 1, n: 2 }, { id: 2, n: 2 }])
      expect(yield* prepared(client)).toEqual([])
    }), 60_000)

  it.scoped("a value that cannot be sent fails the batch before anything is sent; the session answers as before", () =>
    Effect.gen(function*() {
      const client = yield* session
      const unsendable = { toPostgres: () => { throw new Error("no text for this value") } }
      const failed = yield* send(client, [insert(1, 1), { text: "UPDATE items SET n = $2 WHERE id = $1", values: [1, unsendable] }])
      expect(failed.error?.message).toBe("no text for this value")
      expect(failed.completed).toBe(0)
      expect(yield* ids(client)).toEqual([])
      expect((yield* send(client, [insert(1, 1)])).rows).toEqual([[{ id: 1, n: 1 }]])
    }), 60_000)
})
