/**
 * A `RunnerStorage` whose Postgres locks belong to the app's prefix, and whose
 * idea of "which runners are alive" comes from those locks.
 *
 * Why: `SqlRunnerStorage` on Effect 3 takes shard locks with the ONE-key
 * `pg_try_advisory_lock(n)`, `n` derived from the shard alone. Advisory locks
 * are database-wide, so two apps on one database fight over the same numbers
 * and the second one processes nothing while the first runs (docs/ARCHITECTURE.md, section 2).
 *
 * How:
 * - runner bookkeeping (the `<prefix>_cluster_runners` rows, health flags) is
 *   delegated to `SqlRunnerStorage` on the app's prefixed tables;
 * - shard locks are taken in the TWO-key form
 *   `pg_try_advisory_lock(lockSpace(prefix), shardIndex)`: the two-key space
 *   never meets the one-key one, and each prefix has its own first key, so
 *   apps never wait on each other (the scheme Effect 4 adopted);
 * - each registered runner also holds a presence lock
 *   `(lockSpace(prefix), RUNNER_LOCK_BASE + machineId)`. `getRunners` returns
 *   only runners whose presence lock is held, so a replica killed with
 *   SIGKILL leaves the ring as soon as Postgres closes its session (no wait
 *   for a heartbeat to expire), and its shards move to the live replicas;
 * - all locks live on ONE dedicated session (not a pool connection), every
 *   query on it has a deadline, and a session that fails or times out is
 *   dropped: its locks are gone with it, the next call opens a new session
 *   and reports the shards it really holds, and Sharding re-acquires the rest.
 *
 * Cost when idle: a lone runner re-reads the runners table every
 * `idleRefresh` (30 s), or at once when another runner announces itself
 * (`pg_notify('<prefix>_wake', 'runners')`, see WakeUps). With other runners
 * alive it re-reads at every assignment refresh, to notice a death promptly.
 */
import { Runner, RunnerStorage, ShardingConfig, SqlRunnerStorage } from "@effect/cluster"
import type { RunnerAddress, ShardId } from "@effect/cluster"
import { PersistenceError } from "@effect/cluster/ClusterError"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Equal, Layer } from "effect"
import pg from "pg"
import * as Database from "../Database.js"
import * as TablePrefix from "../TablePrefix.js"

/** What this process knows about its membership in the app's cluster (readiness). */
export interface Status {
  /** A working member: registered, present, its lock session healthy, seen healthy in the ring. */
  readonly ready: boolean
  /** Why not, when not ready. */
  readonly reason?: string | undefined
  readonly runner?: string | undefined
  /** Live runners of this app at the last read of the runners table. */
  readonly runners: number
  /** Shard locks this process holds. */
  readonly shards: number
}

export class Membership extends Context.Tag("@duraflow/runtime-core/ShardLockStorage/Membership")<Membership, {
  readonly status: Effect.Effect<Status>
  /** Another runner joined or left: re-read the runners table at the next refresh. */
  readonly invalidate: Effect.Effect<void>
}>() {}

export interface Options {
  /** Deadline of one query on the lock session; past it the session is dropped. */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /** How long a runner that is alone trusts its last read of the runners table. */
  readonly idleRefresh?: Duration.DurationInput | undefined
}

const show = (address: RunnerAddress.RunnerAddress) => `${address.host}:${address.port}`

const lockError = (message: string, cause?: unknown) =>
  new PersistenceError({ cause: cause instanceof Error ? cause : new Error(message, { cause }) })

