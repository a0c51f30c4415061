/**
 * Serialises schema changes per prefix. Two processes of one app starting
 * together would otherwise race on `CREATE TABLE IF NOT EXISTS` (which is not
 * atomic in Postgres: both see the table missing and one dies on the unique
 * index `pg_class_relname_nsp_index`; docs/ARCHITECTURE.md, section 3). The lock is the two-key advisory lock `(lockSpace(prefix), -1)`:
 * per prefix, so apps with other prefixes never wait for it.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Scope } from "effect"
import * as TablePrefix from "../TablePrefix.js"

const key = (prefix: TablePrefix.TablePrefix) => `${TablePrefix.lockSpace(prefix)}, ${TablePrefix.SCHEMA_LOCK_KEY}`

/**
 * Runs `effect` while holding the prefix's schema lock on a dedicated session.
 * Use it around work that is not one transaction (the cluster storage creates
 * its tables in several statements).
 */
export const withSessionLock = <A, E, R>(prefix: TablePrefix.TablePrefix, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.acquireUseRelease(
      Effect.gen(function*() {
        // A scope of its own: `effect` may build layers into the caller's scope.
        const scope = yield* Scope.make()
        const conn = yield* sql.reserve.pipe(Scope.extend(scope), Effect.onError(() => Scope.close(scope, Exit.void)))
        yield* conn.executeRaw(`SELECT pg_advisory_lock(${key(prefix)})`, []).pipe(
          Effect.onError(() => Scope.close(scope, Exit.void))
        )
        return { conn, scope }
      }),
      () => effect,
      ({ conn, scope }) =>
        conn.executeRaw(`SELECT pg_advisory_unlock(${key(prefix)})`, []).pipe(
          Effect.ignore,
          Effect.zipRight(Scope.close(scope, Exit.void))
        )
    ))

/** Takes the schema lock inside the current transaction; released at commit or rollback. */
export const lockInTransaction = (prefix: TablePrefix.TablePrefix) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`SELECT pg_advisory_xact_lock(${key(prefix)})`))
