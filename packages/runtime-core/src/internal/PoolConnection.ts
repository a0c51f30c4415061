/**
 * One connection of a `pg.Pool`, taken at its first statement and given back
 * with `release`: what a transactional step runs on when its `SqlClient` is
 * one `Database` built (`PgPool`).
 *
 * Through `@effect/sql`, a step's connection is `sql.reserve`: a wait of its
 * own for the pool (one more suspension of the run's fiber), a `Scope` made,
 * extended and closed, every step. Here the first statement's `Effect.async`
 * takes the connection and sends the statement in one go (`BEGIN` travels with
 * it: `BeginWithFirstStatement`), and giving it back is a function call:
 * node CPU per transactional workflow -5 % against `sql.reserve` (bench cells,
 * N = 2000; docs/ARCHITECTURE.md section 5).
 *
 * Statements behave as on `@effect/sql-pg`'s own connections: the same rows
 * (one array per statement of a multi-statement query), `SqlError`s, and an
 * interrupted statement is cancelled on the server (`pg_cancel_backend`). A
 * connection that reported an error, whose state is unknown (`release` with
 * `broken`), or for which a cancel was sent, is destroyed instead of going
 * back to the pool. Statements sent together (a body's `Effect.all`) go to
 * the server one at a time, in order, as on one session they must; pg 8
 * would queue them itself, with a DeprecationWarning (pg 9 does not queue).
 *
 * A transaction's first and last queries are batches of statements, one
 * round trip each (`StatementBatch`: `BEGIN` with the first statement, the
 * exit row with `COMMIT`); the last can carry the next transaction's first
 * (`open` and `finish`: `TransactionRelay`), which waits for it briefly when
 * one is to come, even while a connection is idle.
 *
 * A step whose body is one statement sends one query and needs no hold:
 * `batchOnce` takes a connection, sends the batch and gives it back.
 */
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Chunk, Effect, Option, Stream } from "effect"
import type pg from "pg"
import Cursor from "pg-cursor"
import * as StatementBatch from "./StatementBatch.js"
import * as TransactionRelay from "./TransactionRelay.js"

export interface Held {
  readonly connection: Connection
  /** Whether a statement took a connection (there is something to roll back). */
  readonly taken: () => boolean
  /**
   * The first query of a transaction (`BEGIN` and its first statement, a
   * batch): one result's rows per step. Sent on a connection of the pool, or
   * with another transaction's `finish` on its connection, which this one then
   * holds (see above).
   */
  readonly open: (steps: ReadonlyArray<StatementBatch.Step>) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /**
   * The last query of the transaction (its last statements and `COMMIT`, a
   * batch), with the first query of a transaction waiting for a connection, if
   * any: the connection is then that transaction's, and `release` has nothing
   * to give back. Succeeds with `value` (the transaction's result, passed
   * through: no operation of its own to map it).
   */
  readonly finish: <A = void>(steps: ReadonlyArray<StatementBatch.Step>, value?: A) => Effect.Effect<A, SqlError>
  /**
   * `steps` as one batch on a connection of the pool taken for it and given back at once
   * (`batchOnce`), for a transaction that took none: its held writes with its exit row
   * (`WriteBehind`), one implicit transaction.
   */
  readonly once: (steps: ReadonlyArray<StatementBatch.Step>) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /** Gives the connection back (destroys it when `broken`, or when it reported an error). */
  readonly release: (broken?: boolean) => void
}

const { failed } = TransactionRelay

/**
 * How long a first query waits for another transaction's finish to carry it
 * (`TransactionRelay.finishExpected`) before it asks the pool, idle connection
 * or not. A finish nearly always comes within a round trip of its first query.
 */
export const RELAY_PATIENCE_MILLIS = 1

/** Cancels what `client` is running, as `@effect/sql-pg` does: best effort, at most 5 s. */
const cancel = (pool: pg.Pool, client: pg.PoolClient): Effect.Effect<void> => {
  const processId = (client as { processID?: number }).processID
  if (processId === undefined) return Effect.void
  return Effect.async<void>((resume) => {
    if ((pool as { ending?: boolean }).ending === true) return resume(Effect.void)
    pool.query(`SELECT pg_cancel_backend(${processId})`, () => resume(Effect.void))
  }).pipe(Effect.interruptible, Effect.timeoutOption(5000), Effect.asVoid)
}

/** The rows argument of `Connection.execute` (and of this module's statements). */
export type TransformRows = Parameters<Connection["execute"]>[2]

/** One rows array per result of a batch (`StatementBatch`). */
const rowsOfResults = (results: ReadonlyArray<{ readonly rows?: ReadonlyArray<unknown> }>): ReadonlyArray<ReadonlyArray<unknown>> =>
  results.map((r) => r.rows ?? [])

