/**
 * kill -9 of an app under load, then a restart: every run succeeds exactly
 * once in the runs ledger, and no transactional write is applied twice.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { diagnose, effects, eventually, startApp, succeededRuns } from "./helpers.js"

const scenario = (options: { prefix: string; runs: number; stepMs: number; killAfterDone: number }) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.TestDatabase
    const env = { DATABASE_URL: db.url, PREFIX: options.prefix, STEP_MS: String(options.stepMs), POLL_MS: "1000" }
    const first = yield* startApp({ ...env, START: String(options.runs) })
    // a hang guard, not a speed bound: 5000 starts on a loaded 2-core machine took over 2 minutes
    yield* first.waitForEvent("started", "300 seconds")
    yield* eventually(effects(options.prefix), (e) => e.t3 >= options.killAfterDone)
    yield* first.kill("SIGKILL")
    const atKill = yield* effects(options.prefix)
    expect(atKill.t3).toBeLessThan(options.runs) // the crash really interrupted work

    const second = yield* startApp({ ...env, START: "0" })
    yield* eventually(succeededRuns(options.prefix), (n) => n === options.runs, "240 seconds").pipe(
      Effect.tapError(() => Effect.flatMap(diagnose(options.prefix, second), (d) => Effect.sync(() => console.error(d))))
    )
    const after = yield* effects(options.prefix)
    expect(after).toEqual({ t1: options.runs, t3: options.runs, duplicated: 0 })
    yield* second.kill("SIGTERM")
  })

describe("kill -9 under load", () => {
  layer(TestDatabase.layer("crash"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("300 runs in flight", () => scenario({ prefix: "crash", runs: 300, stepMs: 20, killAfterDone: 30 }), {
      timeout: 300_000
    })

    it.scoped("a 5000-run backlog", () => scenario({ prefix: "backlog", runs: 5000, stepMs: 0, killAfterDone: 50 }), {
      timeout: 600_000
    })
  })
})
