/**
 * Group commit: concurrent writes of one kind share one statement.
 *
 * Under a burst, hundreds of runs record a step's outcome at the same moment,
 * each as its own INSERT: its own round trip, commit and, in this process,
 * about half a millisecond of CPU per statement (the SQL client, the driver,
 * the socket write). Here a write waits only while the previous statement of
 * its kind is in flight; whatever queued meanwhile goes in the next statement
 * (at most `maxBatch`). A write alone goes at once, so a lone run waits no
 * longer than before.
 *
 * A caller inside a SQL transaction writes alone, in its transaction.
 *
 * Effect's own batching (`RequestResolver`, the experimental `dataLoader`)
 * groups requests of one fiber, or those within a time window, which would
 * delay every lone write by the window.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Exit, FiberSet, Option } from "effect"
import type { Scope } from "effect"

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
  /** Writes `items` in one statement: one result per item, in order. */
  readonly write: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E, R>
  /**
   * Writes one item in the caller's fiber: for a caller inside a SQL transaction,
   * whose write must commit (or roll back) with it, not in a statement of its own.
   */
  readonly alone: (item: I) => Effect.Effect<O, E>
}): Effect.Effect<GroupCommit<I, O, E>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    // the writer fiber belongs to the layer's scope: closing it interrupts a statement in flight
    const run = yield* FiberSet.makeRuntime<R>()
    let queue: Array<Pending<I, O, E>> = []
    let writing = false

    const settle = (batch: ReadonlyArray<Pending<I, O, E>>, exit: Exit.Exit<ReadonlyArray<O>, E>) => {
      if (Exit.isSuccess(exit)) {
        for (let i = 0; i < batch.length; i++) batch[i]!.resume(Effect.succeed(exit.value[i]!))
      } else {
        const failed = Effect.failCause(exit.cause)
        for (const pending of batch) pending.resume(failed)
      }
    }

    // the batch being written, answered by `settle` or, if the writer is interrupted, below
    let current: ReadonlyArray<Pending<I, O, E>> = []
    const writeNext: Effect.Effect<void, never, R> = Effect.suspend(() => {
      const batch = queue.length <= options.maxBatch ? queue : queue.slice(0, options.maxBatch)
      queue = queue.length <= options.maxBatch ? [] : queue.slice(options.maxBatch)
      current = batch
      return Effect.map(Effect.exit(options.write(batch.map((pending) => pending.item))), (exit) => {
        current = []
        settle(batch, exit)
      })
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

    const grouped = (item: I) =>
      Effect.async<O, E>((resume) => {
        queue.push({ item, resume })
        if (!writing) {
          writing = true
          run(drain)
        }
      })
    return {
      submit: (item) =>
        Effect.flatMap(
          Effect.serviceOption(SqlClient.TransactionConnection),
          (transaction) =>
            Option.isSome(transaction)
              ? options.alone(item)
              : grouped(item)
        )
    }
  })
