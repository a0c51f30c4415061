/**
 * `duraflow upgrade-check` as a CI step runs it: a child process against a
 * real database holding runs that may resume, with the build's registry
 * module; exit 0 when every run can resume, 1 naming each stranded run.
 * (What the check finds on runs a real engine left is tested in runtime-core.)
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import { duraflow } from "./fixtures/duraflow.js"

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

describe("duraflow upgrade-check", () => {
  layer(TestDatabase.layer("cli_upgrade"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("passes the build that left the runs, fails one that strands them, naming run, step and reason", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { url } = yield* TestDatabase.TestDatabase
        // what the runtime's tables hold for three runs that may resume, and a finished one
        yield* sql.unsafe(`
          CREATE TABLE shopx_runs (execution_id text PRIMARY KEY, workflow text, status text, payload jsonb,
            started_by text, created_at timestamptz DEFAULT clock_timestamp());
          CREATE TABLE shopx_activity_exits (execution_id text, activity text, attempt int, exit jsonb,
            finished_at timestamptz DEFAULT clock_timestamp());
          INSERT INTO shopx_runs (execution_id, workflow, status, payload, started_by) VALUES
            ('o-1', 'Order', 'suspended', '{"id":"1","qty":2}', '1.0.0'),
            ('o-2', 'Order', 'running', '{"id":"2","qty":3}', '1.0.0'),
            ('r-1', 'Refund', 'suspended', '{"id":"9"}', '1.0.0'),
            ('o-0', 'Order', 'succeeded', '{"id":"0","qty":"not checked"}', '1.0.0');
          INSERT INTO shopx_activity_exits VALUES
            ('o-1', 'reserve', 1, '{"_tag":"Success","value":{"sku":"a"}}');`)

        // the build that started them, minus Refund: only r-1 is stranded
        const before = yield* duraflow(["upgrade-check", url, "--registry", fixture("registries.ts")])
        expect(before.code).toBe(1)
        expect(before.stdout).toMatch(/^o-1\s+Order\s+suspended\s+1\.0\.0\s+ok$/m)
        expect(before.stdout).toMatch(/^r-1\s+Refund\s+suspended\s+1\.0\.0\s+STRANDED\s+workflow\s+workflow Refund is not in this build/m)
        expect(before.stdout).toContain("shopx: 3 run(s) may resume, 1 stranded by this build")
        expect(before.stderr).toContain("r-1 (suspended) workflow: workflow Refund is not in this build")

        yield* sql`UPDATE shopx_runs SET status = 'failed' WHERE execution_id = 'r-1'`
        const ok = yield* duraflow(["upgrade-check", url, "--registry", fixture("registries.ts"), "--json"])
        expect(ok.code, ok.stderr).toBe(0)
        expect(JSON.parse(ok.stdout)).toMatchObject({ prefix: "shopx", ok: true, stranded: 0 })

        const renamed = yield* duraflow(["upgrade-check", url, "--registry", fixture("registry-renamed.ts")])
        expect(renamed.code).toBe(1)
        expect(renamed.stderr).toContain(
          "Order/o-1 (suspended) activity reserve: completed by the run, but Order declares no activity reserve"
        )
        expect(renamed.stderr).not.toContain("o-2")

        const missing = yield* duraflow(["upgrade-check", url, "--registry", fixture("nothing-here.ts")])
        expect(missing.code).toBe(2)
      }))
  })
})
