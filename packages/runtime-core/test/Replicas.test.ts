/**
 * Several runners of ONE app (replicas) in one process, each with its own
 * pool and lock session: shards are split between the live runners, a run
 * started on any replica reaches the one that owns its shard, and a replica
 * that leaves hands its shards to the others. Plus the runner configuration
 * and `ShardLockStorage`'s contract (one-shot iterables, deadlines, presence).
 */
import { Runner, RunnerAddress, RunnerStorage, ShardId, ShardingConfig } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Activity, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Exit, Layer, Redacted, Schedule, Schema, Scope } from "effect"
import { createServer, type Server, Socket } from "node:net"
import { Database, TablePrefix, WorkflowRuntime } from "../src/index.js"
import * as ClusterRunner from "../src/internal/ClusterRunner.js"
import * as Readiness from "../src/internal/Readiness.js"
import * as ShardLockStorage from "../src/internal/ShardLockStorage.js"
import { TestDatabase } from "../src/testing/index.js"

const prefix = TablePrefix.unsafeMake("replicas")

/** Which replica ran an activity. */
class ReplicaName extends Context.Tag("test/ReplicaName")<ReplicaName, string>() {}

const Work = Workflow.make({ name: "Work", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })
const WorkLayer = Work.toLayer(({ id }) =>
  Activity.make({
    name: "where",
    success: Schema.String,
    execute: Effect.flatMap(ReplicaName, (name) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`INSERT INTO replicas_effects (wf_id, replica) VALUES (${id}, ${name})`.pipe(Effect.as(name)))).pipe(Effect.orDie)
  })
)

/** Waits for a signal, then says which replica ran its last step. */
const Go = DurableDeferred.make("go", { success: Schema.String })
const Wait = Workflow.make({ name: "Wait", payload: { id: Schema.String }, success: Schema.String, idempotencyKey: (p) => p.id })
const WaitLayer = Wait.toLayer(() =>
  Effect.flatMap(DurableDeferred.await(Go), (value) =>
    Activity.make({
      name: "after",
      success: Schema.String,
      execute: Effect.map(ReplicaName, (name) => `${value}@${name}`)
    }))
)

const replica = (url: string, name: string) =>
  Layer.build(
    Layer.merge(WorkLayer, WaitLayer).pipe(
      Layer.provide(Layer.succeed(ReplicaName, name)),
      Layer.provideMerge(WorkflowRuntime.layerDurable(prefix, {
        sharding: { entityMessagePollInterval: Duration.millis(500), shardLockRefreshInterval: Duration.seconds(1) }
      })),
      Layer.provideMerge(Database.layer({ url: Redacted.make(url), applicationName: `replicas-${name}` }))
    )
  )

const status = (ctx: Context.Context<ShardLockStorage.Membership>) =>
  Context.get(ctx, ShardLockStorage.Membership).status

const until = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean, what: string) =>
  read.pipe(
    Effect.filterOrFail(check, () => new Error(`timed out waiting for ${what}`)),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("60 seconds")))
  )

