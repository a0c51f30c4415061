import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Migrations, TablePrefix } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("shop")
const v1: ReadonlyArray<Migrations.Migration> = [
  {
    id: 1,
    name: "create orders",
    sql: (t) => `CREATE TABLE ${t("orders")} (id serial PRIMARY KEY, total integer NOT NULL);
      CREATE INDEX ${t("orders_total_idx")} ON ${t("orders")} (total);`
  },
  { id: 2, name: "add note", sql: (t) => `ALTER TABLE ${t("orders")} ADD COLUMN note text` }
]

const tables = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ relname: string }>`SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND relkind = 'r' ORDER BY relname`).pipe(Effect.map((rows) => rows.map((r) => r.relname)))

describe("Migrations", () => {
  layer(TestDatabase.layer("migrations"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("applies pending migrations once and records checksums", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ms = yield* Migrations.make(prefix, v1)
        const first = yield* Migrations.run(ms)
        expect(first.map((m) => m.id)).toEqual([1, 2])
        const second = yield* Migrations.run(ms)
        expect(second).toEqual([])
        const ledger = yield* sql<{ id: number; checksum: string }>`SELECT id, checksum FROM shop_migrations ORDER BY id`
        expect(ledger).toEqual(ms.migrations.map((m) => ({ id: m.id, checksum: m.checksum })))
        expect(yield* tables).toEqual(["shop_migrations", "shop_orders"])
        yield* sql`INSERT INTO shop_orders (total, note) VALUES (3, 'x')`

        // a later build adds migration 3: only it runs
        const v2 = yield* Migrations.make(prefix, [...v1, {
          id: 3,
          name: "create customers",
          sql: (t) => `CREATE TABLE ${t("customers")} (id text PRIMARY KEY)`
        }])
        expect((yield* Migrations.run(v2)).map((m) => m.name)).toEqual(["create customers"])
        expect((yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM shop_orders`)[0].n).toBe(1)
      }))

    it.effect("refuses to start when an applied migration's text changed", () =>
      Effect.gen(function*() {
        const edited = yield* Migrations.make(prefix, [
          v1[0],
          { id: 2, name: "add note", sql: (t) => `ALTER TABLE ${t("orders")} ADD COLUMN note varchar(10)` }
        ])
        const error = yield* Effect.flip(Migrations.run(edited))
        expect(error._tag).toBe("MigrationChecksumMismatch")
        expect(error.message).toMatch(/Migration 2 "add note" of prefix "shop" was changed after it was applied/)
      }))

    it.effect("refuses a database that has migrations this build does not know", () =>
      Effect.gen(function*() {
        const older = yield* Migrations.make(prefix, v1)
        const error = yield* Effect.flip(Migrations.run(older))
        expect(error._tag).toBe("MigrationUnknown")
        expect(error.message).toMatch(/Migration 3 "create customers" is applied/)
      }))

    it.effect("a failing migration rolls back and records nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const other = TablePrefix.unsafeMake("broken")
        const ms = yield* Migrations.make(other, [
          { id: 1, name: "ok", sql: (t) => `CREATE TABLE ${t("a")} (id int)` },
          { id: 2, name: "bad", sql: (t) => `CREATE TABLE ${t("b")} (id nosuchtype)` }
        ])
        const error = yield* Effect.flip(Migrations.run(ms))
        expect(error._tag).toBe("MigrationFailed")
        expect(error.message).toMatch(/Migration 2 "bad" of prefix "broken" failed: type "nosuchtype" does not exist/)
        expect((yield* tables).filter((t) => t.startsWith("broken_"))).toEqual([])
        const ledger = yield* sql`SELECT to_regclass('broken_migrations') AS r`
        expect(ledger[0].r).toBeNull()
      }))

    it.effect("a migration cannot touch another prefix's tables", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Migrations.make(TablePrefix.unsafeMake("intruder"), [
          { id: 1, name: "sneaky", sql: () => `ALTER TABLE shop_orders ADD COLUMN hacked int` }
        ]))
        expect(error._tag).toBe("InvalidMigrations")
        expect(error.message).toMatch(/touches relations outside "intruder_\*": shop_orders/)
        for (
          const sql of [
            `INSERT INTO shop_orders (total) VALUES (1)`,
            `DROP TABLE IF EXISTS shop_orders`,
            `CREATE TABLE intruder_x (id int REFERENCES shop_orders (id))`,
            `CREATE INDEX intruder_idx ON shop_orders (total)`,
            `UPDATE "shop_orders" SET total = 0`
          ]
        ) {
          expect(Migrations.foreignTargets(TablePrefix.unsafeMake("intruder"), sql)).toEqual(["shop_orders"])
        }
        // anything it creates outside its prefix is caught after it ran, and rolled back
        const dynamic = yield* Migrations.make(TablePrefix.unsafeMake("intruder"), [
          { id: 1, name: "dynamic", sql: () => `DO $$ BEGIN EXECUTE 'CREATE TABLE ' || 'stray' || ' (id int)'; END $$` }
        ])
        const after = yield* Effect.flip(Migrations.run(dynamic))
        expect(after._tag).toBe("MigrationOutsidePrefix")
        expect(after.message).toMatch(/stray/)
        expect(yield* tables).not.toContain("stray")
      }))

    it.effect("rejects malformed migration lists", () =>
      Effect.gen(function*() {
        const dup = yield* Effect.flip(Migrations.make(prefix, [v1[0], { ...v1[1], id: 1 }]))
        expect(dup.message).toMatch(/strictly ascending: 1 "add note" follows 1/)
        const zero = yield* Effect.flip(Migrations.make(prefix, [{ ...v1[0], id: 0 }]))
        expect(zero.message).toMatch(/positive integer/)
        const empty = yield* Effect.flip(Migrations.make(prefix, [{ id: 1, name: "x", sql: () => "  " }]))
        expect(empty.message).toMatch(/has no SQL/)
      }))
  })
})
