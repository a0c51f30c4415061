/**
 * A transaction on a reserved connection whose `BEGIN` is sent with its first
 * statement: `BEGIN;\n<statement>` as one simple-protocol query, the
 * statement's parameters written as literals (`PgLiterals`). A transactional
 * step is then two round trips (this, and its exit row with COMMIT), not
 * three, and two socket writes, which on a busy host cost more CPU than
 * anything else in the step (`pnpm bench`, README).
 *
 * A first statement that cannot be inlined exactly (`PgLiterals.inline`), and
 * any first call other than `execute`/`executeUnprepared` (raw, values,
 * stream), is preceded by `BEGIN` on its own, as before. Until something is
 * sent, nothing is begun: `begun` tells the caller whether to COMMIT or
 * ROLLBACK at all. Statements the body sends while the first one is in flight
 * wait until it is answered, so they all come after `BEGIN` (a latch, not a
 * semaphore: the first statement itself waits for nothing).
 */
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Deferred, Effect, Exit, FiberId, Stream } from "effect"
import * as PgLiterals from "./PgLiterals.js"

export interface Transaction {
  /** The connection to run the body on (`SqlClient.TransactionConnection`). */
  readonly connection: Connection
  /** Whether `BEGIN` was sent: only then is there a transaction to commit or roll back. */
  readonly begun: () => boolean
}

type TransformRows = Parameters<Connection["execute"]>[2]

/**
 * `open` sends the merged first query (`BEGIN;\n<statement>`; one result per
 * statement): by default on `conn`; a pool's connection may send it with
 * another transaction's COMMIT (`PoolConnection.Held.open`).
 */
export const make = (
  conn: Connection,
  open: (text: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> = (text) =>
    conn.executeUnprepared(text, [], undefined) as Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
): Transaction => {
  let begun = false
  // whether the first statement (with BEGIN) is in flight; statements sent meanwhile wait for
  // it on `first`, made only then (a body nearly always waits for its statements itself)
  let inFlight = false
  let first: Deferred.Deferred<void> | undefined

  /** `then`, after BEGIN: `merged` (BEGIN with the statement) if it is the first and can be merged. */
  const opening = <A>(merged: () => Effect.Effect<A, SqlError> | undefined, then: Effect.Effect<A, SqlError>) =>
    Effect.suspend(() => {
      if (begun) {
        if (!inFlight) return then
        first ??= Deferred.unsafeMake<void>(FiberId.none)
        return Effect.zipRight(Deferred.await(first), then)
      }
      begun = true
      inFlight = true
      const settle = () => {
        inFlight = false
        if (first !== undefined) Deferred.unsafeDone(first, Exit.void)
        first = undefined
      }
      // settled whatever happens (an interrupted statement is cancelled on the server first);
      // `Effect.onExit` with the settling done in place, without an effect of its own
      return Effect.uninterruptibleMask((restore) =>
        Effect.matchCauseEffect(
          restore(merged() ?? Effect.zipRight(conn.executeUnprepared("BEGIN", [], undefined), then)),
          {
            onFailure: (cause) => {
              settle()
              return Effect.failCause(cause)
            },
            onSuccess: (a) => {
              settle()
              return Effect.succeed(a)
            }
          }
        )
      )
    })

  const mergedExecute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => () => {
    const inlined = PgLiterals.inline(sql, params)
    if (inlined === undefined) return undefined
    // two statements: pg answers with one result per statement, BEGIN's first
    return Effect.map(open(`BEGIN;\n${inlined}`), (results) => {
      const rows = (results[1] ?? []) as ReadonlyArray<any>
      return transformRows ? transformRows(rows) : rows
    })
  }

  const connection: Connection = {
    execute: (sql, params, transformRows) =>
      opening(mergedExecute(sql, params, transformRows), conn.execute(sql, params, transformRows)),
    executeUnprepared: (sql, params, transformRows) =>
      opening(mergedExecute(sql, params, transformRows), conn.executeUnprepared(sql, params, transformRows)),
    executeRaw: (sql, params) => opening(() => undefined, conn.executeRaw(sql, params)),
    executeValues: (sql, params) => opening(() => undefined, conn.executeValues(sql, params)),
    executeStream: (sql, params, transformRows) =>
      Stream.unwrap(opening(() => undefined, Effect.succeed(conn.executeStream(sql, params, transformRows))))
  }
  return { connection, begun: () => begun }
}