describe("replicas of one app", () => {
  layer(TestDatabase.layer("replicas"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("split the shards, run each workflow once wherever it is started, and hand shards over on leave", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE replicas_effects (wf_id text NOT NULL, replica text NOT NULL)`
        const scopeA = yield* Scope.make()
        const scopeB = yield* Scope.make()
        const a = yield* replica(db.url, "a").pipe(Scope.extend(scopeA))
        const b = yield* replica(db.url, "b").pipe(Scope.extend(scopeB))

        // both are members, and each holds a share of the 300 shards
        const both = yield* until(
          Effect.all([status(a), status(b)]),
          ([sa, sb]) => sa.ready && sb.ready && sa.runners === 2 && sb.runners === 2 && sa.shards > 0 && sb.shards > 0 &&
            sa.shards + sb.shards === 300,
          "both replicas to hold shards"
        )
        expect(both[0].runner).not.toEqual(both[1].runner)

        // 60 runs started on A and 60 on B: every one completes once, and both replicas executed some
        const ids = Array.from({ length: 120 }, (_, i) => `w-${i}`)
        const results = yield* Effect.forEach(ids, (id, i) =>
          Work.execute({ id }).pipe(Effect.provide(i % 2 === 0 ? a : b), Effect.timeout("60 seconds")), {
          concurrency: 20
        })
        expect(new Set(results)).toEqual(new Set(["a", "b"]))
        const [counts] = yield* sql<{ runs: number; rows: number }>`
          SELECT count(DISTINCT wf_id)::int AS runs, count(*)::int AS rows FROM replicas_effects`
        expect(counts).toEqual({ runs: 120, rows: 120 })

        // signals through either replica reach runs wherever they are active
        const waiting = Array.from({ length: 10 }, (_, i) => `wait-${i}`)
        const waitIds = yield* Effect.forEach(waiting, (id, i) =>
          Wait.execute({ id }, { discard: true }).pipe(Effect.provide(i % 2 === 0 ? a : b)))
        yield* Effect.forEach(waitIds, (executionId, i) =>
          Effect.flatMap(WorkflowEngine.WorkflowEngine, (engine) =>
            engine.deferredDone(Go, { workflowName: Wait.name, executionId, deferredName: Go.name, exit: Exit.succeed(`go-${i}`) })
          ).pipe(Effect.provide(i % 2 === 0 ? b : a)))
        const signalled = yield* Effect.forEach(waiting, (id) =>
          Wait.execute({ id }).pipe(Effect.provide(a), Effect.timeout("60 seconds")))
        expect(signalled.map((r) => r.split("@")[0])).toEqual(waiting.map((_, i) => `go-${i}`))

        // B leaves: A takes every shard, and runs started on A after that complete on A
        yield* Scope.close(scopeB, Exit.void)
        yield* until(status(a), (s) => s.runners === 1 && s.shards === 300, "A to hold every shard")
        const after = yield* Effect.forEach(["x-1", "x-2", "x-3"], (id) =>
          Work.execute({ id }).pipe(Effect.provide(a), Effect.timeout("60 seconds")))
        expect(after).toEqual(["a", "a", "a"])
        yield* Scope.close(scopeA, Exit.void)
      }))

    it.scoped("a replica whose database session dies leaves the ring at once; its shards move", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const admin = yield* SqlClient.SqlClient
        yield* admin`CREATE TABLE IF NOT EXISTS replicas_effects (wf_id text NOT NULL, replica text NOT NULL)`
        const a = yield* replica(db.url, "c")
        const scopeB = yield* Scope.make()
        yield* replica(db.url, "d").pipe(Scope.extend(scopeB))
        yield* until(status(a), (s) => s.runners === 2 && s.shards < 300 && s.shards > 0, "two runners")
        // what a SIGKILL does to the database: every session of replica d ends
        yield* admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'replicas-d'`
        // ...and d must not come back in this test: stop it without a goodbye (its rows stay)
        yield* Scope.close(scopeB, Exit.void).pipe(Effect.forkDaemon)
        yield* until(status(a), (s) => s.shards === 300, "c to take every shard")
        expect(yield* Work.execute({ id: "after-death" }).pipe(Effect.provide(a), Effect.timeout("60 seconds"))).toBe("c")
      }))
  })
})

