import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Redacted, Scope } from "effect"
import * as GroupCommit from "../src/internal/GroupCommit.js"
import * as RunStore from "../src/internal/RunStore.js"
import { Database, TablePrefix } from "../src/index.js"
import * as RuntimeTables from "../src/internal/RuntimeTables.js"
import { TestDatabase } from "../src/testing/index.js"
import { noteCommitModes } from "./fixtures/commit-modes.js"

/** A writer whose statements are recorded (`n` alone, `[n, m]` grouped) and, while `gate` is set, wait for it. */
const recordingWith = (limits: { readonly maxBatch: number; readonly maxBytes?: number }) => Effect.gen(function*() {
  const log: Array<number | ReadonlyArray<number>> = []
  let gate: Deferred.Deferred<void> | undefined
  const statement = <A>(entry: number | ReadonlyArray<number>, refused: boolean, answer: A) =>
    Effect.suspend(() => {
      log.push(entry)
      const wait = gate === undefined ? Effect.void : Deferred.await(gate)
      return Effect.zipRight(wait, refused ? Effect.fail("refused" as const) : Effect.succeed(answer))
    })
  const writer = yield* GroupCommit.make({
    ...limits,
    // an item's size in bytes is its value, its key the value as text
    size: (item: number) => Math.abs(item),
    key: (item: number) => String(item),
    write: (items: ReadonlyArray<number>) => statement(items, items.includes(-1), items.map((n) => n * 10)),
    alone: (item: number) => statement(item, item === -1, item * 10)
  })
  const hold = Effect.tap(Deferred.make<void>(), (d) => Effect.sync(() => (gate = d)))
  const open = Effect.suspend(() =>
    gate === undefined ? Effect.void : Deferred.succeed(gate, undefined).pipe(
      Effect.zipRight(Effect.sync(() => (gate = undefined)))
    )
  )
  /** The write of 1 as a statement in flight, held until `open`: later writes queue behind it. */
  const holdFirst = Effect.gen(function*() {
    yield* hold
    const first = yield* Effect.fork(writer.submit(1))
    yield* statements(log, log.length + 1)
    return first
  })
  return { writer, log, hold, holdFirst, open }
})

const recording = recordingWith({ maxBatch: 3 })

/** Waits until `n` statements were written (writers run in their own fibers). */
const statements = (log: ReadonlyArray<unknown>, n: number) => Effect.repeat(Effect.yieldNow(), { until: () => log.length >= n })

/** Lets every forked fiber run as far as it can. */
const settle = Effect.repeat(Effect.yieldNow(), { times: 20 })

describe("GroupCommit", () => {
  it.scoped("a write with nothing in flight goes alone; writes made while a statement is in flight share the next one", () =>
    Effect.gen(function*() {
      const { hold, log, open, writer } = yield* recording
      expect(yield* writer.submit(1)).toBe(10)
      expect(log).toEqual([1])
      yield* hold
      const first = yield* Effect.fork(writer.submit(2))
      yield* statements(log, 2)
      // queued behind the statement in flight: 5 writes, at most 3 per statement
      const rest = yield* Effect.fork(Effect.all([3, 4, 5, 6, 7].map(writer.submit), { concurrency: "unbounded" }))
      yield* settle
      expect(log).toEqual([1, 2])
      yield* open
      expect(yield* Fiber.join(first)).toBe(20)
      expect(yield* Fiber.join(rest)).toEqual([30, 40, 50, 60, 70])
      expect(log).toEqual([1, 2, [3, 4, 5], [6, 7]])
      // all written: the next write goes alone again
      expect(yield* writer.submit(8)).toBe(80)
      expect(log).toEqual([1, 2, [3, 4, 5], [6, 7], 8])
    }))

  it.scoped("a statement takes at most maxBytes of writes (and always at least one)", () =>
    Effect.gen(function*() {
      const { holdFirst, log, open, writer } = yield* recordingWith({ maxBatch: 100, maxBytes: 10 })
      const first = yield* holdFirst
      const rest = yield* Effect.fork(Effect.all([4, 5, 3, 20, 1].map(writer.submit), { concurrency: "unbounded" }))
      yield* settle
      yield* open
      expect(yield* Fiber.join(first)).toBe(10)
      expect(yield* Fiber.join(rest)).toEqual([40, 50, 30, 200, 10])
      expect(log).toEqual([1, [4, 5], [3], [20], [1]])
    }))

  it.scoped("a statement writes each key once, in key order; a key already in it goes alone after it", () =>
    Effect.gen(function*() {
      const { holdFirst, log, open, writer } = yield* recording
      const first = yield* holdFirst
      const rest = yield* Effect.fork(Effect.all([7, 3, 7].map(writer.submit), { concurrency: "unbounded" }))
      yield* settle
      yield* open
      expect(yield* Fiber.join(first)).toBe(10)
      expect(yield* Fiber.join(rest)).toEqual([70, 30, 70])
      expect(log).toEqual([1, [3, 7], 7])
    }))

  it.scoped("a failed statement fails each of its writes; the next statement goes on", () =>
    Effect.gen(function*() {
      const { holdFirst, log, open, writer } = yield* recording
      const first = yield* holdFirst
      const failing = yield* Effect.fork(Effect.all([-1, 2].map((n) => Effect.exit(writer.submit(n))), { concurrency: "unbounded" }))
      const after = yield* Effect.fork(Effect.all([3, 4].map((n) => Effect.exit(writer.submit(n))), { concurrency: "unbounded" }))
      yield* settle
      yield* open
      expect(yield* Fiber.join(first)).toBe(10)
      expect(yield* Fiber.join(failing)).toEqual([Exit.fail("refused"), Exit.fail("refused")])
      // 3 shared the failed statement; 4 went in the next one
      expect(yield* Fiber.join(after)).toEqual([Exit.fail("refused"), Exit.succeed(40)])
      expect(log).toEqual([1, [-1, 2, 3], [4]])
    }))

  it.scoped("a caller inside a SQL transaction writes alone, in its transaction, even while a statement is in flight", () =>
    Effect.gen(function*() {
      const { holdFirst, log, open, writer } = yield* recording
      const first = yield* holdFirst
      const inTransaction = yield* Effect.fork(writer.submit(5).pipe(
        Effect.provideService(SqlClient.TransactionConnection, [undefined as never, 1])
      ))
      yield* statements(log, 2)
      expect(log).toEqual([1, 5])
      yield* open
      expect(yield* Fiber.join(inTransaction)).toBe(50)
      expect(yield* Fiber.join(first)).toBe(10)
    }))

  it.effect("closing the writer's scope answers the writes still queued (interrupted, not left hanging)", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { holdFirst, log, open, writer } = yield* Scope.extend(recording, scope)
      const first = yield* holdFirst
      const queued = yield* Effect.fork(Effect.all([2, 3].map((n) => Effect.exit(writer.submit(n))), { concurrency: "unbounded" }))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const exits = yield* Fiber.join(queued)
      expect(exits.every((exit) => Exit.isFailure(exit) && Exit.isInterrupted(exit))).toBe(true)
      // the write in flight ends as its statement does
      yield* open
      expect(yield* Fiber.join(first)).toBe(10)
      expect(log).toEqual([1])
    }))
})

