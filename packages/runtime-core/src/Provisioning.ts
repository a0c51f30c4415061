/**
 * Database roles that fence apps off from each other. `provisionApp` creates
 * (or brings back into line) one Postgres role per app, whose privileges cover
 * only the app's own `<prefix>_*` relations; the app then connects as that role
 * (`appUrl`) and another app's tables are "permission denied" to it.
 *
 * Why ownership, in `public`: apps keep their tables in the `public` schema,
 * named `<prefix>_*` (the project's convention; every table an app creates
 * starts with its prefix). A schema per app would be the other classic fence,
 * but it would change every table name the apps, the cluster storage and the
 * tests rely on. Ownership fences just as well: each app connects as its own
 * role, so everything it creates (domain migrations, cluster tables, runs
 * ledger, their indexes and sequences) is owned by that role, and Postgres
 * grants nothing on a new table to anyone but its owner. No app role is a
 * superuser or a member of another role, so no other app role has any
 * privilege on those tables: SELECT/INSERT/UPDATE/DELETE/TRUNCATE fail with
 * "permission denied", DROP/ALTER/CREATE INDEX with "must be owner" (both
 * SQLSTATE 42501).
 *
 * What the role gets, and nothing else: LOGIN with a password, NOSUPERUSER
 * NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS, CONNECT on the
 * database, USAGE and CREATE on schema `public` (Postgres 15 no longer grants
 * CREATE on `public` to PUBLIC), `search_path = public` in this database (so a
 * schema named like the role could not capture its tables), and a comment
 * marking it as the app role of its prefix. Provisioning then hands over what
 * already exists, so a database first migrated by a superuser can be given to
 * the app: every `public.<prefix>_*` table, partitioned table, view,
 * materialized view, foreign table and free-standing sequence is transferred to
 * the role (indexes and column-owned sequences follow their table), and all
 * privileges on them are revoked from PUBLIC and from other app roles.
 * Privileges an administrator granted explicitly to other, non-app roles (a
 * read-only reporting role, say) are left alone. Types and functions named
 * `<prefix>_*` are not transferred (USAGE/EXECUTE on them are PUBLIC by
 * default; a later migration altering one needs `ALTER ... OWNER TO` by hand).
 *
 * Safety: the prefix is validated with `TablePrefix.make`, the role name (the
 * prefix by default) with the same identifier rules, the password must be
 * non-empty. Every statement is rendered by the server with `format()` (`%I`
 * identifiers, `%L` literals) from bound parameters, so neither names nor the
 * password are ever spliced into SQL text by us. The password still reaches
 * the server inside `CREATE/ALTER ROLE ... PASSWORD '...'` (hashed there with
 * `password_encryption`), so with `log_statement = 'ddl'` or `'all'` it would
 * be written to the server log, as for any such statement. Provisioning
 * refuses to touch a superuser, the role it runs as, a role that is a member
 * of another role (NOINHERIT alone does not stop SET ROLE), a role already
 * serving another prefix, and it fails, rolling back, when the role would end
 * up owning or holding privileges on any relation outside `public.<prefix>_*`.
 *
 * Idempotent: one transaction; existing roles are altered rather than
 * created, grants and ownership changes are no-ops the second time. Runs in
 * the same database are serialised by an advisory lock (concurrent GRANTs on
 * one schema would otherwise fail with "tuple concurrently updated") and by the
 * prefix's schema lock (so an app migrating right now does not create a table
 * half-way through the handover); a race on the cluster-wide role name is
 * retried.
 *
 * What the database does NOT fence, and runtime-core handles instead:
 * - Advisory locks are database-wide: any role may take or wait on any key.
 *   runtime-core keeps each app in its own two-key space
 *   (`TablePrefix.lockSpace`), so apps never meet, but a hostile role could
 *   still block another app's keys.
 * - LISTEN/NOTIFY channels are database-wide: any role may listen or notify on
 *   `<other>_wake`. runtime-core names channels per prefix; a notification
 *   only wakes a poll, it carries no data that is trusted.
 * - Names: a role with CREATE on `public` can create a table named with
 *   another app's prefix. runtime-core's migration checks refuse that, and
 *   provisioning the other app later takes such a relation over (provisioning
 *   the offending app again fails, naming it).
 * - Nested prefixes: `know_*` also matches `know_ledge_*` tables. Give apps
 *   prefixes where neither is `<other>_...`.
 * - Roles are cluster-wide and PUBLIC has CONNECT (and TEMP) on every database
 *   by default, so an app role can connect to the server's other databases;
 *   revoke CONNECT from PUBLIC there if that matters. Provisioning checks and
 *   changes the current database only.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Redacted, Schema } from "effect"
import * as Retry from "./Retry.js"
import type { InvalidTablePrefix } from "./RuntimeError.js"
import * as SchemaLock from "./internal/SchemaLock.js"
import * as TablePrefix from "./TablePrefix.js"

/** Provisioning refused its input or the role's current state (nothing was changed). */
export class ProvisioningError extends Schema.TaggedError<ProvisioningError>()("ProvisioningError", {
  prefix: Schema.String,
  role: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    const what = this.prefix === OBSERVER ? "as the observer" : `for prefix ${JSON.stringify(this.prefix)}`
    return `Cannot provision role ${JSON.stringify(this.role)} ${what}: ${this.reason}`
  }
}

