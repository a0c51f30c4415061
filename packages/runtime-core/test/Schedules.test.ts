/**
 * Schedules (issue 15, item 1) on the durable engine, real Postgres: two
 * replicas of one app on one database run each tick of an every-second cron
 * exactly once, with the tick's deterministic execution id in the runs
 * ledger; after a stop longer than a period the missed-tick policy holds
 * (the latest missed tick runs once, marked late; older ones are skipped;
 * with a tiny `SCHEDULE_MAX_AGE`, none runs).
 */
import { SqlClient } from "@effect/sql"
import { Activity, Workflow } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { fileURLToPath } from "node:url"
import { ConfigProvider, Context, Duration, Effect, Either, ExecutionStrategy, Exit, Layer, Option, Redacted, Schedule, Schema, Scope } from "effect"
import { AppRuntime, Database, TablePrefix, WorkflowLayer, WorkflowSchedule } from "../src/index.js"
import * as ShardLockStorage from "../src/internal/ShardLockStorage.js"
import { TestDatabase, TestProcess } from "../src/testing/index.js"

const scheduleProcess = fileURLToPath(new URL("./fixtures/schedule-process.ts", import.meta.url))

const prefix = TablePrefix.unsafeMake("sched")
const PERIOD = 1000

const Tock = Workflow.make({
  name: "Tock",
  payload: { at: Schema.String, late: Schema.Boolean, skipped: Schema.Number },
  success: Schema.Void,
  idempotencyKey: ({ at }) => at
})

const SqlLive = Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient)
const TockLayer = WorkflowLayer.make(Tock, {
  dependencies: SqlLive,
  execute: (payload, executionId) =>
    Activity.make({
      name: "record",
      execute: Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`INSERT INTO sched_effects (execution_id, at, late, skipped)
          VALUES (${executionId}, ${payload.at}::timestamptz, ${payload.late}, ${payload.skipped})`).pipe(
          Effect.asVoid,
          Effect.orDie
        )
    })
})

const everySecond = WorkflowSchedule.make({
  name: "tock",
  workflow: Tock,
  cron: "* * * * * *",
  payload: (tick) => ({ at: tick.at.toISOString(), late: tick.late, skipped: tick.skipped })
})

/** One replica of the app, with its own pool; `env` is all the configuration it reads. */
const replica = (url: string, name: string, env: Record<string, string> = {}) =>
  Layer.build(
    AppRuntime.layer({
      prefix,
      migrations: [],
      workflows: Layer.merge(TockLayer, everySecond),
      version: "1.0.0",
      sharding: { entityMessagePollInterval: Duration.millis(500), shardLockRefreshInterval: Duration.seconds(1) }
    }).pipe(
      Layer.provideMerge(Database.layer({ url: Redacted.make(url), applicationName: `sched-${name}` })),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
    )
  )

interface Effect_ {
  readonly execution_id: string
  readonly at: Date
  readonly late: boolean
  readonly skipped: number
}

const effects = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<Effect_>`SELECT execution_id, at, late, skipped FROM sched_effects ORDER BY at`)

const waitUntil = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean, what: string) =>
  read.pipe(
    Effect.filterOrFail(check, () => new Error(`timed out waiting for ${what}`)),
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds")))
  )

/** Every tick ran exactly once (one effect per execution id), with the deterministic id. */
const expectOncePerTick = (rows: ReadonlyArray<Effect_>) => {
  const ids = rows.map((r) => r.execution_id)
  expect(new Set(ids).size).toBe(ids.length)
  for (const r of rows) expect(r.execution_id).toBe(WorkflowSchedule.executionId("tock", new Date(r.at)))
}

/**
 * No tick lost unaccounted: between two consecutive runs lie exactly the ticks the later one
 * says it skipped (a run skips ticks only when late: the singleton moving to another replica
 * can take longer than a period of this every-second cron).
 */
const expectAccounted = (rows: ReadonlyArray<Effect_>) => {
  for (let i = 1; i < rows.length; i++) {
    const gap = new Date(rows[i]!.at).getTime() - new Date(rows[i - 1]!.at).getTime()
    expect(gap).toBe((rows[i]!.skipped + 1) * PERIOD)
    if (rows[i]!.skipped > 0) expect(rows[i]!.late).toBe(true)
  }
}

