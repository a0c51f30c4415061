/**
 * A pool connection taken at its first statement: no connection before it,
 * one session for all the statements after it (concurrent ones too), given
 * back by `release`; statements answer as @effect/sql-pg's do; an interrupted
 * statement is cancelled on the server; a broken connection is destroyed, not
 * reused; one given back while on its way goes straight back to the pool.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import pg from "pg"
import * as PoolConnection from "../src/internal/PoolConnection.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"

/** A pool of `max` connections on a fresh database, ended with the scope. */
const pool = (max: number) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make("pool_connection")
    return yield* Effect.acquireRelease(
      Effect.sync(() => {
        const created = new pg.Pool({ connectionString: db.url, max })
        created.on("error", () => undefined)
        return created
      }),
      (created) => Effect.promise(() => created.end())
    )
  })

const pid = (held: PoolConnection.Held) =>
  Effect.map(held.connection.execute("SELECT pg_backend_pid() AS pid", [], undefined), (rows) => rows[0].pid as number)

describe("PoolConnection", () => {
  it.scopedLive("takes no connection before its first statement; all statements on one session; release gives it back", () =>
    Effect.gen(function*() {
      const p = yield* pool(4)
      const held = PoolConnection.make(p)
      expect(held.taken()).toBe(false)
      expect(p.totalCount).toBe(0)
      // concurrent first statements: one connection, shared
      const pids = yield* Effect.all([pid(held), pid(held), pid(held)], { concurrency: "unbounded" })
      expect(new Set(pids).size).toBe(1)
      expect(held.taken()).toBe(true)
      expect(p.totalCount).toBe(1)
      expect(p.idleCount).toBe(0)
      // a session: what one statement sets, the next sees
      yield* held.connection.execute("SET application_name = 'held'", [], undefined)
      expect(yield* held.connection.execute("SELECT current_setting('application_name') AS name", [], undefined))
        .toEqual([{ name: "held" }])
      held.release()
      expect(p.idleCount).toBe(1)
      // given back once: a statement after release fails instead of taking another connection
      const after = yield* Effect.flip(pid(held))
      expect(after._tag).toBe("SqlError")
      expect(p.totalCount).toBe(1)
    }), 60_000)

  it.scopedLive("answers as @effect/sql-pg does: rows, transformed rows, one array per statement, raw, values, a stream", () =>
    Effect.gen(function*() {
      const p = yield* pool(2)
      const held = PoolConnection.make(p)
      const c = held.connection
      expect(yield* c.execute("SELECT $1::int AS n", [7], undefined)).toEqual([{ n: 7 }])
      expect(yield* c.execute("SELECT 1 AS n", [], (rows) => rows.map((r) => ({ ...r, seen: true }))))
        .toEqual([{ n: 1, seen: true }])
      expect(yield* c.executeUnprepared("SELECT 1 AS a; SELECT 2 AS b", [], undefined)).toEqual([[{ a: 1 }], [{ b: 2 }]])
      expect(((yield* c.executeRaw("SELECT 3 AS n", [])) as pg.QueryResult).rows).toEqual([{ n: 3 }])
      expect(yield* c.executeValues("SELECT 4 AS n, 'x' AS s", [])).toEqual([[4, "x"]])
      // more rows than one cursor read (128)
      const streamed = yield* Stream.runCollect(c.executeStream("SELECT g AS n FROM generate_series(1, $1::int) g", [300], undefined))
      expect(Chunk.size(streamed)).toBe(300)
      expect(Chunk.unsafeLast(streamed)).toEqual({ n: 300 })
      const failed = yield* Effect.flip(c.execute("SELECT nope", [], undefined))
      expect(failed._tag).toBe("SqlError")
      // a failed statement leaves the session usable
      expect(yield* c.execute("SELECT 5 AS n", [], undefined)).toEqual([{ n: 5 }])
      held.release()
      expect(p.idleCount).toBe(p.totalCount)
    }), 60_000)

  it.scopedLive("an interrupted statement is cancelled on the server; the session answers the next one", () =>
    Effect.gen(function*() {
      const p = yield* pool(2)
      const held = PoolConnection.make(p)
      const running = yield* Effect.fork(held.connection.execute("SELECT pg_sleep(600)", [], undefined))
      // wait until the server runs it
      const watcher = new pg.Client({ connectionString: (p.options as { connectionString: string }).connectionString })
      yield* Effect.acquireRelease(Effect.promise(() => watcher.connect()), () => Effect.promise(() => watcher.end()))
      const sleeping = Effect.promise(() =>
        watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)' AND state = 'active'")
      ).pipe(Effect.map((r) => r.rows[0].n as number))
      yield* Eventually.until(Effect.map(sleeping, (n) => n === 1), "the server runs the statement")
      yield* Fiber.interrupt(running)
      // without the cancel this would wait for the sleep (10 minutes, past the test's limit)
      expect(yield* held.connection.execute("SELECT 1 AS n", [], undefined)).toEqual([{ n: 1 }])
      expect(yield* sleeping).toBe(0)
      held.release()
    }), 60_000)

  it.scopedLive("a connection released as broken, or that reported an error, is destroyed, not reused", () =>
    Effect.gen(function*() {
      const p = yield* pool(4)
      const broken = PoolConnection.make(p)
      yield* pid(broken)
      expect(p.totalCount).toBe(1)
      broken.release(true)
      expect(p.totalCount).toBe(0)

      const killed = PoolConnection.make(p)
      const killedPid = yield* pid(killed)
      const other = PoolConnection.make(p)
      yield* other.connection.execute("SELECT pg_terminate_backend($1)", [killedPid], undefined)
      // once the termination reaches it, its statements fail
      const error = yield* Eventually.some(Effect.option(Effect.flip(pid(killed))), "the terminated session's statement fails")
      expect(error._tag).toBe("SqlError")
      killed.release()
      other.release()
      // the dead session leaves the pool; the next statement gets a live one
      yield* Eventually.until(Effect.sync(() => p.totalCount === 1), "the dead session leaves the pool")
      const fresh = PoolConnection.make(p)
      expect(yield* pid(fresh)).not.toBe(killedPid)
      fresh.release()
    }), 60_000)

  it.scopedLive("released while its connection is on its way (an interrupted step): the connection goes straight back", () =>
    Effect.gen(function*() {
      const p = yield* pool(1)
      const first = PoolConnection.make(p)
      yield* pid(first)
      const waiting = PoolConnection.make(p)
      const statement = yield* Effect.fork(pid(waiting))
      yield* Eventually.until(Effect.sync(() => p.waitingCount === 1), "the statement waits for the pool")
      yield* Fiber.interrupt(statement)
      waiting.release()
      first.release()
      // the pool's only connection went to `waiting`, which gave it straight back
      yield* Eventually.until(Effect.sync(() => p.idleCount === 1), "the connection is back in the pool")
      expect(p.waitingCount).toBe(0)
      const next = PoolConnection.make(p)
      yield* pid(next)
      next.release()
      expect(p.idleCount).toBe(1)
    }), 60_000)
})