export interface Options {
  /** The app's table prefix (validated with `TablePrefix.make`). */
  readonly prefix: string
  /** The role to create or update; defaults to the prefix. */
  readonly role?: string | undefined
  readonly password: string | Redacted.Redacted<string>
}

export interface Result {
  readonly role: string
  readonly prefix: TablePrefix.TablePrefix
  /** False when the role existed and was brought into line. */
  readonly created: boolean
  /** `public.<prefix>_*` relations (indexes not counted) the role owns afterwards. */
  readonly ownedRelations: number
  /** How many of those this call took over from another owner (0 on a second run). */
  readonly transferred: number
}

/** The comment that marks a role as an app role, and names its prefix. */
export const COMMENT_MARKER = "duraflow app role for prefix "
const comment = (prefix: string) => `${COMMENT_MARKER}${JSON.stringify(prefix)}`
const markedPrefix = (text: string | null): string | undefined => {
  if (text === null || !text.startsWith(COMMENT_MARKER)) return undefined
  try {
    const value: unknown = JSON.parse(text.slice(COMMENT_MARKER.length))
    return typeof value === "string" ? value : undefined
  } catch {
    return undefined
  }
}

/**
 * Second key of the provisioning lock, in a key space of its own: shard locks
 * use keys >= 0 and the schema lock -1, so even an app whose prefix hashed to
 * the same space could never hold this key.
 */
const LOCK_SPACE = TablePrefix.lockSpace(TablePrefix.unsafeMake("duraflow_provisioning"))
const LOCK_KEY = -2

/** Role names Postgres reserves beyond its reserved key words. */
const RESERVED_ROLES = new Set(["public", "none"])

/** Returns the rule a role name breaks, or undefined: the prefix rules, plus Postgres' reserved role names. */
export const roleViolation = (role: string): string | undefined => {
  if (RESERVED_ROLES.has(role)) return `"${role}" is reserved by Postgres`
  const rule = TablePrefix.violation(role)
  return rule === undefined ? undefined : `a role name follows the table-prefix rules, and this one ${rule}`
}

/** Returns the rule a password breaks, or undefined. */
const passwordViolation = (password: string): string | undefined =>
  password.length === 0
    ? "the password must not be empty"
    : password.includes("\u0000")
    ? "the password must not contain a NUL character"
    : undefined

/** The role name and password checked (see `roleViolation`, `passwordViolation`): the password in clear. */
const checkCredentials = (
  role: string,
  password: string | Redacted.Redacted<string>,
  refuse: (reason: string) => ProvisioningError
): Effect.Effect<string, ProvisioningError> => {
  const roleRule = roleViolation(role)
  if (roleRule !== undefined) return Effect.fail(refuse(`invalid role name: ${roleRule}`))
  const clear = Redacted.isRedacted(password) ? Redacted.value(password) : password
  const passwordRule = passwordViolation(clear)
  return passwordRule === undefined ? Effect.succeed(clear) : Effect.fail(refuse(passwordRule))
}

