/**
 * The relay: a transaction's last query carries the next transaction's first.
 *
 * On a pool's connections (`PoolConnection`'s `open` and `finish`): when the
 * pool has no connection to give, a transaction's first query (`BEGIN` with its first statement) waits in the
 * pool's queue as any other, and also in a queue of its own: the next
 * transaction on the pool that ends (its exit row and `COMMIT`) sends it in the
 * same batch (`StatementBatch`: exit row, `COMMIT`, `BEGIN`, statement, one
 * round trip), and hands its connection over. Postgres runs the statements in order: the first
 * transaction has committed before the second begins. Under load a
 * transactional step is then about one round trip and one socket write, not
 * two (`pnpm bench`, the body-an-effect cell).
 *
 * A first query also waits for the relay alone, even while a connection is
 * idle, for at most `patience` (1 ms, `PoolConnection`; then it asks the pool
 * too), when a transaction on the pool is to finish and no rider waits for it
 * yet (`finishExpected`): a transaction's finish nearly always comes within a
 * round trip of its first query, and taking the idle connection would cost a
 * round trip and a socket write of its own. Measured: the relay carried 39 %
 * of first queries when they waited only for an exhausted pool, 82-85 % with
 * this (`pnpm bench`, the body-an-effect cell: socket writes per workflow
 * 4.9-5.4 -> 3.6-3.9 in single cells, 5.2-5.4 -> 4.0-4.2 in full runs). A
 * transaction alone on the pool (no finish to come) never waits.
 *
 * Whichever comes first serves
 * the waiting query: the pool (the relay's place is given up) or a relay (the
 * request in the pool's queue is withdrawn: `withdraw`). A connection that goes
 * back (`release`) is handed to a waiting transaction the same way, without a
 * query. So that the engine's statements waiting in the pool's queue are not
 * kept waiting by transactions that keep coming, a connection serves at most
 * `maxRelaysAhead` of them in a row while the pool has other waiters; then it
 * goes back to the pool.
 *
 * If the combined batch fails, the statements that finished before the error
 * say whose it was: one of the ending transaction's (its COMMIT did not land,
 * and the carried statements did not run), and the ending transaction fails
 * as after any failed statement, while the carried query goes back to the head
 * of the queue, to be sent again; or the carried transaction's own (the ending
 * one committed), and the carried transaction gets the error and the
 * connection, its transaction aborted, to roll back.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type pg from "pg"
import type * as StatementBatch from "./StatementBatch.js"

/** A pg failure as @effect/sql-pg reports it (its messages), for this module and `PoolConnection`. */
export const failed = (cause: unknown, message = "Failed to execute statement") => new SqlError({ cause, message })

/** A transaction's first query waiting for a connection (`open`), in its pool's relay queue. */
export interface Rider {
  readonly steps: ReadonlyArray<StatementBatch.Step>
  /**
   * Served: `client` is the rider's now, with `results` when its query went with
   * another's `finish` (its transaction is open), without when it is to send it itself.
   */
  readonly board: (client: pg.PoolClient, results?: ReadonlyArray<ReadonlyArray<unknown>>) => void
  /** Its query went with another's `finish` and failed in its own statements: `client`, its transaction aborted, and `error` are the rider's. */
  readonly refuse: (client: pg.PoolClient, error: SqlError) => void
  /** Its query is on its way with another's `finish`. */
  readonly carried: () => void
  /** Its query went with a `finish` that failed: back to waiting. */
  readonly unboard: () => void
}

interface Relay {
  readonly riders: Array<Rider>
  /** Riders' requests in the pool's own queue (`pool.waitingCount` counts them too). */
  pending: number
  /** Transactions begun (their first query sent, or waiting to go) whose last query is not sent yet. */
  begun: number
}

const relays = new WeakMap<pg.Pool, Relay>()

const relayOf = (pool: pg.Pool): Relay => {
  let relay = relays.get(pool)
  if (relay === undefined) {
    relay = { riders: [], pending: 0, begun: 0 }
    relays.set(pool, relay)
  }
  return relay
}

/**
 * How many riders in a row a connection may serve while the pool has other
 * waiters: then it goes back to the pool, whose queue is first come, first served.
 */
const maxRelaysAhead = 8

/** Riders a connection served in a row while the pool had other waiters. */
const relaysAhead = new WeakMap<pg.PoolClient, number>()

