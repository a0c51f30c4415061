/**
 * Schedules: a workflow started on a cron, declared next to its layer.
 *
 * ```ts
 * export const nightly = WorkflowSchedule.make({
 *   name: "revalidate-nightly",
 *   workflow: RevalidateOntologies,
 *   cron: "0 3 * * *",                       // 5 fields, or 6 with seconds first
 *   timeZone: "Europe/Berlin",               // IANA name; default UTC
 *   payload: (tick) => ({ scheduledAt: tick.at.toISOString() })
 * })
 * // in the app: workflows: Layer.mergeAll(RevalidateOntologies.layer, nightly)
 * ```
 *
 * - **One run per tick per app**, however many replicas run: the loop runs as
 *   a cluster singleton (`@effect/cluster` `Singleton`, on the replica that
 *   owns its shard; moved when that replica leaves), and each tick is claimed
 *   in `<prefix>_schedules` (`last_tick` only moves forward) in the same
 *   transaction as the run's ledger row and the engine's request. A singleton
 *   briefly alive on two replicas (a shard hand-over) still starts one run.
 * - **Deterministic execution ids**: `<schedule name>@<tick, ISO UTC>`, e.g.
 *   `revalidate-nightly@2026-11-28T02:00:00.000Z`; the run is in the runs
 *   ledger (`GET /runs`) like any other.
 * - **Missed ticks** (the app was down, or every replica was busy): when the
 *   loop finds ticks after the last one handled, it runs the LATEST of them
 *   only, with `tick.late = true` and `tick.skipped` = how many older ones
 *   it skipped; when even the latest is older than `maxAge` (option, else
 *   `SCHEDULE_MAX_AGE`, else 1 day), it runs none and moves on. A schedule
 *   seen for the first time starts with the next tick (no backfill).
 *
 * Why not `ClusterCron`: its job gets no tick time (no per-tick execution id),
 * and after downtime it runs the OLDEST pending tick (the one it had
 * scheduled before going down), then computes the next one from now.
 *
 * `SCHEDULES=off` disables every schedule in a process (e.g. a replica
 * reserved for HTTP, or a test); the memory engine runs them in-process.
 */