/**
 * Runs a statement rendered server-side: `format(template, ...args)`, args bound
 * as parameters, so names and the password are never spliced into SQL by us.
 */
const executor = (sql: SqlClient.SqlClient) => (template: string, ...args: ReadonlyArray<string>) =>
  sql.unsafe<{ stmt: string }>(`SELECT format($1::text, VARIADIC $2::text[]) AS stmt`, [template, args]).pipe(
    Effect.flatMap((rows) => sql.unsafe(rows[0]!.stmt).raw)
  )

/** Relation kinds provisioning hands over, with the keyword ALTER uses for them. */
const RELKIND_SQL = `CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END`
const FROM_CLASS = `FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace`
/** `c` is one of the prefix's relations ($1 = prefix): in public, named `<prefix>_*`, not an index. */
const PREFIXED = `n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND left(c.relname, length($1::text) + 1) = $1::text || '_'`

const RETRYABLE = new Set(["42710", "23505", "40001", "40P01", "XX000"])
const sqlState = (e: SqlError.SqlError): string | undefined => (e.cause as { code?: string } | undefined)?.code

/**
 * Creates or updates the app role for `prefix` in the connected database and
 * hands it the prefix's existing relations. Run it on a superuser connection
 * (a CREATEROLE role can create the role, but taking over relations another
 * role owns needs ownership rights a superuser has).
 */
