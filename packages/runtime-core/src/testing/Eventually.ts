/**
 * Waiting in tests for something another fiber, process or session makes
 * true: asked again every 50 ms; past the timeout the test dies, naming what
 * it waited for (a liveness limit, not a speed bound: generous by default).
 * Real time: for tests on the live clock.
 */
import { Duration, Effect, Option } from "effect"

export interface Options {
  /** Give up after this long (default 30 s). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Ask again after this long (default 50 ms). */
  readonly every?: Duration.DurationInput | undefined
}

/** The first `Some` that `effect` yields. */
export const some = <A, E, R>(
  effect: Effect.Effect<Option.Option<A>, E, R>,
  what: string,
  options?: Options
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(options?.timeout ?? "30 seconds")
    while (true) {
      const found = yield* effect
      if (Option.isSome(found)) return found.value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for: ${what}`)
      yield* Effect.sleep(options?.every ?? "50 millis")
    }
  })

/** Once `condition` holds. */
export const until = <E, R>(condition: Effect.Effect<boolean, E, R>, what: string, options?: Options): Effect.Effect<void, E, R> =>
  Effect.asVoid(some(Effect.map(condition, (holds) => (holds ? Option.some(true) : Option.none())), what, options))
