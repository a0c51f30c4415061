/**
 * The fixes runtime-core applies to its Effect dependencies with pnpm's
 * `patchedDependencies` (root package.json, `patches/`): each change has a test
 * that fails on the unpatched package. Tests that say they hold unpatched too pin
 * the semantics a change must keep. docs/UPSTREAM.md names, per change, which
 * tests fail without it and holds the report to file upstream.
 */
import { Reactivity } from "@effect/experimental"
import { SqlClient, Statement } from "@effect/sql"
import type { SqlConnection } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import {
  ClusterWorkflowEngine,
  Entity,
  EntityId,
  MessageStorage,
  RunnerHealth,
  Runners,
  RunnerStorage,
  Sharding,
  ShardingConfig,
  SqlMessageStorage
} from "@effect/cluster"
import type { ShardId } from "@effect/cluster/ShardId"
import { Rpc } from "@effect/rpc"
import { Activity, DurableClock, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import {
  Cause,
  Context,
  Deferred,
  Duration,
  Effect,
  Equal,
  Exit,
  Fiber,
  FiberRef,
  FiberRefs,
  Hash,
  Layer,
  Option,
  Redacted,
  RuntimeFlags,
  RuntimeFlagsPatch,
  Schedule,
  Schema,
  Scope,
  Stream,
  Supervisor,
  TestClock,
  Tracer
} from "effect"
import type pg from "pg"
import { AppRuntime, TablePrefix, WorkflowLayer } from "../src/index.js"
import { Eventually, TestDatabase } from "../src/testing/index.js"
import * as ClusterRunner from "../src/internal/ClusterRunner.js"
import { lateCancel } from "./fixtures/late-cancel.js"
import { lockGate } from "./fixtures/lock-gate.js"
import { overlappingQueries } from "./fixtures/overlapping-queries.js"
import { recordingClient } from "./fixtures/recording-client.js"
import { testPool } from "./fixtures/test-pool.js"

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

  it("DurableDeferred.make shares one exit schema per (success, error) pair too: every durable sleep makes its clock's deferred", () => {
    const clock = () => DurableClock.make({ name: "nap", duration: "1 hour" }).deferred.exitSchema
    expect(clock()).toBe(clock())
    const approval = () => DurableDeferred.make("approval", { success: Schema.String, error: Schema.Number }).exitSchema
    expect(approval()).toBe(approval())
    expect(approval()).not.toBe(clock())
  })

  it.effect("a shared deferred exit schema still decodes each deferred's own result", () =>
    Effect.gen(function*() {
      const decode = Schema.decode(DurableDeferred.make("d", { success: Schema.NumberFromString }).exitSchema)
      expect(yield* decode(Exit.succeed("3"))).toEqual(Exit.succeed(3))
      expect(yield* Schema.decode(DurableClock.make({ name: "n", duration: "1 hour" }).deferred.exitSchema)(Exit.void))
        .toEqual(Exit.void)
    }))

  it.effect("the shared exit schema still decodes each activity's own result", () =>
    Effect.gen(function*() {
      const activity = Activity.make({ name: "s", success: Schema.NumberFromString, execute: Effect.succeed(2) })
      // the engine decodes a stored step result (encoded: "2") with the activity's exit schema
      const decode = Schema.decode(activity.exitSchema)
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
      expect(yield* decode(Exit.succeed("2"))).toEqual(Exit.succeed(2))
    }))

  it.effect("an activity's first attempt runs without the interrupt-retry machinery; an interrupted attempt is still retried", () =>
    Effect.gen(function*() {
      // per attempt: did the retry schedule provide its iteration metadata (Effect.retry does, to every attempt)?
      const provided: Array<boolean> = []
      const Steps = Workflow.make({ name: "Steps", payload: { id: Schema.String }, success: Schema.Number, idempotencyKey: (p) => p.id })
      const layer = Steps.toLayer(({ id }) =>
        Activity.make({
          name: "step",
          success: Schema.Number,
          execute: Effect.flatMap(Effect.context<never>(), (context) => {
            provided.push(context.unsafeMap.has(Schedule.CurrentIterationMetadata.key))
            // "interrupted" is interrupted on its first attempt
            return id === "interrupted" && provided.length === 1 ? Effect.interrupt : Effect.succeed(provided.length)
          })
        })
      ).pipe(Layer.provideMerge(WorkflowEngine.layerMemory))
      expect(yield* Steps.execute({ id: "plain" }).pipe(Effect.provide(layer))).toBe(1)
      expect(provided).toEqual([false])
      provided.length = 0
      const retried = Steps.execute({ id: "interrupted" }).pipe(Effect.provide(layer), Effect.fork)
      const fiber = yield* retried
      // the interrupt-retry policy waits 100 ms before the second attempt
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(2)
      expect(provided).toEqual([false, true])
    }))

  it.effect("a workflow's execution id is the same SHA-256 digest, computed without crypto.subtle (no thread-pool hop)", () =>
    Effect.gen(function*() {
      const Keyed = Workflow.make({ name: "Keyed", payload: { key: Schema.String }, idempotencyKey: ({ key }) => key })
      const subtle = globalThis.crypto.subtle
      const digest = subtle.digest.bind(subtle)
      let calls = 0
      type Subtle = typeof subtle
      const counting = Object.assign(Object.create(subtle) as Subtle, {
        digest: (algorithm: Parameters<Subtle["digest"]>[0], data: Parameters<Subtle["digest"]>[1]) => {
          calls++
          return digest(algorithm, data)
        }
      })
      Object.defineProperty(globalThis.crypto, "subtle", { value: counting, configurable: true })
      try {
        // ASCII, non-ASCII and a lone surrogate (encoded as U+FFFD by both)
        for (const key of ["k-1", "ünïcødé ✓", "half \ud800 pair"]) {
          const expected = Buffer.from(yield* Effect.promise(() =>
            digest("SHA-256", new TextEncoder().encode(`Keyed-${key}`))
          )).subarray(0, 16).toString("hex")
          calls = 0
          expect(yield* Keyed.executionId({ key })).toBe(expected)
          expect(calls).toBe(0)
        }
      } finally {
        Object.defineProperty(globalThis.crypto, "subtle", { value: subtle, configurable: true })
      }
    }))
})

const Once = Workflow.make({ name: "Once", payload: { id: Schema.String }, idempotencyKey: ({ id }) => id })

