/**
 * Domain migrations. Each domain declares an ordered list; at startup the
 * runner applies the pending ones in ONE transaction under the prefix's schema
 * lock (so concurrent starts apply each exactly once), records each in
 * `<prefix>_migrations` with a sha256 of its SQL, and refuses to start when an
 * applied migration's text has changed or when the database holds migrations
 * this build does not know. A migration may only create or touch relations
 * named `<prefix>_*`: statement targets are checked before running, and every
 * relation it creates is checked after, inside the transaction.
 */
import { SqlClient } from "@effect/sql"
import { createHash } from "node:crypto"
import { Effect, Layer } from "effect"
import {
  InvalidMigrations,
  MigrationChecksumMismatch,
  MigrationFailed,
  type MigrationError,
  MigrationOutsidePrefix,
  MigrationUnknown
} from "./RuntimeError.js"
import * as SchemaLock from "./internal/SchemaLock.js"
import * as TablePrefix from "./TablePrefix.js"

/** One migration: `sql` receives a namer so table names always carry the prefix. */
export interface Migration {
  readonly id: number
  readonly name: string
  readonly sql: (table: (name: string) => string) => string
}

/** A domain's migrations, bound to its prefix and rendered once. */
export interface Migrations {
  readonly prefix: TablePrefix.TablePrefix
  /** The ledger table's name without the prefix (default `migrations`). */
  readonly ledger: string
  readonly migrations: ReadonlyArray<Rendered>
}

