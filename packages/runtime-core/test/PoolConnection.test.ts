/**
 * A pool connection taken at its first statement: no connection before it,
 * one session for all the statements after it (concurrent ones too), given
 * back by `release`; statements answer as @effect/sql-pg's do; an interrupted
 * statement is cancelled on the server; a broken connection is destroyed, not
 * reused; one given back while on its way goes straight back to the pool. The
 * relay: a transaction waiting for a connection goes with the COMMIT of one
 * that ends, and takes its connection, also while a connection is idle if one
 * is to end (within its patience); what fails is sorted out; the pool's other
 * waiters are served after a bounded number of them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Stream } from "effect"
import pg from "pg"
import * as PoolConnection from "../src/internal/PoolConnection.js"
import * as StatementBatch from "../src/internal/StatementBatch.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"
import { lateCancel } from "./fixtures/late-cancel.js"
import { lockGate } from "./fixtures/lock-gate.js"
import { overlappingQueries } from "./fixtures/overlapping-queries.js"
import { recordingPool } from "./fixtures/recording-client.js"
import { testPool } from "./fixtures/test-pool.js"

/** A pool of `max` connections on a fresh database, ended with the scope. */
const pool = (max: number) => Effect.map(testPool("pool_connection", max), ({ pool }) => pool)

