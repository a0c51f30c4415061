/**
 * The fixes runtime-core applies to its Effect dependencies with pnpm's
 * `patchedDependencies` (root package.json, `patches/`): each test fails on
 * the unpatched package.
 */
import { Activity } from "@effect/workflow"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"

describe("patches/@effect__workflow@0.19.1.patch", () => {
  it("Activity.make shares one exit schema per (success, error) pair, so Schema's parser cache is hit", () => {
    const Failure = Schema.String
    const make = () => Activity.make({ name: "step", success: Schema.Number, error: Failure, execute: Effect.succeed(1) })
    expect(make().exitSchema).toBe(make().exitSchema)
    // the default (void, never) pair too: most activities declare neither
    expect(Activity.make({ name: "a", execute: Effect.void }).exitSchema)
      .toBe(Activity.make({ name: "b", execute: Effect.void }).exitSchema)
    // a different pair gets its own schema
    expect(Activity.make({ name: "c", success: Schema.String, execute: Effect.succeed("") }).exitSchema)
      .not.toBe(make().exitSchema)
  })

  it.effect("the shared exit schema still decodes each activity's own result", () =>
    Effect.gen(function*() {
      const activity = Activity.make({ name: "s", success: Schema.NumberFromString, execute: Effect.succeed(2) })
      // the engine decodes a stored step result (encoded: "2") with the activity's exit schema
      const decode = Schema.decode(activity.exitSchema)
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
    }))
})
