/**
 * Retention: finished runs older than the retention age are deleted with every
 * row they own (runs ledger, engine messages and replies, activity exits and
 * transactional results); younger finished runs and runs that may still
 * resume are kept, however old; replicas never sweep at once; a live run
 * carries on through a sweep of 100k expired ones.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import { AppRuntime, Retention, TablePrefix, WorkflowLayer } from "../src/index.js"
import { ExpiredRuns, TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("ret")
const Go = DurableDeferred.make("go")

const Job = Workflow.make({
  name: "Job",
  payload: { id: Schema.String, wait: Schema.Boolean },
  success: Schema.String,
  idempotencyKey: (p) => p.id
})

const Jobs = WorkflowLayer.make(Job, {
  dependencies: Layer.empty,
  signals: [Go],
  execute: ({ id, wait }) =>
    Effect.gen(function*() {
      const done = yield* Activity.make({ name: "work", success: Schema.String, execute: Effect.succeed(`done ${id}`) })
      if (wait) yield* DurableDeferred.await(Go)
      return done
    })
})

// the sweeper daemon stays off: the tests call `sweep` themselves
const Runtime = AppRuntime.layer({ prefix, migrations: [], workflows: Jobs }).pipe(
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["RUNS_RETENTION", "off"]])))),
  Layer.provideMerge(TestDatabase.layer("retention"))
)

const EXPIRED = 100_000
const options = { age: Duration.days(14), batchSize: 5000 }

/** Rows any table holds for these execution ids. */
const rowsOf = (ids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(
      `SELECT (
        (SELECT count(*) FROM ret_runs WHERE execution_id = ANY($1::text[]))
        + (SELECT count(*) FROM ret_cluster_messages WHERE entity_id = ANY($1::text[]))
        + (SELECT count(*) FROM ret_cluster_replies r JOIN ret_cluster_messages m ON m.id = r.request_id
           WHERE m.entity_id = ANY($1::text[]))
        + (SELECT count(*) FROM ret_activity_exits WHERE execution_id = ANY($1::text[]))
        + (SELECT count(*) FROM ret_activity_results WHERE execution_id = ANY($1::text[])))::int AS n`,
      [ids]
    ).pipe(Effect.map(([row]) => row!.n)))

