/**
 * The `duraflow` command as an operator runs it: a child process against a
 * real database, reading its output and exit code.
 */
import { TablePrefix } from "@duraflow/runtime-core"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type AddressInfo, createServer, type Server } from "node:net"
import { duraflow } from "./fixtures/duraflow.js"

describe("duraflow", () => {
  layer(TestDatabase.layer("cli"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("apps and doctor on a database with one app; doctor fails, naming the fault, once one is planted", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabase.TestDatabase
        yield* sql.unsafe(`
          CREATE TABLE shop_runtime_migrations (id int PRIMARY KEY, name text, checksum text);
          CREATE TABLE shop_runs (execution_id text PRIMARY KEY, workflow text, status text, updated_at timestamptz DEFAULT now());
          INSERT INTO shop_runs (execution_id, workflow, status) VALUES ('a', 'W', 'succeeded'), ('b', 'W', 'succeeded'), ('c', 'W', 'running')`)

        // a live replica holds its presence lock in the app's key space
        const replica = yield* sql.reserve
        const presence = `${TablePrefix.lockSpace(TablePrefix.unsafeMake("shop"))}, ${TablePrefix.RUNNER_LOCK_BASE + 1}`
        yield* replica.executeRaw(`SELECT pg_advisory_lock(${presence})`, [])
        const apps = yield* duraflow(["apps", url, "--json"])
        expect(apps.code).toBe(0)
        expect(JSON.parse(apps.stdout)).toEqual([
          { prefix: "shop", replicas: 1, health: "ok", overdue: 0, runs: { running: 1, succeeded: 2 } }
        ])
        const appsTable = yield* duraflow(["apps"], { DATABASE_URL: url })
        expect(appsTable.stdout).toMatch(/^prefix\s+replicas\s+health\s+running.*\n-+.*\nshop\s+1\s+ok\s+1\s+0\s+2\s+0\s+0$/m)
        yield* replica.executeRaw(`SELECT pg_advisory_unlock(${presence})`, [])
        // no live replica: the app is down
        expect(JSON.parse((yield* duraflow(["apps", url, "--json"])).stdout)).toMatchObject([{ replicas: 0, health: "down" }])

        const clean = yield* duraflow(["doctor", url])
        expect(clean.code).toBe(0)
        expect(clean.stdout).toContain("apps: shop")
        for (const check of ["relations", "lock-spaces", "advisory-locks", "grants", "migrations", "stuck-runs"]) {
          expect(clean.stdout).toMatch(new RegExp(`^${check}\\s+ok\\s`, "m"))
        }
        expect(JSON.parse((yield* duraflow(["doctor", url, "--json"])).stdout)).toMatchObject({ prefixes: ["shop"], ok: true })

        yield* sql.unsafe(`GRANT SELECT ON shop_runs TO PUBLIC`)
        const sick = yield* duraflow(["doctor", url])
        expect(sick.code).toBe(1)
        expect(sick.stdout).toMatch(/^grants\s+FAIL\s+shop_runs: privileges granted to PUBLIC$/m)
        expect(sick.stderr).toContain("failed: grants")
        const sickJson = JSON.parse((yield* duraflow(["doctor", url, "--json"])).stdout)
        expect(sickJson.ok).toBe(false)
        yield* sql.unsafe(`REVOKE ALL ON shop_runs FROM PUBLIC`)

        // a run the engine never got: reported; --fix marks it failed (ready for a retry), exit 0
        yield* sql.unsafe(`
          CREATE TABLE shop_cluster_messages (id bigint PRIMARY KEY, entity_id text, tag text, kind int,
            processed boolean DEFAULT false, deliver_at bigint, last_read timestamp);
          ALTER TABLE shop_runs ADD COLUMN error jsonb;
          UPDATE shop_runs SET updated_at = now() - interval '5 minutes' WHERE execution_id = 'c'`)
        const stuck = yield* duraflow(["doctor", url])
        expect(stuck.code).toBe(1)
        expect(stuck.stdout).toMatch(/^stuck-runs\s+FAIL\s+shop: run W\/c is 'running' but the engine has no request for it$/m)
        const fixed = yield* duraflow(["doctor", url, "--fix"])
        expect(fixed.code, fixed.stderr).toBe(0)
        expect(fixed.stdout).toContain("fixed shop: 0 overdue message(s) re-driven, 1 orphan run(s) marked failed, 0 signalled run(s) resumed")
        expect(yield* sql`SELECT status FROM shop_runs WHERE execution_id = 'c'`).toEqual([{ status: "failed" }])
        expect((yield* duraflow(["doctor", url])).code).toBe(0)
      }).pipe(Effect.scoped))

    it.effect("retention deletes one app's expired finished runs with their rows, and nothing else", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabase.TestDatabase
        yield* sql.unsafe(`
          CREATE TABLE store_runtime_migrations (id int PRIMARY KEY);
          CREATE TABLE store_runs (execution_id text PRIMARY KEY, workflow text, status text, updated_at timestamptz DEFAULT now());
          CREATE TABLE store_cluster_messages (id bigint PRIMARY KEY, entity_id text NOT NULL);
          CREATE TABLE store_cluster_replies (id bigint PRIMARY KEY, request_id bigint NOT NULL);
          CREATE TABLE store_activity_exits (execution_id text, activity text);
          CREATE TABLE store_activity_results (execution_id text, activity text);
          INSERT INTO store_runs (execution_id, workflow, status, updated_at) VALUES
            ('old1', 'W', 'succeeded', now() - interval '30 days'), ('old2', 'W', 'failed', now() - interval '30 days'),
            ('oldlive', 'W', 'suspended', now() - interval '30 days');
          INSERT INTO store_cluster_messages VALUES (1, 'old1'), (2, 'old2'), (3, 'oldlive');
          INSERT INTO store_cluster_replies VALUES (11, 1), (12, 2);
          INSERT INTO store_activity_exits VALUES ('old1', 's'), ('oldlive', 's')`)
        const swept = yield* duraflow(["retention", url, "--prefix", "store", "--older-than", "7 days", "--json"])
        expect(swept.code).toBe(0)
        expect(JSON.parse(swept.stdout)).toMatchObject({ prefix: "store", runs: 2, messages: 2, replies: 2, activities: 1 })
        expect(yield* sql`SELECT execution_id FROM store_runs WHERE updated_at < now() - interval '7 days'`).toEqual([
          { execution_id: "oldlive" }
        ])
        expect(yield* sql`SELECT entity_id FROM store_cluster_messages`).toEqual([{ entity_id: "oldlive" }])
        const bad = yield* duraflow(["retention", url, "--prefix", "Bad-Prefix"])
        expect(bad.code).toBe(2)
        expect(bad.stderr).toMatch(/Invalid table prefix "Bad-Prefix"/)
      }))

    it.effect("no database given: a usage error (exit 2); an unreachable one: exit 1 with the reason", () =>
      Effect.gen(function*() {
        const none = yield* duraflow(["doctor"])
        expect(none.code).toBe(2)
        expect(none.stderr).toContain("no database: give DATABASE_URL")
        const down = yield* duraflow(["apps", "postgres://postgres@127.0.0.1:1/nowhere"])
        expect(down.code).toBe(1)
        expect(down.stderr).toMatch(/127\.0\.0\.1:1/)
        expect(down.stderr).not.toMatch(/\n\s+at /)
      }))

    it.effect("an app that takes the request and never answers: runs fails at the deadline, naming the app", () =>
      Effect.gen(function*() {
        // connections are accepted (by the kernel, even while this process waits), never answered
        const silent = yield* Effect.acquireRelease(
          Effect.async<Server>((resume) => {
            const server = createServer(() => {})
            server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
          }),
          (server) => Effect.sync(() => server.close())
        )
        const app = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
        const stuck = yield* duraflow(["runs", "list", "--app", app], { DURAFLOW_HTTP_TIMEOUT: "2 seconds" })
        expect(stuck.code).toBe(2)
        expect(stuck.stderr).toContain(`no answer from ${app} within 2s`)
      }).pipe(Effect.scoped))
  })
})