const rowsOf = (result: pg.QueryResult | Array<pg.QueryResult>) =>
  // a multi-statement query answers with one result per statement
  Array.isArray(result) ? rowsOfResults(result) : result.rows ?? []

export const make = (pool: pg.Pool, patience: number = RELAY_PATIENCE_MILLIS): Held => new Hold(pool, patience)

type Queued = { readonly send: () => void; readonly fail: (error: unknown) => void }

/**
 * A `Held` as a class: every transactional step makes one, and its methods are the
 * prototype's, compiled once, where a hold made of closures made (and compiled lazily, at
 * each one's first call) about thirty functions per step.
 */
class Hold implements Held {
  client: pg.PoolClient | undefined = undefined
  /** callbacks waiting for the connection while pool.connect is in flight */
  waiting: Array<(error: unknown, client?: pg.PoolClient) => void> | undefined = undefined
  reported: Error | undefined = undefined
  /**
   * a cancel was sent for one of its statements: `pg_cancel_backend` signals the session, which
   * acts on it at its next statement should the cancelled one have ended first (the cancel waited
   * for a connection of a busy pool): not reused after this hold
   */
  cancelled = false
  released = false
  /**
   * The hold's statements go to the server one at a time, in the order they were sent: a
   * body's concurrent statements (`Effect.all` in a transaction) wait for their turn here.
   * pg 8 would queue them itself, with a DeprecationWarning (the queue is gone in pg 9).
   */
  sending = false
  readonly backlog: Array<Queued> = []
  /** whether the relay counts this hold's transaction as begun (its `finish` is to come) */
  begun = false
  readonly onError = (error: Error) => {
    this.reported = error
  }
  readonly connection: Connection

  constructor(readonly pool: pg.Pool, readonly patience: number) {
    this.connection = new HeldConnection(this)
  }

  /** The statement in flight has its answer: the next one goes. */
  endTurn() {
    const queued = this.backlog.shift()
    if (queued === undefined) this.sending = false
    else queued.send()
  }

  /** `taken` is this hold's connection now (unless it was given back meanwhile: then it goes back too). */
  adopt(taken: pg.PoolClient, inTransaction: boolean): boolean {
    if (this.released) {
      // an open transaction is not left to the next user: the connection is destroyed
      TransactionRelay.returned(taken)
      taken.release(inTransaction ? new Error("given back with its transaction open") : undefined)
      return false
    }
    this.client = taken
    taken.on("error", this.onError)
    return true
  }

  /** `use(client)` once the connection is there (taking it on first use). */
  withClient(use: (client: pg.PoolClient) => void, fail: (error: unknown) => void) {
    if (this.client !== undefined) return use(this.client)
    if (this.released) return fail(new Error("the connection was already given back"))
    const callback = (error: unknown, taken?: pg.PoolClient) => (taken === undefined ? fail(error) : use(taken))
    if (this.waiting !== undefined) return void this.waiting.push(callback)
    this.waiting = [callback]
    this.pool.connect((error, taken) => {
      const callbacks = this.waiting ?? []
      this.waiting = undefined
      if (error || taken === undefined) {
        for (const f of callbacks) f(error ?? new Error("No client returned"))
        return
      }
      if (!this.adopt(taken, false)) {
        // given back while it was on its way (an interrupted step): straight back to the pool
        for (const f of callbacks) f(new Error("the connection was already given back"))
        return
      }
      for (const f of callbacks) f(undefined, taken)
    })
  }

