/**
 * Retention: an app deletes its finished runs (succeeded, failed, cancelled)
 * once they are older than `RUNS_RETENTION` (default 14 days), with every row
 * they own: the runs ledger row, the engine's messages and replies of the
 * execution (its workflow entity and its durable clock share the execution
 * id), its recorded activity exits and transactional results. A run that may
 * still resume (running, suspended) is never touched, however old.
 *
 * Deleted in bounded batches (`RUNS_RETENTION_BATCH`, default 1000 runs), each
 * one statement in its own transaction, taken only by the replica that holds
 * the app's retention lock for that transaction (`TablePrefix.RETENTION_LOCK_KEY`
 * in the app's key space): replicas never delete the same rows at once, and
 * other apps never wait. Between batches the sweeper yields, so live runs keep
 * the database; a sweep runs at start and every `RUNS_RETENTION_INTERVAL`
 * (default 10 minutes). `RUNS_RETENTION=off` turns it off.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, ConfigError, Duration, Effect, Either, Layer, Option, Schedule } from "effect"
import * as TablePrefix from "./TablePrefix.js"

export interface Options {
  /** Finished runs whose last update is older than this are deleted. */
  readonly age: Duration.DurationInput
  /** Runs per batch (one statement, one transaction). */
  readonly batchSize?: number | undefined
  /** Pause between sweeps. */
  readonly interval?: Duration.DurationInput | undefined
}

/** What one batch deleted. */
export interface Deleted {
  readonly runs: number
  readonly messages: number
  readonly replies: number
  readonly activities: number
  /** false when another replica held the retention lock: nothing was tried. */
  readonly locked: boolean
}

/** `RUNS_RETENTION`: a duration such as `14 days` or `12 hours`, or `off`. */
const age: Config.Config<Option.Option<Duration.Duration>> = Config.string("RUNS_RETENTION").pipe(
  Config.withDefault("14 days"),
  Config.mapOrFail((raw) => {
    if (raw.trim().toLowerCase() === "off") return Either.right(Option.none())
    return Option.match(Duration.decodeUnknown(raw.trim()), {
      onNone: () =>
        Either.left(ConfigError.InvalidData(["RUNS_RETENTION"], `expected a duration such as "14 days", or "off", got ${JSON.stringify(raw)}`)),
      onSome: (d) => Either.right(Option.some(d))
    })
  })
)

/** `RUNS_RETENTION` (a duration, or `off`), `RUNS_RETENTION_BATCH`, `RUNS_RETENTION_INTERVAL`. */
export const config: Config.Config<Option.Option<Options>> = Config.all({
  age,
  batchSize: Config.integer("RUNS_RETENTION_BATCH").pipe(
    Config.withDefault(1000),
    Config.validate({ message: "must be between 1 and 100000", validation: (n) => n >= 1 && n <= 100_000 })
  ),
  interval: Config.duration("RUNS_RETENTION_INTERVAL").pipe(Config.withDefault(Duration.minutes(10)))
}).pipe(Config.map(({ age, batchSize, interval }) => Option.map(age, (age) => ({ age, batchSize, interval }))))