export const provisionApp = (
  options: Options
): Effect.Effect<Result, ProvisioningError | InvalidTablePrefix | SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const prefix = yield* TablePrefix.make(options.prefix)
    const role = options.role ?? prefix
    const refuse = (reason: string) => new ProvisioningError({ prefix, role, reason })
    const password = yield* checkCredentials(role, options.password, refuse)

    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const exec = executor(sql)

    const currentDatabase = sql.unsafe<{ name: string }>(`SELECT current_database() AS name`).pipe(
      Effect.map((rows) => rows[0]!.name)
    )

    const program = Effect.gen(function*() {
      yield* sql.unsafe(`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${LOCK_KEY})`)
      yield* SchemaLock.lockInTransaction(prefix)

      const [admin] = yield* sql.unsafe<{ name: string; super: boolean; createrole: boolean }>(
        `SELECT rolname AS name, rolsuper AS super, rolcreaterole AS createrole FROM pg_roles WHERE rolname = current_user`
      )
      if (!admin || (!admin.super && !admin.createrole)) {
        return yield* refuse(`the connection's role (${admin?.name ?? "?"}) needs SUPERUSER or CREATEROLE`)
      }

      const [existing] = yield* sql.unsafe<{
        super: boolean
        replication: boolean
        bypassrls: boolean
        self: boolean
        comment: string | null
        member_of: Array<string>
        app_members: Array<string>
      }>(
        `SELECT r.rolsuper AS super, r.rolreplication AS replication, r.rolbypassrls AS bypassrls,
           r.rolname IN (current_user, session_user) AS self,
           shobj_description(r.oid, 'pg_authid') AS comment,
           ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                 WHERE m.member = r.oid ORDER BY 1) AS member_of,
           ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.member
                 WHERE m.roleid = r.oid AND starts_with(coalesce(shobj_description(g.oid, 'pg_authid'), ''), $2::text)
                 ORDER BY 1) AS app_members
         FROM pg_roles r WHERE r.rolname = $1::text`,
        [role, COMMENT_MARKER]
      )
      if (existing) {
        if (existing.super) return yield* refuse("it exists and is a superuser; an app role must not be one")
        if (existing.self) return yield* refuse("it is the role provisioning runs as")
        if (existing.member_of.length > 0) {
          return yield* refuse(
            `it is a member of ${existing.member_of.join(", ")}, and could SET ROLE to it; revoke the membership first`
          )
        }
        if (existing.app_members.length > 0) {
          return yield* refuse(`app role(s) ${existing.app_members.join(", ")} are members of it; revoke that first`)
        }
        const serves = markedPrefix(existing.comment)
        if (serves !== undefined && serves !== prefix) {
          return yield* refuse(`it is already the app role for prefix "${serves}"; one role serves one prefix`)
        }
        if (!admin.super && (existing.replication || existing.bypassrls)) {
          return yield* refuse("it has REPLICATION or BYPASSRLS, which only a superuser can take away")
        }
      }

      const attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
      if (existing) {
        // NOSUPERUSER / NOREPLICATION / NOBYPASSRLS may only be stated by a superuser (all three are checked above)
        const alter = admin.super ? attributes : "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT"
        yield* exec(`ALTER ROLE %I WITH ${alter} PASSWORD %L`, role, password)
      } else {
        yield* exec(`CREATE ROLE %I WITH ${attributes} PASSWORD %L`, role, password)
      }
      yield* exec("COMMENT ON ROLE %I IS %L", role, comment(prefix))
      yield* exec("GRANT CONNECT ON DATABASE %I TO %I", yield* currentDatabase, role)
      yield* exec("GRANT USAGE, CREATE ON SCHEMA public TO %I", role)
      yield* exec("ALTER ROLE %I IN DATABASE %I SET search_path = public", role, yield* currentDatabase)

      // Hand over the prefix's relations. Sequences owned by a column follow their table
      // (ALTER on them directly is an error), as do indexes (not listed: relkind 'i').
      const toTransfer = yield* sql.unsafe<{ relname: string; kind: string }>(
        `SELECT c.relname::text AS relname, ${RELKIND_SQL} AS kind ${FROM_CLASS} WHERE ${PREFIXED}
           AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $2::text)
           AND NOT (c.relkind = 'S' AND EXISTS (
             SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
         ORDER BY c.relkind = 'S', c.relname`,
        [prefix, role]
      )
      for (const r of toTransfer) yield* exec(`ALTER ${r.kind} %I OWNER TO %I`, r.relname, role)

      // Revoke everything from PUBLIC and from other app roles (explicit grants to other roles stay).
      const grants = yield* sql.unsafe<{ relname: string; kind: string; grantee: string }>(
        `SELECT DISTINCT c.relname::text AS relname, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
           CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE g.rolname::text END AS grantee
         ${FROM_CLASS} CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
         WHERE ${PREFIXED} AND (a.grantee = 0 OR (g.rolname <> $2::text
           AND starts_with(coalesce(shobj_description(g.oid, 'pg_authid'), ''), $3::text)))
         ORDER BY 1, 3`,
        [prefix, role, COMMENT_MARKER]
      )
      for (const g of grants) {
        yield* g.grantee === "PUBLIC"
          ? exec(`REVOKE ALL ON ${g.kind} %I FROM PUBLIC`, g.relname)
          : exec(`REVOKE ALL ON ${g.kind} %I FROM %I`, g.relname, g.grantee)
      }

      // The fence, checked: nothing outside public.<prefix>_* is owned by the role or granted to it.
      const outside = yield* sql.unsafe<{ name: string }>(
        `SELECT DISTINCT format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = $2::text) r
         WHERE c.relkind NOT IN ('i', 'I', 't') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT (n.nspname = 'public' AND left(c.relname, length($1::text) + 1) = $1::text || '_')
           AND (c.relowner = r.oid OR EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = r.oid))
         ORDER BY 1 LIMIT 10`,
        [prefix, role]
      )
      if (outside.length > 0) {
        return yield* refuse(
          `it owns or holds privileges on relations outside public.${prefix}_*: ${outside.map((o) => o.name).join(", ")}` +
            ` (drop them or REASSIGN them to their app's role, then run provisioning again)`
        )
      }

      const [owned] = yield* sql.unsafe<{ n: number }>(
        `SELECT count(*)::int AS n ${FROM_CLASS} WHERE ${PREFIXED} AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $2::text)`,
        [prefix, role]
      )
      return { role, prefix, created: !existing, ownedRelations: owned?.n ?? 0, transferred: toTransfer.length }
    })

    return yield* sql.withTransaction(program).pipe(
      // two provisioning runs racing on the (cluster-wide) role name, or on a catalog row
      Effect.retry({
        schedule: Retry.backoff({ first: "50 millis" }),
        times: 3,
        while: (e) => e._tag === "SqlError" && RETRYABLE.has(sqlState(e) ?? "")
      })
    )
  })

