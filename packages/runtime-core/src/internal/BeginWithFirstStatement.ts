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
 *
 * On a `Database` pool's connection (`make` with a `held`), the body's writes
 * whose answer it cannot read are held back (`WriteBehind`): they go with the
 * next statement it sends (BEGIN first, if nothing was begun), or, taken by the
 * caller (`takePending`), with the exit row. `doomed` tells the caller that
 * the attempt must be run again without write-behind.
 */
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Deferred, Effect, Exit, FiberId, Stream } from "effect"
import * as PgLiterals from "./PgLiterals.js"
import type * as PoolConnection from "./PoolConnection.js"
import * as StatementBatch from "./StatementBatch.js"
import * as WriteBehind from "./WriteBehind.js"

export interface Transaction {
  /** The connection to run the body on (`SqlClient.TransactionConnection`). */
  readonly connection: Connection
  /** Whether `BEGIN` was sent: only then is there a transaction to commit or roll back. */
  readonly begun: () => boolean
  /** The writes held back and not sent yet (`WriteBehind`), now the caller's to send; `undefined` when none. */
  readonly takePending: () => ReadonlyArray<StatementBatch.Step> | undefined
  /** Sends the writes held back, if any (BEGIN first if nothing was begun): the transaction is then open. */
  readonly flush: () => Effect.Effect<void, SqlError>
  /** Whether a batch carrying held writes failed: the attempt is to be run again without write-behind. */
  readonly doomed: () => boolean
  /** `effect`, a batch carrying held writes: its failure dooms the attempt. */
  readonly carrying: <A>(effect: Effect.Effect<A, SqlError>) => Effect.Effect<A, SqlError>
}

type TransformRows = PoolConnection.TransformRows

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

/**
 * A transaction on `conn` whose BEGIN `open` sends with its first statement (by default
 * `inlined`); with `held` (the pool's connection `conn` is, and `open` batches on), the
 * body's writes are held back (`WriteBehind`).
 */
export const make = (conn: Connection, open: Open = inlined(conn), held?: PoolConnection.Held): Transaction =>
  new BeginOnFirst(conn, open, held)

/**
 * A class (every transactional step makes one): its methods are the prototype's, compiled once,
 * not a dozen closures made per step.
 */
class BeginOnFirst implements Transaction {
  /** whether BEGIN was sent (`begun`) */
  started = false
  /** whether the first statement (with BEGIN) is in flight */
  inFlight = false
  /** statements sent meanwhile wait on it, made only then (a body nearly always waits for its statements itself) */
  first: Deferred.Deferred<void> | undefined = undefined
  /** writes held back, in the order the body sent them (`WriteBehind`) */
  pending: Array<StatementBatch.Step> | undefined = undefined
  /** a batch carrying held writes failed */
  failed = false
  readonly connection: Connection

  constructor(readonly conn: Connection, readonly open: Open, readonly held: PoolConnection.Held | undefined) {
    this.connection = new BeginningConnection(this)
  }

  flush(): Effect.Effect<void, SqlError> {
    return this.pending === undefined ? Effect.void : Effect.asVoid(this.withPending(undefined))
  }

  begun(): boolean {
    return this.started
  }

  doomed(): boolean {
    return this.failed
  }

  takePending(): ReadonlyArray<StatementBatch.Step> | undefined {
    const pending = this.pending
    this.pending = undefined
    return pending
  }

  carrying<A>(effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    return Effect.tapError(effect, () => {
      this.failed = true
      return Effect.void
    })
  }

  /** Whether `execute` of this statement can be held back: write-behind on, nothing in flight, a write that returns no rows. */
  defers(sql: string, params: ReadonlyArray<unknown>): boolean {
    return this.held !== undefined && !this.inFlight && WriteBehind.isDeferrable(sql) && StatementBatch.isStep(sql, params)
  }

  /** Holds the write back: its answer, no rows, at once. */
  defer(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows): Effect.Effect<ReadonlyArray<any>> {
    return Effect.sync(() => {
      // (its rows are none: not described)
      ;(this.pending ??= []).push({ text: sql, values: params, rows: false })
      return transformRows ? transformRows([]) : []
    })
  }

