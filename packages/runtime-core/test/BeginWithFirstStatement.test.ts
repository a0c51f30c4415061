/**
 * A transaction whose BEGIN travels with its first statement: every statement
 * of the body is inside the transaction (concurrent ones too), a first
 * statement that cannot be inlined gets BEGIN on its own, and a body that sends
 * nothing begins nothing. On a pool's connection, writes are held back
 * (`WriteBehind`) until a statement the body reads, or the caller, takes them.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as BeginWithFirstStatement from "../src/internal/BeginWithFirstStatement.js"
import * as PoolConnection from "../src/internal/PoolConnection.js"
import { TestDatabase } from "../src/testing/index.js"
import { recordingClient, recordingPool } from "./fixtures/recording-client.js"

const statements: Array<string> = []

const Env = Layer.unwrapScoped(Effect.map(TestDatabase.make("begin_first"), (db) => recordingClient(db.url, statements)))

/** `body` on a reserved connection opened with BeginWithFirstStatement, then ROLLBACK if begun. */
const rolledBack = <A, E>(body: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* Effect.scoped(Effect.gen(function*() {
      const conn = yield* sql.reserve
      const transaction = BeginWithFirstStatement.make(conn)
      const result = yield* Effect.provideService(body, SqlClient.TransactionConnection, [transaction.connection, 0] as const)
      if (transaction.begun()) yield* conn.executeUnprepared("ROLLBACK", [], undefined)
      return { result, begun: transaction.begun() }
    }))
  })

describe("BeginWithFirstStatement", () => {
  it.layer(Env, { timeout: 60_000 })((it) => {
    it.effect("BEGIN goes with the first statement; concurrent statements all land inside the transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)`
        statements.length = 0
        const { begun, result } = yield* rolledBack(Effect.gen(function*() {
          yield* Effect.all(
            Array.from({ length: 8 }, (_, i) => sql`INSERT INTO items (id, label) VALUES (${i}, ${`item ${i}`})`),
            { concurrency: "unbounded" }
          )
          return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM items`
        }))
        expect(begun).toBe(true)
        // inside the transaction all eight were there; rolled back, none is
        expect(result).toEqual([{ n: 8 }])
        expect(yield* sql`SELECT id FROM items`).toEqual([])
        expect(statements.filter((s) => s === "BEGIN")).toEqual([])
        expect(statements.filter((s) => s.startsWith("BEGIN;\n"))).toHaveLength(1)
        expect(statements.filter((s) => s.startsWith("INSERT INTO items"))).toHaveLength(7)
      }))

    it.effect("a first statement that cannot be inlined is preceded by BEGIN alone", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL)`
        statements.length = 0
        const { begun } = yield* rolledBack(sql`INSERT INTO blobs (id, data) VALUES (${1}, ${Buffer.from("x")})`)
        expect(begun).toBe(true)
        expect(statements.slice(0, 2)).toEqual(["BEGIN", "INSERT INTO blobs (id, data) VALUES ($1, $2)"])
        expect(yield* sql`SELECT id FROM blobs`).toEqual([])
      }))

    it.effect("a body that sends nothing begins nothing", () =>
      Effect.gen(function*() {
        statements.length = 0
        const { begun, result } = yield* rolledBack(Effect.succeed("done"))
        expect({ begun, result }).toEqual({ begun: false, result: "done" })
        expect(statements).toEqual([])
      }))
  })
})

describe("BeginWithFirstStatement on a pool's connection (write-behind)", () => {
  it.scoped("writes answer at once and go, in order, with the next statement the body reads, BEGIN first; a statement that returns rows is not held; a failed batch carrying held writes dooms the attempt", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("begin_behind")
      const sent: Array<string> = []
      const pool = yield* recordingPool(db.url, sent)
      yield* Effect.promise(() => pool.query("CREATE TABLE t (id int PRIMARY KEY)"))
      sent.length = 0
      const held = PoolConnection.make(pool)
      const transaction = BeginWithFirstStatement.make(held.connection, BeginWithFirstStatement.batched(held), held)
      const conn = transaction.connection

      // held: answered with no rows, nothing sent, nothing begun
      expect(yield* conn.execute("INSERT INTO t (id) VALUES ($1)", [1], undefined)).toEqual([])
      expect(yield* conn.execute("UPDATE t SET id = id + 10 WHERE id = $1", [1], undefined)).toEqual([])
      expect(sent).toEqual([])
      expect(transaction.begun()).toBe(false)

      // a statement read through another method (values, raw, a stream, unprepared) goes after
      // the held writes, which go first with BEGIN, in the order sent
      expect(yield* conn.executeValues("SELECT id FROM t", [])).toEqual([[11]])
      expect(sent).toEqual(["BEGIN;\nINSERT INTO t (id) VALUES ($1);\nUPDATE t SET id = id + 10 WHERE id = $1", "SELECT id FROM t"])
      expect(transaction.begun()).toBe(true)

      // what is still held when the body is done is the caller's (`takePending`: with the exit row)
      expect(yield* conn.execute("DELETE FROM t WHERE id = $1", [11], undefined)).toEqual([])
      expect(transaction.takePending()).toEqual([{ text: "DELETE FROM t WHERE id = $1", values: [11], rows: false }])
      expect(transaction.takePending()).toBeUndefined()

      // a write whose rows the body reads (RETURNING) is not held
      expect(yield* conn.execute("INSERT INTO t (id) VALUES ($1) RETURNING id", [2], undefined)).toEqual([{ id: 2 }])
      expect(sent.at(-1)).toBe("INSERT INTO t (id) VALUES ($1) RETURNING id")

      // a held write that fails (a duplicate key) fails the statement it went with, and dooms the attempt
      yield* conn.execute("INSERT INTO t (id) VALUES ($1)", [2], undefined)
      expect(transaction.doomed()).toBe(false)
      const error = yield* Effect.flip(conn.executeRaw("SELECT 1", []))
      expect(error._tag).toBe("SqlError")
      expect(transaction.doomed()).toBe(true)
      yield* held.connection.executeUnprepared("ROLLBACK", [], undefined)
      held.release()
      expect(yield* Effect.promise(() => pool.query("SELECT id FROM t"))).toMatchObject({ rows: [] })
    }), 60_000)
})
