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
// Longer than any test may run: an app stays alive (holding its shard locks) until the test
// kills it, so a starved app could only make progress after the kill, never before.
const HOLD_FOREVER_MS = 3_600_000

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
        // both stay alive after finishing, holding their locks: with shared lock numbers the second app
        // would wait for the first one's locks, which are never released while the test runs
        const [a, b] = yield* Effect.all([startApp(db.url, "alpha", HOLD_FOREVER_MS), startApp(db.url, "beta", HOLD_FOREVER_MS)])
        const alive = (p: TestProcess.TestProcess) => p.child.exitCode === null && p.child.signalCode === null
        // the deadline only turns a starved app into a failure instead of a hang; it is not a speed bound
        yield* Effect.all([a.waitForEvent("done", "150 seconds"), b.waitForEvent("done", "150 seconds")], {
          concurrency: 2
        })
        // all of each app's runs completed while the other app was alive...
        expect({ alpha: alive(a), beta: alive(b) }).toEqual({ alpha: true, beta: true })

        // ...and holding its shard locks: every advisory lock is in one app's key space, held by that app's connection
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
