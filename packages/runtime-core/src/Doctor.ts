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
 * - `migrations`: the migrations applied in each app's ledgers match the
 *   code's checksums: runtime-core's own (`<prefix>_runtime_migrations`) for
 *   every app, a domain's (`<prefix>_migrations`) for the domains whose code is
 *   given (`check({ domains })`; the `duraflow` of an app's folder gives its
 *   own); an applied migration the code does not know is reported too;
 * - `stuck-runs`: no ledger row `running` for a minute with no engine request
 *   for it, no engine message due more than a minute ago still unprocessed
 *   (a clock or signal nobody delivered), and no run suspended for a minute
 *   whose awaited signal (a DurableDeferred) completed after it suspended
 *   without the run being resumed.
 * LISTEN channels are per session and not visible from another one: each app
 * listens on `<prefix>_wake` only (`TablePrefix.wakeChannel`).
 *
 * `fix` re-drives what `stuck-runs` finds: an overdue clock that a process
 * read and never finished is hidden from the engine's poll for ten minutes;
 * its read mark is cleared and the app is woken (`<prefix>_wake`) to deliver
 * it now. A ledger row `running` that the engine has no request for
 * (a start that never reached it) becomes `failed`, naming why, so that an
 * operator can retry it (`POST .../retry` starts it again with its payload).
 * A suspended run whose signal came is reset as the engine's own resume does
 * (its Suspended reply removed, its request unprocessed) and the app woken.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import * as RuntimeTables from "./internal/RuntimeTables.js"
import * as Migrations from "./Migrations.js"
import * as TablePrefix from "./TablePrefix.js"

export interface Verdict {
  readonly check: "relations" | "lock-spaces" | "advisory-locks" | "grants" | "migrations" | "stuck-runs"
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

/** How many of an app's engine messages are overdue (see `OVERDUE`); 0 when it has no engine tables or this role may not read them. */
export const overdueMessages = (prefix: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.gen(function*() {
      const name = `public.${prefix}_cluster_messages`
      const [table] = yield* sql<{ readable: boolean | null }>`SELECT CASE WHEN to_regclass(${name}) IS NULL THEN NULL
        ELSE has_table_privilege(to_regclass(${name}), 'SELECT') END AS readable`
      if (!table?.readable) return 0
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${prefix}_cluster_messages`)}
        WHERE processed = false AND kind = 0 AND ${sql.literal(OVERDUE)}`
      return row?.n ?? 0
    }))

/** Which of the app's ledger and engine tables exist (an app may have no engine tables yet). */
const engineTables = (sql: SqlClient.SqlClient, app: string) =>
  Effect.map(
    sql<{ runs: boolean; messages: boolean; replies: boolean }>`
      SELECT to_regclass(${`public.${app}_runs`}) IS NOT NULL AS runs,
        to_regclass(${`public.${app}_cluster_messages`}) IS NOT NULL AS messages,
        to_regclass(${`public.${app}_cluster_replies`}) IS NOT NULL AS replies`,
    (rows) => rows[0]
  )

const stuckRuns = (apps: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      Effect.forEach(apps, (app) =>
        Effect.gen(function*() {
          const tables = yield* engineTables(sql, app)
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
          const unwoken = tables.replies ? yield* signalledButSuspended(sql, app) : []
          return [
            ...orphans.map((r) => `${app}: run ${r.workflow}/${r.execution_id} is 'running' but the engine has no request for it`),
            ...overdue.map((m) => `${app}: ${m.tag} message of ${m.entity_id} was due over a minute ago and is not delivered`),
            ...unwoken.map((r) =>
              `${app}: run ${r.workflow}/${r.execution_id} is suspended but its signal ${r.signal} completed after it suspended`
            )
          ]
        })),
      (found) => verdict("stuck-runs", found.flat(), "no stuck runs")
    ))

