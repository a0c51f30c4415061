/**
 * Several app processes on ONE database: different prefixes run side by side
 * without waiting on each other's locks, own only their own tables and locks;
 * the same app started twice at once comes up twice and runs each workflow once.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import { TablePrefix } from "../src/index.js"
import { TestDatabase, TestProcess } from "../src/testing/index.js"

const appProcess = fileURLToPath(new URL("./fixtures/app-process.ts", import.meta.url))
const COUNT = 100
// @effect/cluster's shard lock expiry is 35 s, and the library's own one-key locks
// kept a second app idle for 17 s in DESIGN.md; a first workflow within 10 s can
// only happen when the second app never waited for the first one's locks.
const FIRST_WORKFLOW_BOUND_MS = 10_000

const startApp = (url: string, prefix: string, holdMs: number) =>
  TestProcess.spawnTs(appProcess, {
    env: { DATABASE_URL: url, PREFIX: prefix, COUNT: String(COUNT), HOLD_MS: String(holdMs), POLL_MS: "500" }
  })

describe("isolation between apps on one database", () => {
  layer(TestDatabase.layer("isolation"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("two prefixes in separate processes both make progress at the same time", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        // both stay alive long after finishing: a starved app would only run once the other exits
        const [a, b] = yield* Effect.all([startApp(db.url, "alpha", 60_000), startApp(db.url, "beta", 60_000)])
        const [aDone, bDone] = yield* Effect.all([a.waitForEvent("done", "90 seconds"), b.waitForEvent("done", "90 seconds")], {
          concurrency: 2
        })
        const aFirst = a.events().find((e) => e.event === "first")!
        const bFirst = b.events().find((e) => e.event === "first")!
        expect(aFirst.ms).toBeLessThan(FIRST_WORKFLOW_BOUND_MS)
        expect(bFirst.ms).toBeLessThan(FIRST_WORKFLOW_BOUND_MS)
        expect(aDone.ms).toBeLessThan(60_000)
        expect(bDone.ms).toBeLessThan(60_000)

        // while both are alive: every advisory lock is in one app's key space, held by that app's connection
        const spaces = new Map(["alpha", "beta"].map((p) => [TablePrefix.lockSpace(TablePrefix.unsafeMake(p)), p]))
        const locks = yield* sql<{ classid: number; objid: number; objsubid: number; application_name: string }>`
          SELECT l.classid::bigint AS classid, l.objid::bigint AS objid, l.objsubid, a.application_name
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`
        expect(locks.length).toBeGreaterThan(0)
        for (const lock of locks) {
          expect(lock.objsubid).toBe(2)
          const owner = spaces.get(Number(lock.classid))
          expect(owner).toBeDefined()
          expect(lock.application_name).toBe(owner)
        }
        expect(new Set(locks.map((l) => l.application_name))).toEqual(new Set(["alpha", "beta"]))

        // each app ran each of its workflows' activities exactly once, in its own tables
        for (const prefix of ["alpha", "beta"]) {
          const [row] = yield* sql<{ n: number; max: number }>`
            SELECT count(*)::int AS n, max(execs)::int AS max FROM ${sql(`${prefix}_effects`)}`
          expect(row).toEqual({ n: COUNT * 2, max: 1 })
        }
        const tables = yield* sql<{ relname: string }>`
          SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace`
        expect(tables.length).toBeGreaterThan(0)
        for (const { relname } of tables) expect(relname).toMatch(/^(alpha|beta)_/)
        yield* Effect.all([a.kill(), b.kill()])
      }))

    it.scoped("the same app started twice at the same moment: both come up, every workflow completes once", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const [a, b] = yield* Effect.all([startApp(db.url, "gamma", 0), startApp(db.url, "gamma", 0)])
        const [codeA, codeB] = yield* Effect.all([a.exited, b.exited], { concurrency: 2 })
        expect({ codeA, codeB, out: [...a.lines, ...b.lines].filter((l) => !l.startsWith("{")) }).toEqual({
          codeA: 0,
          codeB: 0,
          out: []
        })
        expect(a.events().map((e) => e.event)).toEqual(["ready", "first", "done"])
        expect(b.events().map((e) => e.event)).toEqual(["ready", "first", "done"])
        const [row] = yield* sql<{ n: number; max: number }>`
          SELECT count(*)::int AS n, max(execs)::int AS max FROM gamma_effects`
        expect(row).toEqual({ n: COUNT * 2, max: 1 })
        const ledger = yield* sql<{ id: number }>`SELECT id FROM gamma_migrations`
        expect(ledger).toEqual([{ id: 1 }])
      }))
  })
})