describe("patches/@effect__cluster@0.60.2.patch", () => {
  it.scopedLive("on Postgres, SqlMessageStorage saves a reply and marks its request processed in one statement, with its companion", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("patch_reply")
      const statements: Array<string> = []
      const client = recordingClient(db.url, statements)
      const runtime = AppRuntime.layer({
        prefix: TablePrefix.unsafeMake("patch"),
        migrations: [],
        workflows: WorkflowLayer.make(Once, {
          dependencies: Layer.empty,
          execute: () => Activity.make({ name: "step", success: Schema.Number, execute: Effect.succeed(1) })
        })
      })
      yield* Once.execute({ id: "a" }).pipe(Effect.provide(runtime.pipe(Layer.provideMerge(client))))
      const replies = statements.filter((s) => /UPDATE "patch_cluster_messages" SET processed = TRUE, last_reply_id/.test(s))
      // the run's reply at least (its activity's outcome is runtime-core's own row: InlineActivities)
      expect(replies.length).toBeGreaterThanOrEqual(1)
      for (const s of replies) {
        expect(s).toMatch(/^WITH (companion AS \(INSERT INTO "patch_runs" .*\), )?request AS \(UPDATE .* INSERT INTO "patch_cluster_replies"/s)
      }
      // the run's reply carries the runs ledger's final write (`replyCompanion`, RunOutcomes)
      expect(replies.filter((s) => s.startsWith(`WITH companion AS (INSERT INTO "patch_runs"`))).toHaveLength(1)
      // which is not written on its own
      expect(statements.filter((s) => /^\s*INSERT INTO "patch_runs" \(execution_id, workflow, status, result/.test(s))).toHaveLength(0)
    }), 60_000)
})

/**
 * The library's own stack (no runtime-core wrapper): `workflows` on
 * `ClusterWorkflowEngine` and `Sharding` with `storage`, one runner holding
 * every shard (10 per group).
 */
const libraryStack = <A, E, R>(
  workflows: Layer.Layer<A, E, R>,
  storage: Layer.Layer<MessageStorage.MessageStorage, never, SqlClient.SqlClient | ShardingConfig.ShardingConfig>
) =>
  workflows.pipe(
    Layer.provideMerge(ClusterWorkflowEngine.layer),
    Layer.provideMerge(Sharding.layer),
    Layer.provide(Runners.layerNoop),
    Layer.provideMerge(storage),
    Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
    Layer.provide(ShardingConfig.layer({
      shardsPerGroup: 10,
      availableShardGroups: ["default", "workflow"],
      assignedShardGroups: ["default", "workflow"],
      entityTerminationTimeout: 0,
      entityMessagePollInterval: Duration.seconds(5),
      sendRetryInterval: Duration.millis(100)
    }))
  )

const Gate = DurableDeferred.make("Gate")
const Waits = Workflow.make({
  name: "Waits",
  payload: { id: Schema.String },
  success: Schema.String,
  idempotencyKey: ({ id }) => id
})

/**
 * The library's stack on `SqlMessageStorage`, whose storage reads can be held
 * at a chosen moment and report the messages they return. The run waits for `proceed` before it
 * awaits the gate.
 */
const heldStorage = Effect.gen(function*() {
  const db = yield* TestDatabase.make("patch_reset")
  const proceed = yield* Deferred.make<void>()
  const waiting = yield* Deferred.make<void>()
  const read: Array<string> = []
  // armed: the next storage read waits for `release` before it runs
  let armed: { readonly held: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> } | undefined
  const storage = Layer.effect(
    MessageStorage.MessageStorage,
    Effect.map(MessageStorage.MessageStorage, (underlying) => ({
      ...underlying,
      unprocessedMessages: (shardIds: Iterable<ShardId>) =>
        Effect.suspend(() => {
          const hold = armed
          armed = undefined
          const messages = Effect.tap(
            underlying.unprocessedMessages(shardIds),
            (messages) =>
              Effect.sync(() => {
                for (const m of messages) read.push(m.envelope._tag === "Request" ? m.envelope.tag : m.envelope._tag)
              })
          )
          if (hold === undefined) return messages
          return Deferred.succeed(hold.held, undefined).pipe(
            Effect.zipRight(Deferred.await(hold.release)),
            Effect.zipRight(messages)
          )
        })
    }))
  ).pipe(Layer.provide(SqlMessageStorage.layerWith({ prefix: "patch_reset" })))
  const workflow = Waits.toLayer(() =>
    Deferred.succeed(waiting, undefined).pipe(
      Effect.zipRight(Deferred.await(proceed)),
      Effect.zipRight(DurableDeferred.await(Gate)),
      Effect.as("resumed")
    )
  )
  const layer = libraryStack(workflow, storage).pipe(
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(db.url) }))
  )
  const arm = Effect.gen(function*() {
    const hold = { held: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
    armed = hold
    return hold
  })
  return { layer, arm, proceed, waiting, read }
})

/** The gate's message has its reply: its handler resumed the run (cleared the run's Suspended reply) first. */
const gateAnswered = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ n: number }>`
    SELECT count(*)::int AS n FROM patch_reset_replies r JOIN patch_reset_messages m ON m.request_id = r.request_id
    WHERE m.tag = 'deferred'`).pipe(Effect.map(([row]) => row!.n > 0), Effect.orDie)

describe("patches/@effect__cluster@0.60.2.patch (Sharding.reset)", () => {
  it.scopedLive("a run resumed while a storage read is in flight is delivered by that read", () =>
    Effect.gen(function*() {
      const { arm, layer, proceed, read, waiting } = yield* heldStorage
      const context = yield* Layer.build(layer)
      yield* Effect.gen(function*() {
        const sharding = yield* Sharding.Sharding
        // 1. the run is active (waiting for `proceed`)
        const executionId = yield* Waits.executionId({ id: "a" })
        const run = yield* Effect.fork(Waits.execute({ id: "a" }))
        yield* Deferred.await(waiting)
        // 2. the gate is completed while the run is active: its message reaches the
        // workflow's entity and waits there behind the run (one request at a time)
        const token = DurableDeferred.tokenFromExecutionId(Gate, { workflow: Waits, executionId })
        yield* DurableDeferred.done(Gate, { token, exit: Exit.void })
        yield* Eventually.until(Effect.sync(() => read.includes("deferred")), "the gate's message was read")
        // 3. a storage read starts (the runner forgets what it had processed) and is held
        const hold = yield* arm
        yield* sharding.pollStorage
        yield* Deferred.await(hold.held)
        // 4. the run goes on and suspends at the gate (its Suspended reply is saved);
        // the gate's message then resumes it: the run's reply is cleared
        yield* Deferred.succeed(proceed, undefined)
        yield* Eventually.until(gateAnswered, "the gate's message was answered (after it reset the suspended run)")
        expect(yield* Waits.poll(executionId)).toBeUndefined()
        // 5. the held read runs now and returns the run's start message, which must be
        // delivered: unpatched, the runner skipped it as processed and, the read having
        // stamped it (last_read), no read returned it again for ten minutes
        yield* Deferred.succeed(hold.release, undefined)
        yield* Eventually.until(Effect.map(Waits.poll(executionId), (r) => r?._tag === "Complete"), "the resumed run completed")
        expect(yield* Fiber.join(run)).toBe("resumed")
      }).pipe(Effect.provide(context))
    }), 120_000)
})

