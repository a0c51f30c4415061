/**
 * Retention under load: 100k expired finished runs (each with a ledger row, an
 * engine message, its reply and an activity exit) are swept while live runs
 * start and finish; their p99 latency before and during the sweep, and the
 * rows left per expired run.
 */
import { AppRuntime, Database, Retention, TablePrefix, WorkflowLayer } from "@duraflow/runtime-core"
import { ExpiredRuns, TestDatabase } from "@duraflow/runtime-core/testing"
import { Activity, Workflow } from "@effect/workflow"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Redacted, Schema } from "effect"

const prefix = TablePrefix.unsafeMake("keep")
const EXPIRED = 100_000

const Live = Workflow.make({ name: "Live", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const LiveLayer = WorkflowLayer.make(Live, {
  dependencies: Layer.empty,
  execute: () => Activity.make({ name: "step", execute: Effect.void })
})

const pct = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!

/** `n` live runs, 4 at a time: each one's latency (start to result), ms. */
const liveRuns = (tag: string, n: number) =>
  Effect.forEach(Array.from({ length: n }, (_, i) => `${tag}-${i}`), (id) =>
    Effect.gen(function*() {
      const t0 = performance.now()
      yield* Live.execute({ id })
      return performance.now() - t0
    }), { concurrency: 4 })

export const rows = Effect.scoped(Effect.gen(function*() {
  const db = yield* TestDatabase.make("retention")
  const runtime = yield* Layer.build(
    AppRuntime.layer({ prefix, migrations: [], workflows: LiveLayer }).pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["RUNS_RETENTION", "off"]])))),
      Layer.provideMerge(Database.layer({ url: Redacted.make(db.url), applicationName: "figures-retention" }))
    )
  )
  return yield* Effect.gen(function*() {
    yield* ExpiredRuns.seed(prefix, { count: EXPIRED, tag: "old", workflow: "Live", ageDays: 30 })
    yield* liveRuns("warm", 20)
    const before = yield* liveRuns("before", 200)
    const t0 = performance.now()
    const sweep = yield* Effect.fork(Retention.sweep(prefix, { age: Duration.days(14) }))
    const during: Array<number> = []
    while (sweep.unsafePoll() === null) during.push(...(yield* liveRuns(`during-${during.length}`, 20)))
    const total = yield* Fiber.join(sweep)
    const sweepMs = performance.now() - t0
    const left = yield* ExpiredRuns.rowsLeft(prefix, { count: EXPIRED, tag: "old" })
    return [
      [`retention: ${EXPIRED} expired runs swept (${total.batches} batches)`, `${(sweepMs / 1000).toFixed(1)} s`, ""],
      ["retention: rows left per expired run", (left / EXPIRED).toFixed(2), "0"],
      ["retention: live run p99 before the sweep (n=200)", `${Math.round(pct(before, 99))} ms`, ""],
      [`retention: live run p99 during the sweep (n=${during.length})`, `${Math.round(pct(during, 99))} ms`, "close to before"]
    ] as Array<[string, string, string]>
  }).pipe(Effect.provide(runtime))
}))
