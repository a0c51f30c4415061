/**
 * At most `maxRunsInFlight` runs execute at once in one process
 * (`RunAdmission`); the others wait in storage and run as slots free. A
 * suspended run frees its slot, a child run is never held (its parent waits
 * for it), and a held run survives the process.
 */
import { MessageStorage } from "@effect/cluster"
import * as Message from "@effect/cluster/Message"
import * as ShardId from "@effect/cluster/ShardId"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it, layer } from "@effect/vitest"
import { DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { Context, Effect, Exit, Fiber, Layer, Metric, Option, Schema } from "effect"
import { TablePrefix, Telemetry, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"
import { PARENT_KEY } from "../src/internal/EngineStorage.js"
import * as RunAdmission from "../src/internal/RunAdmission.js"

const prefix = TablePrefix.unsafeMake("adm")
const limit = 2

/** What the bodies of this process saw: how many ran at once, at most; and the gate they wait at. */
class Bodies extends Context.Tag("test/Bodies")<Bodies, {
  current: number
  max: number
  started: number
  readonly release: Effect.Latch
}>() {}

const bodiesLayer = (open: boolean) =>
  Layer.effect(Bodies, Effect.map(Effect.makeLatch(open), (release) => ({ current: 0, max: 0, started: 0, release })))

const Blocking = Workflow.make({ name: "Blocking", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Go = DurableDeferred.make("go")
const Waiting = Workflow.make({ name: "Waiting", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Child = Workflow.make({ name: "Child", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })
const Parent = Workflow.make({ name: "Parent", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })

const Workflows = Layer.mergeAll(
  WorkflowLayer.make(Blocking, {
    // the process's counters, from the runtime below
    dependencies: Layer.effect(Bodies, Bodies),
    // counts itself while it runs, and waits at the gate
    execute: () =>
      Effect.flatMap(Bodies, (bodies) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            bodies.started++
            bodies.current++
            bodies.max = Math.max(bodies.max, bodies.current)
          }),
          () => bodies.release.await,
          () => Effect.sync(() => bodies.current--)
        ))
  }),
  WorkflowLayer.make(Waiting, { dependencies: Layer.empty, signals: [Go], execute: () => DurableDeferred.await(Go) }),
  WorkflowLayer.make(Child, { dependencies: Layer.empty, execute: ({ id }) => Effect.succeed(`child of ${id}`) }),
  WorkflowLayer.make(Parent, { dependencies: Layer.empty, execute: ({ id }) => Child.execute({ id }) })
)

const runtime = (open: boolean) =>
  Workflows.pipe(
    Layer.provideMerge(WorkflowRuntime.layerDurable(prefix, { maxRunsInFlight: limit })),
    Layer.provideMerge(bodiesLayer(open))
  )

/** Unprocessed start messages of `workflow` in the app's cluster tables: runs started and not done. */
const waitingInStorage = (workflow: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${TablePrefix.clusterPrefix(prefix)}_messages`)}
      WHERE entity_type = ${`Workflow/${workflow}`} AND tag = 'run' AND processed = false`).pipe(
      Effect.map((rows) => rows[0]!.n)
    )

/** The start message of a `Blocking` run on shard workflow:1 (a child run's with `parent`). */
const start = (id: string, parent?: unknown) =>
  new Message.IncomingRequest({
    envelope: {
      tag: "run",
      requestId: id,
      address: { entityType: "Workflow/Blocking", entityId: id, shardId: { group: "workflow", id: 1 } },
      payload: parent === undefined ? { id } : { id, [PARENT_KEY]: parent }
    } as never,
    lastSentReply: Option.none(),
    respond: () => Effect.void
  })

describe("RunAdmission", () => {
  layer(runtime(false).pipe(Layer.provideMerge(TestDatabase.layer("run_admission"))), {
    timeout: 60_000,
    excludeTestServices: true
  })((it) => {
    it.effect("a burst runs at most maxRunsInFlight at once; the rest wait in storage and all complete", () =>
      Effect.gen(function*() {
        const bodies = yield* Bodies
        const fibers = yield* Effect.forEach(
          ["a", "b", "c", "d", "e"],
          (id) => Effect.fork(Blocking.execute({ id })),
          { concurrency: "unbounded" }
        )
        yield* Eventually.until(Effect.map(waitingInStorage("Blocking"), (n) => n === 5 && bodies.current === limit), "five runs wait in storage while the limit runs")
        // give the runner time to start more if it would (it must not)
        yield* Effect.sleep("500 millis")
        expect(bodies.started).toBe(limit)
        // operators see the held runs
        yield* Eventually.until(Effect.map(Metric.value(Telemetry.Metrics.runsWaiting), (g) => g.value === 3), "the waiting gauge shows 3")
        yield* bodies.release.open
        yield* Effect.forEach(fibers, Fiber.join)
        expect(bodies.started).toBe(5)
        expect(bodies.max).toBe(limit)
        expect(yield* waitingInStorage("Blocking")).toBe(0)
        expect((yield* Metric.value(Telemetry.Metrics.runsWaiting)).value).toBe(0)
      }))

    it.effect("a suspended run frees its slot; a child run is not held behind its parent", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine.WorkflowEngine
        // two runs suspend on a signal: were they still counted, nothing else could run
        const waiting = yield* Effect.forEach(["w1", "w2"], (id) => Effect.fork(Waiting.execute({ id })))
        for (const id of ["w1", "w2"]) {
          const executionId = yield* Waiting.executionId({ id })
          yield* Eventually.until(Effect.map(engine.poll(Waiting, executionId), (r) => r?._tag === "Suspended"), "the run suspended")
        }
        // two parents fill both slots, each waits for its child
        const results = yield* Effect.all([Parent.execute({ id: "p1" }), Parent.execute({ id: "p2" })], {
          concurrency: "unbounded"
        })
        expect(results).toEqual(["child of p1", "child of p2"])
        for (const id of ["w1", "w2"]) {
          const executionId = yield* Waiting.executionId({ id })
          yield* engine.deferredDone(Go, { workflowName: Waiting.name, executionId, deferredName: Go.name, exit: Exit.void })
        }
        yield* Effect.forEach(waiting, Fiber.join)
      }))
  })

  layer(TestDatabase.layer("run_admission_restart"), { timeout: 90_000, excludeTestServices: true })((it) => {
    it.effect("runs held when the process stops run in the next one", () =>
      Effect.gen(function*() {
        const ids = ["r1", "r2", "r3", "r4"]
        // first process: two runs execute (and block), two are held; then it stops
        yield* Effect.gen(function*() {
          const bodies = yield* Bodies
          yield* Effect.forEach(ids, (id) => Blocking.execute({ id }, { discard: true }))
          yield* Eventually.until(Effect.sync(() => bodies.current === limit), "the limit's bodies run")
          expect(bodies.started).toBe(limit)
        }).pipe(Effect.provide(runtime(false)), Effect.scoped)
        expect(yield* waitingInStorage("Blocking")).toBe(ids.length)
        // the next process runs them all
        yield* Effect.gen(function*() {
          const engine = yield* WorkflowEngine.WorkflowEngine
          for (const id of ids) {
            const executionId = yield* Blocking.executionId({ id })
            yield* Eventually.until(Effect.map(engine.poll(Blocking, executionId), (r) => r?._tag === "Complete"), "the run completed")
          }
          expect((yield* Bodies).max).toBeLessThanOrEqual(limit)
        }).pipe(Effect.provide(runtime(true)), Effect.scoped)
        expect(yield* waitingInStorage("Blocking")).toBe(0)
      }))
  })

  it("a run started in this process goes to its entity at once while a slot is free and none waits; otherwise storage holds it", () => {
    const gate = RunAdmission.make(1)
    gate.registered("Blocking")
    expect(gate.admitLocal(start("a"))).toBe(true)
    // it counts as in flight: the next start waits for the storage read (which holds it)
    expect(gate.inFlight).toBe(1)
    expect(gate.admitLocal(start("b"))).toBe(false)
    // the same run again (already admitted), or an unregistered workflow: not offered
    expect(gate.admitLocal(start("a"))).toBe(false)
    const other = start("x")
    expect(gate.admitLocal(new Message.IncomingRequest({
      ...other,
      envelope: { ...other.envelope, address: { ...other.envelope.address, entityType: "Workflow/Unknown" } } as never
    }))).toBe(false)
    // a child run takes no slot (its parent waits for it)
    expect(gate.admitLocal(start("c", { workflow: "Parent" }))).toBe(true)
    expect(gate.inFlight).toBe(1)
    // with a slot free but a run held, a new start waits its turn behind it
    const roomy = RunAdmission.make(2)
    roomy.registered("Blocking")
    roomy.admit([start("h1"), start("h2"), start("h3")], new Set(["workflow:1"]))
    expect(roomy.waiting).toBe(1)
    // h1 runs and ends: a slot is free until the next storage read hands h3 over
    Effect.runSync(roomy.track("Blocking", "h1", Effect.void))
    expect(roomy.inFlight).toBe(1)
    expect(roomy.admitLocal(start("late"))).toBe(false)
    // started here just now, at once or not: the first execution of each has nothing recorded
    // (asked once: a replay reads its record)
    expect(gate.firstExecution("Blocking", "a")).toBe(true)
    expect(gate.firstExecution("Blocking", "a")).toBe(false)
    expect(gate.firstExecution("Blocking", "b")).toBe(true)
    expect(roomy.firstExecution("Blocking", "h1")).toBe(false)
    // a waiting start whose shard moved away: its next owner may record steps before it comes back
    const moving = RunAdmission.make(1)
    moving.registered("Blocking")
    expect(moving.admitLocal(start("m1"))).toBe(true)
    expect(moving.admitLocal(start("m2"))).toBe(false)
    moving.admit([start("m2")], new Set(["workflow:1"]))
    Effect.runSync(moving.track("Blocking", "m1", Effect.void))
    expect(moving.admit([], new Set(["workflow:2"]))).toEqual([])
    expect(moving.firstExecution("Blocking", "m2")).toBe(false)
    // without a bound, every new run goes at once
    const unbounded = RunAdmission.make(0)
    unbounded.registered("Blocking")
    expect(unbounded.admitLocal(start("u1"))).toBe(true)
    expect(unbounded.admitLocal(start("u2"))).toBe(true)
  })

  it.effect("a start a read returns while its run finishes, or answered during the read, does not run again", () =>
    Effect.gen(function*() {
      // what the read's snapshot holds, and what happens while it is in flight
      let snapshot: Array<Message.Incoming<any>> = []
      let meanwhile: Effect.Effect<void, unknown> = Effect.void
      const underlying = {
        saveRequest: () => Effect.succeed(MessageStorage.SaveResult.Success()),
        unprocessedMessages: () => Effect.zipRight(meanwhile, Effect.sync(() => snapshot)),
        clearReplies: () => Effect.void
      }
      const gate = RunAdmission.make(1)
      gate.registered("Blocking")
      const storage = RunAdmission.storage(gate, underlying as unknown as MessageStorage.MessageStorage["Type"])
      const read = Effect.map(
        storage.unprocessedMessages([ShardId.make("workflow", 1)]),
        (messages) => messages.map((m) => String(m.envelope.requestId))
      )
      const finalReply = { reply: { _tag: "WithExit" } } as never

      // "a" ran and ended; its final reply is not saved yet. "b" takes the only slot.
      const a = storage.deliverLocal!(start("a"))!
      yield* gate.track("Blocking", "a", Effect.void)
      expect(storage.deliverLocal!(start("b"))).toBeDefined()
      // a read whose snapshot came before a's reply: a's start goes to the runner (which knows
      // it as in progress and skips it), not held as a new run
      snapshot = [start("a")]
      expect(yield* read).toEqual(["a"])
      expect(gate.waiting).toBe(0)
      yield* a.respond(finalReply)
      // b ends: the next read hands nothing over (a held "a" would have run a second time)
      yield* gate.track("Blocking", "b", Effect.void)
      snapshot = []
      expect(yield* read).toEqual([])

      // "c" ran and ended; its reply is saved while a read is in flight, whose snapshot has it
      const c = storage.deliverLocal!(start("c"))!
      yield* gate.track("Blocking", "c", Effect.void)
      expect(storage.deliverLocal!(start("d"))).toBeDefined()
      snapshot = [start("c")]
      meanwhile = c.respond(finalReply)
      expect(yield* read).toEqual([])
      expect(gate.waiting).toBe(0)
      // "e" answered and at once resumed (its replies cleared) during one read: its start is a
      // run to hand over again
      yield* gate.track("Blocking", "d", Effect.void)
      const e = storage.deliverLocal!(start("e"))!
      yield* gate.track("Blocking", "e", Effect.void)
      snapshot = [start("e")]
      meanwhile = Effect.zipRight(e.respond(finalReply), storage.clearReplies("e" as never))
      expect(yield* read).toEqual(["e"])
    }))

  it.effect("a start this process saved, returned by a read before it is offered, is a new run all the same", () =>
    Effect.forEach([2, 0], (limit) =>
      Effect.gen(function*() {
        let result: "Success" | "Duplicate" = "Success"
        let snapshot: Array<Message.Incoming<any>> = []
        const underlying = {
          saveRequest: () =>
            Effect.succeed(result === "Success"
              ? MessageStorage.SaveResult.Success()
              : MessageStorage.SaveResult.Duplicate({ originalId: "original" as never, lastReceivedReply: Option.none() })),
          unprocessedMessages: () => Effect.sync(() => snapshot)
        }
        const gate = RunAdmission.make(limit)
        gate.registered("Blocking")
        // the runner holds shard workflow:1, not workflow:2
        gate.holds = (shardId) => shardId.id === 1
        const storage = RunAdmission.storage(gate, underlying as unknown as MessageStorage.MessageStorage["Type"])
        const save = (message: Message.IncomingRequest<any>) =>
          storage.saveRequest({ envelope: { ...message.envelope, _tag: "Request" } } as never)
        const elsewhere = (id: string) => {
          const message = start(id)
          return new Message.IncomingRequest({
            ...message,
            envelope: { ...message.envelope, address: { ...message.envelope.address, shardId: { group: "workflow", id: 2 } } } as never
          })
        }
        const read = storage.unprocessedMessages([ShardId.make("workflow", 1), ShardId.make("workflow", 2)])

        // saved; the read returns it before the runner offers it: its first execution reads nothing
        yield* save(start("n"))
        snapshot = [start("n")]
        expect((yield* read).map((m) => String(m.envelope.requestId))).toEqual(["n"])
        expect(gate.firstExecution("Blocking", "n")).toBe(true)
        // the offer that follows is declined (the runner has it) or at least not doubled
        if (limit > 0) expect(storage.deliverLocal!(start("n"))).toBeUndefined()
        // a duplicate start, and a start on a shard another runner holds: their runs may have steps
        result = "Duplicate"
        yield* save(start("d"))
        result = "Success"
        yield* save(elsewhere("x"))
        snapshot = [start("d"), elsewhere("x")]
        yield* read
        expect(gate.firstExecution("Blocking", "d")).toBe(false)
        expect(gate.firstExecution("Blocking", "x")).toBe(false)
      }), { discard: true }))

  it.effect("a start saved inside a SQL transaction is left to the storage read (it is not visible before the commit)", () =>
    Effect.gen(function*() {
      const gate = RunAdmission.make(0)
      gate.registered("Blocking")
      const underlying = {
        saveRequest: () => Effect.succeed(MessageStorage.SaveResult.Success()),
        unprocessedMessages: () => Effect.succeed([start("inside-too")])
      }
      const storage = RunAdmission.storage(gate, underlying as unknown as MessageStorage.MessageStorage["Type"])
      const inside = start("inside")
      yield* storage.saveRequest(inside as never).pipe(
        Effect.provideService(SqlClient.TransactionConnection, [{} as never, 0] as const)
      )
      expect(storage.deliverLocal!(inside)).toBeUndefined()
      // nor is it a run saved just now when a read returns it (its ledger row came with it)
      gate.holds = () => true
      const insideToo = start("inside-too")
      yield* storage.saveRequest({ envelope: { ...insideToo.envelope, _tag: "Request" } } as never).pipe(
        Effect.provideService(SqlClient.TransactionConnection, [{} as never, 0] as const)
      )
      yield* storage.unprocessedMessages([ShardId.make("workflow", 1)])
      expect(gate.firstExecution("Blocking", "inside-too")).toBe(false)
      const outside = start("outside")
      yield* storage.saveRequest(outside as never)
      expect(storage.deliverLocal!(outside)).toBe(outside)
    }))

  it.effect("WORKFLOW_MAX_RUNS_IN_FLIGHT and maxRunsInFlight: a whole number, 0 for no bound; anything else is a typed config error", () =>
    Effect.gen(function*() {
      expect(yield* WorkflowRuntime.parseMaxRunsInFlight(Option.none())).toBe(WorkflowRuntime.defaultMaxRunsInFlight)
      expect(yield* WorkflowRuntime.parseMaxRunsInFlight(Option.some(" 25 "))).toBe(25)
      expect(yield* WorkflowRuntime.parseMaxRunsInFlight(Option.some("0"))).toBe(0)
      for (const bad of [-1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(Layer.build(WorkflowRuntime.layerDurable(prefix, { maxRunsInFlight: bad })).pipe(
          Effect.scoped,
          // refused before anything connects: no database needed
          Effect.provide(Layer.mergeAll(Layer.succeed(SqlClient.SqlClient, {} as never), Layer.succeed(PgClient.PgClient, {} as never)))
        ))
        expect(error).toMatchObject({ _tag: "InvalidRuntimeConfig", key: "maxRunsInFlight" })
      }
      for (const bad of ["-1", "1.5", "many", "1e3"]) {
        const error = yield* Effect.flip(WorkflowRuntime.parseMaxRunsInFlight(Option.some(bad)))
        expect(error._tag).toBe("InvalidRuntimeConfig")
        expect(error.key).toBe("WORKFLOW_MAX_RUNS_IN_FLIGHT")
        expect(error.message).toContain(JSON.stringify(bad))
      }
    }))
})