/** `ProvisioningError.prefix` of the observer role, which has none. */
const OBSERVER = "(observer)"

/** The comment that marks a role as the observer role. */
export const OBSERVER_COMMENT = "duraflow observer role (read-only)"

export interface ObserverOptions {
  /** The role to create or update (default `duraflow_observer`). */
  readonly role?: string | undefined
  readonly password: string | Redacted.Redacted<string>
}

/**
 * Creates or updates the read-only role operators' tools use to look at every
 * app on the database (`duraflow apps`, `doctor`): LOGIN, member of Postgres'
 * predefined `pg_read_all_data` (SELECT on every table, present and future,
 * without a grant on any one relation, so no app's fence and no `doctor`
 * grants verdict changes) and `pg_read_all_stats` (every session in
 * `pg_stat_activity`), every transaction read-only by default, nothing else.
 * Postgres 14 or later. Note that the predefined roles reach every database of
 * the server: give each environment its own server, or use it where that is fine.
 */
export const provisionObserver = (
  options: ObserverOptions
): Effect.Effect<{ readonly role: string; readonly created: boolean }, ProvisioningError | SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const role = options.role ?? "duraflow_observer"
    const refuse = (reason: string) => new ProvisioningError({ prefix: OBSERVER, role, reason })
    const password = yield* checkCredentials(role, options.password, refuse)
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const exec = executor(sql)
    const program = Effect.gen(function*() {
      yield* sql.unsafe(`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${LOCK_KEY})`)
      const [server] = yield* sql.unsafe<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`)
      if ((server?.version ?? 0) < 140000) return yield* refuse("it needs Postgres 14 or later (pg_read_all_data)")
      const [existing] = yield* sql.unsafe<{ super: boolean; self: boolean; comment: string | null }>(
        `SELECT r.rolsuper AS super, r.rolname IN (current_user, session_user) AS self,
           shobj_description(r.oid, 'pg_authid') AS comment FROM pg_roles r WHERE r.rolname = $1::text`,
        [role]
      )
      if (existing?.super) return yield* refuse("it exists and is a superuser")
      if (existing?.self) return yield* refuse("it is the role provisioning runs as")
      if (existing && markedPrefix(existing.comment) !== undefined) return yield* refuse("it is an app role")
      const attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS"
      yield* exec(`${existing ? "ALTER" : "CREATE"} ROLE %I WITH ${attributes} PASSWORD %L`, role, password)
      yield* exec("COMMENT ON ROLE %I IS %L", role, OBSERVER_COMMENT)
      yield* exec("GRANT pg_read_all_data, pg_read_all_stats TO %I", role)
      yield* exec("ALTER ROLE %I SET default_transaction_read_only = on", role)
      return { role, created: !existing }
    })
    return yield* sql.withTransaction(program).pipe(
      Effect.retry({
        schedule: Retry.backoff({ first: "50 millis" }),
        times: 3,
        while: (e) => e._tag === "SqlError" && RETRYABLE.has(sqlState(e) ?? "")
      })
    )
  })

/**
 * The app's `DATABASE_URL`: the admin URL (same host, port, database and query
 * options) with the app role's name and password.
 */
export const appUrl = (adminUrl: string, role: string, password: string | Redacted.Redacted<string>): string => {
  const url = new URL(adminUrl)
  // the URL setters leave "%" alone; encode everything so the driver's decodeURIComponent gives the password back
  url.username = encodeURIComponent(role)
  url.password = encodeURIComponent(Redacted.isRedacted(password) ? Redacted.value(password) : password)
  return url.toString()
}

/** The URL with its password replaced by `****`, for printing. */
export const maskUrl = (url: string): string => {
  const parsed = new URL(url)
  if (parsed.password !== "") parsed.password = "****"
  return parsed.toString()
}
