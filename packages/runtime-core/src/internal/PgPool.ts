/**
 * The `pg.Pool` behind a `SqlClient` that `Database` built
 * (`PgClient.fromPool`), by client: transactional steps take their connection
 * from it directly (`PoolConnection`). A client built some other way has none
 * here, and its steps reserve connections through `@effect/sql`
 * (`sql.reserve`), as before: the same transactions, a little more CPU.
 *
 * Keyed by the client object, not a service in context, because a workflow's
 * activities see the `SqlClient` its layer re-provides, whatever else the app's
 * runtime holds.
 */
import type pg from "pg"

const pools = new WeakMap<object, pg.Pool>()

export const register = (client: object, pool: pg.Pool): void => {
  pools.set(client, pool)
}

/** The pool of `client`, if `Database` built it. */
export const of = (client: object): pg.Pool | undefined => pools.get(client)