describe("Retention", () => {
  it("RUNS_RETENTION: a duration or off; anything else is a clear config error", () => {
    const read = (env: Record<string, string>) =>
      Effect.runSync(Effect.either(Effect.withConfigProvider(Retention.config, ConfigProvider.fromMap(new Map(Object.entries(env))))))
    const byDefault = read({})
    expect(byDefault._tag === "Right" && Option.map(byDefault.right, (o) => Duration.toDays(o.age))).toEqual(Option.some(14))
    const off = read({ RUNS_RETENTION: "off" })
    expect(off._tag === "Right" && Option.isNone(off.right)).toBe(true)
    const bad = read({ RUNS_RETENTION: "fortnight" })
    expect(bad._tag).toBe("Left")
    expect(String(bad._tag === "Left" && bad.left)).toMatch(/RUNS_RETENTION.*expected a duration/)
  })

  layer(Runtime, { timeout: 240_000, excludeTestServices: true })((it) => {
    it.effect("deletes expired finished runs with every row they own, keeps the rest, and a live run carries on", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* WorkflowEngine.WorkflowEngine
        // real runs: 20 finished, and one live run suspended on a signal
        const finished = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => ({ id: `f${i}`, wait: false })), (p) =>
          Effect.zipRight(Job.execute(p), Job.executionId(p)), { concurrency: 10 })
        const live = { id: "live", wait: true }
        const liveId = yield* Job.executionId(live)
        const liveRun = yield* Effect.fork(Job.execute(live))
        while ((yield* engine.poll(Job, liveId))?._tag !== "Suspended") yield* Effect.sleep("50 millis")
        expect(yield* rowsOf(finished)).toBeGreaterThanOrEqual(20 * 4)

        // everything is old now, finished or not; 10 finished runs stay young
        yield* sql`UPDATE ret_runs SET updated_at = now() - interval '30 days'`
        const young = finished.slice(0, 10)
        const expired = finished.slice(10)
        yield* sql.unsafe(`UPDATE ret_runs SET updated_at = now() - interval '13 days' WHERE execution_id = ANY($1::text[])`, [young])
        // and 100k synthetic expired runs, each with a ledger row, a message, a reply and an activity exit
        yield* ExpiredRuns.seed(prefix, { count: EXPIRED, tag: "syn", workflow: "Job", ageDays: 20 })

        // the sweep runs while the live run goes on: it is signalled halfway
        const t0 = Date.now()
        const sweeping = yield* Effect.fork(Retention.sweep(prefix, options))
        yield* engine.deferredDone(Go, { workflowName: Job.name, executionId: liveId, deferredName: Go.name, exit: Exit.void })
        expect(yield* Fiber.join(liveRun)).toBe("done live")
        const total = yield* Fiber.join(sweeping)
        console.log(`retention: ${total.runs} expired runs (${total.messages} messages, ${total.replies} replies, ` +
          `${total.activities} activity rows) deleted in ${total.batches} batches, ${((Date.now() - t0) / 1000).toFixed(1)} s`)
        expect(total.runs).toBe(EXPIRED + expired.length)

        // nothing is left of an expired run; young and live runs keep every row
        expect(yield* rowsOf(expired)).toBe(0)
        expect(yield* ExpiredRuns.rowsLeft(prefix, { count: EXPIRED, tag: "syn" })).toBe(0)
        expect((yield* sql.unsafe(`SELECT 1 FROM ret_runs WHERE execution_id = ANY($1::text[])`, [young])).length).toBe(10)
        expect(yield* rowsOf(young)).toBeGreaterThanOrEqual(10 * 4)
        // the live run finished after the sweep picked its batch: it is young now, and kept
        expect(yield* sql`SELECT status FROM ret_runs WHERE execution_id = ${liveId}`).toEqual([{ status: "succeeded" }])
        // a second sweep finds nothing
        expect((yield* Retention.sweep(prefix, options)).runs).toBe(0)
      }))

    it.effect("a run that may still resume is never deleted, however old", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* WorkflowEngine.WorkflowEngine
        const payload = { id: "old-suspended", wait: true }
        const id = yield* Job.executionId(payload)
        const run = yield* Effect.fork(Job.execute(payload))
        while ((yield* engine.poll(Job, id))?._tag !== "Suspended") yield* Effect.sleep("50 millis")
        yield* sql`UPDATE ret_runs SET updated_at = now() - interval '365 days' WHERE execution_id = ${id}`
        const before = yield* rowsOf([id])
        yield* Retention.sweep(prefix, { age: Duration.days(1) })
        expect(yield* rowsOf([id])).toBe(before)
        yield* engine.deferredDone(Go, { workflowName: Job.name, executionId: id, deferredName: Go.name, exit: Exit.void })
        expect(yield* Fiber.join(run)).toBe("done old-suspended")
      }))

    it.effect("one replica sweeps at a time: a batch while another holds the retention lock deletes nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO ret_runs (execution_id, workflow, status, updated_at) VALUES ('held', 'Job', 'succeeded', now() - interval '30 days')`
        const lockKey = `${TablePrefix.lockSpace(prefix)}, ${TablePrefix.RETENTION_LOCK_KEY}`
        // another session (another replica) holds the lock for its batch
        const other = yield* sql.reserve
        yield* other.executeRaw(`SELECT pg_advisory_lock(${lockKey})`, [])
        expect(yield* Retention.sweepBatch(prefix, options)).toMatchObject({ locked: false, runs: 0 })
        yield* other.executeRaw(`SELECT pg_advisory_unlock(${lockKey})`, [])
        expect(yield* Retention.sweepBatch(prefix, options)).toMatchObject({ locked: true, runs: 1 })
      }).pipe(Effect.scoped))
  })
})