describe("patches/@effect__cluster@0.60.2.patch (SqlMessageStorage poll)", () => {
  it.scopedLive("on Postgres, the storage poll reads the runner's shards only, given as one parameter, through a partial index", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("patch_poll")
      const statements: Array<string> = []
      const client = recordingClient(db.url, statements)
      const workflow = Once.toLayer(() => Effect.void)
      const context = yield* Layer.build(
        libraryStack(workflow, SqlMessageStorage.layerWith({ prefix: "patch_poll" })).pipe(Layer.provideMerge(client))
      )
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // a start message on a shard this runner does not hold (10 per group): never read here
        yield* sql`
          INSERT INTO patch_poll_messages (id, shard_id, entity_type, entity_id, kind, tag, payload, request_id)
          VALUES (1, 'default:11', 'Workflow/Once', 'elsewhere', 0, 'run', '{}', 1)`
        // a run on a shard it holds: delivered by a poll
        yield* Once.execute({ id: "here" })
        const [foreign] = yield* sql<{ last_read: Date | null }>`SELECT last_read FROM patch_poll_messages WHERE id = 1`
        expect(foreign!.last_read).toBeNull()
        const polls = statements.filter((s) => /SET last_read = NOW\(\)/.test(s))
        expect(polls.length).toBeGreaterThanOrEqual(1)
        for (const poll of polls) {
          // the same text whatever the shards and the time: no literal shard id, no literal clock
          expect(poll).toMatch(/m\.shard_id IN \(SELECT unnest\(\$1::text\[\]\)\)/)
          expect(poll).not.toMatch(/'default:1'/)
          expect(poll).toMatch(/m\.deliver_at <= \$2/)
        }
        const [index] = yield* sql<{ indexdef: string }>`
          SELECT indexdef FROM pg_indexes WHERE indexname = 'patch_poll_messages_pending_idx'`
        expect(index?.indexdef).toMatch(/\(shard_id\) WHERE \(processed = false\)/)
      }).pipe(Effect.provide(context))
    }), 60_000)
})

/** A connection whose every statement answers whether it ran with a Scope in its context. */
const scopeReporting: SqlConnection.Connection = {
  execute: () => Effect.map(Effect.serviceOption(Scope.Scope), (scope) => [{ scoped: Option.isSome(scope) }]),
  executeRaw: () => Effect.succeed([]),
  executeStream: () => Stream.empty,
  executeValues: () => Effect.succeed([]),
  executeUnprepared: () => Effect.succeed([])
}

const clientOn = (acquirer: SqlConnection.Connection.Acquirer) =>
  SqlClient.make({ acquirer, compiler: Statement.makeCompilerSqlite(), spanAttributes: [] }).pipe(
    Effect.provide(Reactivity.layer)
  )

describe("patches/@effect__sql@0.52.1.patch", () => {
  it.effect("a statement on a plain connection (PgClient's acquirer) runs without a Scope of its own; other acquirers keep theirs", () =>
    Effect.gen(function*() {
      const plain = yield* clientOn(Effect.succeed(scopeReporting))
      expect(yield* plain`SELECT 1`).toEqual([{ scoped: false }])
      expect(yield* plain.withoutTransforms()`SELECT 1`).toEqual([{ scoped: false }])
      // in a transaction the statement uses the transaction's connection, still without a Scope of its own
      // (BEGIN and COMMIT go through executeUnprepared)
      expect(yield* plain.withTransaction(plain`SELECT 1`)).toEqual([{ scoped: false }])
      // an acquirer that is an effect (a driver that checks a connection out and back in) keeps its Scope
      const effectful = yield* clientOn(Effect.suspend(() => Effect.succeed(scopeReporting)))
      expect(yield* effectful`SELECT 1`).toEqual([{ scoped: true }])
    }))
})

/** @effect/sql-pg's client on the given pool: statements as `run(text)`, in a transaction when `transaction`. */
const pgClientOn = (transaction: boolean) => (pool: pg.Pool) =>
  Effect.map(
    PgClient.fromPool({ acquire: Effect.succeed(pool) }).pipe(Effect.provide(Reactivity.layer)),
    (sql) => (text: string) => transaction ? sql.withTransaction(sql.unsafe(text)) : sql.unsafe(text)
  )

describe("patches/@effect__sql-pg@0.53.0.patch", () => {
  it.scopedLive("a statement interrupted while its cancel waits for a connection: its connection is not reused, so the cancel reaches no other statement", () =>
    Effect.gen(function*() {
      // unpatched: B ran on the interrupted statement's connection, and the cancel ended it (57014)
      expect(yield* lateCancel(pgClientOn(false))).toEqual(Exit.succeed([{ pg_sleep: "", statement: "b" }]))
    }), 60_000)

  it.scopedLive("a transaction whose cancel timed out: its connection is not given back to the pool", () =>
    Effect.gen(function*() {
      // the cancel waits 5 s (its limit); then the transaction rolls back and its connection goes
      expect(yield* lateCancel(pgClientOn(true))).toEqual(Exit.succeed([{ pg_sleep: "", statement: "b" }]))
    }), 60_000)

  it.scopedLive("a transaction's concurrent statements go one at a time; one interrupted while it waits cancels nothing", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* testPool("patch_pg_line", 2)
      const gate = yield* lockGate(db, 12)
      // unpatched, pg 8 queued the concurrent statements itself (a DeprecationWarning; pg 9 does not queue)
      const overlapped = overlappingQueries(pool)
      const sql = yield* PgClient.fromPool({ acquire: Effect.succeed(pool) }).pipe(Effect.provide(Reactivity.layer))
      const select = (n: number) =>
        Effect.map(sql<{ n: number }>`SELECT ${n}::int AS n, pg_sleep(0.02)`, (rows) => rows[0]!.n)
      const outcome = yield* sql.withTransaction(Effect.gen(function*() {
        const order = yield* Effect.all([1, 2, 3].map(select), { concurrency: "unbounded" })
        // unpatched, the waiting statement's interrupt sent pg_cancel_backend, which ended the
        // statement running (57014) and with it the transaction
        const running = yield* Effect.fork(sql.unsafe(gate.take))
        yield* gate.waiting()
        const waiting = yield* Effect.fork(select(5))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(waiting)
        yield* gate.open
        yield* Fiber.join(running)
        return [...order, yield* select(6)]
      })).pipe(Effect.exit)
      expect(outcome).toEqual(Exit.succeed([1, 2, 3, 6]))
      expect(overlapped()).toBe(0)
    }), 60_000)
})

