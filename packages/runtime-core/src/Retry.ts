/**
 * Every retry policy of the runtime in one place. They are all the same shape:
 * exponential back-off (each wait doubles from `first`), no wait longer than
 * `max`, and giving up once `total` has passed. What differs is how long the
 * caller can afford to wait, which is said next to each schedule.
 */
import { Cause, type Duration, Effect, Schedule } from "effect"

export interface Backoff {
  /** The first wait; each next one is twice as long. */
  readonly first: Duration.DurationInput
  /** No wait is longer than this (unset: the waits keep doubling). */
  readonly max?: Duration.DurationInput | undefined
  /** Give up once this much time has passed (unset: never; something else bounds it). */
  readonly total?: Duration.DurationInput | undefined
}

/** Exponential back-off from `first`, capped at `max` per wait, for at most `total`. */
export const backoff = (options: Backoff): Schedule.Schedule<unknown> => {
  const doubling: Schedule.Schedule<unknown> = Schedule.exponential(options.first, 2)
  const capped = options.max === undefined ? doubling : doubling.pipe(Schedule.either(Schedule.spaced(options.max)))
  return options.total === undefined ? capped : capped.pipe(Schedule.upTo(options.total))
}

/**
 * The engine's idempotent storage calls (start, deferred, resume, interrupt,
 * activity and clock writes) after a dropped connection: long enough to ride
 * out a Postgres restart or failover.
 */
export const storage = backoff({ first: "100 millis", max: "2 seconds", total: "60 seconds" })

/**
 * A transactional activity's whole transaction after a database error (a lost
 * connection, a serialization failure): the activity ledger says whether an
 * earlier attempt committed, so trying again is safe, and a run would rather
 * wait than fail.
 */
export const transaction = backoff({ first: "100 millis", max: "5 seconds", total: "2 minutes" })

/**
 * A runs-ledger write (an idempotent upsert): the ledger must not miss a
 * transition because a connection broke, but after 30 s it is given up
 * (logged) rather than failing the run.
 */
export const ledger = backoff({ first: "50 millis", max: "2 seconds", total: "30 seconds" })

/** The LISTEN session for wake-ups: reconnect for ever; the engine's poll covers the gap. */
export const listener = backoff({ first: "200 millis", max: "10 seconds" })

/** A start whose connection was found dead at BEGIN: quick, since the start deadline bounds it. */
export const start = backoff({ first: "50 millis" })

/** Connecting at startup: apps and their database often start together. */
export const connect = (timeout: Duration.DurationInput) => backoff({ first: "100 millis", total: timeout })

/**
 * `Effect.retry(effect, { schedule, while })`, except that the first attempt
 * runs bare: the schedule's driver (and the iteration metadata Effect provides
 * to every attempt, a copy of the fiber's context) is only set up once an
 * attempt has failed. The same attempts, waits and outcome; on the hot path a
 * statement that succeeds (nearly all of them) costs no retry machinery.
 */
export const retrying = <E, O>(options: {
  readonly schedule: Schedule.Schedule<O, NoInfer<E>>
  readonly while?: ((error: E) => boolean) | undefined
  /** Once the schedule gives up, the error that was retried is a defect (other errors still fail). */
  readonly orDie?: boolean | undefined
}) =>
<A, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchAll(effect, (error) => {
    if (options.while !== undefined && !options.while(error)) return Effect.fail(error)
    // the failure just seen is the schedule's first input: replayed, not run again
    let replay = true
    const retried = Effect.retry(
      Effect.suspend(() => {
        if (!replay) return effect
        replay = false
        return Effect.fail(error)
      }),
      options.while === undefined ? { schedule: options.schedule } : { schedule: options.schedule, while: options.while }
    )
    return options.orDie === true ? Effect.catchIf(retried, options.while ?? (() => true), Effect.die) : retried
  })

/** `retrying` on the whole cause (as `Effect.sandbox`, `Effect.retry`, `Effect.unsandbox`): for retries decided by what a cause holds. */
export const retryingCause = <E, O>(options: {
  readonly schedule: Schedule.Schedule<O, Cause.Cause<E>>
  readonly while: (cause: Cause.Cause<E>) => boolean
}) =>
<A, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.unsandbox(retrying(options)(Effect.sandbox(effect)))