  /**
   * The held writes, then `statement` (if any), as one batch on the held connection, BEGIN
   * first if nothing was begun: the statement's rows (none without one).
   */
  withPending(statement: StatementBatch.Step | undefined): Effect.Effect<ReadonlyArray<unknown>, SqlError> {
    const held = this.held!
    const steps = () => {
      const all = this.takePending() ?? []
      return statement === undefined ? all : [...all, statement]
    }
    return this.opening(
      () => {
        const sent = steps()
        return this.carrying(Effect.map(held.open([StatementBatch.begin, ...sent]), (results) => results[sent.length] ?? []))
      },
      Effect.suspend(() => {
        const sent = steps()
        // (taken meanwhile by a statement sent concurrently: nothing left to send)
        if (sent.length === 0) return Effect.succeed([])
        return this.carrying(Effect.map(held.open(sent), (results) => results[sent.length - 1] ?? []))
      })
    )
  }

  /** `then` after the held writes are sent (as it is when none are held). */
  flushed<A>(then: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    return this.pending === undefined ? then : Effect.zipRight(this.flush(), then)
  }

  /** `then`, after BEGIN: `merged` (BEGIN with the statement) if it is the first and can be merged. */
  opening<A>(merged: (() => Effect.Effect<A, SqlError> | undefined) | undefined, then: Effect.Effect<A, SqlError>) {
    return Effect.suspend(() => {
      if (this.started) {
        if (!this.inFlight) return then
        this.first ??= Deferred.unsafeMake<void>(FiberId.none)
        return Effect.zipRight(Deferred.await(this.first), then)
      }
      this.started = true
      this.inFlight = true
      // settled whatever happens (an interrupted statement is cancelled on the server first):
      // `Effect.onExit` (one frame on the fiber's stack: the effect patch), the settling done in place
      return Effect.onExit(
        merged?.() ?? Effect.zipRight(this.conn.executeUnprepared("BEGIN", [], undefined), then),
        () => {
          this.settle()
          return Effect.void
        }
      )
    })
  }

  settle() {
    this.inFlight = false
    if (this.first !== undefined) Deferred.unsafeDone(this.first, Exit.void)
    this.first = undefined
  }

  /** BEGIN with the statement, if it is the first and can go with it: the statement's rows (BEGIN's are first). */
  mergedExecute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return () => {
      const opened = this.open(sql, params)
      if (opened === undefined) return undefined
      // two statements: one result per statement, BEGIN's first
      return Effect.map(opened, (results) => {
        const rows = (results[1] ?? []) as ReadonlyArray<any>
        return transformRows ? transformRows(rows) : rows
      })
    }
  }
}

/** The transaction's statements as `@effect/sql`'s `Connection`. */
class BeginningConnection implements Connection {
  constructor(private readonly transaction: BeginOnFirst) {}

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const t = this.transaction
    if (t.defers(sql, params)) return t.defer(sql, params, transformRows)
    // writes held: this statement goes with them, in one batch
    if (t.pending !== undefined && StatementBatch.isStep(sql, params)) {
      return Effect.map(t.withPending({ text: sql, values: params }), (rows) =>
        transformRows ? transformRows(rows as ReadonlyArray<any>) : rows as ReadonlyArray<any>)
    }
    return t.flushed(t.opening(t.mergedExecute(sql, params, transformRows), t.conn.execute(sql, params, transformRows)))
  }

  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const t = this.transaction
    return t.flushed(
      t.opening(t.mergedExecute(sql, params, transformRows), t.conn.executeUnprepared(sql, params, transformRows))
    )
  }

  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    const t = this.transaction
    return t.flushed(t.opening(undefined, t.conn.executeRaw(sql, params)))
  }

  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    const t = this.transaction
    return t.flushed(t.opening(undefined, t.conn.executeValues(sql, params)))
  }

  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const t = this.transaction
    return Stream.unwrap(t.flushed(t.opening(undefined, Effect.succeed(t.conn.executeStream(sql, params, transformRows)))))
  }
}