  /**
   * One query, in its turn: `query(client, done)` sends it; interrupted while in flight, it is
   * cancelled on the server (while waiting for its turn, it just leaves the line). With
   * `keepTurn` the turn lasts until `endTurn` (a cursor's reads).
   */
  run<A>(
    query: (client: pg.PoolClient, done: (result: Effect.Effect<A, SqlError>) => void) => void,
    keepTurn = false
  ): Effect.Effect<A, SqlError> {
    return Effect.async<A, SqlError>((resume) => {
      let sentOn: pg.PoolClient | undefined
      let inLine: Queued | undefined
      const fail = (error: unknown) => resume(Effect.fail(failed(error, "Failed to acquire connection")))
      this.withClient((c) => {
        const send = () => {
          inLine = undefined
          sentOn = c
          query(c, (result) => {
            if (!keepTurn) this.endTurn()
            resume(result)
          })
        }
        if (!this.sending) {
          this.sending = true
          return send()
        }
        inLine = { send, fail }
        this.backlog.push(inLine)
      }, fail)
      return Effect.suspend(() => {
        if (inLine !== undefined) {
          const at = this.backlog.indexOf(inLine)
          if (at >= 0) this.backlog.splice(at, 1)
          return Effect.void
        }
        if (sentOn === undefined) return Effect.void
        this.cancelled = true
        return cancel(this.pool, sentOn)
      })
    })
  }

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows): Effect.Effect<ReadonlyArray<any>, SqlError> {
    return this.run((c, done) =>
      c.query(sql, params as Array<unknown>, (error: Error | undefined, result: any) => {
        if (error) return done(Effect.fail(failed(error)))
        const rows = rowsOf(result)
        done(Effect.succeed(transformRows ? transformRows(rows) : rows))
      })
    )
  }

  /** `steps` as one batch, in the hold's turn, succeeding with `answer(results)`. */
  batchAnswering<A>(
    steps: ReadonlyArray<StatementBatch.Step>,
    answer: (results: ReadonlyArray<{ readonly rows?: ReadonlyArray<unknown> }>) => A
  ): Effect.Effect<A, SqlError> {
    return this.run<A>((c, done) =>
      StatementBatch.send(c, steps, (error, results) => done(error ? Effect.fail(failed(error)) : Effect.succeed(answer(results))))
    )
  }

  /** `steps` as one batch (`StatementBatch`), in the hold's turn (a query on its own: `batchOnce`). */
  batch(steps: ReadonlyArray<StatementBatch.Step>): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.batchAnswering(steps, rowsOfResults)
  }

  /** Waits for a connection (`TransactionRelay`); served without a query, it is sent on the connection now held. */
  ride(steps: ReadonlyArray<StatementBatch.Step>, patience?: number) {
    return Effect.flatMap(
      TransactionRelay.wait(this.pool, steps, (taken, inTransaction) => this.adopt(taken, inTransaction), patience),
      (results) => results === undefined ? this.batch(steps) : Effect.succeed(results)
    )
  }

  ended() {
    if (!this.begun) return
    this.begun = false
    TransactionRelay.ended(this.pool)
  }

  taken(): boolean {
    return this.client !== undefined || this.waiting !== undefined
  }

  open(steps: ReadonlyArray<StatementBatch.Step>): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return Effect.suspend(() => {
      if (this.client !== undefined || this.waiting !== undefined || this.released) return this.batch(steps)
      const expected = TransactionRelay.finishExpected(this.pool)
      if (!this.begun) {
        this.begun = true
        TransactionRelay.began(this.pool)
      }
      // a transaction's last query is to come with no first query to carry yet: this one
      // waits for it a little (one round trip and one socket write less), even with a
      // connection idle; else, with none idle, for the pool or a relay, whichever comes first
      if (expected) return this.ride(steps, this.patience)
      return TransactionRelay.exhausted(this.pool) ? this.ride(steps) : this.batch(steps)
    })
  }

  finish<A>(steps: ReadonlyArray<StatementBatch.Step>, value?: A): Effect.Effect<A, SqlError> {
    return Effect.suspend(() => {
      this.ended()
      const c = this.client
      // (a statement of the body still in flight or waiting: no rider, whose transaction it would join)
      const rider = c !== undefined && this.reported === undefined && !this.sending
        ? TransactionRelay.next(this.pool, c)
        : undefined
      if (rider === undefined) return this.batchAnswering(steps, () => value as A)
      rider.carried()
      return Effect.async<A, SqlError>((resume) => {
        StatementBatch.send(c!, [...steps, ...rider.steps], (error, results, completed) => {
          if (error !== undefined && completed < steps.length) {
            // this transaction's own statements failed (its COMMIT did not land): the rider's did not run
            rider.unboard()
            return resume(Effect.fail(failed(error)))
          }
          // committed; the connection, and the transaction begun after the COMMIT, are the rider's
          c!.off("error", this.onError)
          this.client = undefined
          // (the rider's own statement failed: its transaction is aborted, for it to roll back)
          if (error !== undefined) rider.refuse(c!, failed(error))
          else rider.board(c!, rowsOfResults(results.slice(steps.length)))
          resume(Effect.succeed(value as A))
        })
      })
    })
  }

  once(steps: ReadonlyArray<StatementBatch.Step>): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return batchOnce(this.pool, steps)
  }

  release(broken?: boolean): void {
    if (this.released) return
    this.ended()
    this.released = true
    // statements still waiting for their turn are not sent on a connection given back
    for (const queued of this.backlog.splice(0)) queued.fail(new Error("the connection was already given back"))
    const c = this.client
    this.client = undefined
    if (c === undefined) return
    c.off("error", this.onError)
    // an error, a state not known (a failed ROLLBACK), or a cancel that may still land: destroyed, not reused
    giveBack(
      this.pool,
      c,
      this.reported ?? (broken === true ? new Error("connection state unknown") : this.cancelled ? cancelSent() : undefined)
    )
  }
}