describe("ShardLockStorage", () => {
  const storage = (url: string, options?: ShardLockStorage.Options) =>
    Layer.build(
      ShardLockStorage.layer(prefix, options).pipe(
        Layer.provide(ShardingConfig.layer()),
        Layer.provide(Database.layer({ url: Redacted.make(url), applicationName: "replicas-locks" }))
      )
    )
  const shards = (n: number) => Array.from({ length: n }, (_, i) => ShardId.make("default", i + 1))
  const address = RunnerAddress.make("127.0.0.1", 1)

  layer(TestDatabase.layer("shard_locks"), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("acquire reads a one-shot iterable once and reports the shards it took", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const ctx = yield* storage(db.url)
        const locks = Context.get(ctx, RunnerStorage.RunnerStorage)
        function* oneShot() {
          yield* shards(5)
        }
        const taken = yield* locks.acquire(address, oneShot())
        expect(taken.map(String)).toEqual(shards(5).map(String))
        // the locks really are held, in the app's key space
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'
          AND granted AND classid = ${TablePrefix.lockSpace(prefix)}::oid AND objsubid = 2`
        expect(row.n).toBe(5)
      }))

    it.scoped("a black-holed lock session fails within its deadline instead of hanging, then recovers", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const proxy = yield* blackHoleProxy(new URL(db.url))
        const proxied = new URL(db.url)
        proxied.host = `127.0.0.1:${proxy.port}`
        const ctx = yield* storage(proxied.toString(), { lockTimeout: "1 second" })
        const locks = Context.get(ctx, RunnerStorage.RunnerStorage)
        expect((yield* locks.acquire(address, shards(3))).length).toBe(3)

        proxy.blackHole()
        const stuck = yield* locks.acquire(address, shards(6)).pipe(Effect.timeout("30 seconds"), Effect.exit)
        // a PersistenceError (the deadline), not the test's own timeout
        expect(Exit.isFailure(stuck) && String(stuck.cause)).toMatch(/PersistenceError|did not answer/)

        // the network heals (the dead TCP connections are gone): a new session takes the shards again,
        // all of them once the server has ended the old session (a lock request that reached it before
        // the black hole may hold shards until then)
        proxy.heal()
        const again = yield* locks.acquire(address, shards(6)).pipe(
          Effect.filterOrFail((held) => held.length === 6, (held) => new Error(`${held.length} of 6 shards so far`)),
          Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("20 seconds"))),
          Effect.orElse(() => locks.acquire(address, shards(6)))
        )
        expect(again.length).toBe(6)
      }))

    it.scoped("two live runners may not share one address (they would share a machine id)", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const one = yield* storage(db.url)
        const two = yield* storage(db.url)
        const runner = Runner.Runner.make({ address: RunnerAddress.make("127.0.0.1", 7), groups: ["default"], weight: 1 })
        yield* Context.get(one, RunnerStorage.RunnerStorage).register(runner, true)
        const second = yield* Context.get(two, RunnerStorage.RunnerStorage).register(runner, true).pipe(Effect.exit)
        expect(Exit.isFailure(second)).toBe(true)
        const s = yield* Context.get(two, ShardLockStorage.Membership).status
        expect(s.ready).toBe(false)
        expect(s.reason).toMatch(/another live process holds runner address 127\.0\.0\.1:7/)

        // and `/ready` says so (503 with the reason), while the first one is ready once in its ring
        const readiness = (ctx: Context.Context<ShardLockStorage.Membership>) =>
          Readiness.make.pipe(
            Effect.flatMap((r) => r.handle),
            Effect.provide(ctx),
            Effect.provideService(WorkflowRuntime.WorkflowRuntime, { mode: "durable", prefix })
          )
        const refused = yield* Effect.flip(readiness(two))
        expect(refused.readiness).toMatchObject({ ready: false, database: { reachable: true } })
        expect(refused.readiness.reason).toMatch(/another live process holds runner address/)
        yield* Context.get(one, RunnerStorage.RunnerStorage).getRunners
        expect(yield* readiness(one)).toMatchObject({ ready: true, runner: { address: "127.0.0.1:7", runners: 1 } })
      }))
  })
})

describe("runner configuration", () => {
  const read = (env: Record<string, string>) =>
    ClusterRunner.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))), Effect.flip)

  it.effect("defaults: 127.0.0.1 and any free port", () =>
    Effect.gen(function*() {
      const address = yield* ClusterRunner.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      expect(address).toEqual({ host: "127.0.0.1", port: 0, listenHost: undefined })
    }))

  it.effect("bad values name the variable and the rule", () =>
    Effect.gen(function*() {
      const port = yield* read({ RUNNER_PORT: "80a" })
      expect(port).toMatchObject({ _tag: "InvalidRuntimeConfig", key: "RUNNER_PORT" })
      expect(port.message).toMatch(/between 0 and 65535/)
      expect(yield* read({ RUNNER_PORT: "70000" })).toMatchObject({ key: "RUNNER_PORT" })
      expect(yield* read({ RUNNER_HOST: "http://db:80" })).toMatchObject({ key: "RUNNER_HOST" })
      expect(yield* read({ RUNNER_HOST: "a host" })).toMatchObject({ key: "RUNNER_HOST" })
      expect(yield* read({ RUNNER_LISTEN_HOST: "0.0.0.0:1" })).toMatchObject({ key: "RUNNER_LISTEN_HOST" })
    }))

  it.scoped("a port already in use is a clear error naming RUNNER_PORT", () =>
    Effect.gen(function*() {
      const busy = yield* Effect.acquireRelease(
        Effect.async<Server>((resume) => {
          const server = createServer()
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const port = (busy.address() as { port: number }).port
      // the socket is bound before anything touches the database: no database needed to see the error
      const error = yield* Layer.build(ClusterRunner.layer(prefix, { address: { host: "127.0.0.1", port } })).pipe(
        Effect.provideService(SqlClient.SqlClient, {} as SqlClient.SqlClient),
        Effect.provideService(PgClient.PgClient, {} as PgClient.PgClient),
        Effect.flip
      )
      expect(error).toMatchObject({ _tag: "InvalidRuntimeConfig", key: "RUNNER_PORT" })
      expect(error.message).toMatch(/cannot listen on 127\.0\.0\.1:\d+/)
    }))
})

/**
 * A TCP proxy to Postgres whose existing connections can be black-holed (bytes
 * accepted, never forwarded: a network that silently drops packets) and then
 * healed (the dead connections are cut; new ones pass).
 */
const blackHoleProxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; blackHole: () => void; heal: () => void; server: Server }>((resume) => {
      const pairs = new Set<[Socket, Socket]>()
      let holed = false
      const server = createServer((client) => {
        const upstream = new Socket()
        upstream.connect(Number(target.port || 5432), target.hostname)
        const pair: [Socket, Socket] = [client, upstream]
        pairs.add(pair)
        client.on("data", (d) => !holed && upstream.write(d))
        upstream.on("data", (d) => !holed && client.write(d))
        const close = () => {
          pairs.delete(pair)
          client.destroy()
          upstream.destroy()
        }
        client.on("error", close).on("close", close)
        upstream.on("error", close).on("close", close)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as { port: number }).port,
          server,
          blackHole: () => void (holed = true),
          heal: () => {
            for (const [c, u] of pairs) {
              c.destroy()
              u.destroy()
            }
            pairs.clear()
            holed = false
          }
        })))
    }),
    (p) => Effect.sync(() => p.server.close())
  )
