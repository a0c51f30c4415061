/**
 * A `RunnerStorage` whose Postgres shard locks belong to the app's prefix.
 *
 * Why: `SqlRunnerStorage` on Effect 3 takes shard locks with the ONE-key
 * `pg_try_advisory_lock(n)`, `n` derived from the shard alone. Advisory locks
 * are database-wide, so two apps on one database fight over the same numbers
 * and the second one processes nothing while the first runs (DESIGN.md, fact 1).
 *
 * How: runner bookkeeping (register, heartbeat, health) is delegated to
 * `SqlRunnerStorage` on the app's prefixed tables; shard locks are taken in the
 * TWO-key form `pg_try_advisory_lock(lockSpace(prefix), shardIndex)`. The
 * two-key space never meets the one-key one, and each prefix has its own first
 * key, so apps never wait on each other. This is the scheme Effect 4 adopted.
 * Advisory locks (rather than rows in `<prefix>_cluster_locks`) are kept
 * because they die with the connection: a crashed process's shards are free
 * the moment Postgres notices, and a second live process of the same app
 * simply does not get them (no "No healthy runners" stall, fact 1).
 *
 * All locks live on one reserved connection. If it breaks, every lock on it is
 * gone; the failing call drops it, the next call opens a new one and reports
 * the shards it really holds, and Sharding re-acquires the rest.
 */
import { RunnerStorage, ShardingConfig, SqlRunnerStorage } from "@effect/cluster"
import type { RunnerAddress, ShardId } from "@effect/cluster"
import { PersistenceError } from "@effect/cluster/ClusterError"
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { Effect, Exit, Layer, Scope } from "effect"
import * as TablePrefix from "./TablePrefix.js"

export const make = Effect.fnUntraced(function*(prefix: TablePrefix.TablePrefix) {
  const config = yield* ShardingConfig.ShardingConfig
  // Row-lock mode only so that the delegate does not take its own one-key advisory locks.
  const base = yield* SqlRunnerStorage.make({ prefix: TablePrefix.clusterPrefix(prefix) }).pipe(
    Effect.provideService(ShardingConfig.ShardingConfig, { ...config, shardLockDisableAdvisory: true })
  )
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const space = TablePrefix.lockSpace(prefix)

  const groups = Array.from(ShardingConfig.shardGroupConfig(config).available)
  const keyOf = (shard: ShardId.ShardId) => groups.indexOf(shard.group) * config.shardsPerGroup + shard.id - 1

  const mutex = yield* Effect.makeSemaphore(1)
  const held = new Set<number>()
  let current: { readonly conn: Connection; readonly scope: Scope.CloseableScope } | undefined

  const connection = Effect.suspend(() => {
    if (current) return Effect.succeed(current.conn)
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const conn = yield* sql.reserve.pipe(Scope.extend(scope), Effect.onError(() => Scope.close(scope, Exit.void)))
      current = { conn, scope }
      return conn
    })
  })

  // Unlock before handing the connection back to the pool: a session lock
  // left on a pooled connection would be held by whoever borrows it next.
  const dropConnection = Effect.suspend(() => {
    const c = current
    current = undefined
    held.clear()
    if (!c) return Effect.void
    return c.conn.executeRaw("SELECT pg_advisory_unlock_all()", []).pipe(
      Effect.timeout("2 seconds"),
      Effect.ignore,
      Effect.zipRight(Scope.close(c.scope, Exit.void))
    )
  })

  const withLockConnection = <A>(f: (conn: Connection) => Effect.Effect<A, unknown>) =>
    mutex.withPermits(1)(
      connection.pipe(
        Effect.flatMap(f),
        Effect.tapErrorCause(() => dropConnection),
        PersistenceError.refail
      )
    )

  const heldOf = (shardIds: Iterable<ShardId.ShardId>) => Array.from(shardIds).filter((s) => held.has(keyOf(s)))

  yield* Effect.addFinalizer(() => mutex.withPermits(1)(dropConnection))

  return RunnerStorage.RunnerStorage.of({
    ...base,
    acquire: (_address: RunnerAddress.RunnerAddress, shardIds: Iterable<ShardId.ShardId>) =>
      withLockConnection((conn) =>
        Effect.gen(function*() {
          const wanted = Array.from(shardIds).map(keyOf).filter((k) => !held.has(k))
          if (wanted.length > 0) {
            const columns = wanted.map((k, i) => `pg_try_advisory_lock(${space}, ${k}) AS "${i}"`).join(", ")
            const [row] = yield* conn.executeValues(`SELECT ${columns}`, [])
            wanted.forEach((k, i) => row[i] === true && held.add(k))
          }
          return heldOf(shardIds)
        })
      ),
    refresh: (address, shardIds) =>
      Effect.zipRight(
        base.refresh(address, []), // heartbeat on the runners table
        withLockConnection((conn) =>
          Effect.gen(function*() {
            // Trust pg_locks, not memory: a reconnect silently drops every lock.
            const rows = yield* conn.executeValues(
              `SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 ` +
                `AND pid = pg_backend_pid() AND classid = ${space}::oid`,
              []
            )
            const now = new Set(rows.map((r) => Number(r[0])))
            for (const k of held) if (!now.has(k)) held.delete(k)
            return heldOf(shardIds)
          })
        )
      ),
    release: (_address, shardId) =>
      withLockConnection((conn) => {
        const k = keyOf(shardId)
        if (!held.has(k)) return Effect.void
        held.delete(k)
        return Effect.asVoid(conn.executeRaw(`SELECT pg_advisory_unlock(${space}, ${k})`, []))
      }),
    releaseAll: (_address) =>
      withLockConnection((conn) => {
        held.clear()
        return Effect.asVoid(conn.executeRaw(`SELECT pg_advisory_unlock_all()`, []))
      })
  })
})

export const layer = (
  prefix: TablePrefix.TablePrefix
): Layer.Layer<RunnerStorage.RunnerStorage, never, SqlClient.SqlClient | ShardingConfig.ShardingConfig> =>
  Layer.scoped(RunnerStorage.RunnerStorage, Effect.orDie(make(prefix)))
