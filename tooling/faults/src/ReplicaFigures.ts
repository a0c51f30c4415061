/**
 * Figures of replicas (several processes of the ontology app, each a runner of
 * its cluster), for the figures command:
 *
 * - throughput of one app with 1, 2 and 3 replicas: N publishes started
 *   round-robin over the replicas, runs/s from the first start to the last success;
 * - takeover after SIGKILL of the replica holding most shards (3 replicas):
 *   until the live ones hold every shard, and until every run in flight succeeded;
 * - SIGTERM to exit of an idle replica;
 * - a rolling deploy (start a new replica, SIGTERM an old one) under a steady
 *   stream of starts: requests that failed or hung.
 */
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { Effect, Schedule } from "effect"
import { createServer } from "node:net"
import pg from "pg"
import { fileURLToPath } from "node:url"

const ontologyDir = fileURLToPath(new URL("../../../apps/ontology-server/", import.meta.url))

const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as { port: number }).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

interface Replica {
  readonly url: string
  readonly process: TestProcess.TestProcess
}

const startReplica = (databaseUrl: string) =>
  Effect.gen(function*() {
    const port = yield* freePort
    const process = yield* TestProcess.spawnTs(`${ontologyDir}src/main.ts`, {
      cwd: ontologyDir,
      env: { DATABASE_URL: databaseUrl, PORT: String(port), WORKFLOW_MODE: "durable", TEST_DATABASE_URL: undefined }
    })
    yield* process.waitFor((l) => l.includes(`Listening on http://`) && l.includes(`:${port}`), "120 seconds")
    return { url: `http://127.0.0.1:${port}`, process } satisfies Replica
  })

const json = (url: string, init?: RequestInit) =>
  Effect.tryPromise(async (signal) => {
    const r = await fetch(url, { ...init, signal: AbortSignal.any([signal, AbortSignal.timeout(15_000)]) })
    return { status: r.status, body: await r.json().catch(() => undefined) as any }
  })

const shardsOf = (r: Replica) =>
  json(`${r.url}/ready`).pipe(
    Effect.map(({ body, status }) => {
      const readiness = status === 200 ? body : body?.readiness
      return { ready: status === 200, runners: Number(readiness?.runner?.runners ?? 0), shards: Number(readiness?.runner?.shards ?? 0) }
    }),
    Effect.orElseSucceed(() => ({ ready: false, runners: 0, shards: 0 }))
  )

const allReady = (replicas: ReadonlyArray<Replica>) =>
  Effect.forEach(replicas, shardsOf).pipe(
    Effect.filterOrFail((rs) =>
      rs.every((r) => r.ready && r.runners === replicas.length) && rs.reduce((n, r) => n + r.shards, 0) === 300
    ),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout("120 seconds")
  )

const publish = (r: Replica, i: number, tag: string) =>
  json(`${r.url}/runs/PublishOntology`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      ontologyId: `${tag}-${i}`,
      turtle: `@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:f:C${i}> a owl:Class .`
    })
  }).pipe(Effect.map((r) => r.status === 202), Effect.orElseSucceed(() => false))

const countSucceeded = (databaseUrl: string) =>
  Effect.tryPromise(async () => {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    try {
      const r = await client.query("SELECT count(*)::int AS n FROM ontology_runs WHERE status = 'succeeded'")
      return r.rows[0].n as number
    } finally {
      await client.end()
    }
  }).pipe(Effect.orElseSucceed(() => 0))

const untilSucceeded = (databaseUrl: string, n: number) =>
  countSucceeded(databaseUrl).pipe(
    Effect.filterOrFail((k) => k >= n),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout("300 seconds")
  )

/** Runs/s of `runs` publishes over `replicas` replicas. */
export const throughput = (replicaCount: number, runs: number) =>
  Effect.scoped(Effect.gen(function*() {
    const db = yield* TestDatabase.make(`figures_replicas_${replicaCount}`)
    const replicas = yield* Effect.forEach(Array.from({ length: replicaCount }), () => startReplica(db.url), {
      concurrency: "unbounded"
    })
    yield* allReady(replicas)
    const t0 = performance.now()
    const ok = yield* Effect.forEach(Array.from({ length: runs }, (_, i) => i), (i) =>
      publish(replicas[i % replicaCount]!, i, "t"), { concurrency: 50 })
    yield* untilSucceeded(db.url, runs)
    const seconds = (performance.now() - t0) / 1000
    return { runsPerSecond: runs / seconds, failedStarts: ok.filter((x) => !x).length }
  }))

/** SIGKILL of the holder of most shards right after 300 starts over 3 replicas. */
export const takeover = Effect.scoped(Effect.gen(function*() {
  const db = yield* TestDatabase.make("figures_takeover")
  const replicas = yield* Effect.forEach([0, 1, 2], () => startReplica(db.url), { concurrency: "unbounded" })
  yield* allReady(replicas)
  const states = yield* Effect.forEach(replicas, shardsOf)
  const victim = states.reduce((best, s, i) => s.shards > states[best]!.shards ? i : best, 0)
  yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => publish(replicas[i % 3]!, i, "k"), {
    concurrency: 50
  })
  const killedAt = performance.now()
  yield* replicas[victim]!.process.kill("SIGKILL")
  const live = replicas.filter((_, i) => i !== victim)
  yield* allReady(live)
  const shardsMs = performance.now() - killedAt
  yield* untilSucceeded(db.url, 300)
  return { shardsMs, allSucceededMs: performance.now() - killedAt, victimShards: states[victim]!.shards }
}))

/** SIGTERM of an idle replica (one of two) to its exit, and a rolling deploy under load. */
export const rollingDeploy = Effect.scoped(Effect.gen(function*() {
  const db = yield* TestDatabase.make("figures_rolling")
  const [a, b] = yield* Effect.forEach([0, 1], () => startReplica(db.url), { concurrency: "unbounded" })
  yield* allReady([a!, b!])
  let rotation: ReadonlyArray<Replica> = [a!, b!]
  let stop = false
  let sent = 0
  let failed = 0
  const client = Effect.gen(function*() {
    while (!stop) {
      const i = sent++
      if (!(yield* publish(rotation[i % rotation.length]!, i, "r"))) failed++
      yield* Effect.sleep("10 millis")
    }
  })
  const fiber = yield* Effect.fork(Effect.all([client, client], { concurrency: 2 }))
  const c = yield* startReplica(db.url)
  yield* allReady([a!, b!, c])
  rotation = [b!, c]
  const t0 = performance.now()
  yield* a!.process.kill("SIGTERM")
  yield* a!.process.exited
  const sigtermMs = performance.now() - t0
  yield* allReady([b!, c])
  yield* Effect.sleep("1 second")
  stop = true
  yield* fiber.await
  yield* untilSucceeded(db.url, sent - failed)
  // an idle replica's SIGTERM, for comparison
  const t1 = performance.now()
  yield* c.process.kill("SIGTERM")
  yield* c.process.exited
  return { requests: sent, failed, sigtermUnderLoadMs: sigtermMs, sigtermIdleMs: performance.now() - t1 }
}))
