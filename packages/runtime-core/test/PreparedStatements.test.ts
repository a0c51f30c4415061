/**
 * Statements sent again and again go by name, parsed once per connection
 * (`PreparedStatements`, on by default in `Database`): what is named, what is
 * not, the switch that turns it off, and a session that lost its prepared
 * statements (a `DISCARD ALL`) answering as before.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import { Database } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

/** A `SqlClient` of one connection (one session: its prepared statements are what it shows) on a fresh database. */
const oneSession = (preparedStatements?: boolean) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make("prepared_statements")
    const context = yield* Layer.build(Database.layer({ url: Redacted.make(db.url), maxConnections: 1, preparedStatements }))
    const sql = Context.get(context, SqlClient.SqlClient)
    yield* sql`CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL)`
    return sql
  })

const prepared = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements ORDER BY statement`,
    (rows) => rows.map((row) => row.statement)
  )

const upsert = (sql: SqlClient.SqlClient, id: number) =>
  sql`INSERT INTO items (id, n) VALUES (${id}, 1) ON CONFLICT (id) DO UPDATE SET n = items.n + 1 RETURNING n`

describe("PreparedStatements", () => {
  it.scoped("a parameterized statement sent again goes by name: the session has it prepared, and answers as before", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession()
      expect(yield* prepared(sql)).toEqual([])
      const answers = yield* Effect.forEach([1, 1, 1, 2], (id) => upsert(sql, id))
      expect(answers).toEqual([[{ n: 1 }], [{ n: 2 }], [{ n: 3 }], [{ n: 1 }]])
      const statements = yield* prepared(sql)
      expect(statements).toHaveLength(1)
      expect(statements[0]).toContain("INSERT INTO items")
      // a failure of a named statement is the statement's own (a constraint here)
      const failed = yield* Effect.flip(Effect.forEach([1, 2], () => sql`INSERT INTO items (id, n) VALUES (${1}, ${null})`))
      expect(failed._tag).toBe("SqlError")
      expect(yield* upsert(sql, 2)).toEqual([{ n: 2 }])
    }), 60_000)

  it.scoped("not named: a statement sent once, one without parameters, and one with a `*` (its result type changes with the table)", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession()
      yield* upsert(sql, 1)
      yield* Effect.forEach([1, 2, 3], () => sql.unsafe("SELECT count(id) FROM items"))
      yield* Effect.forEach([1, 2, 3], (id) => sql`SELECT * FROM items WHERE id = ${id}`)
      expect(yield* prepared(sql)).toEqual([])
      // the `*` is why: a column added later changes what `SELECT *` returns, and it still answers
      yield* sql`ALTER TABLE items ADD COLUMN note text`
      expect(yield* sql`SELECT * FROM items WHERE id = ${1}`).toEqual([{ id: 1, n: 1, note: null }])
    }), 60_000)

  it.scoped("DATABASE_PREPARED_STATEMENTS=false (behind PgBouncer in transaction mode): nothing is named", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession(false)
      yield* Effect.forEach([1, 1, 1], (id) => upsert(sql, id))
      expect(yield* prepared(sql)).toEqual([])
      const fromEnv = (env: Record<string, string>) =>
        Effect.withConfigProvider(Database.config, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect((yield* fromEnv({})).preparedStatements).toBe(true)
      const config = yield* fromEnv({ DATABASE_PREPARED_STATEMENTS: "false" })
      expect(config.preparedStatements).toBe(false)
    }), 60_000)

  it.scoped("a session that lost its prepared statements (DISCARD ALL) answers as before: the statement is sent again unnamed", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession()
      yield* Effect.forEach([1, 1], (id) => upsert(sql, id))
      expect(yield* prepared(sql)).toHaveLength(1)
      yield* sql.unsafe("DISCARD ALL")
      expect(yield* prepared(sql)).toEqual([])
      // pg still thinks the name is parsed: the server answers 26000, and the statement goes again unnamed
      expect(yield* upsert(sql, 1)).toEqual([{ n: 3 }])
      expect(yield* upsert(sql, 1)).toEqual([{ n: 4 }])
      // and that name is not used again on this session
      expect(yield* prepared(sql)).toEqual([])
    }), 60_000)

  it.scoped("a statement whose text grows with its rows takes at most 8 names between its sizes: a statement seen after it is still named", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession()
      // as the runtime's grouped writes: one text per number of rows, all beginning alike (> 256 characters)
      // (no `*`, which is never named: a line comment)
      const columns = `(id, n) -- ${"a grouped write, its text as long as a real one's ".repeat(6)}\n`
      const insertRows = (from: number, rows: number) =>
        sql.unsafe(
          `INSERT INTO items ${columns} VALUES ${
            Array.from({ length: rows }, (_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(", ")
          } ON CONFLICT (id) DO UPDATE SET n = items.n + 1`,
          Array.from({ length: rows }, (_, i) => [from + i, 1]).flat()
        )
      // each size sent twice: named at its second send while the family has names left
      for (let rows = 1; rows <= 12; rows++) {
        yield* insertRows(100 * rows, rows)
        yield* insertRows(100 * rows, rows)
      }
      const grouped = (yield* prepared(sql)).filter((statement) => statement.includes("a grouped write"))
      expect(grouped).toHaveLength(8)
      // every size answered, named or not: each row written twice
      expect(yield* sql<{ rows: number; twice: number }>`SELECT count(*)::int AS rows,
        count(*) FILTER (WHERE n = 2)::int AS twice FROM items`).toEqual([{ rows: 78, twice: 78 }])
      // the names left are for the statements that come after
      yield* Effect.forEach([1, 1], (id) => upsert(sql, id))
      expect((yield* prepared(sql)).filter((statement) => statement.includes("RETURNING n"))).toHaveLength(1)
    }), 60_000)

  it.scoped("in a transaction, a lost prepared statement fails the statement (the transaction is aborted), and the retry answers", () =>
    Effect.gen(function*() {
      const sql = yield* oneSession()
      yield* Effect.forEach([1, 1], (id) => upsert(sql, id))
      yield* sql.unsafe("DISCARD ALL")
      const failed = yield* Effect.flip(sql.withTransaction(upsert(sql, 1)))
      expect(failed._tag).toBe("SqlError")
      expect(yield* sql.withTransaction(upsert(sql, 1))).toEqual([{ n: 3 }])
    }), 60_000)
})
