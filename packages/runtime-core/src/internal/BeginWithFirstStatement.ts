/**
 * A transaction on a reserved connection whose `BEGIN` is sent with its first
 * statement, in one round trip: on a `Database` pool's connection as one
 * batch, the statement keeping its parameters (`batched`:
 * `PoolConnection.Held.open`, `StatementBatch`); on another client's as one
 * simple-protocol query, `BEGIN;\n<statement>`, its parameters written as
 * literals (`inlined`, `PgLiterals`). A transactional step is then two round
 * trips (this, and its exit row with COMMIT), not three, and two socket
 * writes, which on a busy host cost more CPU than anything else in the step
 * (`pnpm bench`, README).
 *
 * A first statement that cannot be sent so (several statements in one text,
 * or, inlined, a value that cannot be written exactly: `PgLiterals.inline`),
 * and any first call other than `execute`/`executeUnprepared` (raw, values,
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
import type * as PoolConnection from "./PoolConnection.js"
import * as StatementBatch from "./StatementBatch.js"

export interface Transaction {
  /** The connection to run the body on (`SqlClient.TransactionConnection`). */
  readonly connection: Connection
  /** Whether `BEGIN` was sent: only then is there a transaction to commit or roll back. */
  readonly begun: () => boolean
}

type TransformRows = Parameters<Connection["execute"]>[2]

/**
 * Sends `BEGIN` with a first statement: one result's rows per statement
 * (`BEGIN`'s first); `undefined` when the statement cannot go with it.
 */
export type Open = (
  sql: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> | undefined

/** `BEGIN;\n<statement>` as one simple-protocol query on `conn`, the parameters written in as literals. */
export const inlined = (conn: Connection): Open => (sql, params) => {
  const text = PgLiterals.inline(sql, params)
  if (text === undefined) return undefined
  return conn.executeUnprepared(`BEGIN;\n${text}`, [], undefined) as Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
}

/**
 * `BEGIN` and the statement as one batch of `held`'s (it may go with another
 * transaction's COMMIT: `PoolConnection.Held.open`), if the statement can
 * be a batch's step (`StatementBatch.isStep`).
 */
export const batched = (held: PoolConnection.Held): Open => (sql, params) =>
  StatementBatch.isStep(sql, params)
    ? held.open([StatementBatch.begin, { text: sql, values: params }])
    : undefined

/** A transaction on `conn` whose BEGIN `open` sends with its first statement (by default `inlined`). */
export const make = (conn: Connection, open: Open = inlined(conn)): Transaction => {
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
      // settled whatever happens (an interrupted statement is cancelled on the server first):
      // `Effect.onExit` (one frame on the fiber's stack: the effect patch), the settling done in place
      return Effect.onExit(
        merged() ?? Effect.zipRight(conn.executeUnprepared("BEGIN", [], undefined), then),
        () => {
          settle()
          return Effect.void
        }
      )
    })

  const mergedExecute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => () => {
    const opened = open(sql, params)
    if (opened === undefined) return undefined
    // two statements: one result per statement, BEGIN's first
    return Effect.map(opened, (results) => {
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