/** Deletes at most one batch of expired runs with everything they own. */
export const sweepBatch = (
  prefix: TablePrefix.TablePrefix,
  options: Options
): Effect.Effect<Deleted, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const t = (name: string) => sql(TablePrefix.table(prefix, name))
    const cluster = (name: string) => sql(`${TablePrefix.clusterPrefix(prefix)}_${name}`)
    const seconds = Duration.toSeconds(options.age)
    const limit = options.batchSize ?? 1000
    return sql.withTransaction(Effect.gen(function*() {
      const [lock] = yield* sql<{ locked: boolean }>`
        SELECT pg_try_advisory_xact_lock(${TablePrefix.lockSpace(prefix)}, ${TablePrefix.RETENTION_LOCK_KEY}) AS locked`
      if (!lock?.locked) return { runs: 0, messages: 0, replies: 0, activities: 0, locked: false }
      const [row] = yield* sql<{ runs: number; messages: number; replies: number; activities: number }>`
        WITH doomed AS (
          SELECT execution_id FROM ${t("runs")}
          WHERE status IN ('succeeded', 'failed', 'cancelled')
            AND updated_at < clock_timestamp() - make_interval(secs => ${seconds})
          ORDER BY updated_at
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED
        ), messages AS (
          DELETE FROM ${cluster("messages")} WHERE entity_id IN (SELECT execution_id FROM doomed) RETURNING id
        ), replies AS (
          DELETE FROM ${cluster("replies")} WHERE request_id IN (SELECT id FROM messages) RETURNING 1
        ), exits AS (
          DELETE FROM ${t("activity_exits")} WHERE execution_id IN (SELECT execution_id FROM doomed) RETURNING 1
        ), results AS (
          DELETE FROM ${t("activity_results")} WHERE execution_id IN (SELECT execution_id FROM doomed) RETURNING 1
        ), runs AS (
          DELETE FROM ${t("runs")} WHERE execution_id IN (SELECT execution_id FROM doomed) RETURNING 1
        )
        SELECT (SELECT count(*) FROM runs)::int AS runs, (SELECT count(*) FROM messages)::int AS messages,
          (SELECT count(*) FROM replies)::int AS replies,
          ((SELECT count(*) FROM exits) + (SELECT count(*) FROM results))::int AS activities`
      return { ...row!, locked: true }
    }))
  })

/** Batches until nothing is left to delete (or another replica holds the lock); the totals. */
export const sweep = (prefix: TablePrefix.TablePrefix, options: Options) =>
  Effect.gen(function*() {
    const total = { runs: 0, messages: 0, replies: 0, activities: 0, batches: 0 }
    while (true) {
      const deleted = yield* sweepBatch(prefix, options)
      if (!deleted.locked) break
      total.runs += deleted.runs
      total.messages += deleted.messages
      total.replies += deleted.replies
      total.activities += deleted.activities
      total.batches++
      if (deleted.runs < (options.batchSize ?? 1000)) break
      // leave the database to live runs between batches
      yield* Effect.sleep("50 millis")
    }
    return total
  })

/**
 * An index on the engine's messages by execution (entity id), so a batch
 * finds a run's messages without scanning the table; built CONCURRENTLY (no
 * write lock on a live table), once.
 */
const ensureIndex = (prefix: TablePrefix.TablePrefix) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const table = `${TablePrefix.clusterPrefix(prefix)}_messages`
    return sql.unsafe(`CREATE INDEX CONCURRENTLY IF NOT EXISTS "${table}_entity_idx" ON "${table}" (entity_id)`)
  })

/** The sweeper of a durable app: at start, then every `interval`; failures are logged and retried next time. */
export const layer = (prefix: TablePrefix.TablePrefix, options: Options): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const once = Effect.gen(function*() {
      yield* ensureIndex(prefix)
      const total = yield* sweep(prefix, options)
      if (total.runs > 0) {
        yield* Effect.logInfo("retention: deleted expired runs").pipe(Effect.annotateLogs({ ...total, prefix }))
      }
    }).pipe(
      Effect.catchAll((e) => Effect.logWarning("retention: sweep failed, next one at the interval", e)),
      Effect.annotateLogs("age", Duration.format(options.age))
    )
    yield* once.pipe(
      Effect.repeat(Schedule.spaced(options.interval ?? Duration.minutes(10))),
      Effect.forkScoped
    )
  }))

/** `layer` configured by `RUNS_RETENTION*`; nothing when `RUNS_RETENTION=off`. */
export const layerConfig = (prefix: TablePrefix.TablePrefix) =>
  Layer.unwrapEffect(Effect.map(config, Option.match({
    onNone: () => Layer.empty,
    onSome: (options) => layer(prefix, options)
  })))
