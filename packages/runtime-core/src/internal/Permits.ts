/**
 * A fixed number of turns, handed to waiters first come, first served, at O(1)
 * per turn.
 *
 * Why not `Effect.makeSemaphore`: in Effect 3 a release resumes every waiter
 * while a permit looks free (a waiter takes its permit only after it resumes),
 * and all but one wait again, so N waiters cost O(N) wake-ups per release and
 * O(N²) in all: 1000 fibers queued on one permit took 8.5 s of CPU, 2000 took
 * 62 s and then ran out of memory. Here a release hands its permit to the
 * oldest waiter directly; a waiter interrupted after it was handed one passes
 * it on.
 */
import { Effect } from "effect"

export interface Permits {
  /** Runs `self` holding one permit; waits (interruptibly) for it first. */
  readonly withPermit: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Permits free right now. */
  readonly available: () => number
  /** Fibers waiting for a permit right now. */
  readonly waiting: () => number
}

export const unsafeMake = (permits: number): Permits => {
  let free = permits
  // insertion order is arrival order
  const waiters = new Set<() => void>()

  const release = () => {
    const next = waiters.values().next()
    if (next.done) {
      free++
    } else {
      waiters.delete(next.value)
      next.value()
    }
  }

  const take = Effect.async<void>((resume) => {
    if (free > 0) {
      free--
      resume(Effect.void)
      return
    }
    const waiter = () => resume(Effect.void)
    waiters.add(waiter)
    // interrupted while waiting: leave the line, or pass on the permit handed over meanwhile
    return Effect.sync(() => {
      if (!waiters.delete(waiter)) release()
    })
  })

  return {
    withPermit: (self) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(restore(take), Effect.ensuring(restore(self), Effect.sync(release)))
      ),
    available: () => free,
    waiting: () => waiters.size
  }
}

export const make = (permits: number): Effect.Effect<Permits> => Effect.sync(() => unsafeMake(permits))
