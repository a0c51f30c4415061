/**
 * `Retry.retrying` / `retryingCause`: the same attempts, at the same times, with
 * the same outcome as `Effect.retry` (they only skip the retry machinery while
 * the first attempt succeeds).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import * as Retry from "../src/Retry.js"

/** An effect failing `failures` times (error `n`, the attempt), then succeeding; `times` records when each attempt ran. */
const flaky = (failures: number) => {
  const times: Array<number> = []
  const effect = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    times.push(now)
    return times.length <= failures ? Effect.fail(times.length) : Effect.succeed("done")
  })
  return { effect, times }
}

/** Runs `effect` under the test clock, advancing it until the effect is done. */
const settle = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    yield* TestClock.adjust("10 minutes")
    return yield* Fiber.join(fiber)
  })

describe("Retry.retrying", () => {
  it.effect("attempts at the same moments and ends as Effect.retry (success after 3 failures, exhausted, refused)", () =>
    Effect.gen(function*() {
      for (const failures of [0, 3, 100]) {
        for (const keepGoing of [undefined, (n: number) => n < 2]) {
          const options = { schedule: Retry.storage, while: keepGoing }
          const theirs = flaky(failures)
          const ours = flaky(failures)
          const expected = yield* settle(Effect.retry(theirs.effect, options))
          const actual = yield* settle(Retry.retrying(options)(ours.effect))
          expect(actual).toEqual(expected)
          const start = (times: Array<number>) => times.map((t) => t - times[0]!)
          expect(start(ours.times)).toEqual(start(theirs.times))
        }
      }
    }))

  it.effect("a success on the first attempt runs once; a failure with a schedule of 2 recurrences runs 3 times", () =>
    Effect.gen(function*() {
      const once = flaky(0)
      expect(yield* Retry.retrying({ schedule: Schedule.recurs(2) })(once.effect)).toBe("done")
      expect(once.times.length).toBe(1)
      const never = flaky(10)
      const exit = yield* Effect.exit(Retry.retrying({ schedule: Schedule.recurs(2) })(never.effect))
      expect(exit).toEqual(Exit.fail(3))
      expect(never.times.length).toBe(3)
    }))

  it.effect("retryingCause retries what the predicate accepts (defects included) and passes the rest through", () =>
    Effect.gen(function*() {
      let attempts = 0
      const dying = Effect.suspend(() => ++attempts < 3 ? Effect.die("transient") : Effect.succeed(attempts))
      const isTransient = (cause: Cause.Cause<unknown>) => Cause.squash(cause) === "transient"
      expect(yield* Retry.retryingCause({ schedule: Schedule.recurs(5), while: isTransient })(dying)).toBe(3)

      let refused = 0
      const failing = Effect.suspend(() => {
        refused++
        return Effect.fail("permanent")
      })
      const exit = yield* Effect.exit(Retry.retryingCause({ schedule: Schedule.recurs(5), while: isTransient })(failing))
      expect(exit).toEqual(Exit.fail("permanent"))
      expect(refused).toBe(1)
    }))
})