describe("grouped writes on Postgres", () => {
  it.scopedLive("the runs ledger's running write: one statement for executions starting together, each its own answer", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("group_commit")
      const prefix = TablePrefix.unsafeMake("grouped")
      const context = yield* Layer.build(
        RuntimeTables.layer(prefix).pipe(Layer.provideMerge(Database.layer({ url: Redacted.make(db.url) })))
      )
      yield* Effect.gen(function*() {
        const store = yield* RunStore.make(prefix, "v1")
        const sql = yield* SqlClient.SqlClient
        // a finished run: its running write answers false and changes nothing
        yield* store.running("W", "done", { n: 0 })
        yield* store.finished("W", "done", { status: "succeeded", result: 1 })
        const ids = ["a", "b", "done", "a", "c"]
        const answers = yield* Effect.all(
          ids.map((id, i) => store.running("W", id, { n: i })),
          { concurrency: "unbounded" }
        )
        expect(answers).toEqual([true, true, false, true, true])
        const rows = yield* sql<{ execution_id: string; status: string; payload: unknown; started_by: string }>`
          SELECT execution_id, status, payload, started_by FROM grouped_runs ORDER BY execution_id`
        expect(rows).toEqual([
          { execution_id: "a", status: "running", payload: { n: 0 }, started_by: "v1" },
          { execution_id: "b", status: "running", payload: { n: 1 }, started_by: "v1" },
          { execution_id: "c", status: "running", payload: { n: 4 }, started_by: "v1" },
          { execution_id: "done", status: "succeeded", payload: { n: 0 }, started_by: "v1" }
        ])
        // inside a transaction the write is the transaction's: rolled back with it
        yield* sql.withTransaction(Effect.zipRight(store.running("W", "rolled", null), Effect.fail("no"))).pipe(Effect.ignore)
        expect(yield* sql`SELECT 1 FROM grouped_runs WHERE execution_id = 'rolled'`).toEqual([])
      }).pipe(Effect.provide(context))
    }), 60_000)

  it.scopedLive("the running write commits without waiting for the WAL flush, in its own transaction only", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("async_commit")
      const prefix = TablePrefix.unsafeMake("grouped")
      // one connection: a setting that outlived its statement would show in the next one
      const context = yield* Layer.build(
        RuntimeTables.layer(prefix).pipe(
          Layer.provideMerge(Database.layer({ url: Redacted.make(db.url), maxConnections: 1 }))
        )
      )
      yield* Effect.gen(function*() {
        const store = yield* RunStore.make(prefix, "v1")
        const sql = yield* SqlClient.SqlClient
        // each write of a ledger row notes the commit mode of its transaction
        const modes = yield* noteCommitModes("grouped_runs", ["execution_id", "status"])
        const setting = Effect.map(sql<{ mode: string }>`SELECT current_setting('synchronous_commit') AS mode`, (rows) => rows[0]!.mode)

        // alone, then several at once (grouped behind the first)
        expect(yield* store.running("W", "a", null)).toBe(true)
        expect(yield* setting).toBe("on")
        yield* Effect.all(["b", "c", "d"].map((id) => store.running("W", id, null)), { concurrency: "unbounded" })
        expect(yield* setting).toBe("on")
        // the outcome commits synchronously
        yield* store.finished("W", "a", { status: "succeeded", result: 1 })
        // in a caller's transaction the write is that transaction's, which stays synchronous
        const inside = yield* sql.withTransaction(Effect.zipRight(store.running("W", "t", null), setting))
        expect(inside).toBe("on")
        expect(yield* setting).toBe("on")
        expect(yield* modes).toEqual([
          { execution_id: "a", status: "running", mode: "off" },
          { execution_id: "a", status: "succeeded", mode: "on" },
          { execution_id: "b", status: "running", mode: "off" },
          { execution_id: "c", status: "running", mode: "off" },
          { execution_id: "d", status: "running", mode: "off" },
          { execution_id: "t", status: "running", mode: "on" }
        ])
      }).pipe(Effect.provide(context))
    }), 60_000)
})