import { Sharding, Singleton } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { WorkflowEngine } from "@effect/workflow"
import type { Workflow } from "@effect/workflow"
import { Clock, Config, Cron, Duration, Effect, Either, Layer, Option, Ref, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as Retry from "./Retry.js"
import { RunStore } from "./internal/RunStore.js"
import { InvalidSchedule } from "./RuntimeError.js"
import * as TablePrefix from "./TablePrefix.js"
import { WorkflowRuntime } from "./WorkflowRuntime.js"

export { InvalidSchedule }

/** What a scheduled run is started for. */
export interface Tick {
  /** The tick's time. */
  readonly at: Date
  /** Found after the fact (downtime, a late loop) rather than woken for on time. */
  readonly late: boolean
  /** Older missed ticks skipped in favour of this one. */
  readonly skipped: number
}

export interface Options<W extends Workflow.Any> {
  /** Unique per app; the prefix of every execution id it starts. */
  readonly name: string
  readonly workflow: W
  /** A cron expression: 5 fields (minute first) or 6 (seconds first). */
  readonly cron: string
  /** An IANA time zone the cron is read in (e.g. "Europe/Berlin"); default UTC. */
  readonly timeZone?: string | undefined
  /** The payload of the run of `tick`. */
  readonly payload: (tick: Tick) => W["payloadSchema"]["Type"]
  /** Missed ticks older than this are never run (default `SCHEDULE_MAX_AGE`, else 1 day). */
  readonly maxAge?: Duration.DurationInput | undefined
}

/** The execution id of the run of `schedule` for the tick at `at`. */
export const executionId = (schedule: string, at: Date): string => `${schedule}@${at.toISOString()}`

/** The tick an execution id of `schedule` is for, if it is one. */
export const tickOf = (schedule: string, id: string): Option.Option<Date> => {
  if (!id.startsWith(`${schedule}@`)) return Option.none()
  const at = new Date(id.slice(schedule.length + 1))
  return Number.isNaN(at.getTime()) ? Option.none() : Option.some(at)
}

/** Parses `cron` in `timeZone`; an `InvalidSchedule` naming the schedule otherwise. */
export const parse = (name: string, cron: string, timeZone?: string): Either.Either<Cron.Cron, InvalidSchedule> => {
  try {
    return Either.mapLeft(
      Cron.parse(cron, timeZone ?? "UTC"),
      (e) => new InvalidSchedule({ schedule: name, reason: `cron ${JSON.stringify(cron)}: ${e.message}` })
    )
  } catch (e) {
    return Either.left(
      new InvalidSchedule({ schedule: name, reason: `time zone ${JSON.stringify(timeZone)}: ${String(e)}` })
    )
  }
}

/** `SCHEDULES`: `off` disables the schedules of this process. */
export const enabledConfig: Config.Config<boolean> = Config.string("SCHEDULES").pipe(
  Config.withDefault("on"),
  Config.map((v) => !["off", "false", "0", "no"].includes(v.trim().toLowerCase()))
)

/** `SCHEDULE_MAX_AGE`: missed ticks older than this are skipped (default 1 day). */
export const maxAgeConfig: Config.Config<Duration.Duration> = Config.duration("SCHEDULE_MAX_AGE").pipe(
  Config.withDefault(Duration.days(1))
)

/** The latest tick at or before `now` (`Cron.prev` steps back from the whole second before it). */
export const latestTick = (cron: Cron.Cron, now: Date): Date => {
  let tick = Cron.prev(cron, now)
  for (let next = Cron.next(cron, tick); next.getTime() <= now.getTime(); next = Cron.next(cron, next)) tick = next
  return tick
}

/** How many ticks of `cron` lie strictly between `after` and `before` (capped). */
const ticksBetween = (cron: Cron.Cron, after: Date, before: Date, cap = 100_000) => {
  let n = 0
  for (const t of Cron.sequence(cron, after)) {
    if (t.getTime() >= before.getTime() || n >= cap) break
    n++
  }
  return n
}

/**
 * The schedule's layer: put it next to the workflow's layer in the app's
 * `workflows`. Fails the app's start with `InvalidSchedule` on a bad cron or
 * time zone.
 */
export const make = <W extends Workflow.Any>(
  options: Options<W>
): Layer.Layer<never, InvalidSchedule | ConfigError, WorkflowEngine.WorkflowEngine | WorkflowRuntime> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const cron = yield* parse(options.name, options.cron, options.timeZone)
    if (!(yield* enabledConfig)) return Layer.empty
    const maxAge = options.maxAge === undefined ? yield* maxAgeConfig : Duration.decode(options.maxAge)
    const engine = yield* WorkflowEngine.WorkflowEngine
    const runtime = yield* WorkflowRuntime
    const store = yield* Effect.serviceOption(RunStore)
    const maybeSql = yield* Effect.serviceOption(SqlClient.SqlClient)
    const sharding = yield* Effect.serviceOption(Sharding.Sharding)
    const workflow = options.workflow as unknown as Workflow.Workflow<string, any, any, any>
    const memoryLast = yield* Ref.make<Date | undefined>(undefined)

    const durable = runtime.mode === "durable" && Option.isSome(maybeSql)
    const table = TablePrefix.table(runtime.prefix, "schedules")

    /** The last tick handled; a schedule seen for the first time starts at `initial`. */
    const lastTick = (initial: Date) =>
      Option.match(maybeSql, {
        onNone: () =>
          Effect.flatMap(Ref.get(memoryLast), (last) =>
            last !== undefined ? Effect.succeed(last) : Effect.as(Ref.set(memoryLast, initial), initial)),
        onSome: (sql) =>
          Effect.gen(function*() {
            const t = sql(table)
            yield* sql`INSERT INTO ${t} (name, last_tick) VALUES (${options.name}, ${initial})
              ON CONFLICT (name) DO NOTHING`
            const [row] = yield* sql<{ lastTick: Date }>`SELECT last_tick AS "lastTick" FROM ${t}
              WHERE name = ${options.name}`
            return new Date(row!.lastTick)
          })
      })

    /** Moves the last tick to `at` if it is earlier; true when this caller moved it (it owns the tick). */
    const claim = (at: Date) =>
      Option.match(maybeSql, {
        onNone: () => Ref.modify(memoryLast, (last) => last === undefined || last < at ? [true, at] : [false, last]),
        onSome: (sql) =>
          Effect.map(
            sql`UPDATE ${sql(table)} SET last_tick = ${at}, updated_at = clock_timestamp()
              WHERE name = ${options.name} AND last_tick < ${at} RETURNING 1`,
            (rows) => rows.length > 0
          )
      })

    /** Claims the tick and starts its run: one transaction on the durable engine. */
    const start = (tick: Tick) => {
      const id = executionId(options.name, tick.at)
      const payload = options.payload(tick)
      const execute = engine.execute(workflow, { executionId: id, payload, discard: true }) as Effect.Effect<string>
      const ledger = Option.match(store, {
        onNone: () => Effect.void,
        // the ledger keeps the payload encoded (JSON), as a start through the API does
        onSome: (runs) =>
          Schema.encodeUnknown(workflow.payloadSchema as Schema.Schema<unknown, unknown>)(payload).pipe(
            Effect.orDie,
            Effect.flatMap((encoded) => runs.running(workflow.name, id, encoded)),
            Effect.asVoid
          )
      })
      if (durable) {
        const sql = (maybeSql as Option.Some<SqlClient.SqlClient>).value
        return sql.withTransaction(Effect.gen(function*() {
          if (!(yield* claim(tick.at))) return false
          yield* ledger
          yield* execute
          yield* sql`SELECT pg_notify(${TablePrefix.wakeChannel(runtime.prefix)}, 'wake')`
          return true
        }))
      }
      return Effect.flatMap(claim(tick.at), (mine) => mine ? Effect.as(Effect.zipRight(execute, ledger), true) : Effect.succeed(false))
    }

    const log = Effect.annotateLogs({ module: "WorkflowSchedule", schedule: options.name })

    /** Handles the latest tick due at `now`, if it is after the last one handled. */
    const step = (now: Date, expected: Date | undefined) =>
      Effect.gen(function*() {
        const due = latestTick(cron, now)
        const last = yield* lastTick(due)
        if (due.getTime() <= last.getTime()) return
        const skipped = ticksBetween(cron, last, due)
        const late = skipped > 0 || expected === undefined || expected.getTime() !== due.getTime()
        if (late && now.getTime() - due.getTime() > Duration.toMillis(maxAge)) {
          if (yield* claim(due)) {
            yield* Effect.logWarning(`Skipped ${skipped + 1} missed tick(s) up to ${due.toISOString()}: older than ${Duration.format(maxAge)}`)
          }
          return
        }
        const started = yield* start({ at: due, late, skipped })
        if (started && (late || skipped > 0)) {
          yield* Effect.logInfo(`Ran missed tick ${due.toISOString()} (skipped ${skipped} older)`)
        }
      }).pipe(log)

    const loop = Effect.gen(function*() {
      let expected: Date | undefined = undefined
      while (true) {
        const now = new Date(yield* Clock.currentTimeMillis)
        yield* step(now, expected).pipe(
          Effect.retry(Retry.ledger),
          Effect.catchAllCause((cause) => Effect.logWarning("Schedule tick failed; trying again at the next tick", cause)),
          log
        )
        // the first tick after the `now` the step looked at (not after the time it is now: a timer
        // that fired a little early would otherwise step over the tick it was set for)
        const next = Cron.next(cron, now)
        expected = next
        const after = yield* Clock.currentTimeMillis
        yield* Effect.sleep(Duration.millis(Math.max(0, next.getTime() - after)))
      }
    })

    return Option.match(sharding, {
      // one loop per app: the replica owning the singleton's shard runs it
      onSome: (s) =>
        Singleton.make(`duraflow/schedule/${options.name}`, loop).pipe(Layer.provide(Layer.succeed(Sharding.Sharding, s))),
      onNone: () => Layer.scopedDiscard(Effect.forkScoped(loop))
    })
  }))
