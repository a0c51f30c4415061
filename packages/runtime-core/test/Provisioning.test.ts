/**
 * Apps fenced off by the database: `Provisioning.provisionApp` gives each app a
 * role of its own; two real app processes run as those roles, each one's
 * tables are "permission denied" (SQLSTATE 42501) to the other, provisioning is
 * idempotent, hands over a database first migrated by a superuser, and refuses
 * bad input with typed errors. Roles are cluster-wide: every role a test
 * creates has a random name and is dropped in a finalizer, even on failure.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { createHash, createHmac, pbkdf2Sync } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Database, Provisioning } from "../src/index.js"
import { TestDatabase, TestProcess } from "../src/testing/index.js"

const appProcess = fileURLToPath(new URL("./fixtures/app-process.ts", import.meta.url))
const COUNT = 20

const random = () => Math.random().toString(36).slice(2, 10).padEnd(8, "0")
/** A role name no other test run on this server will use. */
const roleName = (prefix: string) => `t_${prefix}_${random()}`
/** Quotes, a backslash, URL delimiters and a percent sign: escaping must hold all the way. */
const passwordFor = (role: string) => `p'w"\\%41:@/ ${role}`

/** Drops the roles when the test's scope closes (processes and role connections are closed before). */
const dropRolesAfterwards = (roles: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() =>
      Effect.forEach(roles, (role) =>
        Effect.gen(function*() {
          yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${role}`
          const exists = yield* sql`SELECT 1 FROM pg_roles WHERE rolname = ${role}`
          if (exists.length === 0) return
          // the role only has objects and grants in this (test) database: drop them, then the role
          yield* sql.unsafe(`DROP OWNED BY "${role}"`)
          yield* sql.unsafe(`DROP ROLE "${role}"`)
        })).pipe(Effect.orDie)
    ))

/** A client connected as `role`, for the rest of the test's scope. */
const connectAs = (url: string, role: string) =>
  Layer.build(Database.layer({ url: Redacted.make(Provisioning.appUrl(url, role, passwordFor(role))), maxConnections: 2 }))
    .pipe(Effect.map((context) => <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, context)))

const run = (statement: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement))

/** The failure of `statement`: SQLSTATE and message. */
const failure = (statement: string) =>
  run(statement).pipe(
    Effect.flip,
    Effect.map((e: SqlError.SqlError) => {
      const cause = e.cause as { code?: string; message?: string }
      return { statement, code: cause.code, message: cause.message }
    })
  )

const startApp = (url: string, prefix: string, count = COUNT) =>
  TestProcess.spawnTs(appProcess, {
    env: { DATABASE_URL: url, PREFIX: prefix, COUNT: String(count), HOLD_MS: "0", POLL_MS: "500" }
  })

/** Runs an app process to its end; it must exit 0 after ready, first, done. */
const runApp = (url: string, prefix: string, count = COUNT) =>
  Effect.gen(function*() {
    const app = yield* startApp(url, prefix, count)
    const code = yield* app.exited
    expect({ code, events: app.events().map((e) => e.event), out: app.lines.filter((l) => !l.startsWith("{")) })
      .toEqual({ code: 0, events: ["ready", "first", "done"], out: [] })
  })

/** Owner and ACL of every relation of a prefix (indexes included). */
const relations = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ relname: string; relkind: string; owner: string; acl: string | null }>`
      SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND left(c.relname, ${prefix.length + 1}) = ${prefix + "_"}
      ORDER BY c.relname`)

/** Everything about a role that provisioning sets. */
const roleState = (role: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Record<string, unknown>>`
      SELECT r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
        r.rolbypassrls, shobj_description(r.oid, 'pg_authid') AS comment,
        (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid OR m.roleid = r.oid)::int AS memberships,
        has_database_privilege(r.oid, current_database(), 'CONNECT') AS connect,
        has_database_privilege(r.oid, current_database(), 'CREATE') AS create_schemas,
        has_schema_privilege(r.oid, 'public', 'USAGE') AS public_usage,
        has_schema_privilege(r.oid, 'public', 'CREATE') AS public_create,
        (SELECT array_agg(x ORDER BY x)::text[] FROM pg_db_role_setting s, unnest(s.setconfig) x
          WHERE s.setrole = r.oid AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
        ) AS settings
      FROM pg_roles r WHERE r.rolname = ${role}`.pipe(Effect.map((rows) => rows[0])))

const appRoleState = (prefix: string) => ({
  rolsuper: false,
  rolinherit: false,
  rolcreaterole: false,
  rolcreatedb: false,
  rolcanlogin: true,
  rolreplication: false,
  rolbypassrls: false,
  comment: `duraflow app role for prefix "${prefix}"`,
  memberships: 0,
  connect: true,
  create_schemas: false,
  public_usage: true,
  public_create: true,
  settings: ["search_path=public"]
})

/** True when the stored SCRAM verifier was made from exactly `password`. */
const scramMatches = (verifier: string, password: string) => {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier)
  if (!m) return false
  const salted = pbkdf2Sync(password, Buffer.from(m[2], "base64"), Number(m[1]), 32, "sha256")
  const clientKey = createHmac("sha256", salted).update("Client Key").digest()
  return createHash("sha256").update(clientKey).digest("base64") === m[3]
}

describe("Provisioning: one database role per app", () => {
  layer(TestDatabase.layer("provisioning"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("each app runs as its own role; the other app's tables are permission denied, both ways", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const apps = [
          { prefix: "knowledge", role: roleName("knowledge") },
          { prefix: "ontology", role: roleName("ontology") }
        ] as const
        yield* dropRolesAfterwards(apps.map((a) => a.role))

        // both at once: provisioning in one database is serialised, not failing on concurrent GRANTs
        const results = yield* Effect.all(
          apps.map(({ prefix, role }) => Provisioning.provisionApp({ prefix, role, password: passwordFor(role) })),
          { concurrency: 2 }
        )
        expect(results).toEqual(apps.map(({ prefix, role }) => ({ role, prefix, created: true, ownedRelations: 0, transferred: 0 })))
        for (const { prefix, role } of apps) {
          expect(yield* roleState(role)).toEqual(appRoleState(prefix))
          const [{ rolpassword }] = yield* sql<{ rolpassword: string }>`
            SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`
          expect(scramMatches(rolpassword, passwordFor(role))).toBe(true)
          const url = new URL(Provisioning.appUrl(db.url, role, passwordFor(role)))
          expect([decodeURIComponent(url.username), decodeURIComponent(url.password)]).toEqual([role, passwordFor(role)])
        }

        // both apps work as their roles: migrations, cluster tables, every workflow done
        yield* Effect.all(
          apps.map(({ prefix, role }) => runApp(Provisioning.appUrl(db.url, role, passwordFor(role)), prefix)),
          { concurrency: 2 }
        )
        for (const { prefix, role } of apps) {
          const rels = yield* relations(prefix)
          expect(rels.map((r) => r.relname)).toEqual(
            expect.arrayContaining([`${prefix}_effects`, `${prefix}_migrations`, `${prefix}_cluster_messages`])
          )
          // everything the app created, indexes and sequences included, is its role's alone
          for (const r of rels) {
            expect({ relname: r.relname, owner: r.owner, acl: r.acl }).toEqual({ relname: r.relname, owner: role, acl: null })
          }
          const [row] = yield* sql<{ n: number; max: number }>`
            SELECT count(*)::int AS n, max(execs)::int AS max FROM ${sql(`${prefix}_effects`)}`
          expect(row).toEqual({ n: COUNT * 2, max: 1 })
        }

        for (const [self, other] of [[apps[0], apps[1]], [apps[1], apps[0]]] as const) {
          const as = yield* connectAs(db.url, self.role)
          const own = `${self.prefix}_effects`
          const theirs = `${other.prefix}_effects`
          // its own table: read, write, change the schema
          expect(yield* as(run(`SELECT count(*)::int AS n FROM ${own}`))).toEqual([{ n: COUNT * 2 }])
          yield* as(run(`INSERT INTO ${own} (wf_id, step, pid) VALUES ('probe', 'probe', 0)`))
          yield* as(run(`UPDATE ${own} SET execs = 2 WHERE wf_id = 'probe'`))
          yield* as(run(`DELETE FROM ${own} WHERE wf_id = 'probe'`))
          yield* as(run(`CREATE INDEX ${own}_probe_idx ON ${own} (pid)`))
          yield* as(run(`DROP INDEX ${own}_probe_idx`))

          // the other app's: every kind of access is refused with 42501
          const denied = yield* Effect.forEach([
            `SELECT count(*) FROM ${theirs}`,
            `INSERT INTO ${theirs} (wf_id, step, pid) VALUES ('x', 'x', 0)`,
            `UPDATE ${theirs} SET execs = 0`,
            `DELETE FROM ${theirs}`,
            `TRUNCATE ${theirs}`,
            `LOCK TABLE ${theirs} IN ACCESS EXCLUSIVE MODE`,
            `ALTER TABLE ${theirs} ADD COLUMN x integer`,
            `CREATE INDEX ON ${theirs} (pid)`,
            `DROP TABLE ${theirs}`,
            `ALTER TABLE ${theirs} OWNER TO ${self.role}`
          ], (statement) => as(Effect.flatMap(SqlClient.SqlClient, (own) => own.withTransaction(failure(statement)))))
          for (const d of denied) {
            expect(d).toEqual({ statement: d.statement, code: "42501", message: expect.stringMatching(/permission denied|must be owner/) })
          }
          expect(denied[0].message).toBe(`permission denied for table ${theirs}`)
          expect(denied.at(-2)!.message).toBe(`must be owner of table ${theirs}`)
          // ... and so is every other table of theirs (cluster tables, ledgers), sequences too
          for (const r of yield* relations(other.prefix)) {
            if (r.relkind === "r") {
              expect((yield* as(failure(`SELECT 1 FROM ${r.relname} LIMIT 1`))).code).toBe("42501")
            } else if (r.relkind === "S") {
              expect((yield* as(failure(`SELECT nextval('${r.relname}')`))).code).toBe("42501")
            }
          }
        }
        // nothing of theirs was changed by the attempts
        for (const { prefix } of apps) {
          const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${prefix}_effects`)}`
          expect(row.n).toBe(COUNT * 2)
        }

        // Not fenced by the database: names. The knowledge role may create a table with the
        // ontology prefix (runtime-core's migration checks refuse that) ...
        const [knowledge, ontology] = apps
        const asKnowledge = yield* connectAs(db.url, knowledge.role)
        yield* asKnowledge(run(`CREATE TABLE ontology_sneaky (x integer)`))
        // ... provisioning the knowledge app again refuses, naming it ...
        const refused = yield* Effect.flip(
          Provisioning.provisionApp({ prefix: "knowledge", role: knowledge.role, password: passwordFor(knowledge.role) })
        )
        expect(refused._tag).toBe("ProvisioningError")
        expect(refused.message).toContain("outside public.knowledge_*: public.ontology_sneaky")
        // ... and provisioning the ontology app takes it over
        const again = yield* Provisioning.provisionApp({ prefix: "ontology", role: ontology.role, password: passwordFor(ontology.role) })
        expect(again).toMatchObject({ created: false, transferred: 1 })
        expect((yield* asKnowledge(failure(`SELECT * FROM ontology_sneaky`))).code).toBe("42501")
        expect(yield* Provisioning.provisionApp({ prefix: "knowledge", role: knowledge.role, password: passwordFor(knowledge.role) }))
          .toMatchObject({ created: false, transferred: 0 })
      }))

    it.scoped("hands over a database first migrated by a superuser; the app then runs as its role", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const role = roleName("gamma")
        yield* dropRolesAfterwards([role])

        yield* runApp(db.url, "gamma", 5) // as the superuser
        yield* sql`GRANT SELECT ON gamma_effects TO PUBLIC`
        const before = yield* relations("gamma")
        expect(new Set(before.map((r) => r.owner))).toEqual(new Set(["postgres"]))
        const [{ n: expected }] = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relname LIKE 'gamma\\_%' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`

        const result = yield* Provisioning.provisionApp({ prefix: "gamma", role, password: passwordFor(role) })
        expect(result).toMatchObject({ role, created: true, transferred: expected })
        const after = yield* relations("gamma")
        expect(after.map((r) => r.relname)).toEqual(before.map((r) => r.relname))
        for (const r of after) expect({ relname: r.relname, owner: r.owner }).toEqual({ relname: r.relname, owner: role })
        expect(after.filter((r) => /(^\{|,)=/.test(r.acl ?? ""))).toEqual([]) // no PUBLIC entry left
        expect(result.ownedRelations).toBe(after.filter((r) => ["r", "p", "v", "m", "f", "S"].includes(r.relkind)).length)

        // the app, now as its role, finds its migrations applied and its runs in place
        yield* runApp(Provisioning.appUrl(db.url, role, passwordFor(role)), "gamma", 10)
        const [row] = yield* sql<{ n: number; max: number }>`
          SELECT count(*)::int AS n, max(execs)::int AS max FROM gamma_effects`
        expect(row).toEqual({ n: 10 * 2, max: 1 })
        expect(yield* sql`SELECT id FROM gamma_migrations`).toEqual([{ id: 1 }])
      }))

    it.scoped("provisioning twice gives the same role, grants and ownership; bad input is a typed error", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const alpha = roleName("alpha")
        const beta = roleName("beta")
        const reporting = roleName("reporting")
        const unused = roleName("delta")
        yield* dropRolesAfterwards([alpha, beta, reporting, unused])

        // a database someone migrated by hand, as the superuser, with grants to PUBLIC
        yield* sql.unsafe(`CREATE TABLE alpha_items (id serial PRIMARY KEY, name text)`)
        yield* sql.unsafe(`CREATE VIEW alpha_items_view AS SELECT id FROM alpha_items`)
        yield* sql.unsafe(`CREATE SEQUENCE alpha_counter`)
        yield* sql.unsafe(`GRANT SELECT ON alpha_items TO PUBLIC`)
        yield* sql.unsafe(`GRANT USAGE ON SEQUENCE alpha_counter TO PUBLIC`)

        const provisionAlpha = (password = passwordFor(alpha)) =>
          Provisioning.provisionApp({ prefix: "alpha", role: alpha, password: Redacted.make(password) })
        const state = Effect.all({ role: roleState(alpha), relations: relations("alpha") })

        // Postgres 17 added the MAINTAIN privilege (`m`): an owner's full table privileges show one more letter
        const [{ major }] = yield* sql<{ major: number }>`SELECT current_setting('server_version_num')::int / 10000 AS major`
        const ownerTablePrivileges = major >= 17 ? "arwdDxtm" : "arwdDxt"

        const first = yield* provisionAlpha()
        // three handed over; the serial's sequence and the index follow their table
        expect(first).toEqual({ role: alpha, prefix: "alpha", created: true, ownedRelations: 4, transferred: 3 })
        const once = yield* state
        expect(once.role).toEqual(appRoleState("alpha"))
        expect(once.relations.map((r) => [r.relname, r.owner, r.acl])).toEqual([
          ["alpha_counter", alpha, `{${alpha}=rwU/${alpha}}`],
          ["alpha_items", alpha, `{${alpha}=${ownerTablePrivileges}/${alpha}}`],
          ["alpha_items_id_seq", alpha, null],
          ["alpha_items_pkey", alpha, null],
          ["alpha_items_view", alpha, null]
        ])

        const second = yield* provisionAlpha()
        expect(second).toEqual({ ...first, created: false, transferred: 0 })
        expect(yield* state).toEqual(once)

        // a new password is a change of password only
        yield* provisionAlpha("rotated")
        expect(yield* state).toEqual(once)
        const [{ rolpassword }] = yield* sql<{ rolpassword: string }>`SELECT rolpassword FROM pg_authid WHERE rolname = ${alpha}`
        expect(scramMatches(rolpassword, "rotated")).toBe(true)

        // grants to another app's role are revoked on the next run; an administrator's grant to a
        // role that is not an app role (a reporting role) is left alone
        yield* Provisioning.provisionApp({ prefix: "beta", role: beta, password: passwordFor(beta) })
        yield* sql.unsafe(`CREATE ROLE "${reporting}" NOLOGIN`)
        yield* sql.unsafe(`GRANT SELECT ON alpha_items TO "${beta}", "${reporting}"`)
        yield* provisionAlpha()
        const [privileges] = yield* sql<{ beta: boolean; reporting: boolean }>`
          SELECT has_table_privilege(${beta}, 'alpha_items', 'SELECT') AS beta,
                 has_table_privilege(${reporting}, 'alpha_items', 'SELECT') AS reporting`
        expect(privileges).toEqual({ beta: false, reporting: true })

        // an app role that could SET ROLE to another role is refused (NOINHERIT alone does not stop that)
        yield* sql.unsafe(`GRANT "${reporting}" TO "${beta}"`)
        const member = yield* Effect.flip(Provisioning.provisionApp({ prefix: "beta", role: beta, password: passwordFor(beta) }))
        expect(member.message).toContain(`it is a member of ${reporting}`)
        yield* sql.unsafe(`REVOKE "${reporting}" FROM "${beta}"`)

        // bad input: typed errors, and nothing created
        const error = (options: Provisioning.Options) => Effect.flip(Provisioning.provisionApp(options))
        const badPrefix = yield* error({ prefix: "Alpha", password: "x" })
        expect(badPrefix._tag).toBe("InvalidTablePrefix")
        expect((yield* error({ prefix: "pg_alpha", password: "x" }))._tag).toBe("InvalidTablePrefix")
        const cases: ReadonlyArray<[Provisioning.Options, RegExp]> = [
          [{ prefix: "delta", role: `${unused}"; DROP ROLE postgres; --`, password: "x" }, /invalid role name/],
          [{ prefix: "delta", role: "Delta", password: "x" }, /invalid role name/],
          [{ prefix: "delta", role: "public", password: "x" }, /"public" is reserved/],
          [{ prefix: "delta", role: "select", password: "x" }, /reserved word/],
          [{ prefix: "delta", role: "postgres", password: "x" }, /is a superuser/],
          [{ prefix: "delta", role: unused, password: "" }, /password must not be empty/],
          [{ prefix: "delta", role: alpha, password: "x" }, /already the app role for prefix "alpha"/]
        ]
        for (const [options, reason] of cases) {
          const e = yield* error(options)
          expect(e._tag).toBe("ProvisioningError")
          expect(e.message).toMatch(reason)
        }
        expect(yield* sql`SELECT rolname FROM pg_roles WHERE rolname = ${unused} OR rolname LIKE 'delta%'`).toEqual([])
        expect(yield* roleState("postgres")).toMatchObject({ rolsuper: true, rolcreaterole: true })
        expect(yield* roleState(alpha)).toEqual(once.role)
      }))
  })
})
