/**
 * Group commit: concurrent writes of one kind share one statement.
 *
 * Under a burst, hundreds of runs record a step's outcome at the same moment,
 * each as its own INSERT: its own round trip, commit and, in this process,
 * about half a millisecond of CPU per statement (the SQL client, the driver,
 * the socket write). Here a write waits only while the previous statement of
 * its kind is in flight; whatever queued meanwhile goes in the next statement
 * (at most `maxBatch` items and `maxBytes`). A write with nothing in flight
 * goes at once, alone, in its caller's fiber: a lone run pays what a plain
 * statement costs. A caller inside a SQL transaction writes alone, in its
 * transaction. A write whose caller is interrupted while it waits is still
 * written (the value is true; its caller no longer hears of it).
 *
 * Effect's own batching (`RequestResolver`, the experimental `dataLoader`)
 * groups requests of one fiber, or those within a time window, which would
 * delay every lone write by the window.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Exit, FiberSet, Option } from "effect"
import type { Scope } from "effect"

/** At most this many bytes of values in one grouped statement, by default (large values go in smaller groups). */
export const MAX_BYTES = 4 * 1024 * 1024

export interface GroupCommit<I, O, E> {
  /** Writes `item` with whatever else is waiting; its own result (or the statement's failure). */
  readonly submit: (item: I) => Effect.Effect<O, E>
}

interface Pending<I, O, E> {
  readonly item: I
  readonly resume: (effect: Effect.Effect<O, E>) => void
}

export const make = <I, O, E, R>(options: {
  /** Most items in one statement. */
  readonly maxBatch: number
  /**
   * Most bytes in one statement, by `size` (a statement holds at least one item):
   * large values (an activity's result, a payload) do not pile up into one huge statement.
   */
  readonly maxBytes?: number | undefined
  readonly size?: ((item: I) => number) | undefined
  /**
   * The row an item writes. One statement writes each key once, in key order (two
   * processes writing the same keys lock them in the same order); an item whose key
   * is already in the statement goes `alone` after it.
   */
  readonly key: (item: I) => string
  /** Writes `items` (distinct keys, in key order) in one statement: one result per item, in order. */
  readonly write: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E, R>
  /** Writes one item in the caller's fiber, as its own statement: a write with nothing in flight. */
  readonly alone: (item: I) => Effect.Effect<O, E>
  /**
   * Writes one item in the caller's SQL transaction (it must commit or roll back
   * with that transaction); `alone` if not given. Differs from `alone` when that
   * statement is meant to be its own transaction (`AsynchronousCommit`).
   */
  readonly inTransaction?: ((item: I) => Effect.Effect<O, E>) | undefined
}): Effect.Effect<GroupCommit<I, O, E>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    // the writer fiber belongs to the layer's scope: closing it interrupts a statement in flight
    const run = yield* FiberSet.makeRuntime<R>()
    let queue: Array<Pending<I, O, E>> = []
    let writing = false
    let closed = false
    const interruptQueued = () => {
      const waiting = queue
      queue = []
      for (const pending of waiting) pending.resume(Effect.interrupt)
    }
    // closing: the writes still queued get an answer (a writer would not start any more)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        interruptQueued()
      })
    )

    const settle = (batch: ReadonlyArray<Pending<I, O, E>>, exit: Exit.Exit<ReadonlyArray<O>, E>) => {
      if (Exit.isSuccess(exit)) {
        for (let i = 0; i < batch.length; i++) batch[i]!.resume(Effect.succeed(exit.value[i]!))
      } else {
        const failed = Effect.failCause(exit.cause)
        for (const pending of batch) pending.resume(failed)
      }
    }

    // how many of the queued items the next statement takes: at most maxBatch and maxBytes, at least one
    const take = () => {
      const most = Math.min(queue.length, options.maxBatch)
      if (options.size === undefined || options.maxBytes === undefined) return most
      let bytes = 0
      for (let i = 0; i < most; i++) {
        bytes += options.size(queue[i]!.item)
        if (bytes > options.maxBytes) return Math.max(1, i)
      }
      return most
    }

    // the batch being written, answered by `settle` or, if the writer is interrupted, below
    let current: ReadonlyArray<Pending<I, O, E>> = []
    const writeNext: Effect.Effect<void, never, R> = Effect.suspend(() => {
      const count = take()
      const batch = queue.length === count ? queue : queue.slice(0, count)
      queue = queue.length === count ? [] : queue.slice(count)
      current = batch
      const byKey = new Map<string, Pending<I, O, E>>()
      const again: Array<Pending<I, O, E>> = []
      for (const pending of batch) {
        const key = options.key(pending.item)
        if (byKey.has(key)) again.push(pending)
        else byKey.set(key, pending)
      }
      const distinct = Array.from(byKey.keys()).sort().map((key) => byKey.get(key)!)
      return Effect.exit(options.write(distinct.map((pending) => pending.item))).pipe(
        Effect.flatMap((exit) => {
          settle(distinct, exit)
          current = again
          // the statement failed: so do the writes that were to follow it (each retries)
          if (Exit.isFailure(exit)) return Effect.sync(() => settle(again, exit))
          return Effect.forEach(again, (pending) =>
            Effect.map(Effect.exit(options.alone(pending.item)), (exit) => pending.resume(exit)), { discard: true })
        }),
        Effect.ensuring(Effect.sync(() => (current = [])))
      )
    })
    const drain: Effect.Effect<void, never, R> = Effect.whileLoop({
      // the check and the flag change together: a write submitted after the last check starts a new writer
      while: () => {
        if (queue.length > 0) return true
        writing = false
        return false
      },
      body: () => writeNext,
      step: () => {}
    }).pipe(
      // the scope closed: nothing waits for an answer that will not come
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          const waiting = [...current, ...queue]
          current = []
          queue = []
          writing = false
          for (const pending of waiting) pending.resume(Effect.interrupt)
        })
      )
    )

    // a statement is in flight (alone or grouped): its end starts the writer for the queue
    const grouped = (item: I) => Effect.async<O, E>((resume) => void queue.push({ item, resume }))
    // nothing in flight: the write goes alone, in the caller's fiber (a lone run's write costs
    // what a plain statement costs); writes made meanwhile queue and go together after it
    const first = (item: I) =>
      Effect.ensuring(
        options.alone(item),
        Effect.sync(() => {
          if (closed) interruptQueued()
          if (queue.length > 0) run(drain)
          else writing = false
        })
      )
    const inTransaction = options.inTransaction ?? options.alone
    return {
      submit: (item) =>
        Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) => {
          if (Option.isSome(transaction)) return inTransaction(item)
          if (writing) return grouped(item)
          writing = true
          return first(item)
        })
    }
  })
