/**
 * Parameters written into a statement as literals: what Postgres returns for
 * the inlined text is what it returns for the statement with bound parameters,
 * a `$1` inside a string, an identifier, a dollar quote or a comment is left
 * alone, and whatever cannot be inlined exactly is refused (the caller then
 * binds the parameters as usual).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import Pg from "pg"
import * as PgLiterals from "../src/internal/PgLiterals.js"
import { TestDatabase } from "../src/testing/index.js"

describe("PgLiterals.quote", () => {
  it("quotes as pg.escapeLiteral does", () => {
    for (
      const text of ["", "plain", "it's", "''", "back\\slash", "\\", "both ' and \\", "E'x'", "ünïcödé 漢字 🎉", "a\nb\tc", "$1 -- /* */"]
    ) {
      expect(PgLiterals.quote(text)).toBe(Pg.escapeLiteral(text))
    }
  })
})

describe("PgLiterals.inline", () => {
  it("replaces each $n by its value's literal, $10 as the tenth", () => {
    const params = Array.from({ length: 10 }, (_, i) => `v${i + 1}`)
    expect(PgLiterals.inline("SELECT $1, $10, $2::int, $3, $4, $5, $6, $7, $8, $9", params)).toBe(
      "SELECT 'v1', 'v10', 'v2'::int, 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9'"
    )
    expect(PgLiterals.inline("INSERT INTO t VALUES ($1, $2, $3)", [null, undefined, 42])).toBe(
      "INSERT INTO t VALUES (NULL, NULL, '42')"
    )
  })

  it("leaves $n alone inside strings, identifiers, dollar quotes and comments", () => {
    expect(PgLiterals.inline(`SELECT '$1', "$1", $$ $1 $$, $q$ '$1' $q$, $1 -- $1\n`, ["x"])).toBe(
      `SELECT '$1', "$1", $$ $1 $$, $q$ '$1' $q$, 'x' \n`
    )
    expect(PgLiterals.inline("SELECT /* $1 /* nested $1 */ $1 */ $1", ["x"])).toBe("SELECT   'x'")
    expect(PgLiterals.inline("SELECT E'it\\'s $1', $1", ["x"])).toBe("SELECT E'it\\'s $1', 'x'")
    expect(PgLiterals.inline("SELECT 'it''s $1', \"a\"\"$1\", $1", ["x"])).toBe("SELECT 'it''s $1', \"a\"\"$1\", 'x'")
    // an identifier may contain $: not a parameter
    expect(PgLiterals.inline("SELECT a$1 FROM t WHERE b = $1", ["x"])).toBe("SELECT a$1 FROM t WHERE b = 'x'")
  })

  it("refuses what it cannot write exactly", () => {
    expect(PgLiterals.inline("SELECT $1", [Buffer.from("ab")])).toBeUndefined()
    expect(PgLiterals.inline("SELECT $1", ["a\0b"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT $2", ["x"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT $0", ["x"])).toBeUndefined()
    // a value no $n takes: bound, Postgres refuses it (more values than parameters; an
    // untyped $2 between $1 and $3)
    expect(PgLiterals.inline("SELECT $1", ["x", "y"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT $1, $3", ["x", "y", "z"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT 1", ["x"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT 1; SELECT $1", ["x"])).toBeUndefined()
    expect(PgLiterals.inline("SELECT 'open", [])).toBeUndefined()
    expect(PgLiterals.inline("SELECT $$ open", [])).toBeUndefined()
    expect(PgLiterals.inline("SELECT 1 /* open", [])).toBeUndefined()
    expect(PgLiterals.inline("SELECT 'a\\'", [])).toBeUndefined()
    expect(PgLiterals.inline("-- only a comment", [])).toBeUndefined()
  })
})

/** Values whose literal must mean exactly what the bound parameter means. */
const cases: ReadonlyArray<{ readonly sql: string; readonly params: ReadonlyArray<unknown> }> = [
  {
    sql: "SELECT $1::text AS a, $1 || '!' AS b, length($1) AS c",
    params: [`it's "quoted" \\ back\\slash, E'' ünïcödé 漢字 🎉\nnewline\ttab $1 -- /* */`]
  },
  { sql: "SELECT $1::int + 1 AS n, $2::numeric AS x, $3::bigint AS big", params: [41, 0.1 + 0.2, 9007199254740993n] },
  { sql: "SELECT $1::boolean AS t, $2::boolean AS f, $3::text IS NULL AS n", params: [true, false, null] },
  { sql: "SELECT $1::timestamptz AS at, $2::date AS d", params: [new Date("2026-11-29T10:11:12.345Z"), new Date(Date.UTC(1999, 0, 2))] },
  { sql: "SELECT $1::jsonb AS j, $1::jsonb ->> 'k' AS k", params: [{ k: "v'\\\"", n: [1, 2, { deep: null }] }] },
  { sql: "SELECT $1::text[] AS xs, $2::int[] AS ns", params: [["a", "b,c", "d\"e", null, "f\\g"], [1, 2, 3]] },
  { sql: "SELECT x FROM (VALUES ($1), ($2)) AS v(x) WHERE x <> $3 ORDER BY x", params: ["b", "a", "c"] }
]

describe("PgLiterals on Postgres", () => {
  layer(TestDatabase.layer("pg_literals"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("an inlined statement returns what the statement with bound parameters returns", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.scoped(Effect.gen(function*() {
          const conn = yield* sql.reserve
          for (const { params, sql: text } of cases) {
            const inlined = PgLiterals.inline(text, params)
            expect(inlined, text).toBeDefined()
            const bound = yield* conn.execute(text, params, undefined)
            const literal = yield* conn.executeUnprepared(inlined!, [], undefined)
            expect(literal, inlined).toEqual(bound)
          }
        }))
      }))
  })
})
