/**
 * The `provision` command as a process: provisions a role on a fresh database,
 * prints the app URL with the password masked (shown with --show-url), is
 * idempotent, and exits non-zero with a readable message on bad input; with
 * --observer, a role that reads every app and writes nothing.
 * The role it creates is dropped afterwards (roles are cluster-wide).
 */
import { Database, Doctor } from "@duraflow/runtime-core"
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import { fileURLToPath } from "node:url"

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))

/** Runs the CLI to its end: exit code and output lines. */
const provision = (env: Record<string, string | undefined>, args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const child = yield* TestProcess.spawnTs(main, {
      args,
      env: { DATABASE_URL: undefined, APP_PREFIX: undefined, APP_DB_ROLE: undefined, APP_DB_PASSWORD: undefined, ...env }
    })
    const code = yield* child.exited
    return { code, out: child.lines.filter((l) => l !== "").join("\n") }
  })

/** Drops `role` (roles are cluster-wide) when the test's scope closes. */
const dropRoleAfter = (sql: SqlClient.SqlClient, role: string) =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if ((yield* sql`SELECT 1 FROM pg_roles WHERE rolname = ${role}`).length === 0) return
      yield* sql.unsafe(`DROP OWNED BY "${role}"`)
      yield* sql.unsafe(`DROP ROLE "${role}"`)
    }).pipe(Effect.orDie)
  )

describe("provision CLI", () => {
  layer(TestDatabase.layer("provision_cli"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("--observer: a role that reads every app's tables, writes nothing, and leaves doctor's verdicts clean", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const role = `t_obs_${Math.random().toString(36).slice(2, 10)}`
        yield* dropRoleAfter(sql, role)
        yield* sql.unsafe(`CREATE TABLE obs_runtime_migrations (id int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL);
          CREATE TABLE obs_things (id int); INSERT INTO obs_things VALUES (1)`)
        const made = yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: "look-only" }, ["--observer", "--role", role, "--show-url"])
        expect(made.code, made.out).toBe(0)
        expect(made.out).toContain(`observer role ${role}: created`)
        const url = made.out.split("DATABASE_URL=")[1]!.trim()
        const seen = yield* Effect.gen(function*() {
          const observer = yield* SqlClient.SqlClient
          const rows = yield* observer<{ n: number }>`SELECT count(*)::int AS n FROM obs_things`
          const write = yield* Effect.either(observer`INSERT INTO obs_things VALUES (2)`)
          const report = yield* Doctor.run
          return { rows, write, report }
        }).pipe(Effect.provide(Database.layer({ url: Redacted.make(url), applicationName: "observer-test", maxConnections: 1 })))
        expect(seen.rows).toEqual([{ n: 1 }])
        expect(Either.isLeft(seen.write)).toBe(true)
        expect(seen.report.prefixes).toEqual(["obs"])
        for (const v of seen.report.verdicts) expect(v, v.details.join("; ")).toMatchObject({ ok: true })
        // again: updated, not refused
        const again = yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: "look-only" }, ["--observer", "--role", role])
        expect(again.out).toContain(`observer role ${role}: updated`)
        yield* sql.unsafe(`DROP TABLE obs_things, obs_runtime_migrations`)
      }))

    it.scoped("provisions a role and prints the app URL, password masked unless --show-url", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const role = `t_cli_${Math.random().toString(36).slice(2, 10)}`
        yield* dropRoleAfter(sql, role)
        const password = "s3cret/with:chars@"
        const first = yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: password }, [
          "--",
          "--prefix",
          "knowledge",
          "--role",
          role
        ])
        const masked = new URL(db.url)
        masked.username = role
        masked.password = "****"
        expect(first).toEqual({
          code: 0,
          out: `role ${role} for prefix knowledge: created; owns 0 knowledge_* relation(s), 0 taken over\n` +
            `DATABASE_URL=${masked.toString()}`
        })
        expect(first.out).not.toContain("s3cret")
        const [row] = yield* sql<{ rolcanlogin: boolean; rolsuper: boolean }>`
          SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ${role}`
        expect(row).toEqual({ rolcanlogin: true, rolsuper: false })

        // again, everything from the environment, URL shown: same role, updated, password in the URL
        const second = yield* provision(
          { DATABASE_URL: db.url, APP_PREFIX: "knowledge", APP_DB_ROLE: role, APP_DB_PASSWORD: password },
          ["--show-url"]
        )
        expect(second.code).toBe(0)
        expect(second.out).toContain(`role ${role} for prefix knowledge: updated`)
        const url = new URL(second.out.split("DATABASE_URL=")[1]!)
        expect([url.username, decodeURIComponent(url.password), url.pathname]).toEqual([
          role,
          password,
          `/${db.name}`
        ])
      }))

    it.scoped("bad input: exit 2 for usage, 1 with the rule for a bad prefix or role", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        expect(yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: "x" }, [])).toMatchObject({
          code: 2,
          out: expect.stringContaining("--prefix (or APP_PREFIX) is required")
        })
        expect(yield* provision({ APP_DB_PASSWORD: "x" }, ["--prefix", "knowledge"])).toMatchObject({
          code: 2,
          out: expect.stringContaining("DATABASE_URL")
        })
        expect(yield* provision({ DATABASE_URL: db.url }, ["--prefix", "knowledge", "--bogus"])).toMatchObject({
          code: 2,
          out: expect.stringContaining("--bogus")
        })
        expect(yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: "x" }, ["--prefix", "Knowledge"])).toMatchObject({
          code: 1,
          out: expect.stringContaining(`provisioning failed: Invalid table prefix "Knowledge"`)
        })
        expect(yield* provision({ DATABASE_URL: db.url, APP_DB_PASSWORD: "x" }, ["--prefix", "knowledge", "--role", "postgres"]))
          .toMatchObject({ code: 1, out: expect.stringContaining("is a superuser") })
      }))
  })
})