/** A hold's statements as `@effect/sql`'s `Connection` (the body's `TransactionConnection`). */
class HeldConnection implements Connection {
  constructor(private readonly hold: Hold) {}

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return this.hold.execute(sql, params, transformRows)
  }

  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return this.hold.execute(sql, params, transformRows)
  }

  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.hold.run<unknown>((c, done) =>
      c.query(sql, params as Array<unknown>, (error: Error | undefined, result: unknown) =>
        done(error ? Effect.fail(failed(error)) : Effect.succeed(result)))
    )
  }

  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.hold.run<ReadonlyArray<ReadonlyArray<unknown>>>((c, done) =>
      c.query(
        { text: sql, rowMode: "array", values: params as Array<unknown> },
        (error: Error | undefined, result: pg.QueryArrayResult) =>
          done(error ? Effect.fail(failed(error)) : Effect.succeed(result.rows))
      )
    )
  }

  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const hold = this.hold
    return Stream.unwrapScoped(Effect.gen(function*() {
      // the turn lasts until the cursor is closed (finalizers run in reverse order)
      const c = yield* Effect.acquireRelease(
        hold.run<pg.PoolClient>((taken, done) => done(Effect.succeed(taken)), true),
        () => Effect.sync(() => hold.endTurn())
      )
      const cursor = c.query(new Cursor(sql, params as Array<unknown>))
      yield* Effect.addFinalizer(() => Effect.promise(() => cursor.close()))
      const pull = Effect.async<Chunk.Chunk<any>, Option.Option<SqlError>>((resume) => {
        cursor.read(128, (error, rows) => {
          if (error) resume(Effect.fail(Option.some(failed(error))))
          else if (rows.length > 0) resume(Effect.succeed(Chunk.unsafeFromArray(transformRows ? transformRows(rows) : rows)))
          else resume(Effect.fail(Option.none()))
        })
      })
      return Stream.repeatEffectChunkOption(pull)
    }))
  }
}

const cancelSent = () => new Error("a cancel was sent for a statement on this connection")

/**
 * `client` goes back: to a transaction waiting for a connection (`TransactionRelay`), as the pool
 * would give it, or to the pool; destroyed instead when `bad` says why it must not be reused.
 */
const giveBack = (pool: pg.Pool, client: pg.PoolClient, bad: Error | undefined): void => {
  if (bad === undefined) {
    const rider = TransactionRelay.next(pool, client)
    if (rider !== undefined) return rider.board(client)
  }
  TransactionRelay.returned(client)
  client.release(bad)
}

/**
 * `steps` as one batch on a connection of `pool` taken for it and given back at once (`giveBack`):
 * one rows array per step. What a lone transactional step sends (`LoneStatement`: its statement
 * and exit row), with none of a `Held`'s machinery (a turn, a backlog, a connection for the
 * body), which a step of one query does not use: its two dozen closures were made and compiled
 * on every step. The same outcomes as `make(pool).batch(steps)` then `release()`: a connection
 * that reported an error is destroyed; interrupted while in flight, the batch is cancelled on
 * the server and the connection destroyed; interrupted while waiting, the connection goes back
 * when it comes.
 */
export const batchOnce = (
  pool: pg.Pool,
  steps: ReadonlyArray<StatementBatch.Step>
): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> =>
  Effect.async<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>((resume) => {
    let client: pg.PoolClient | undefined
    let interrupted = false
    let reported: Error | undefined
    const onError = (error: Error) => {
      reported = error
    }
    pool.connect((error, taken) => {
      if (error || taken === undefined) {
        if (!interrupted) resume(Effect.fail(failed(error ?? new Error("No client returned"), "Failed to acquire connection")))
        return
      }
      if (interrupted) return giveBack(pool, taken, undefined)
      client = taken
      taken.on("error", onError)
      StatementBatch.send(taken, steps, (failure, results) => {
        // (interrupted meanwhile: the connection was destroyed then)
        if (client === undefined) return
        client = undefined
        taken.off("error", onError)
        giveBack(pool, taken, reported)
        resume(failure ? Effect.fail(failed(failure)) : Effect.succeed(rowsOfResults(results)))
      })
    })
    return Effect.suspend(() => {
      interrupted = true
      const c = client
      if (c === undefined) return Effect.void
      client = undefined
      // the cancel may land after the batch ended, on whatever the session runs next: not reused
      return Effect.ensuring(
        cancel(pool, c),
        Effect.sync(() => {
          c.off("error", onError)
          giveBack(pool, c, cancelSent())
        })
      )
    })
  })
