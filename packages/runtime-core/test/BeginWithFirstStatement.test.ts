/**
 * A transaction whose BEGIN travels with its first statement: every statement
 * of the body is inside the transaction (concurrent ones too), a first
 * statement that cannot be inlined gets BEGIN on its own, and a body that sends
 * nothing begins nothing.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as BeginWithFirstStatement from "../src/internal/BeginWithFirstStatement.js"
import { TestDatabase } from "../src/testing/index.js"
import { recordingClient } from "./fixtures/recording-client.js"

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