/**
 * The library's stack on `SqlMessageStorage` with `deliverLocal` (accepting
 * or declining every request offered), whose storage reads can be held and
 * report the messages they return.
 */
const offeringStorage = (accept: boolean) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make("patch_direct")
    const offered: Array<{ readonly tag: string; readonly payload: unknown }> = []
    const read: Array<string> = []
    let armed: { readonly held: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> } | undefined
    const storage = Layer.effect(
      MessageStorage.MessageStorage,
      Effect.map(MessageStorage.MessageStorage, (underlying): MessageStorage.MessageStorage["Type"] => ({
        ...underlying,
        deliverLocal: (message) => {
          offered.push({ tag: message.envelope.tag, payload: message.envelope.payload })
          return accept ? message : undefined
        },
        unprocessedMessages: (shardIds: Iterable<ShardId>) =>
          Effect.suspend(() => {
            const hold = armed
            armed = undefined
            const messages = Effect.tap(underlying.unprocessedMessages(shardIds), (messages) =>
              Effect.sync(() => {
                for (const m of messages) read.push(m.envelope._tag === "Request" ? m.envelope.tag : m.envelope._tag)
              }))
            return hold === undefined ? messages : Deferred.succeed(hold.held, undefined).pipe(
              Effect.zipRight(Deferred.await(hold.release)),
              Effect.zipRight(messages)
            )
          })
      }))
    ).pipe(Layer.provide(SqlMessageStorage.layerWith({ prefix: "patch_direct" })))
    const layer = libraryStack(Once.toLayer(() => Effect.void), storage).pipe(
      Layer.provideMerge(PgClient.layer({ url: Redacted.make(db.url) }))
    )
    // the next storage read waits for `release`; returns once the runner is in it
    const holdReads = Effect.gen(function*() {
      const hold = { held: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
      armed = hold
      yield* Effect.flatMap(Sharding.Sharding, (sharding) => sharding.pollStorage)
      yield* Deferred.await(hold.held)
      return hold.release
    })
    // every storage read held, then the run `id` started (in the background)
    const startWhileHeld = (id: string) =>
      Effect.gen(function*() {
        const executionId = yield* Once.executionId({ id })
        // a start is offered only once the runner holds the run's shard (not yet just after start-up)
        const sharding = yield* Sharding.Sharding
        const shard = sharding.getShardId(EntityId.make(executionId), "default")
        yield* Eventually.until(Effect.sync(() => sharding.hasShardId(shard)), "the runner holds the run's shard")
        const release = yield* holdReads
        const run = yield* Effect.fork(Once.execute({ id }))
        return { release, executionId, run }
      })
    return { layer, holdReads, startWhileHeld, offered, read }
  })

describe("patches/@effect__cluster@0.60.2.patch (Sharding deliverLocal)", () => {
  it.scopedLive("a run started on its own runner goes to its entity at once when the storage accepts it, with no storage read", () =>
    Effect.gen(function*() {
      const { holdReads, layer, offered, read, startWhileHeld } = yield* offeringStorage(true)
      const context = yield* Layer.build(layer)
      yield* Effect.gen(function*() {
        // every storage read is held: unpatched, the run waits for one
        const { executionId, release, run } = yield* startWhileHeld("direct")
        yield* Eventually.until(Effect.map(Once.poll(executionId), (r) => r?._tag === "Complete"), "the run completed while reads were held")
        yield* Fiber.join(run)
        // offered once, with its payload decoded (as the entity gets it)
        expect(offered).toEqual([{ tag: "run", payload: { id: "direct" } }])
        // the held read runs; the next one is held in turn (so the first has returned)
        yield* Deferred.succeed(release, undefined)
        const next = yield* holdReads
        yield* Deferred.succeed(next, undefined)
        // neither returned the run: its start message is processed
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ processed: boolean; last_read: Date | null }>`
          SELECT processed, last_read FROM patch_direct_messages WHERE tag = 'run'`
        expect(row!.processed).toBe(true)
        expect(read).not.toContain("run")
      }).pipe(Effect.provide(context))
    }), 60_000)

  it.scopedLive("a run the storage declines when offered is delivered by the next storage read", () =>
    Effect.gen(function*() {
      const { layer, offered, read, startWhileHeld } = yield* offeringStorage(false)
      const context = yield* Layer.build(layer)
      yield* Effect.gen(function*() {
        const { executionId, release, run } = yield* startWhileHeld("declined")
        yield* Eventually.until(Effect.sync(() => offered.length === 1), "the run was offered")
        expect(yield* Once.poll(executionId)).toBeUndefined()
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(run)
        expect(read).toContain("run")
      }).pipe(Effect.provide(context))
    }), 60_000)
})

describe("patches/@effect__cluster@0.60.2.patch (entity maxIdleTime 0)", () => {
  const Echo = Entity.make("Echo", [Rpc.make("Say", { payload: { text: Schema.String }, success: Schema.String })])
  const Keep = Entity.make("Keep", [Rpc.make("Say", { payload: { text: Schema.String }, success: Schema.String })])
  const say = { Say: ({ payload }: { payload: { text: string } }) => Effect.succeed(payload.text) }
  /** Memory storage, one runner holding every shard; the test clock never moves, so the reaper never runs. */
  const stack = Layer.mergeAll(
    Echo.toLayer(Effect.succeed(say), { maxIdleTime: 0 }),
    Keep.toLayer(Effect.succeed(say))
  ).pipe(
    Layer.provideMerge(Sharding.layer),
    Layer.provide(Runners.layerNoop),
    Layer.provide(MessageStorage.layerMemory),
    Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
    Layer.provide(ShardingConfig.layer({ shardsPerGroup: 10, entityTerminationTimeout: 0 }))
  )

  it.scoped("an entity registered with maxIdleTime 0 is released once its last request is answered; others stay", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(stack)
      yield* Effect.gen(function*() {
        const sharding = yield* Sharding.Sharding
        const echo = yield* Echo.client
        const keep = yield* Keep.client
        // the runner takes its shards on its clock: moved 1 s at a time, never to the reaper's 5 s
        const said = yield* Effect.fork(Effect.all([keep("k").Say({ text: "kept" }), echo("e").Say({ text: "hello" })]))
        for (let i = 0; i < 4 && said.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(said)).toEqual(["kept", "hello"])
        // unpatched, maxIdleTime 0 waits for the reaper (5 s on its clock, which never moves here);
        // patched, the release waits for the event loop's check phase (after the caller resumed)
        let count = yield* sharding.activeEntityCount
        for (let i = 0; i < 1000 && count > 1; i++) {
          yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
          count = yield* sharding.activeEntityCount
        }
        expect(count).toBe(1)
        // the released entity is built again by its next message
        expect(yield* echo("e").Say({ text: "again" })).toBe("again")
      }).pipe(Effect.provide(context))
    }))
})