/**
 * Suspended runs (for a minute) whose latest `run` reply says Suspended while a
 * `deferred` (a signal, a clock's deferred) of theirs was answered after it:
 * the engine resets the run when a deferred completes, so a Suspended reply
 * older than a completed deferred means that reset never happened (a process
 * died between the two, or the run re-read the deferred before its reply was
 * stored) and nothing will wake the run.
 */
const signalledButSuspended = (sql: SqlClient.SqlClient, app: string) =>
  sql<{ execution_id: string; workflow: string; request_id: string; signal: string }>`
    SELECT DISTINCT ON (r.execution_id) r.execution_id, r.workflow, m.request_id::text AS request_id,
      d.payload::jsonb->>'name' AS signal
    FROM ${sql(`${app}_runs`)} r
    JOIN ${sql(`${app}_cluster_messages`)} m ON m.entity_id = r.execution_id AND m.entity_type = 'Workflow/' || r.workflow
      AND m.tag = 'run' AND m.kind = 0 AND m.processed
    JOIN ${sql(`${app}_cluster_replies`)} rr ON rr.request_id = m.request_id AND rr.kind = 0
      AND rr.payload::jsonb #>> '{value,_tag}' = 'Suspended'
    JOIN ${sql(`${app}_cluster_messages`)} d ON d.entity_id = m.entity_id AND d.entity_type = m.entity_type
      AND d.tag = 'deferred' AND d.kind = 0
    JOIN ${sql(`${app}_cluster_replies`)} dr ON dr.request_id = d.request_id AND dr.kind = 0 AND dr.id > rr.id
    WHERE r.status = 'suspended' AND r.updated_at < clock_timestamp() - interval '1 minute'
    ORDER BY r.execution_id LIMIT 50`

/** A domain's code as the doctor needs it: its prefix and its migrations. */
export interface DomainCode {
  readonly prefix: TablePrefix.TablePrefix
  readonly migrations: ReadonlyArray<Migrations.Migration>
  /** the ledger table's name without the prefix (default `migrations`) */
  readonly ledger?: string | undefined
}

/** Applied migrations (one ledger) against the code's: a line per difference. */
const compareLedger = (sql: SqlClient.SqlClient, app: string, declared: Migrations.Migrations) =>
  Effect.gen(function*() {
    const name = `${app}_${declared.ledger}`
    const [exists] = yield* sql<{ exists: boolean }>`SELECT to_regclass(${`public.${name}`}) IS NOT NULL AS exists`
    if (!exists?.exists) return { problems: [], applied: 0 }
    const read = yield* Effect.either(sql<{ id: number; name: string; checksum: string }>`
      SELECT id, name, checksum FROM ${sql(name)} ORDER BY id`)
    if (read._tag === "Left") return { problems: [`${name}: not a migration ledger (${read.left.message})`], applied: 0 }
    const applied = read.right
    const code = new Map(declared.migrations.map((m) => [m.id, m]))
    const problems = applied.flatMap((a) => {
      const m = code.get(a.id)
      if (m === undefined) return [`${name}: migration ${a.id} "${a.name}" is applied but not in this code (a newer build's?)`]
      if (m.checksum !== a.checksum) {
        return [`${name}: migration ${a.id} "${a.name}" was applied with checksum ${a.checksum.slice(0, 12)}, the code's is ${m.checksum.slice(0, 12)} (an applied migration was edited)`]
      }
      return []
    })
    return { problems, applied: applied.length }
  })

