/**
 * `Permits`: a bound on concurrent work with first-come-first-served turns,
 * where an interrupted waiter neither runs nor keeps a permit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as Permits from "../src/internal/Permits.js"

describe("Permits", () => {
  it.effect("2000 waiters on 3 permits: never more than 3 at once, all run, in arrival order", () =>
    Effect.gen(function*() {
      const permits = yield* Permits.make(3)
      let current = 0
      let max = 0
      const order: Array<number> = []
      yield* Effect.forEach(
        Array.from({ length: 2000 }, (_, i) => i),
        (i) =>
          permits.withPermit(Effect.gen(function*() {
            current++
            max = Math.max(max, current)
            order.push(i)
            yield* Effect.yieldNow()
            current--
          })),
        { concurrency: "unbounded", discard: true }
      )
      expect(max).toBe(3)
      expect(order).toEqual(Array.from({ length: 2000 }, (_, i) => i))
      expect(permits.available()).toBe(3)
      expect(permits.waiting()).toBe(0)
    }))

  it.effect("an interrupted waiter does not run and leaves no permit taken; a failure releases its permit", () =>
    Effect.gen(function*() {
      const permits = yield* Permits.make(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(permits.withPermit(Deferred.await(gate)))
      let ran = 0
      const waiters = yield* Effect.forEach(
        [1, 2, 3],
        () => Effect.fork(permits.withPermit(Effect.sync(() => ran++))),
        { concurrency: "unbounded" }
      )
      while (permits.waiting() < 3) yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiters[1]!)
      expect(permits.waiting()).toBe(2)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(waiters[0]!)
      yield* Fiber.join(waiters[2]!)
      expect(ran).toBe(2)
      expect(yield* Effect.flip(permits.withPermit(Effect.fail("boom")))).toBe("boom")
      expect(permits.available()).toBe(1)
    }))

  it.effect("a permit handed to a waiter that is interrupted at that moment goes to the next one", () =>
    Effect.gen(function*() {
      const permits = yield* Permits.make(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(permits.withPermit(Deferred.await(gate)))
      const first = yield* Effect.fork(permits.withPermit(Effect.void))
      const second = yield* Effect.fork(permits.withPermit(Effect.succeed("second ran")))
      while (permits.waiting() < 2) yield* Effect.yieldNow()
      // release (hands the permit to `first`) and interrupt `first` before it resumes
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.interrupt(first)
      expect(yield* Fiber.join(second)).toBe("second ran")
      expect(permits.available()).toBe(1)
    }))
})