describe("WorkflowSchedule", () => {
  layer(TestDatabase.layer("schedules"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("two replicas: every tick runs once, in the ledger; after downtime the latest missed tick runs", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE sched_effects (execution_id text NOT NULL, at timestamptz NOT NULL,
          late boolean NOT NULL, skipped int NOT NULL)`
        // children of the test's scope: closed with it, should an assertion fail first
        const scopeA = yield* Effect.flatMap(Effect.scope, (s) => Scope.fork(s, ExecutionStrategy.sequential))
        const scopeB = yield* Effect.flatMap(Effect.scope, (s) => Scope.fork(s, ExecutionStrategy.sequential))
        const a = yield* replica(db.url, "a").pipe(Scope.extend(scopeA))
        const b = yield* replica(db.url, "b").pipe(Scope.extend(scopeB))

        // both replicas members, the shards split: from then on the singleton stays where it is,
        // and every tick runs once, any tick not run accounted for by the next run (whether a loop on
        // this shared machine wakes within the second is timing, not a property: not asserted)
        // the engine's membership is in the runtime's context, though not in its public type
        const status = <R>(ctx: Context.Context<R>) => Context.unsafeGet(ctx, ShardLockStorage.Membership).status
        yield* waitUntil(
          Effect.all([status(a), status(b)]),
          ([sa, sb]) => sa.ready && sb.ready && sa.runners === 2 && sb.runners === 2 && sa.shards + sb.shards === 300,
          "both replicas to hold shards"
        )
        const settled = Date.now() + PERIOD
        const steady = yield* waitUntil(
          effects,
          (rows) => rows.filter((r) => new Date(r.at).getTime() > settled).length >= 5,
          "five ticks with both replicas up"
        ).pipe(Effect.map((rows) => rows.filter((r) => new Date(r.at).getTime() > settled)))
        expectOncePerTick(steady)
        expectAccounted(steady)
        yield* Scope.close(scopeA, Exit.void)
        yield* waitUntil(effects, (rows) => rows.length >= steady.length + 3, "three more ticks on B alone")
        const running = yield* effects
        expectOncePerTick(running)
        expectAccounted(running)
        // the runs ledger lists them, with their execution ids and the version that started them
        const listed = yield* AppRuntime.listRuns({ workflow: "Tock", limit: 100 }).pipe(Effect.provide(b))
        expect(new Set(listed.map((r) => r.executionId))).toEqual(new Set(running.map((r) => r.execution_id)))
        expect(listed.every((r) => r.startedBy === "1.0.0")).toBe(true)
        // a figure, not a bound: how long after its tick an on-time run is in the ledger
        const lags = listed.filter((r) => running.some((e) => e.execution_id === r.executionId && !e.late))
          .map((r) => Date.parse(r.createdAt) - WorkflowSchedule.tickOf("tock", r.executionId).pipe(Option.getOrThrow).getTime())
          .sort((x, y) => x - y)
        console.log(`[figure] tick -> ledger row, on-time runs: p50 ${lags[Math.floor(lags.length / 2)]} ms, max ${lags.at(-1)} ms (n=${lags.length})`)

        // the whole app down for 3.5 periods
        yield* Scope.close(scopeB, Exit.void)
        const stoppedAt = Date.now()
        const before = (yield* effects).length
        yield* Effect.sleep(Duration.millis(PERIOD * 3.5))
        const restartedAt = Date.now()
        yield* replica(db.url, "c")
        const after = yield* waitUntil(effects, (rows) => rows.length >= before + 3, "ticks after the restart")
        expectOncePerTick(after)
        expectAccounted(after)
        const lastBefore = new Date(after[before - 1]!.at).getTime()
        const resumed = after.slice(before)
        // the first run after the restart is the catch-up: the latest tick missed (by the time the
        // loop ran), late, the older ones skipped; nothing ran for the ticks in between (later runs:
        // once per tick, every gap accounted, as checked above)
        const catchUp = resumed[0]!
        expect(catchUp.late).toBe(true)
        const catchUpAt = new Date(catchUp.at).getTime()
        expect(catchUpAt).toBeGreaterThan(restartedAt - PERIOD)
        expect(catchUp.skipped).toBe((catchUpAt - lastBefore) / PERIOD - 1)
        expect(catchUp.skipped).toBeGreaterThanOrEqual(2)
        expect(stoppedAt).toBeLessThan(restartedAt)
      }))

    it.scoped("missed ticks older than SCHEDULE_MAX_AGE are skipped", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE IF NOT EXISTS sched_effects (execution_id text NOT NULL, at timestamptz NOT NULL,
          late boolean NOT NULL, skipped int NOT NULL)`
        yield* sql`TRUNCATE sched_effects`
        const run = (name: string) =>
          Effect.gen(function*() {
            const scope = yield* Effect.flatMap(Effect.scope, (s) => Scope.fork(s, ExecutionStrategy.sequential))
            yield* replica(db.url, name, { SCHEDULE_MAX_AGE: "1 millis" }).pipe(Scope.extend(scope))
            return scope
          })
        const first = yield* run("d")
        yield* waitUntil(effects, (rows) => rows.length >= 2, "two ticks")
        yield* Scope.close(first, Exit.void)
        const stoppedAt = Date.now()
        const before = (yield* effects).length
        yield* Effect.sleep(Duration.millis(PERIOD * 2.5))
        const restartedAt = Date.now()
        const second = yield* run("e")
        const rows = yield* waitUntil(effects, (rows) => rows.length >= before + 2, "two ticks after the restart")
        yield* Scope.close(second, Exit.void)
        expectOncePerTick(rows)
        // the missed ticks (older than 1 ms when the loop found them) did not run: nothing for the
        // ticks of the downtime. The one late run allowed is of a tick the restarted loop found
        // within 1 ms of it being due (it looked at or after `restartedAt`): not older than the
        // maximum age, so it runs, as it should (about 1 restart in 500 lands there)
        const youngest = restartedAt - 1
        expect(rows.filter((r) => r.late && new Date(r.at).getTime() < youngest)).toEqual([])
        const downtime = rows.filter((r) => new Date(r.at).getTime() > stoppedAt && new Date(r.at).getTime() < youngest)
        expect(downtime).toEqual([])
        expect(rows.length).toBeGreaterThanOrEqual(before + 2)
      }))

    it.scoped("two replica processes: every tick runs once; one killed with SIGKILL, the other carries on", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const env = { DATABASE_URL: db.url, PREFIX: "schedproc" }
        const a = yield* TestProcess.spawnTs(scheduleProcess, { env })
        const b = yield* TestProcess.spawnTs(scheduleProcess, { env })
        yield* Effect.all([a.waitForEvent("ready", "90 seconds"), b.waitForEvent("ready", "90 seconds")])
        const rows = sql<Effect_ & { readonly pid: number }>`SELECT execution_id, at, late, skipped, pid
          FROM schedproc_ticks ORDER BY at`
        yield* waitUntil(rows, (r) => r.length >= 8, "eight ticks")
        yield* a.kill("SIGKILL")
        const killedAt = Date.now()
        const all = yield* waitUntil(
          rows,
          (r) => r.filter((x) => new Date(x.at).getTime() > killedAt + 3 * PERIOD).length >= 3,
          "three ticks after the kill"
        )
        yield* b.kill("SIGTERM")
        expectOncePerTick(all)
        expectAccounted(all)
        // after the kill, B runs them (the singleton moved if it was on A)
        const lastThree = all.slice(-3)
        expect(lastThree.every((r) => r.pid === b.pid)).toBe(true)
      }))

    it.effect("a bad cron or time zone fails the start with InvalidSchedule", () =>
      Effect.sync(() => {
        expect(Either.isLeft(WorkflowSchedule.parse("x", "not a cron"))).toBe(true)
        expect(Either.isLeft(WorkflowSchedule.parse("x", "* * * * *", "Mars/Olympus"))).toBe(true)
        expect(Either.isRight(WorkflowSchedule.parse("x", "0 3 * * *", "Europe/Berlin"))).toBe(true)
      }))
  })
})

describe("WorkflowSchedule, no database", () => {
it.scopedLive("the memory engine runs schedules in-process, with the same execution ids", () =>
    Effect.gen(function*() {
      const Ping = Workflow.make({ name: "Ping", payload: { at: Schema.String }, idempotencyKey: ({ at }) => at })
      const runtime = yield* Layer.build(AppRuntime.layerMemory({
        prefix: TablePrefix.unsafeMake("schedmem"),
        workflows: Layer.merge(
          WorkflowLayer.make(Ping, { dependencies: Layer.empty, execute: () => Effect.void }),
          WorkflowSchedule.make({
            name: "ping",
            workflow: Ping,
            cron: "* * * * * *",
            payload: (tick) => ({ at: tick.at.toISOString() })
          })
        )
      }).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))))
      const runs = yield* waitUntil(
        AppRuntime.listRuns({ workflow: "Ping" }).pipe(Effect.provide(runtime)),
        (runs) => runs.filter((r) => r.status === "succeeded").length >= 2,
        "two pings"
      )
      for (const r of runs) expect(Option.isSome(WorkflowSchedule.tickOf("ping", r.executionId))).toBe(true)
      expect(new Set(runs.map((r) => r.executionId)).size).toBe(runs.length)
    }))
})