/** The next rider `client` serves (with its `finish`, or as it goes back), if any; the pool's other waiters get it after `maxRelaysAhead` of them. */
export const next = (pool: pg.Pool, client: pg.PoolClient): Rider | undefined => {
  const relay = relays.get(pool)
  if (relay === undefined || relay.riders.length === 0) return undefined
  if (pool.waitingCount > relay.pending) {
    // (counted until the connection goes back to the pool: `release`)
    const ahead = relaysAhead.get(client) ?? 0
    if (ahead >= maxRelaysAhead) return undefined
    relaysAhead.set(client, ahead + 1)
  }
  return relay.riders.shift()
}

/**
 * A request in the pool's queue (`pool.connect` with no connection to give):
 * pg-pool's `PendingItem`, found in its `_pendingQueue` (pg-pool 3.x; pinned),
 * and the box its callback answers through.
 */
interface Queued {
  readonly queue: Array<unknown>
  readonly item: unknown
  readonly box: { answer: ((error: Error | undefined, client: pg.PoolClient | undefined) => void) | undefined }
}

/**
 * `pool.connect(answer)`; the request, when it was queued. The callback goes
 * through a box, so that a withdrawn request's answer (`withdraw`) reaches no one.
 */
const connect = (
  pool: pg.Pool,
  answer: (error: Error | undefined, client: pg.PoolClient | undefined) => void
): Queued | undefined => {
  const queue = (pool as unknown as { _pendingQueue?: unknown })._pendingQueue
  const before = Array.isArray(queue) ? queue.length : -1
  const box: Queued["box"] = { answer }
  pool.connect((error, client) => {
    if (box.answer !== undefined) box.answer(error, client)
    else client?.release()
  })
  return Array.isArray(queue) && queue.length === before + 1 ? { queue, item: queue[before], box } : undefined
}

/** The answer of every withdrawn request (see `withdraw`). */
const withdrawn = new Error("withdrawn from the pool's queue: served by the relay")

/**
 * Takes a request out of the pool's queue, if it is still there: true when it
 * was (its callback will not be called with a connection). A request served
 * meanwhile, or one the pool is opening a new connection for, stays: its
 * connection comes, and the caller gives it back.
 *
 * The withdrawn request is answered at once, with an error the empty box drops:
 * with `connectionTimeoutMillis`, that answer is what clears pg-pool's timer.
 * Left to fire, each timer kept its callback alive for the whole timeout and
 * then scanned the pool's queue for it (`removeWhere`): 20 µs of node CPU per
 * transactional workflow under load (`pnpm bench`, a CPU profile). One error
 * for all (`withdrawn`: no stack captured per request); no one reads it.
 */
const withdraw = (queued: Queued): boolean => {
  const at = queued.queue.indexOf(queued.item)
  if (at < 0) return false
  queued.queue.splice(at, 1)
  queued.box.answer = undefined
  ;(queued.item as { callback?: (error: Error) => void }).callback?.(withdrawn)
  return true
}

/** Whether a connection taken now would have to wait: none idle and no room for another. */
export const exhausted = (pool: pg.Pool): boolean =>
  pool.idleCount === 0 && pool.totalCount >= (pool.options.max ?? 10) && (pool as { ending?: boolean }).ending !== true

/**
 * A transaction begins (its first query goes, or waits to): its last query
 * (`finish`) is to come, and can carry one waiting transaction's first
 * (`finishExpected`); until `ended`.
 */
export const began = (pool: pg.Pool): void => {
  relayOf(pool).begun++
}

/** The transaction's last query goes now (or it is given back without one). */
export const ended = (pool: pg.Pool): void => {
  const relay = relays.get(pool)
  if (relay !== undefined && relay.begun > 0) relay.begun--
}

/**
 * Whether a transaction about to begin had better wait for a `finish` to come,
 * even with a connection idle: one is, with no rider for it yet.
 */
export const finishExpected = (pool: pg.Pool): boolean => {
  const relay = relays.get(pool)
  // (riders are counted in `begun` too: the others each carry one)
  return relay !== undefined && 2 * relay.riders.length < relay.begun
}

/** `client` goes back to the pool: its count of riders in a row starts again. */
export const returned = (client: pg.PoolClient): void => {
  relaysAhead.delete(client)
}

/**
 * Waits for a connection in the pool's queue and in the relay's, with the
 * transaction's first query `steps`. Served by the relay, the query was sent
 * with another transaction's last one: its results. Served by the pool (or
 * handed a connection without a query): `undefined`, and the caller sends it.
 * Either way the connection is given to `adopt` (`false`: the caller's hold
 * was given back meanwhile, and the connection went back too).
 */
