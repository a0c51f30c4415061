/**
 * The duraflow apps on a database, as an operator (the `duraflow apps` command,
 * the web console) sees them: each app's prefix (found by its
 * `<prefix>_runtime_migrations` table, `Doctor.prefixes`), its live replicas
 * (runners holding their presence lock now, in the app's advisory-lock space),
 * its health and, when the role may read the app's runs ledger, its runs by status.
 *
 * `discover` reads only the system catalogs (`pg_class`, `pg_locks`), which
 * every role may read: a read-only observer with no grant on any app's tables
 * sees the apps and their replicas. `runCounts` reads `<prefix>_runs` and
 * answers `undefined` when the role has no privilege on it (an app role of
 * another app, an observer).
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import * as Doctor from "./Doctor.js"
import * as TablePrefix from "./TablePrefix.js"

export interface DiscoveredApp {
  readonly prefix: string
  /** runners holding their presence lock now (live processes of the app) */
  readonly replicas: number
}

export interface AppInfo extends DiscoveredApp {
  /**
   * `ok`: live replicas, nothing overdue; `degraded`: durable clocks or signals
   * due over a minute ago still undelivered (`duraflow doctor` tells which);
   * `down`: no live replica
   */
  readonly health: "ok" | "degraded" | "down"
  /** engine messages due over a minute ago and not delivered (0 when this role may not read them) */
  readonly overdue: number
  readonly runs: Record<string, number>
}

/** The live replicas of the app with `prefix`: catalog only. */
export const replicas = (prefix: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const space = TablePrefix.lockSpace(prefix as TablePrefix.TablePrefix)
    return Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND objsubid = 2 AND classid::bigint = ${space}
          AND objid::bigint >= ${TablePrefix.RUNNER_LOCK_BASE}
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      (rows) => rows[0]?.n ?? 0
    )
  })

/** Every app on the database with its live replicas (system catalogs only: any role may run it). */
export const discover: Effect.Effect<ReadonlyArray<DiscoveredApp>, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  Doctor.prefixes,
  (prefixes) => Effect.forEach(prefixes, (prefix) => Effect.map(replicas(prefix), (n) => ({ prefix, replicas: n })))
)

/**
 * The app's runs by status from its ledger; `undefined` when there is no ledger
 * yet or this role may not read it.
 */
export const runCounts = (prefix: string): Effect.Effect<Record<string, number> | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = `public.${prefix}_runs`
    const [ledger] = yield* sql<{ readable: boolean | null }>`SELECT CASE WHEN to_regclass(${table}) IS NULL THEN NULL
      ELSE has_table_privilege(to_regclass(${table}), 'SELECT') END AS readable`
    if (!ledger?.readable) return undefined
    const runs: Record<string, number> = {}
    for (const row of yield* sql<{ status: string; n: number }>`
      SELECT status, count(*)::int AS n FROM ${sql(`${prefix}_runs`)} GROUP BY status ORDER BY status`) {
      runs[row.status] = row.n
    }
    return runs
  })

/** `discover` with each app's health and runs by status (empty when the ledger cannot be read). */
export const list: Effect.Effect<ReadonlyArray<AppInfo>, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  discover,
  (apps) =>
    Effect.forEach(apps, (app) =>
      Effect.gen(function*() {
        const runs = yield* runCounts(app.prefix)
        const overdue = yield* Doctor.overdueMessages(app.prefix)
        const health = app.replicas === 0 ? "down" : overdue > 0 ? "degraded" : "ok"
        return { ...app, health, overdue, runs: runs ?? {} } satisfies AppInfo
      }))
)