export const make = Effect.fnUntraced(function*(prefix: TablePrefix.TablePrefix, options: Options = {}) {
  const config = yield* ShardingConfig.ShardingConfig
  // Row-lock mode only so that the delegate does not take its own one-key advisory locks.
  const base = yield* SqlRunnerStorage.make({ prefix: TablePrefix.clusterPrefix(prefix) }).pipe(
    Effect.provideService(ShardingConfig.ShardingConfig, { ...config, shardLockDisableAdvisory: true })
  )
  const client = yield* PgClient.PgClient
  const sql = (client as SqlClient.SqlClient).withoutTransforms()
  const url = Database.urlOf(client)
  const applicationName = client.config.applicationName ?? `${prefix}-locks`
  const space = TablePrefix.lockSpace(prefix)
  const lockTimeout = Duration.decode(options.lockTimeout ?? "5 seconds")
  const idleRefreshMs = Duration.toMillis(Duration.decode(options.idleRefresh ?? "30 seconds"))
  const runnersTable = sql(`${TablePrefix.clusterPrefix(prefix)}_runners`)
  const channel = TablePrefix.wakeChannel(prefix)

  const groups = Array.from(ShardingConfig.shardGroupConfig(config).available)
  const keyOf = (shard: ShardId.ShardId) => groups.indexOf(shard.group) * config.shardsPerGroup + shard.id - 1

  // --- the lock session ---

  const mutex = yield* Effect.makeSemaphore(1)
  const held = new Set<number>()
  let session: pg.Client | undefined
  let sessionBroken: string | undefined

  const connect = Effect.async<pg.Client, PersistenceError>((resume) => {
    const conn = new pg.Client({ connectionString: url, application_name: applicationName, keepAlive: true })
    // a pg Client emits 'error' when its connection breaks; unhandled, it would crash the process
    conn.on("error", () => undefined)
    let settled = false
    conn.connect().then(
      () => {
        settled = true
        resume(Effect.succeed(conn))
      },
      (e) => {
        settled = true
        conn.end().catch(() => undefined)
        resume(Effect.fail(lockError("could not open the lock session", e)))
      }
    )
    return Effect.sync(() => {
      if (!settled) conn.end().catch(() => undefined)
    })
  })

  // Dropping the session releases every lock on it (Postgres ends the session);
  // never wait for a goodbye on a connection that may be black-holed.
  const dropSession = (why: string) =>
    Effect.sync(() => {
      const s = session
      session = undefined
      sessionBroken = why
      held.clear()
      present = false
      s?.end().catch(() => undefined)
    })

  const query = (conn: pg.Client, text: string) =>
    Effect.async<ReadonlyArray<ReadonlyArray<unknown>>, PersistenceError>((resume) => {
      conn.query({ text, rowMode: "array" }).then(
        (result) => resume(Effect.succeed(result.rows)),
        (e) => resume(Effect.fail(lockError(`lock query failed: ${text}`, e)))
      )
    })

  type Query = (text: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, PersistenceError>

  /** Runs `f` on the lock session (opened on demand), with a deadline; any failure drops the session. */
  const withSession = <A>(f: (q: Query) => Effect.Effect<A, PersistenceError>): Effect.Effect<A, PersistenceError> =>
    mutex.withPermits(1)(
      Effect.suspend(() => session ? Effect.succeed(session) : connect).pipe(
        Effect.tap((conn) =>
          Effect.sync(() => {
            session = conn
            sessionBroken = undefined
          })
        ),
        Effect.flatMap((conn) => {
          const q: Query = (text) => query(conn, text)
          return Effect.zipRight(ensurePresence(q), f(q))
        }),
        Effect.timeoutFail({
          duration: lockTimeout,
          onTimeout: () => lockError(`the lock session did not answer within ${Duration.format(lockTimeout)}`)
        }),
        Effect.tapError((e) => dropSession(String(e.cause)))
      )
    )

  // --- presence ---

  let self: { readonly address: RunnerAddress.RunnerAddress; readonly key: number } | undefined
  let present = false
  let presenceConflict: string | undefined

  const ensurePresence = (q: Query): Effect.Effect<void, PersistenceError> => {
    if (!self || present) return Effect.void
    const me = self
    return Effect.flatMap(q(`SELECT pg_try_advisory_lock(${space}, ${me.key})`), (rows) => {
      present = rows[0]?.[0] === true
      presenceConflict = present ? undefined : `another live process holds runner address ${show(me.address)}`
      return Effect.void
    })
  }

  const announce = sql`SELECT pg_notify(${channel}, 'runners')`.pipe(Effect.ignore)

  // --- the ring: live runners only ---

  let cache: { readonly runners: Array<[Runner.Runner, boolean]>; readonly at: number; readonly others: boolean } | undefined
  let dirty = true

  const readRunners = sql<{ runner: string; healthy: boolean }>`
    SELECT r.runner, r.healthy FROM ${runnersTable} r
    WHERE EXISTS (
      SELECT 1 FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = ${space}::oid AND l.objid = (${TablePrefix.RUNNER_LOCK_BASE} + r.machine_id)::oid
    )`.pipe(
    Effect.map((rows) => {
      const out: Array<[Runner.Runner, boolean]> = []
      for (const row of rows) {
        try {
          out.push([Runner.Runner.decodeSync(String(row.runner)), Boolean(row.healthy)])
        } catch {
          // a row written by another version of the library: not a runner we can talk to
        }
      }
      return out
    }),
    PersistenceError.refail
  )

  // Once this runner has left (shutdown), its view of the ring stays as it was: Sharding's
  // loop keeps running until its scope closes, and must not see itself vanish meanwhile
  // (it would re-assign shards it is releasing anyway, and warn of "no healthy runners").
  let left = false
  // the runner this process registered last: its view of the ring when it leaves before
  // ever reading the ring (stopped right after it started), instead of an empty one
  let registered: Runner.Runner | undefined

  const getRunners = Effect.suspend(() => {
    const now = Date.now()
    if (left) {
      const view: Array<[Runner.Runner, boolean]> = cache ? cache.runners : registered ? [[registered, true]] : []
      return Effect.succeed(view)
    }
    if (cache && !dirty && !cache.others && now - cache.at < idleRefreshMs) return Effect.succeed(cache.runners)
    dirty = false
    return readRunners.pipe(
      Effect.tap((runners) =>
        Effect.sync(() => {
          cache = {
            runners,
            at: now,
            others: runners.some(([r]) => !self || !Equal.equals(r.address, self.address))
          }
        })
      ),
      Effect.tapError(() => Effect.sync(() => void (dirty = true)))
    )
  })

  const heldOf = (shardIds: ReadonlyArray<ShardId.ShardId>) => shardIds.filter((s) => held.has(keyOf(s)))

  yield* Effect.addFinalizer(() => mutex.withPermits(1)(dropSession("closed")))

  const storage = RunnerStorage.RunnerStorage.of({
    ...base,
    getRunners,
    register: (runner, healthy) =>
      Effect.gen(function*() {
        const machineId = yield* base.register(runner, healthy)
        registered = runner
        if (self && !Equal.equals(self.address, runner.address)) {
          yield* withSession((q) => q(`SELECT pg_advisory_unlock(${space}, ${self!.key})`))
          present = false
        }
        self = { address: runner.address, key: TablePrefix.RUNNER_LOCK_BASE + machineId }
        yield* withSession(() => Effect.void)
        // Unregistered while this registration was in flight: the runner is shutting down
        // (Sharding unregisters only then) and `unregister` dropped `self` or released the
        // presence lock it found. Nothing is held and nothing conflicts, so this is not the
        // "address in use" case below (which a runner stopped right after it started, e.g. a
        // short test, used to log as an ERROR).
        if (left) return machineId
        if (!present) {
          // two live processes with one address would share a machine id (and its snowflakes): refuse
          yield* Effect.logError(
            `Runner address ${show(runner.address)} is in use by another live process of app "${prefix}"; ` +
              `give each replica its own RUNNER_HOST/RUNNER_PORT`
          )
          return yield* Effect.fail(lockError(presenceConflict ?? "runner address in use"))
        }
        dirty = true
        yield* announce
        return machineId
      }),
    unregister: (address) =>
      Effect.gen(function*() {
        yield* base.unregister(address)
        if (self && Equal.equals(self.address, address)) {
          const me = self
          self = undefined
          left = true
          if (present) {
            present = false
            yield* withSession((q) => q(`SELECT pg_advisory_unlock(${space}, ${me.key})`)).pipe(Effect.ignore)
          }
        }
        yield* announce
      }),
    acquire: (_address, shardIds) => {
      // read the iterable once: it may be a one-shot iterator
      const wanted = Array.from(shardIds)
      return withSession((q) =>
        Effect.gen(function*() {
          const keys = wanted.map(keyOf).filter((k) => !held.has(k))
          if (keys.length > 0) {
            const columns = keys.map((k, i) => `pg_try_advisory_lock(${space}, ${k}) AS "${i}"`).join(", ")
            const [row] = yield* q(`SELECT ${columns}`)
            keys.forEach((k, i) => row[i] === true && held.add(k))
          }
          return heldOf(wanted)
        })
      )
    },
    refresh: (address, shardIds) => {
      const ids = Array.from(shardIds)
      return Effect.zipRight(
        base.refresh(address, []), // heartbeat on the runners table, for operators
        withSession((q) =>
          Effect.gen(function*() {
            // trust pg_locks, not memory: a reconnect silently drops every lock
            const rows = yield* q(
              `SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 ` +
                `AND pid = pg_backend_pid() AND classid = ${space}::oid`
            )
            const now = new Set(rows.map((r) => Number(r[0])))
            for (const k of held) if (!now.has(k)) held.delete(k)
            return heldOf(ids)
          })
        )
      )
    },
    release: (_address, shardId) =>
      withSession((q) => {
        const k = keyOf(shardId)
        if (!held.has(k)) return Effect.void
        held.delete(k)
        return Effect.asVoid(q(`SELECT pg_advisory_unlock(${space}, ${k})`))
      }),
    releaseAll: (_address) =>
      withSession((q) => {
        const keys = Array.from(held)
        held.clear()
        // not pg_advisory_unlock_all: the presence lock stays until unregister
        return keys.length === 0 ? Effect.void : Effect.asVoid(
          q(`SELECT ${keys.map((k) => `pg_advisory_unlock(${space}, ${k})`).join(", ")}`)
        )
      })
  })

  const membership = Membership.of({
    invalidate: Effect.sync(() => void (dirty = true)),
    status: Effect.sync((): Status => {
      const runners = cache?.runners ?? []
      const me = self && runners.find(([r]) => Equal.equals(r.address, self!.address))
      const reason = !self
        ? "not registered as a runner (starting or shutting down)"
        : presenceConflict ?? (sessionBroken !== undefined && !session
          ? `the lock session is down: ${sessionBroken}`
          : !present
          ? "presence lock not held"
          : !me
          ? "not yet in the app's runner ring"
          : !me[1]
          ? "marked unhealthy by the app's other runners"
          : undefined)
      return {
        ready: reason === undefined,
        reason,
        runner: self ? show(self.address) : undefined,
        runners: runners.length,
        shards: held.size
      }
    })
  })

  return { storage, membership }
})

/** The storage and its membership view, for `prefix`. */
export const layer = (
  prefix: TablePrefix.TablePrefix,
  options?: Options
): Layer.Layer<
  RunnerStorage.RunnerStorage | Membership,
  never,
  SqlClient.SqlClient | PgClient.PgClient | ShardingConfig.ShardingConfig
> =>
  Layer.scopedContext(
    Effect.map(
      Effect.orDie(make(prefix, options)),
      ({ membership, storage }) =>
        Context.make(RunnerStorage.RunnerStorage, storage).pipe(Context.add(Membership, membership))
    )
  )