const migrationChecksums = (apps: ReadonlyArray<string>, domains: ReadonlyArray<DomainCode>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.gen(function*() {
      const problems: Array<string> = []
      let compared = 0
      for (const app of apps) {
        const runtime = yield* Migrations.make(app as TablePrefix.TablePrefix, RuntimeTables.migrations, {
          ledger: RuntimeTables.LEDGER
        })
        const found = yield* compareLedger(sql, app, runtime)
        problems.push(...found.problems)
        compared += found.applied
      }
      const checked: Array<string> = []
      for (const domain of domains) {
        if (!apps.includes(domain.prefix)) continue
        const declared = yield* Migrations.make(domain.prefix, domain.migrations, { ledger: domain.ledger })
        const found = yield* compareLedger(sql, domain.prefix, declared)
        problems.push(...found.problems)
        compared += found.applied
        checked.push(domain.prefix)
      }
      const unchecked = apps.filter((app) => !checked.includes(app))
      return verdict(
        "migrations",
        problems,
        `${compared} applied migrations match the code` +
          (unchecked.length > 0 ? `; domain migrations not checked for ${unchecked.join(", ")} (their code was not given)` : "")
      )
    }).pipe(Effect.catchTag("InvalidMigrations", (e) => Effect.succeed(verdict("migrations", [e.message], ""))))
  )

/** Every check, in order; `domains`: the domain code whose migrations to compare (see `migrations`). */
export const check = (options?: { readonly domains?: ReadonlyArray<DomainCode> | undefined }): Effect.Effect<
  { readonly prefixes: ReadonlyArray<string>; readonly verdicts: ReadonlyArray<Verdict> },
  SqlError,
  SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const apps = yield* prefixes
    const verdicts = yield* Effect.all([
      relations(apps),
      lockSpaces(apps),
      advisoryLocks(apps),
      grants(apps),
      migrationChecksums(apps, options?.domains ?? []),
      stuckRuns(apps)
    ])
    return { prefixes: apps, verdicts }
  })

/** Every check, with runtime-core's own migrations only (`check` for a domain's too). */
export const run = check()

/** What `fix` did, per app. */
export interface Fixed {
  readonly prefix: string
  /** overdue messages whose read mark was cleared (the app was woken to deliver them) */
  readonly redriven: number
  /** ledger rows `running` with no engine request, now `failed` */
  readonly orphansFailed: number
  /** suspended runs whose signal had come, reset so that they run on */
  readonly resumed: number
}

/** Re-drives the stuck runs `stuck-runs` reports (see the module comment). */
export const fix: Effect.Effect<ReadonlyArray<Fixed>, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  prefixes,
  (apps) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(apps, (app) =>
        Effect.gen(function*() {
          const tables = yield* engineTables(sql, app)
          if (!tables?.runs || !tables.messages) return { prefix: app, redriven: 0, orphansFailed: 0, resumed: 0 }
          const messages = sql(`${app}_cluster_messages`)
          const redriven = yield* sql`UPDATE ${messages} SET last_read = NULL
            WHERE processed = false AND kind = 0 AND ${sql.literal(OVERDUE)} RETURNING 1`
          const orphans = yield* sql`UPDATE ${sql(`${app}_runs`)} r SET status = 'failed', updated_at = clock_timestamp(),
              error = ${JSON.stringify({ _tag: "NoEngineRequest", message: "the engine never received this run (duraflow doctor --fix); retry it" })}::jsonb
            WHERE r.status = 'running' AND r.updated_at < clock_timestamp() - interval '1 minute'
              AND NOT EXISTS (SELECT 1 FROM ${messages} m WHERE m.entity_id = r.execution_id AND m.tag = 'run')
            RETURNING 1`
          // what the engine's resume does (`Sharding.reset`): the Suspended reply goes, the request is due again
          const unwoken = tables.replies ? yield* signalledButSuspended(sql, app) : []
          for (const run of unwoken) {
            yield* sql.withTransaction(Effect.zipRight(
              sql`DELETE FROM ${sql(`${app}_cluster_replies`)} WHERE request_id = ${run.request_id} AND kind = 0`,
              sql`UPDATE ${messages} SET processed = false, last_reply_id = NULL, last_read = NULL
                WHERE request_id = ${run.request_id}`
            ))
          }
          if (redriven.length > 0 || unwoken.length > 0) {
            yield* sql`SELECT pg_notify(${TablePrefix.wakeChannel(app as TablePrefix.TablePrefix)}, 'doctor')`
          }
          return { prefix: app, redriven: redriven.length, orphansFailed: orphans.length, resumed: unwoken.length }
        })))
)