describe("patches/effect@3.22.4.patch (onExit, ensuring and fiberRefLocally as frames of the fiber's stack)", () => {
  /** How many operations the runtime evaluates for `effect` (op supervision), on a fiber of its own. */
  class OpCount extends Supervisor.AbstractSupervisor<number> {
    count = 0
    get value() {
      return Effect.sync(() => this.count)
    }
    override onEffect() {
      this.count++
    }
  }
  const opsOf = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      const counter = new OpCount()
      return effect.pipe(
        Effect.exit,
        Effect.supervised(counter),
        Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
        Effect.map(() => counter.count)
      )
    })
  const Ref = FiberRef.unsafeMake(0)
  class Label extends Context.Tag("test/Label")<Label, string>() {}

  it.effect("locally, provideService, onExit, ensuring, an async canceler and a span cost a frame, not an uninterruptible region", () =>
    Effect.gen(function*() {
      const base = yield* opsOf(Effect.void)
      const more = (effect: Effect.Effect<unknown, unknown>) => Effect.map(opsOf(effect), (ops) => ops - base)
      // operations more than the effect alone; upstream's in the comments
      expect(yield* more(Effect.locally(Effect.void, Ref, 1))).toBeLessThanOrEqual(3) // 22
      expect(yield* more(Effect.locallyWith(Effect.void, Ref, (n) => n + 1))).toBeLessThanOrEqual(3) // 25
      expect(yield* more(Effect.provideService(Effect.void, Label, "x"))).toBeLessThanOrEqual(3) // 25
      expect(yield* more(Effect.mapInputContext(Effect.void, (c: Context.Context<never>) => c))).toBeLessThanOrEqual(3) // 25
      expect(yield* more(Effect.onExit(Effect.void, () => Effect.void))).toBeLessThanOrEqual(4) // 9
      expect(yield* more(Effect.ensuring(Effect.void, Effect.void))).toBeLessThanOrEqual(4) // 9
      expect(yield* more(Effect.async<void>((resume) => (resume(Effect.void), Effect.void)))).toBeLessThanOrEqual(6) // 11
      expect(yield* more(Effect.withSpan(Effect.void, "span"))).toBeLessThanOrEqual(7) // 35
    }))

  // The tests below hold with the unpatched package too: they pin the semantics the frames keep.
  it.effect("onExit: the cleanup sees the exit and runs uninterruptibly; the body is as interruptible as its caller; causes combine as before", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const cleanup = (exit: Exit.Exit<unknown, unknown>) =>
        Effect.checkInterruptible((interruptible) => Effect.sync(() => seen.push(`${exit._tag} ${interruptible}`)))
      expect(yield* Effect.onExit(Effect.succeed(1), cleanup)).toBe(1)
      expect(yield* Effect.exit(Effect.onExit(Effect.fail("boom"), cleanup))).toEqual(Exit.fail("boom"))
      expect(seen).toEqual(["Success false", "Failure false"])
      // a failing cleanup: its cause alone after a success, both in sequence after a failure
      expect(yield* Effect.exit(Effect.onExit(Effect.succeed(1), () => Effect.die("cleanup"))))
        .toEqual(Exit.die("cleanup"))
      expect(yield* Effect.exit(Effect.onExit(Effect.fail("body"), () => Effect.die("cleanup"))))
        .toEqual(Exit.failCause(Cause.sequential(Cause.fail("body"), Cause.die("cleanup"))))
      expect(yield* Effect.exit(Effect.ensuring(Effect.fail("body"), Effect.die("finalizer"))))
        .toEqual(Exit.failCause(Cause.sequential(Cause.fail("body"), Cause.die("finalizer"))))
      const interruptible = Effect.checkInterruptible((b) => Effect.succeed(b))
      expect(yield* Effect.onExit(interruptible, () => Effect.void)).toBe(true)
      expect(yield* Effect.uninterruptible(Effect.onExit(interruptible, () => Effect.void))).toBe(false)
      expect(yield* Effect.ensuring(interruptible, Effect.void)).toBe(true)
      // nested: innermost first, outer cleanups see the exit the inner ones left
      const order: Array<string> = []
      yield* Effect.void.pipe(
        Effect.onExit(() => Effect.sync(() => order.push("inner"))),
        Effect.ensuring(Effect.sync(() => order.push("middle"))),
        Effect.onExit(() => Effect.sync(() => order.push("outer")))
      )
      expect(order).toEqual(["inner", "middle", "outer"])
    }))

  it.effect("interrupted: every cleanup runs to its end (an interruption during one waits for it), innermost first, then the fiber ends interrupted", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const started = yield* Deferred.make<void>()
      const inCleanup = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.onExit((exit) =>
            Effect.gen(function*() {
              order.push(`inner ${Exit.isInterrupted(exit)}`)
              yield* Deferred.succeed(inCleanup, undefined)
              yield* Deferred.await(gate) // suspended inside the cleanup
              order.push("inner done")
            })
          ),
          Effect.ensuring(Effect.sync(() => order.push("outer")))
        )
      )
      yield* Deferred.await(started)
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* Deferred.await(inCleanup)
      // a second interruption while the cleanup waits changes nothing
      yield* Fiber.interruptFork(fiber)
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect(fiber.unsafePoll()).toBeNull()
      yield* Deferred.succeed(gate, undefined)
      const exit = yield* Fiber.join(interrupting)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(order).toEqual(["inner true", "inner done", "outer"])
    }))

  it.effect("an interrupted Effect.async runs its canceler; an interrupted span ends with the interruption", () =>
    Effect.gen(function*() {
      let cancelled = 0
      const registered = yield* Deferred.make<void>()
      const waiting = yield* Effect.fork(Effect.async<void>(() => {
        Deferred.unsafeDone(registered, Exit.void)
        return Effect.sync(() => void cancelled++)
      }))
      yield* Deferred.await(registered)
      yield* Fiber.interrupt(waiting)
      expect(cancelled).toBe(1)

      const inSpan = yield* Deferred.make<Tracer.Span>()
      const traced = yield* Effect.fork(
        Effect.flatMap(Effect.currentSpan, (span) => Deferred.succeed(inSpan, span)).pipe(
          Effect.zipRight(Effect.never),
          Effect.withSpan("interrupted")
        )
      )
      const span = yield* Deferred.await(inSpan)
      yield* Fiber.interrupt(traced)
      expect(span.status._tag).toBe("Ended")
      expect(span.status._tag === "Ended" && Exit.isInterrupted(span.status.exit)).toBe(true)
    }))

  it.effect("the value holds inside and is restored after success, failure and interruption", () =>
    Effect.gen(function*() {
      expect(yield* Effect.locally(FiberRef.get(Ref), Ref, 1)).toBe(1)
      expect(yield* FiberRef.get(Ref)).toBe(0)
      expect(yield* Effect.exit(Effect.locally(Effect.fail("boom"), Ref, 2))).toEqual(Exit.fail("boom"))
      expect(yield* FiberRef.get(Ref)).toBe(0)
      // nested: each level restores its own
      expect(yield* Effect.locally(Effect.zip(Effect.locally(FiberRef.get(Ref), Ref, 4), FiberRef.get(Ref)), Ref, 3))
        .toEqual([4, 3])
      // interrupted inside: what runs after it on the same fiber sees the old value
      const after = yield* Deferred.make<number>()
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.locally(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), Ref, 5).pipe(
          Effect.ensuring(Effect.flatMap(FiberRef.get(Ref), (v) => Deferred.succeed(after, v)))
        )
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      expect(yield* Deferred.await(after)).toBe(0)
    }))

  it.effect("locallyWith, mapInputContext, provide(context): the new value inside, the old one after; a throwing function is a defect that changes nothing", () =>
    Effect.gen(function*() {
      expect(yield* Effect.locallyWith(FiberRef.get(Ref), Ref, (n) => n + 10)).toBe(10)
      expect(yield* Effect.exit(Effect.locallyWith(Effect.fail("boom"), Ref, (n) => n + 1))).toEqual(Exit.fail("boom"))
      expect(yield* FiberRef.get(Ref)).toBe(0)
      const label = Effect.serviceOption(Label)
      expect(yield* Effect.mapInputContext(label, (c: Context.Context<never>) => Context.add(c, Label, "mapped")))
        .toEqual(Option.some("mapped"))
      expect(yield* Effect.provide(label, Context.make(Label, "some"))).toEqual(Option.some("some")) // provideSomeContext
      expect(yield* label).toEqual(Option.none())
      const thrown = yield* Effect.exit(Effect.locallyWith(Effect.void, Ref, () => {
        throw new Error("in f")
      }))
      expect(Exit.isFailure(thrown) && Cause.isDie(thrown.cause)).toBe(true)
      expect(yield* FiberRef.get(Ref)).toBe(0)
      // a service provided inside a fiber that is interrupted is gone for what runs after it
      const seen = yield* Deferred.make<Option.Option<string>>()
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.provideService(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never), Label, "inner").pipe(
          Effect.ensuring(Effect.flatMap(label, (l) => Deferred.succeed(seen, l)))
        )
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      expect(yield* Deferred.await(seen)).toEqual(Option.none())
    }))

  it.effect("the body is as interruptible as its caller", () =>
    Effect.gen(function*() {
      const interruptible = Effect.checkInterruptible((b) => Effect.succeed(b))
      expect(yield* Effect.locally(interruptible, Ref, 1)).toBe(true)
      expect(yield* Effect.uninterruptible(Effect.locally(interruptible, Ref, 1))).toBe(false)
      expect(yield* Effect.provideService(interruptible, Label, "x")).toBe(true)
      expect(yield* Effect.uninterruptible(Effect.provideService(interruptible, Label, "x"))).toBe(false)
    }))
})