export interface Rendered {
  readonly id: number
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

export interface Applied {
  readonly id: number
  readonly name: string
  readonly checksum: string
}

export const checksum = (sql: string): string => createHash("sha256").update(sql).digest("hex")

/** Validates and renders a migration list for a prefix. */
export const make = (
  prefix: TablePrefix.TablePrefix,
  migrations: ReadonlyArray<Migration>,
  options?: { readonly ledger?: string | undefined }
): Effect.Effect<Migrations, InvalidMigrations> =>
  Effect.gen(function*() {
    const fail = (reason: string) => Effect.fail(new InvalidMigrations({ prefix, reason }))
    const rendered: Array<Rendered> = []
    for (const m of migrations) {
      if (!Number.isSafeInteger(m.id) || m.id < 1) return yield* fail(`migration id ${m.id} must be a positive integer`)
      const previous = rendered.at(-1)
      if (previous && m.id <= previous.id) {
        return yield* fail(`ids must be strictly ascending: ${m.id} "${m.name}" follows ${previous.id}`)
      }
      if (m.name.trim() === "") return yield* fail(`migration ${m.id} has no name`)
      const text = yield* Effect.try({
        try: () => m.sql((name) => TablePrefix.table(prefix, name)).trim(),
        catch: (e) => new InvalidMigrations({ prefix, reason: `migration ${m.id}: ${(e as Error).message}` })
      })
      if (text === "") return yield* fail(`migration ${m.id} "${m.name}" has no SQL`)
      const foreign = foreignTargets(prefix, text)
      if (foreign.length > 0) {
        return yield* new MigrationOutsidePrefix({ prefix, id: m.id, name: m.name, relations: foreign }).pipe(
          Effect.mapError((e) => new InvalidMigrations({ prefix, reason: e.message }))
        )
      }
      rendered.push({ id: m.id, name: m.name, sql: text, checksum: checksum(text) })
    }
    return { prefix, ledger: options?.ledger ?? "migrations", migrations: rendered }
  })

// Statement targets a migration could modify: CREATE/ALTER/DROP/TRUNCATE of
// tables, indexes, views, sequences, types, functions; DML; and foreign keys.
const TARGET = new RegExp(
  String.raw`\b(?:(?:create|alter|drop)\s+(?:(?:unique|or\s+replace|temp|temporary|unlogged|materialized)\s+)*` +
    String.raw`(?:table|index(?:\s+concurrently)?|view|sequence|type|function|trigger|schema)` +
    String.raw`(?:\s+if\s+(?:not\s+)?exists)?|truncate(?:\s+table)?|insert\s+into|update|delete\s+from|references|` +
    String.raw`\bon(?=\s+(?:only\s+)?"?[a-z_][a-z0-9_]*"?\s*(?:using\b|\())|lock\s+table)\s+(?:only\s+)?` +
    String.raw`("?)([a-z_][a-z0-9_.]*)\1`,
  "gi"
)

/** Relations a migration's statements target that are not `<prefix>_*`. */
export const foreignTargets = (prefix: TablePrefix.TablePrefix, sql: string): ReadonlyArray<string> => {
  const withoutComments = sql.replace(/--[^\n]*/g, "").replace(/\/\*[\s\S]*?\*\//g, "")
  const out = new Set<string>()
  for (const match of withoutComments.matchAll(TARGET)) {
    const name = match[2].toLowerCase()
    const relation = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : name
    if (!TablePrefix.owns(prefix, relation)) out.add(name)
  }
  return Array.from(out)
}

// Relations created by THIS transaction (their catalog row carries our xid):
// other apps migrating at the same moment commit relations of their own, which
// a plain before/after diff of pg_class would wrongly attribute to us.
const createdHereSql = `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.xmin::text = (txid_current() % 4294967296)::text
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`

/** Applies pending migrations; returns the ones applied by this call. */
export const run = (
  migrations: Migrations
): Effect.Effect<ReadonlyArray<Applied>, MigrationError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const { prefix } = migrations
    const ledger = sql(TablePrefix.table(prefix, migrations.ledger))
    const failed = (m: { id: number; name: string }) => (e: unknown) =>
      new MigrationFailed({ prefix, id: m.id, name: m.name, reason: describe(e) })

    const program = Effect.gen(function*() {
      yield* SchemaLock.lockInTransaction(prefix)
      yield* sql`CREATE TABLE IF NOT EXISTS ${ledger} (
        id integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
      const applied = yield* sql<Applied>`SELECT id, name, checksum FROM ${ledger} ORDER BY id`
      const declared = new Map(migrations.migrations.map((m) => [m.id, m]))
      for (const a of applied) {
        const d = declared.get(a.id)
        if (!d) return yield* new MigrationUnknown({ prefix, id: a.id, name: a.name })
        if (d.checksum !== a.checksum) {
          return yield* new MigrationChecksumMismatch({
            prefix,
            id: a.id,
            name: a.name,
            applied: a.checksum,
            declared: d.checksum
          })
        }
      }
      const done = new Set(applied.map((a) => a.id))
      const pending = migrations.migrations.filter((m) => !done.has(m.id))
      const newest = applied.at(-1)?.id ?? 0
      const out: Array<Applied> = []
      for (const m of pending) {
        if (m.id < newest) {
          return yield* new MigrationFailed({
            prefix,
            id: m.id,
            name: m.name,
            reason: `it is older than migration ${newest}, which is already applied; give it a higher id`
          })
        }
        yield* sql.unsafe(m.sql).raw.pipe(Effect.mapError(failed(m)))
        const created = (yield* sql.unsafe<{ relname: string }>(createdHereSql))
          .map((r) => r.relname)
          .filter((r) => !TablePrefix.owns(prefix, r))
        if (created.length > 0) {
          return yield* new MigrationOutsidePrefix({ prefix, id: m.id, name: m.name, relations: created })
        }
        yield* sql`INSERT INTO ${ledger} (id, name, checksum) VALUES (${m.id}, ${m.name}, ${m.checksum})`
        out.push({ id: m.id, name: m.name, checksum: m.checksum })
      }
      return out
    })
    return yield* sql.withTransaction(program).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(failed({ id: 0, name: "(migration ledger)" })(e)))
    )
  })

/** Runs the migrations at layer construction, i.e. at startup, before anything uses the tables. */
export const layer = (
  prefix: TablePrefix.TablePrefix,
  migrations: ReadonlyArray<Migration>,
  options?: { readonly ledger?: string | undefined }
): Layer.Layer<never, MigrationError, SqlClient.SqlClient> =>
  Layer.effectDiscard(Effect.flatMap(make(prefix, migrations, options), run))

const describe = (e: unknown): string => {
  const cause = (e as { cause?: { message?: string } })?.cause
  return cause?.message ?? (e as Error)?.message ?? String(e)
}
