/**
 * Checks that the apps sharing a database cannot collide, on any database, not
 * only in our tests: one verdict per check, each naming what it found.
 *
 * The apps are found by their `<prefix>_runtime_migrations` table (every
 * runtime-core app has one). Checks:
 * - `relations`: every table, index, sequence and view of the schema belongs
 *   to exactly one app's prefix, and each app's relations have one owner;
 * - `lock-spaces`: the apps' advisory-lock key spaces (`TablePrefix.lockSpace`,
 *   computed, not assumed) are distinct;
 * - `advisory-locks`: every advisory lock held now is a two-key lock in one
 *   app's space (a one-key lock is the form @effect/cluster uses by default,
 *   whose numbers collide across apps);
 * - `grants`: no PUBLIC privileges on an app's relations, and no role other
 *   than a superuser holds privileges on the relations of two apps;
 * - `stuck-runs`: no ledger row `running` for a minute with no engine request
 *   for it, and no engine message due more than a minute ago still unprocessed
 *   (a clock or signal nobody delivered).
 * LISTEN channels are per session and not visible from another one: each app
 * listens on `<prefix>_wake` only (`TablePrefix.wakeChannel`).
 *
 * `fix` re-drives what `stuck-runs` finds: an overdue clock that a process
 * read and never finished is hidden from the engine's poll for ten minutes;
 * its read mark is cleared and the app is woken (`<prefix>_wake`) to deliver
 * it now. A ledger row `running` that the engine has no request for
 * (a start that never reached it) becomes `failed`, naming why, so that an
 * operator can retry it (`POST .../retry` starts it again with its payload).
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import * as TablePrefix from "./TablePrefix.js"

export interface Verdict {
  readonly check: "relations" | "lock-spaces" | "advisory-locks" | "grants" | "stuck-runs"
  readonly ok: boolean
  /** What was found: one line per problem, or a summary when all is well. */
  readonly details: ReadonlyArray<string>
}

const RUNTIME_LEDGER_SUFFIX = "_runtime_migrations"

/** The prefixes of the runtime-core apps on this database. */
export const prefixes: Effect.Effect<ReadonlyArray<string>, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ relname: string }>`SELECT relname FROM pg_class
        WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace
          AND relname LIKE ${`%${RUNTIME_LEDGER_SUFFIX}`} ORDER BY relname`,
      (rows) => rows.map((r) => r.relname.slice(0, -RUNTIME_LEDGER_SUFFIX.length))
    )
)

/** The prefixes a relation name starts with (`<prefix>_`). */
const ownersOf = (apps: ReadonlyArray<string>, relation: string) => apps.filter((p) => relation.startsWith(`${p}_`))

const verdict = (check: Verdict["check"], problems: ReadonlyArray<string>, fine: string): Verdict => ({
  check,
  ok: problems.length === 0,
  details: problems.length === 0 ? [fine] : problems
})

const relations = (apps: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ relname: string; kind: string; owner: string }>`
        SELECT c.relname, c.relkind::text AS kind, pg_get_userbyid(c.relowner) AS owner
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'i', 'S', 'v', 'm')
        ORDER BY c.relname`,
      (rows) => {
        const problems: Array<string> = []
        const owners = new Map<string, Set<string>>()
        for (const row of rows) {
          const of = ownersOf(apps, row.relname)
          if (of.length === 0) problems.push(`${row.relname}: belongs to no app's prefix (${apps.join(", ")})`)
          else if (of.length > 1) problems.push(`${row.relname}: matches the prefixes ${of.join(" and ")}`)
          else owners.set(of[0]!, (owners.get(of[0]!) ?? new Set()).add(row.owner))
        }
        for (const [app, roles] of owners) {
          if (roles.size > 1) problems.push(`${app}: its relations have ${roles.size} owners (${[...roles].sort().join(", ")})`)
        }
        return verdict("relations", problems, `${rows.length} relations, each in one app's prefix with one owner`)
      }
    ))

const lockSpaces = (apps: ReadonlyArray<string>) => {
  const bySpace = new Map<number, Array<string>>()
  for (const app of apps) {
    const space = TablePrefix.lockSpace(app as TablePrefix.TablePrefix)
    bySpace.set(space, [...(bySpace.get(space) ?? []), app])
  }
  const problems = [...bySpace].filter(([, of]) => of.length > 1).map(([space, of]) =>
    `${of.join(" and ")}: the same advisory-lock key space ${space} (rename one prefix)`
  )
  return Effect.succeed(verdict("lock-spaces", problems, `${apps.length} apps, ${bySpace.size} distinct key spaces`))
}

const advisoryLocks = (apps: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ classid: string; objid: string; objsubid: number; application_name: string | null; pid: number }>`
        SELECT l.classid::bigint::text AS classid, l.objid::bigint::text AS objid, l.objsubid, a.application_name, l.pid
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      (rows) => {
        const spaces = new Map(apps.map((app) => [TablePrefix.lockSpace(app as TablePrefix.TablePrefix), app]))
        const problems: Array<string> = []
        for (const lock of rows) {
          const who = `pid ${lock.pid} (${lock.application_name || "no application_name"})`
          if (lock.objsubid !== 2) problems.push(`${who}: a one-key advisory lock, outside every app's key space`)
          else if (!spaces.has(Number(lock.classid))) problems.push(`${who}: key space ${lock.classid} belongs to no app`)
        }
        return verdict("advisory-locks", problems, `${rows.length} advisory locks held, each in one app's key space`)
      }
    ))