const Numbered = Workflow.make({
  name: "Numbered",
  payload: { id: Schema.String },
  success: Schema.Number,
  idempotencyKey: ({ id }) => id
})

describe("patches/@effect__cluster@0.60.2.patch (grouped starts and final replies)", () => {
  it.scopedLive("runs started together share INSERTs of their start messages, and their final replies share statements", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("patch_group")
      const statements: Array<string> = []
      const runtime = AppRuntime.layer({
        prefix: TablePrefix.unsafeMake("grp"),
        migrations: [],
        workflows: WorkflowLayer.make(Numbered, {
          dependencies: Layer.empty,
          execute: ({ id }) =>
            Activity.make({ name: "step", success: Schema.Number, execute: Effect.succeed(Number(id.slice(1))) })
        })
      }).pipe(Layer.provideMerge(recordingClient(db.url, statements)))
      const context = yield* Layer.build(runtime)
      const ids = Array.from({ length: 24 }, (_, i) => `r${i}`)
      // 24 runs at once, and one of them a second time (the same run: one start, one result)
      const results = yield* Effect.all(
        [...ids, "r7"].map((id) => Numbered.execute({ id })),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(context))
      expect(results).toEqual([...ids.map((id) => Number(id.slice(1))), 7])

      const starts = statements.filter((s) => /^\s*INSERT INTO "grp_cluster_messages"/.test(s))
      // fewer statements than runs: unpatched (or without `group`), one INSERT per start
      expect(starts.length).toBeGreaterThan(0)
      expect(starts.length).toBeLessThan(ids.length)
      expect(starts.some((s) => /\),\s*\(/.test(s))).toBe(true)
      // final replies written together, each with its ledger write (companion_<i>)
      expect(statements.some((s) => /^WITH companion_\d+ AS \(.*companion_\d+ AS \(/s.test(s))).toBe(true)

      const sql = Context.get(context, SqlClient.SqlClient)
      const [state] = yield* sql<{ starts: number; processed: number; replies: number; succeeded: number }>`
          SELECT
            (SELECT count(*)::int FROM grp_cluster_messages WHERE tag = 'run') AS starts,
            (SELECT count(*)::int FROM grp_cluster_messages WHERE tag = 'run' AND processed) AS processed,
            (SELECT count(*)::int FROM grp_cluster_replies WHERE kind = 0) AS replies,
            (SELECT count(*)::int FROM grp_runs WHERE status = 'succeeded') AS succeeded`
      expect(state).toEqual({ starts: 24, processed: 24, replies: 24, succeeded: 24 })
    }), 120_000)

  it.scopedLive("a grouped statement that fails is written item by item: only the reply that cannot be written fails", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabase.make("patch_group_fail")
      const client = yield* Layer.build(recordingClient(db.url, []))
      const sql = Context.get(client, SqlClient.SqlClient)
      yield* sql`CREATE TABLE reply_log (request_id bigint NOT NULL)`
      const bad = yield* Numbered.executionId({ id: "bad" })
      const go = yield* Deferred.make<void>()
      const slowInFlight = yield* Deferred.make<void>()
      // the companion is asked on each try of a reply's save
      const tries = new Map<string, number>()
      const companion = (requestId: string) => {
        tries.set(requestId, (tries.get(requestId) ?? 0) + 1)
        // the first reply's save is slow: the others queue behind it and go in one statement
        if (tries.size === 1 && tries.get(requestId) === 1) {
          Deferred.unsafeDone(slowInFlight, Exit.void)
          return sql`INSERT INTO reply_log (request_id) SELECT ${requestId}::bigint FROM pg_sleep(1)`
        }
        // each reply logs its request, but the bad run's divides by zero: its statement fails
        return sql`INSERT INTO reply_log (request_id)
          SELECT m.id / (CASE WHEN m.entity_id = ${bad} THEN 0 ELSE 1 END)
          FROM grpf_cluster_messages m WHERE m.id = ${requestId}`
      }
      // every run but the first waits for `go`
      const workflow = Numbered.toLayer(({ id }) =>
        id === "first" ? Effect.succeed(0) : Effect.as(Deferred.await(go), id.length)
      )
      const storage = ClusterRunner.groupedMessageStorage(TablePrefix.unsafeMake("grpf"), companion)
      const context = yield* Layer.build(libraryStack(workflow, storage).pipe(Layer.provideMerge(Layer.succeedContext(client))))
      const ids = Array.from({ length: 16 }, (_, i) => `good-${i}`)
      const badRun = yield* Effect.fork(Numbered.execute({ id: "bad" })).pipe(Effect.provide(context))
      const goodRuns = yield* Effect.fork(Effect.all(ids.map((id) => Numbered.execute({ id })), { concurrency: "unbounded" }))
        .pipe(Effect.provide(context))
      yield* Effect.fork(Numbered.execute({ id: "first" })).pipe(Effect.provide(context))
      yield* Deferred.await(slowInFlight)
      yield* Deferred.succeed(go, undefined)
      // every other run completes, although its reply shared a statement with the bad one's
      expect(yield* Fiber.join(goodRuns)).toEqual(ids.map((id) => id.length))
      const [badStart] = yield* sql<{ id: string }>`
        SELECT id::text AS id FROM grpf_cluster_messages WHERE entity_id = ${bad} AND tag = 'run'`
      // the bad run has no reply (its caller still waits) and its save is tried again; every
      // other reply was saved at its first try: the shared statement failed and was written
      // again item by item
      yield* Eventually.until(Effect.sync(() => (tries.get(badStart!.id) ?? 0) > 1), "the bad reply was tried again")
      expect(yield* Numbered.poll(bad).pipe(Effect.provide(context))).toBeUndefined()
      expect([...tries].filter(([requestId, n]) => n > 1 && requestId !== badStart!.id)).toEqual([])
      expect(tries.size).toBe(ids.length + 2)
      const [logged] = yield* sql<{ n: number }>`SELECT count(DISTINCT request_id)::int AS n FROM reply_log`
      expect(logged!.n).toBe(ids.length + 1)
      yield* Fiber.interrupt(badRun)
    }), 120_000)
})