/** Statements without parameters as a batch's steps: `"a;\nb"`, as the recording client shows a batch. */
const batch = (text: string) => text.split(";\n").map(StatementBatch.bare)

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

  it.scopedLive("a hold's concurrent statements go one at a time, in the order sent (pg 8 would queue them with a DeprecationWarning; pg 9 does not queue)", () =>
    Effect.gen(function*() {
      const { db, pool: p } = yield* testPool("pool_connection", 2)
      const overlapped = overlappingQueries(p)
      const warnings: Array<string> = []
      const onWarning = (warning: Error) => warnings.push(warning.message)
      process.on("warning", onWarning)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.off("warning", onWarning)))

      const held = PoolConnection.make(p)
      // (given back should the test fail half-way: the pool's end waits for it)
      yield* Effect.addFinalizer(() => Effect.sync(() => held.release()))
      const select = (n: number) =>
        Effect.map(
          held.connection.execute("SELECT $1::int AS n, pg_sleep(0.02)", [n], undefined),
          (rows) => rows[0].n as number
        )
      expect(yield* Effect.all([1, 2, 3, 4, 5].map((n) => select(n)), { concurrency: "unbounded" }))
        .toEqual([1, 2, 3, 4, 5])
      expect(overlapped()).toBe(0)

      // interrupted while waiting for its turn, a statement leaves the line: nothing to cancel
      const gate = yield* lockGate(db, 11)
      const running = yield* Effect.fork(held.connection.execute(gate.take, [], undefined))
      yield* gate.waiting()
      const waiting = yield* Effect.fork(select(7))
      yield* Effect.yieldNow()
      expect(Exit.isInterrupted(yield* Fiber.interrupt(waiting))).toBe(true)
      yield* gate.open
      expect(Exit.isSuccess(yield* Fiber.await(running))).toBe(true)
      expect(yield* select(8)).toBe(8)
      expect(overlapped()).toBe(0)
      held.release()
      // no cancel was sent: the connection went back to the pool, not destroyed
      expect(p.idleCount).toBe(1)
      expect(p.totalCount).toBe(1)
      yield* Effect.sleep("20 millis") // (warnings are emitted on the next tick)
      expect(warnings.filter((message) => message.includes("already executing a query"))).toEqual([])
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

  it.scopedLive("a statement whose cancel timed out: its connection is destroyed when given back, so the late cancel reaches no other statement", () =>
    Effect.gen(function*() {
      // a transactional step whose body is one statement (`LoneStatement`) gives its connection back so
      const b = yield* lateCancel((p) =>
        Effect.succeed((text: string) => {
          const held = PoolConnection.make(p)
          return Effect.ensuring(held.connection.execute(text, [], undefined), Effect.sync(() => held.release()))
        })
      )
      // the cancel waited 5 s (its limit) before the connection was given back; without being destroyed
      // it went to B, and the cancel, let through, ended B (57014)
      expect(b).toEqual(Exit.succeed([{ pg_sleep: "", statement: "b" }]))
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

  describe("batchOnce (a lone transactional step's one query)", () => {
    it.scopedLive("one batch on a connection taken for it and given back; a failed statement rolls the batch back and leaves the connection usable", () =>
      Effect.gen(function*() {
        const { pool: p } = yield* testPool("pool_connection", 2)
        yield* Effect.promise(() => p.query("CREATE TABLE t (id int PRIMARY KEY)"))
        const rows = yield* PoolConnection.batchOnce(p, [
          { text: "INSERT INTO t VALUES ($1) RETURNING id", values: [1] },
          { text: "INSERT INTO t VALUES ($1)", values: [2], rows: false }
        ])
        expect(rows).toEqual([[{ id: 1 }], []])
        expect(p.totalCount).toBe(1)
        expect(p.idleCount).toBe(1)
        // the second statement fails: the first is rolled back with it (one implicit transaction)
        const error = yield* Effect.flip(PoolConnection.batchOnce(p, [
          { text: "INSERT INTO t VALUES ($1)", values: [3] },
          { text: "INSERT INTO t VALUES ($1)", values: [1] }
        ]))
        expect(error._tag).toBe("SqlError")
        expect((error.cause as { code?: string }).code).toBe("23505")
        expect((yield* Effect.promise(() => p.query("SELECT id FROM t ORDER BY id"))).rows).toEqual([{ id: 1 }, { id: 2 }])
        // a statement's error is no reason to drop the session
        expect(p.totalCount).toBe(1)
        expect(p.idleCount).toBe(1)
      }), 60_000)

    it.scopedLive("interrupted while waiting for the pool: nothing is sent, and the connection goes back when it comes", () =>
      Effect.gen(function*() {
        const { pool: p } = yield* testPool("pool_connection", 1)
        yield* Effect.promise(() => p.query("CREATE TABLE t (id int PRIMARY KEY)"))
        const holder = yield* Effect.promise(() => p.connect())
        const waiting = yield* Effect.fork(PoolConnection.batchOnce(p, [{ text: "INSERT INTO t VALUES ($1)", values: [1] }]))
        yield* Eventually.until(Effect.sync(() => p.waitingCount === 1), "the batch waits for the pool")
        expect(Exit.isInterrupted(yield* Fiber.interrupt(waiting))).toBe(true)
        holder.release()
        yield* Eventually.until(Effect.sync(() => p.idleCount === 1), "the connection is back in the pool")
        expect(p.waitingCount).toBe(0)
        expect((yield* Effect.promise(() => p.query("SELECT id FROM t"))).rows).toEqual([])
      }), 60_000)

    it.scopedLive("its connection goes to a transaction waiting for one, as a hold's release gives it", () =>
      Effect.gen(function*() {
        const { pool: p } = yield* testPool("pool_connection", 1)
        yield* Effect.promise(() => p.query("CREATE TABLE t (id int PRIMARY KEY)"))
        // the batch waits on a lock the test holds, so that a transaction can queue behind it
        const gate = new pg.Client({ connectionString: (p.options as { connectionString: string }).connectionString })
        yield* Effect.acquireRelease(Effect.promise(() => gate.connect()), () => Effect.promise(() => gate.end()))
        yield* Effect.promise(() => gate.query("SELECT pg_advisory_lock(7)"))
        const lone = yield* Effect.fork(PoolConnection.batchOnce(p, [
          { text: "SELECT pg_advisory_xact_lock($1)", values: [7], rows: false },
          { text: "INSERT INTO t VALUES ($1)", values: [1], rows: false }
        ]))
        yield* Eventually.until(Effect.sync(() => p.idleCount === 0 && p.totalCount === 1), "the batch has the connection")
        const held = PoolConnection.make(p)
        const opening = yield* Effect.fork(held.open(batch("BEGIN;\nINSERT INTO t VALUES (2) RETURNING id")))
        yield* Eventually.until(Effect.sync(() => p.waitingCount === 1), "the transaction waits for the pool")
        let released = 0
        p.on("release", () => released++)
        yield* Effect.promise(() => gate.query("SELECT pg_advisory_unlock(7)"))
        expect(yield* Fiber.join(lone)).toEqual([[], []])
        // handed over without going back to the pool: the transaction's request left its queue
        expect(yield* Fiber.join(opening)).toEqual([[], [{ id: 2 }]])
        expect(released).toBe(0)
        expect(p.waitingCount).toBe(0)
        yield* held.finish(batch("COMMIT"))
        held.release()
        expect((yield* Effect.promise(() => p.query("SELECT id FROM t ORDER BY id"))).rows).toEqual([{ id: 1 }, { id: 2 }])
      }), 60_000)

    it.scopedLive("interrupted in flight: cancelled on the server, and its connection destroyed, so a late cancel reaches no other statement", () =>
      Effect.gen(function*() {
        const b = yield* lateCancel((p) => Effect.succeed((text: string) => PoolConnection.batchOnce(p, batch(text))))
        expect(b).toEqual(Exit.succeed([{ pg_sleep: "", statement: "b" }]))
      }), 60_000)
  })

  describe("the relay", () => {
    /** A pool of `max` connections (one by default) recording every query, with a table `t` (id int PRIMARY KEY). */
    const relayPoolOf = (max: number) => Effect.gen(function*() {
      const db = yield* TestDatabase.make("pool_relay")
      const statements: Array<string> = []
      const p = yield* recordingPool(db.url, statements, max)
      yield* Effect.promise(() => p.query("CREATE TABLE t (id int PRIMARY KEY)"))
      statements.length = 0
      const ids = Effect.promise(() => p.query("SELECT id FROM t ORDER BY id")).pipe(
        Effect.map((r) => r.rows.map((row) => row.id as number))
      )
      return { p, statements, ids }
    })
    const relayPool = relayPoolOf(1)

    /** `held` opens a transaction inserting `id` (as the relay's callers do: BEGIN with it). */
    const opening = (held: PoolConnection.Held, id: number) => held.open(batch(`BEGIN;\nINSERT INTO t VALUES (${id}) RETURNING id`))

    /** Rolls back and gives back, as `TransactionalActivity` does after a failed ending. */
    const rollBack = (held: PoolConnection.Held) =>
      Effect.ensuring(
        held.connection.executeUnprepared("ROLLBACK", [], undefined),
        Effect.sync(() => held.release())
      )

    /**
     * `a` holds the pool's one connection, its transaction open (inserting `aId`); `b` opens
     * one (inserting `bId`) and waits for the pool (`bOpening`).
     */
    const holdingAndWaiting = (p: pg.Pool, aId: number, bId: number) =>
      Effect.gen(function*() {
        const a = PoolConnection.make(p)
        const aRows = yield* opening(a, aId)
        const b = PoolConnection.make(p)
        const bOpening = yield* Effect.fork(opening(b, bId))
        yield* Eventually.until(Effect.sync(() => p.waitingCount === 1), "the second transaction waits for the pool")
        return { a, aRows, b, bOpening }
      })

    it.scopedLive("a transaction waiting for the connection goes with the COMMIT of the one holding it, and holds it next", () =>
      Effect.gen(function*() {
        const { ids, p, statements } = yield* relayPool
        const { a, aRows, b, bOpening } = yield* holdingAndWaiting(p, 1, 2)
        expect(aRows).toEqual([[], [{ id: 1 }]])
        yield* a.finish(batch("INSERT INTO t VALUES (10);\nCOMMIT"))
        // one query: a's last statements, then b's first; b has its rows, a nothing to give back
        expect(statements.at(-1)).toBe("INSERT INTO t VALUES (10);\nCOMMIT;\nBEGIN;\nINSERT INTO t VALUES (2) RETURNING id")
        // b's request in the pool's queue was withdrawn when its query went (left there, the
        // pool would answer it later only for the connection to go back)
        expect(p.waitingCount).toBe(0)
        expect(yield* Fiber.join(bOpening)).toEqual([[], [{ id: 2 }]])
        a.release()
        expect(b.taken()).toBe(true)
        expect(p.idleCount).toBe(0)
        // a committed; b's transaction is open on the connection (so nothing else can read yet)
        const outside = new pg.Client({ connectionString: (p.options as { connectionString: string }).connectionString })
        yield* Effect.acquireRelease(Effect.promise(() => outside.connect()), () => Effect.promise(() => outside.end()))
        expect((yield* Effect.promise(() => outside.query("SELECT id FROM t ORDER BY id"))).rows).toEqual([{ id: 1 }, { id: 10 }])
        yield* b.finish(batch("COMMIT"))
        b.release()
        expect(yield* ids).toEqual([1, 2, 10])
        expect(p.idleCount).toBe(1)
        expect(p.waitingCount).toBe(0)
      }), 60_000)

    it.scopedLive("with a connection idle, a transaction that begins while another is open waits for its COMMIT and goes with it; one alone does not wait", () =>
      Effect.gen(function*() {
        const { ids, p, statements } = yield* relayPoolOf(2)
        // patient for as long as the test may take: a wait that should not happen hangs it
        const a = PoolConnection.make(p, 600_000)
        expect(yield* opening(a, 1)).toEqual([[], [{ id: 1 }]])
        const b = PoolConnection.make(p, 600_000)
        const bOpening = yield* Effect.fork(opening(b, 2))
        yield* Effect.sleep("200 millis")
        // b waits for a's finish, not for the pool, which had room for another connection
        expect(statements).toEqual(["BEGIN;\nINSERT INTO t VALUES (1) RETURNING id"])
        expect(p.waitingCount).toBe(0)
        expect(p.totalCount).toBe(1)
        expect(bOpening.unsafePoll()).toBeNull()
        yield* a.finish(batch("COMMIT"))
        expect(statements.at(-1)).toBe("COMMIT;\nBEGIN;\nINSERT INTO t VALUES (2) RETURNING id")
        expect(yield* Fiber.join(bOpening)).toEqual([[], [{ id: 2 }]])
        a.release()
        yield* b.finish(batch("COMMIT"))
        b.release()
        // both on one connection
        expect(p.totalCount).toBe(1)
        expect(p.idleCount).toBe(1)
        expect(yield* ids).toEqual([1, 2])
      }), 60_000)

    it.scopedLive("a transaction waiting for a finish that does not come takes an idle connection after its patience", () =>
      Effect.gen(function*() {
        const { p, statements } = yield* relayPoolOf(2)
        const a = PoolConnection.make(p, 50)
        yield* opening(a, 1)
        // a's body goes on; b gives up waiting for it and sends its own first query
        const b = PoolConnection.make(p, 50)
        expect(yield* opening(b, 2)).toEqual([[], [{ id: 2 }]])
        expect(statements.at(-1)).toBe("BEGIN;\nINSERT INTO t VALUES (2) RETURNING id")
        expect(p.totalCount).toBe(2)
        for (const held of [b, a]) {
          yield* held.finish(batch("COMMIT"))
          held.release()
        }
        expect(statements.filter((s) => s === "COMMIT")).toHaveLength(2)
        expect(p.idleCount).toBe(2)
      }), 60_000)

    it.scopedLive("a request the relay served leaves no timer behind in the pool (its connectionTimeoutMillis)", () =>
      Effect.gen(function*() {
        const p = yield* pool(1)
        // as Database sets it: pg-pool arms a timer for each request it queues (unref'd: watched here)
        const timeout = 54_321
        ;(p.options as { connectionTimeoutMillis?: number }).connectionTimeoutMillis = timeout
        const armed = new Set<unknown>()
        const { clearTimeout: realClear, setTimeout: realSet } = globalThis
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            globalThis.setTimeout = ((f: () => void, ms?: number) => {
              const timer = realSet(f, ms)
              if (ms === timeout) armed.add(timer)
              return timer
            }) as typeof setTimeout
            globalThis.clearTimeout = ((timer: Parameters<typeof clearTimeout>[0]) => {
              armed.delete(timer)
              realClear(timer)
            }) as typeof clearTimeout
          }),
          () =>
            Effect.sync(() => {
              globalThis.setTimeout = realSet
              globalThis.clearTimeout = realClear
            })
        )
        const a = PoolConnection.make(p)
        const b = PoolConnection.make(p)
        const served = yield* Effect.gen(function*() {
          yield* a.open(batch("BEGIN;\nSELECT 1"))
          const bOpening = yield* Effect.fork(b.open(batch("BEGIN;\nSELECT 2 AS id")))
          yield* Eventually.until(Effect.sync(() => p.waitingCount === 1), "the second transaction waits for the pool")
          const waiting = armed.size
          yield* a.finish(batch("COMMIT"))
          const rows = yield* Fiber.join(bOpening)
          // served by the relay: its request left the pool's queue, and its timer with it (left to
          // fire, it held its callback for the whole timeout, then scanned the pool's queue)
          const left = armed.size
          yield* b.finish(batch("COMMIT"))
          return { waiting, rows, left }
        }).pipe(Effect.ensuring(Effect.sync(() => {
          a.release()
          b.release()
        })))
        expect(served).toEqual({ waiting: 1, rows: [[], [{ id: 2 }]], left: 0 })
        expect(p.idleCount).toBe(1)
      }), 60_000)

    it.scopedLive("the ending transaction's statement fails: it rolls back, and the waiting one's query is sent again alone", () =>
      Effect.gen(function*() {
        const { ids, p, statements } = yield* relayPool
        const { a, b, bOpening } = yield* holdingAndWaiting(p, 1, 2)
        // a's last INSERT hits the primary key (as an exit row recorded first by another execution)
        const failure = yield* Effect.flip(a.finish(batch("INSERT INTO t VALUES (1);\nCOMMIT")))
        expect((failure.cause as { code?: string }).code).toBe("23505")
        yield* rollBack(a)
        expect(yield* Fiber.join(bOpening)).toEqual([[], [{ id: 2 }]])
        yield* b.finish(batch("COMMIT"))
        b.release()
        // a left nothing; b's query went twice (with a's COMMIT, then alone) and committed once
        expect(yield* ids).toEqual([2])
        expect(statements.filter((s) => s.endsWith("BEGIN;\nINSERT INTO t VALUES (2) RETURNING id"))).toEqual([
          "INSERT INTO t VALUES (1);\nCOMMIT;\nBEGIN;\nINSERT INTO t VALUES (2) RETURNING id",
          "BEGIN;\nINSERT INTO t VALUES (2) RETURNING id"
        ])
      }), 60_000)

    it.scopedLive("the waiting transaction's statement fails: the ending one committed all the same, and the waiting one gets its own error", () =>
      Effect.gen(function*() {
        const { ids, p } = yield* relayPool
        yield* Effect.promise(() => p.query("INSERT INTO t VALUES (5)"))
        const { a, b, bOpening } = yield* holdingAndWaiting(p, 1, 5)
        // the statements answered before the error say whose it is: a's COMMIT landed, and a
        // has nothing to give back (the connection, b's transaction aborted, is b's)
        yield* a.finish(batch("INSERT INTO t VALUES (2);\nCOMMIT"))
        a.release()
        expect(b.taken()).toBe(true)
        const bFailure = yield* Effect.flip(Fiber.join(bOpening))
        expect((bFailure.cause as { code?: string }).code).toBe("23505")
        yield* rollBack(b)
        expect(yield* ids).toEqual([1, 2, 5])
        expect(p.idleCount).toBe(1)
      }), 60_000)

    it.scopedLive("interrupted while waiting, a transaction leaves the queue; while carried, its transaction is rolled back", () =>
      Effect.gen(function*() {
        const { ids, p } = yield* relayPool
        const { a, b, bOpening } = yield* holdingAndWaiting(p, 1, 2)
        yield* Fiber.interrupt(bOpening)
        expect(b.taken()).toBe(false)
        b.release()
        // nothing waits: a's COMMIT goes alone and the connection back to the pool
        yield* a.finish(batch("COMMIT"))
        a.release()
        expect(p.idleCount).toBe(1)
        expect(yield* ids).toEqual([1])

        const { a: c, b: d, bOpening: dOpening } = yield* holdingAndWaiting(p, 3, 4)
        // c's ending is slow; d is interrupted while its query travels with it
        const cFinish = yield* Effect.fork(c.finish(batch("SELECT pg_sleep(0.5);\nCOMMIT")))
        const watcher = new pg.Client({ connectionString: (p.options as { connectionString: string }).connectionString })
        yield* Effect.acquireRelease(Effect.promise(() => watcher.connect()), () => Effect.promise(() => watcher.end()))
        yield* Eventually.until(
          Effect.promise(() => watcher.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(0.5)'"))
            .pipe(Effect.map((r) => r.rows.length === 1)),
          "the combined batch runs (its first statement)"
        )
        yield* Fiber.interrupt(dOpening)
        yield* Fiber.join(cFinish)
        c.release()
        // d's transaction was begun with c's COMMIT: d holds the connection, to roll it back
        expect(d.taken()).toBe(true)
        yield* rollBack(d)
        expect(yield* ids).toEqual([1, 3])
        expect(p.idleCount).toBe(1)
      }), 60_000)

    it.scopedLive("the pool's other waiters are not kept waiting: a connection serves 8 transactions in a row, then goes back to the pool", () =>
      Effect.gen(function*() {
        const { ids, p, statements } = yield* relayPool
        const first = PoolConnection.make(p)
        yield* opening(first, 0)
        // a query of someone else waits in the pool's queue, then twelve transactions
        const other = yield* Effect.fork(Effect.promise(() => p.query("SELECT 'other' AS who")))
        const holds = Array.from({ length: 12 }, () => PoolConnection.make(p))
        const openings: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        for (const [i, held] of holds.entries()) {
          openings.push(yield* Effect.fork(opening(held, i + 1)))
          yield* Eventually.until(Effect.sync(() => p.waitingCount === i + 2), "the transaction waits for the pool")
        }
        // each ends once it holds the connection: the next one goes with its COMMIT
        for (const held of [first, ...holds]) {
          if (held !== first) yield* Fiber.join(openings[holds.indexOf(held)]!)
          yield* held.finish(batch("COMMIT"))
          held.release()
        }
        yield* Fiber.join(other)
        expect(yield* ids).toEqual(Array.from({ length: 13 }, (_, i) => i))
        const relayed = (s: string) => s.startsWith("COMMIT;\nBEGIN;")
        const otherAt = statements.indexOf("SELECT 'other' AS who")
        // eight relayed, then the other query; then the next one from the pool's queue, and the
        // last three relayed again (nothing else waits)
        expect(statements.slice(0, otherAt).filter(relayed)).toHaveLength(8)
        expect(statements.slice(otherAt).filter((s) => s.startsWith("BEGIN;"))).toHaveLength(1)
        expect(statements.slice(otherAt).filter(relayed)).toHaveLength(3)
        expect(p.waitingCount).toBe(0)
      }), 60_000)
  })
})