const grants = (apps: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ relname: string; grantee: string; superuser: boolean }>`
        SELECT DISTINCT c.relname, CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END AS grantee,
          coalesce(r.rolsuper, false) AS superuser
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) acl
        LEFT JOIN pg_roles r ON r.oid = acl.grantee
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm')`,
      (rows) => {
        const problems: Array<string> = []
        const appsOf = new Map<string, Set<string>>()
        for (const row of rows) {
          const [app] = ownersOf(apps, row.relname)
          if (app === undefined) continue
          if (row.grantee === "PUBLIC") problems.push(`${row.relname}: privileges granted to PUBLIC`)
          else if (!row.superuser) appsOf.set(row.grantee, (appsOf.get(row.grantee) ?? new Set()).add(app))
        }
        for (const [role, of] of appsOf) {
          if (of.size > 1) problems.push(`role ${role}: privileges on the relations of ${[...of].sort().join(" and ")}`)
        }
        return verdict("grants", problems, "no PUBLIC grants; no role holds privileges in two apps")
      }
    ))

/**
 * A timed message (a durable clock) due over a minute ago and not processed:
 * the poll delivers a due one within seconds, so nobody is delivering it.
 * (An untimed request stays unprocessed while its run is running: not a sign.)
 */
const OVERDUE = "deliver_at IS NOT NULL AND deliver_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - 60000"

const stuckRuns = (apps: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      Effect.forEach(apps, (app) =>
        Effect.gen(function*() {
          const [tables] = yield* sql<{ runs: boolean; messages: boolean }>`
            SELECT to_regclass(${`public.${app}_runs`}) IS NOT NULL AS runs,
              to_regclass(${`public.${app}_cluster_messages`}) IS NOT NULL AS messages`
          if (!tables?.runs || !tables.messages) return []
          const runs = sql(`${app}_runs`)
          const messages = sql(`${app}_cluster_messages`)
          const orphans = yield* sql<{ execution_id: string; workflow: string }>`
            SELECT execution_id, workflow FROM ${runs} r
            WHERE r.status = 'running' AND r.updated_at < clock_timestamp() - interval '1 minute'
              AND NOT EXISTS (SELECT 1 FROM ${messages} m WHERE m.entity_id = r.execution_id AND m.tag = 'run')
            ORDER BY r.updated_at LIMIT 50`
          const overdue = yield* sql<{ entity_id: string; tag: string }>`
            SELECT entity_id, tag FROM ${messages}
            WHERE processed = false AND kind = 0 AND ${sql.literal(OVERDUE)}
            ORDER BY deliver_at LIMIT 50`
          return [
            ...orphans.map((r) => `${app}: run ${r.workflow}/${r.execution_id} is 'running' but the engine has no request for it`),
            ...overdue.map((m) => `${app}: ${m.tag} message of ${m.entity_id} was due over a minute ago and is not delivered`)
          ]
        })),
      (found) => verdict("stuck-runs", found.flat(), "no stuck runs")
    ))

/** Every check, in order. */
export const run: Effect.Effect<
  { readonly prefixes: ReadonlyArray<string>; readonly verdicts: ReadonlyArray<Verdict> },
  SqlError,
  SqlClient.SqlClient
> = Effect.gen(function*() {
  const apps = yield* prefixes
  const verdicts = yield* Effect.all([
    relations(apps),
    lockSpaces(apps),
    advisoryLocks(apps),
    grants(apps),
    stuckRuns(apps)
  ])
  return { prefixes: apps, verdicts }
})

/** What `fix` did, per app. */
export interface Fixed {
  readonly prefix: string
  /** overdue messages whose read mark was cleared (the app was woken to deliver them) */
  readonly redriven: number
  /** ledger rows `running` with no engine request, now `failed` */
  readonly orphansFailed: number
}

/** Re-drives the stuck runs `stuck-runs` reports (see the module comment). */
export const fix: Effect.Effect<ReadonlyArray<Fixed>, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  prefixes,
  (apps) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(apps, (app) =>
        Effect.gen(function*() {
          const [tables] = yield* sql<{ runs: boolean; messages: boolean }>`
            SELECT to_regclass(${`public.${app}_runs`}) IS NOT NULL AS runs,
              to_regclass(${`public.${app}_cluster_messages`}) IS NOT NULL AS messages`
          if (!tables?.runs || !tables.messages) return { prefix: app, redriven: 0, orphansFailed: 0 }
          const messages = sql(`${app}_cluster_messages`)
          const redriven = yield* sql`UPDATE ${messages} SET last_read = NULL
            WHERE processed = false AND kind = 0 AND ${sql.literal(OVERDUE)} RETURNING 1`
          const orphans = yield* sql`UPDATE ${sql(`${app}_runs`)} r SET status = 'failed', updated_at = clock_timestamp(),
              error = ${JSON.stringify({ _tag: "NoEngineRequest", message: "the engine never received this run (duraflow doctor --fix); retry it" })}::jsonb
            WHERE r.status = 'running' AND r.updated_at < clock_timestamp() - interval '1 minute'
              AND NOT EXISTS (SELECT 1 FROM ${messages} m WHERE m.entity_id = r.execution_id AND m.tag = 'run')
            RETURNING 1`
          if (redriven.length > 0) yield* sql`SELECT pg_notify(${TablePrefix.wakeChannel(app as TablePrefix.TablePrefix)}, 'doctor')`
          return { prefix: app, redriven: redriven.length, orphansFailed: orphans.length }
        })))
)