describe("patches/effect@3.22.4.patch (a fiber's refs copied on write, contexts compared by reference)", () => {
  const Ref = FiberRef.unsafeMake(0)
  class Label extends Context.Tag("test/Label")<Label, string>() {}

  it.effect("a fiber's refs are copied only once they were handed out: a snapshot stays as it was taken", () =>
    Effect.gen(function*() {
      const a = yield* Effect.getFiberRefs
      // nothing changed in between: the same refs (upstream copied them on every snapshot)
      expect(yield* Effect.getFiberRefs).toBe(a)
      yield* FiberRef.set(Ref, 5)
      const b = yield* Effect.getFiberRefs
      expect(b).not.toBe(a)
      // sets on refs no one else holds change them in place; the snapshots keep their values
      yield* FiberRef.set(Ref, 6)
      yield* FiberRef.set(Ref, 7)
      yield* Effect.locally(FiberRef.set(Ref, 8), Ref, 100)
      expect(FiberRefs.getOrDefault(a, Ref)).toBe(0)
      expect(FiberRefs.getOrDefault(b, Ref)).toBe(5)
      expect(FiberRefs.getOrDefault(yield* Effect.getFiberRefs, Ref)).toBe(7)
      expect(yield* FiberRef.get(Ref)).toBe(7)
    }))

  // holds unpatched too: what forks and joins rely on
  it.effect("a child sees its parent's refs as they were at the fork, each side's later sets stay its own, a join takes the child's", () =>
    Effect.gen(function*() {
      yield* FiberRef.set(Ref, 1)
      const latch = yield* Deferred.make<void>()
      const child = yield* Effect.fork(Effect.gen(function*() {
        const atFork = yield* FiberRef.get(Ref)
        yield* Deferred.await(latch)
        const later = yield* FiberRef.get(Ref)
        yield* FiberRef.set(Ref, 10)
        return [atFork, later]
      }))
      yield* FiberRef.set(Ref, 2)
      yield* Effect.provideService(FiberRef.set(Ref, 3), Label, "x")
      expect(yield* FiberRef.get(Ref)).toBe(3)
      yield* Deferred.succeed(latch, undefined)
      expect(yield* Fiber.join(child)).toEqual([1, 1])
      expect(yield* FiberRef.get(Ref)).toBe(10)
    }))

  it.effect("joining a child that provided a service and gave it back copies none of the parent's context (Workflow.intoResult forks every activity)", () =>
    Effect.gen(function*() {
      class Other extends Context.Tag("test/Other")<Other, string>() {}
      const child = yield* Effect.fork(Effect.provideService(Effect.map(Other, (other) => other), Other, "o"))
      yield* Fiber.await(child)
      // copies of a map holding Label's key, the parent's services, made while joining
      let copies = 0
      const RealMap = globalThis.Map
      class CountingMap<K, V> extends RealMap<K, V> {
        constructor(entries?: Iterable<readonly [K, V]> | null) {
          super(entries)
          if (entries instanceof RealMap && entries.has(Label.key as K)) copies++
        }
      }
      globalThis.Map = CountingMap as MapConstructor
      const joined = yield* Fiber.join(child).pipe(Effect.ensuring(Effect.sync(() => (globalThis.Map = RealMap))))
      expect(joined).toBe("o")
      // upstream's diff copied the context to compare it, unchanged, service by service
      expect(copies).toBe(0)
      expect(yield* Label).toBe("x")
      expect(Option.isNone(yield* Effect.serviceOption(Other))).toBe(true)
    }).pipe(Effect.provideService(Label, "x")))

  it("hashing a context defines nothing on it; equal contexts are still equal", () => {
    const context = Context.make(Label, "x")
    const hash = Hash.hash(context)
    // upstream cached the hash with Object.defineProperty on every context it hashed
    expect(Object.getOwnPropertySymbols(context)).not.toContain(Hash.symbol)
    expect(Hash.hash(context)).toBe(hash)
    expect(Equal.equals(context, Context.make(Label, "x"))).toBe(true)
    expect(Equal.equals(context, Context.make(Label, "y"))).toBe(false)
  })

  it.effect("services provided inside a scope of the same size are the ones read; the outer ones come back after", () =>
    Effect.gen(function*() {
      const read = Effect.map(Label, (label) => label)
      const inner = yield* read.pipe(Effect.provideService(Label, "inner"), Effect.provideService(Label, "outer"))
      expect(inner).toBe("inner")
      const outer = yield* Effect.zipRight(read.pipe(Effect.provideService(Label, "inner")), read).pipe(
        Effect.provideService(Label, "outer")
      )
      expect(outer).toBe("outer")
    }))

  // holds unpatched too: with the native tracer the runtime calls no tracer context per
  // operation; another tracer's context still wraps every operation
  it.effect("a tracer's own context wraps every operation of the fibers that use it", () =>
    Effect.gen(function*() {
      let wrapped = 0
      const native = yield* Effect.tracer
      const tracer = Tracer.make({
        span: (...args) => native.span(...args),
        context: (f) => {
          wrapped++
          return f()
        }
      })
      const result = yield* Effect.withTracer(
        Effect.map(Effect.zip(Effect.succeed(1), Effect.sync(() => 2)), ([a, b]) => a + b),
        tracer
      )
      expect(result).toBe(3)
      expect(wrapped).toBeGreaterThanOrEqual(3)
    }))

  // holds unpatched too: a span reads its fiber's annotations and links without a snapshot of all refs
  it.effect("a span gets the annotations and links of its fiber", () =>
    Effect.gen(function*() {
      const linked = yield* Effect.makeSpan("linked")
      const span = yield* Effect.currentSpan.pipe(
        Effect.withSpan("s"),
        Effect.linkSpans(linked),
        Effect.annotateSpans("k", "v")
      )
      expect((span as Tracer.Span & { attributes: Map<string, unknown> }).attributes.get("k")).toBe("v")
      expect(span.links.map((link) => link.span)).toEqual([linked])
    }))
})