export const wait = (
  pool: pg.Pool,
  steps: ReadonlyArray<StatementBatch.Step>,
  adopt: (client: pg.PoolClient, inTransaction: boolean) => boolean,
  patience?: number
): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>> | undefined, SqlError> =>
  Effect.async<ReadonlyArray<ReadonlyArray<unknown>> | undefined, SqlError>((resume) => {
    const relay = relayOf(pool)
    let state: "waiting" | "carried" | "served" | "cancelled" = "waiting"
    // with `patience`: the pool is asked only after that long, unless a relay came first
    let timer: ReturnType<typeof setTimeout> | undefined
    const stopTimer = () => {
      if (timer === undefined) return
      clearTimeout(timer)
      timer = undefined
    }
    // the pool's connection, when it came while the query was being carried (listened to: a
    // checked-out pg client that emits 'error' with no listener would throw)
    let spare: pg.PoolClient | undefined
    let spareError: Error | undefined
    const onSpareError = (error: Error) => {
      spareError = error
    }
    const takeSpare = () => {
      const c = spare!
      spare = undefined
      c.off("error", onSpareError)
      return c
    }
    const dropSpare = () => {
      if (spare !== undefined) takeSpare().release(spareError)
    }
    // whether the rider's request is in the pool's queue (`queued`: withdrawable)
    let requesting = false
    let queued: Queued | undefined
    let settled: (() => void) | undefined
    const leave = () => {
      const at = relay.riders.indexOf(rider)
      if (at >= 0) relay.riders.splice(at, 1)
    }
    /**
     * The pool's answer is not needed (any more): the request leaves its queue. Left
     * there, it would be answered later with a connection only to give it back, and,
     * many of them in a row, each give-back answering the next within the last one's
     * call: a stack overflow (a probe of 6000 steps, 100 at a time, on 20 connections).
     */
    const withdrawRequest = () => {
      if (!requesting || queued === undefined || !withdraw(queued)) return
      queued = undefined
      requesting = false
      relay.pending--
    }
    const serve = (c: pg.PoolClient, results?: ReadonlyArray<ReadonlyArray<unknown>>) => {
      stopTimer()
      state = "served"
      leave()
      withdrawRequest()
      if (adopt(c, results !== undefined)) resume(Effect.succeed(results))
      // given back meanwhile (a body that did not wait for its statement)
      else resume(Effect.fail(failed(new Error("the connection was already given back"))))
    }
    const request = () => {
      requesting = true
      relay.pending++
      queued = connect(pool, (error, taken) => {
        queued = undefined
        requesting = false
        relay.pending--
        if (state === "carried") {
          // kept until the carried query's outcome is known (an error: asked again if needed)
          if (taken !== undefined) {
            spare = taken
            taken.on("error", onSpareError)
          }
          return
        }
        if (state !== "waiting") return taken?.release()
        if (error || taken === undefined) {
          leave()
          state = "served"
          return resume(Effect.fail(failed(error ?? new Error("No client returned"), "Failed to acquire connection")))
        }
        serve(taken)
      })
    }
    const rider: Rider = {
      steps,
      board: (c, results) => {
        if (results === undefined) return serve(c)
        dropSpare()
        if (state === "cancelled") {
          // interrupted while carried: its transaction is open; this hold rolls it back
          // (the caller sees `taken`), as any interrupted first statement
          state = "served"
          adopt(c, true)
          return settled?.()
        }
        serve(c, results)
      },
      refuse: (c, error) => {
        stopTimer()
        dropSpare()
        state = "served"
        // its transaction is open (aborted): this hold rolls it back, as after any failed first statement
        adopt(c, true)
        if (settled !== undefined) return settled()
        resume(Effect.fail(error))
      },
      carried: () => {
        stopTimer()
        state = "carried"
        // should the carried query fail, `unboard` asks again
        withdrawRequest()
      },
      unboard: () => {
        if (state === "cancelled") {
          // interrupted while carried, and nothing was begun: nothing to keep
          dropSpare()
          return settled?.()
        }
        if (spare !== undefined && spareError === undefined) return serve(takeSpare())
        dropSpare()
        state = "waiting"
        relay.riders.unshift(rider)
        // its request in the pool's queue was answered meanwhile (by an error): asked again
        if (!requesting) request()
      }
    }
    relay.riders.push(rider)
    if (patience === undefined) request()
    else {
      timer = setTimeout(() => {
        timer = undefined
        if (state === "waiting" && !requesting) request()
      }, patience)
    }
    return Effect.async<void>((done) => {
      stopTimer()
      if (state === "waiting") {
        leave()
        withdrawRequest()
        state = "cancelled"
        return done(Effect.void)
      }
      if (state !== "carried") return done(Effect.void)
      // carried: its outcome decides whether there is a transaction to roll back
      state = "cancelled"
      settled = () => done(Effect.void)
    })
  })