describe("patches/effect@3.22.4.patch (contexts and fiber refs copied without iterating)", () => {
  /** `f`'s result, and how often it iterated a Map (`new Map(map)` does: a [key, value] array per entry). */
  const counted = <A>(f: () => A): { readonly result: A; readonly iterations: number } => {
    const prototype = Map.prototype as unknown as { [Symbol.iterator]: () => Iterator<unknown> }
    const iterate = prototype[Symbol.iterator]
    let iterations = 0
    prototype[Symbol.iterator] = function(this: Map<unknown, unknown>) {
      iterations++
      return iterate.call(this)
    }
    try {
      const result = f()
      return { result, iterations }
    } finally {
      prototype[Symbol.iterator] = iterate
    }
  }

  const A = Context.GenericTag<"A", number>("A")
  const B = Context.GenericTag<"B", string>("B")
  const C = Context.GenericTag<"C", boolean>("C")

  it("Context.add and Context.merge copy the services without iterating the Map; the copy is the same, in order", () => {
    const base = Context.make(A, 1).pipe(Context.add(B, "b"))
    const { iterations, result: [added, merged] } = counted(() =>
      [Context.add(base, C, true), Context.merge(base, Context.make(A, 2))] as const
    )
    expect(iterations).toBe(0)
    expect([...added.unsafeMap.keys()]).toEqual(["A", "B", "C"])
    expect(Context.get(added, C)).toBe(true)
    expect(Context.get(merged, A)).toBe(2)
    expect(Context.get(merged, B)).toBe("b")
    // the source is left as it was
    expect([...base.unsafeMap.keys()]).toEqual(["A", "B"])
  })

  it.effect("provideService in a fiber copies its context without iterating; the service is seen inside and gone after", () =>
    Effect.gen(function*() {
      const inner = Effect.provideService(Effect.map(Effect.context<never>(), (context) => Context.getOption(context, A)), A, 7)
      const { iterations, result } = counted(() => Effect.runSync(inner))
      expect(iterations).toBe(0)
      expect(result).toEqual(Option.some(7))
      expect(Context.getOption(yield* Effect.context<never>(), A)).toEqual(Option.none())
    }))
})

describe("patches: objects made from a prototype, not a literal spreading CommitPrototype (V8's slow path)", () => {
  it.effect("effect: a Deferred's own properties are its state and blockingOn; it is still an Effect that awaits it", () =>
    Effect.gen(function*() {
      const deferred = yield* Deferred.make<number>()
      expect(Object.keys(deferred)).toEqual(["state", "blockingOn"])
      expect(Effect.isEffect(deferred)).toBe(true)
      expect(Equal.equals(deferred, deferred)).toBe(true)
      expect(Equal.equals(deferred, yield* Deferred.make<number>())).toBe(false)
      yield* Effect.fork(Deferred.succeed(deferred, 42))
      // awaited through its commit, inherited
      expect(yield* deferred).toBe(42)
      expect(yield* Deferred.await(deferred)).toBe(42)
    }))

  it("@effect/workflow: an activity's own properties are its fields; it still runs its effect", () => {
    const activity = Activity.make({ name: "own", success: Schema.Number, execute: Effect.succeed(1) })
    expect(Object.keys(activity).sort()).toEqual(
      ["commit", "errorSchema", "execute", "executeEncoded", "exitSchema", "name", "successSchema"]
    )
    expect(Effect.isEffect(activity)).toBe(true)
    expect(activity.name).toBe("own")
    // (outside a workflow: its fields alone, the engine's part is tested above)
    expect(Effect.runSync(activity.execute as Effect.Effect<number>)).toBe(1)
    expect(Effect.runSync(activity.executeEncoded as Effect.Effect<unknown>)).toBe(1)
  })
})
