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
import { allReady, allSucceeded, AppSet, onFreshDatabase, readiness, type RunningApp, startReplicas } from "@duraflow/e2e"
import { Effect } from "effect"

/** `count` ontology replicas on a fresh database, all ready, for `body`. */
const withReplicas = <A, E, R>(
  suite: string,
  count: number,
  body: (replicas: ReadonlyArray<RunningApp<"ontology">>, apps: AppSet, databaseUrl: string) => Effect.Effect<A, E, R>
) =>
  Effect.scoped(onFreshDatabase(suite, (databaseUrl) =>
    Effect.gen(function*() {
      const apps = new AppSet()
      const replicas = yield* startReplicas(apps, "ontology", count, { databaseUrl, mode: "durable" })
      yield* allReady(replicas)
      return yield* body(replicas, apps, databaseUrl)
    })))

/** Starts a publish; whether it was accepted (202) within 15 s. */
const publish = (r: RunningApp<"ontology">, i: number, tag: string) =>
  r.client.workflows.PublishOntology({
    payload: { ontologyId: `${tag}-${i}`, turtle: `@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:f:C${i}> a owl:Class .` }
  }).pipe(Effect.timeout("15 seconds"), Effect.as(true), Effect.orElseSucceed(() => false))

const untilSucceeded = (n: number) => allSucceeded("ontology", n, "300 seconds")

/** Runs/s of `runs` publishes over `replicas` replicas. */
export const throughput = (replicaCount: number, runs: number) =>
  withReplicas(`figures_replicas_${replicaCount}`, replicaCount, (replicas) => Effect.gen(function*() {
    const t0 = performance.now()
    const ok = yield* Effect.forEach(Array.from({ length: runs }, (_, i) => i), (i) =>
      publish(replicas[i % replicaCount]!, i, "t"), { concurrency: 50 })
    yield* untilSucceeded(runs)
    const seconds = (performance.now() - t0) / 1000
    return { runsPerSecond: runs / seconds, failedStarts: ok.filter((x) => !x).length }
  }))

/** SIGKILL of the holder of most shards right after 300 starts over 3 replicas. */
export const takeover = withReplicas("figures_takeover", 3, (replicas) => Effect.gen(function*() {
  const states = (yield* Effect.forEach(replicas, readiness)).map((r) => r?.runner?.shards ?? 0)
  const victim = states.reduce((best, shards, i) => shards > states[best]! ? i : best, 0)
  yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => publish(replicas[i % 3]!, i, "k"), {
    concurrency: 50
  })
  const killedAt = performance.now()
  yield* replicas[victim]!.process.kill("SIGKILL")
  const live = replicas.filter((_, i) => i !== victim)
  yield* allReady(live)
  const shardsMs = performance.now() - killedAt
  yield* untilSucceeded(300)
  return { shardsMs, allSucceededMs: performance.now() - killedAt, victimShards: states[victim]! }
}))

/** SIGTERM of an idle replica (one of two) to its exit, and a rolling deploy under load. */
export const rollingDeploy = withReplicas("figures_rolling", 2, ([a, b], apps, databaseUrl) => Effect.gen(function*() {
  let rotation: ReadonlyArray<RunningApp<"ontology">> = [a!, b!]
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
  const [c] = yield* startReplicas(apps, "ontology", 1, { databaseUrl, mode: "durable" })
  yield* allReady([a!, b!, c!])
  rotation = [b!, c!]
  const t0 = performance.now()
  yield* a!.process.kill("SIGTERM")
  yield* a!.process.exited
  const sigtermMs = performance.now() - t0
  yield* allReady([b!, c!])
  yield* Effect.sleep("1 second")
  stop = true
  yield* fiber.await
  yield* untilSucceeded(sent - failed)
  // an idle replica's SIGTERM, for comparison
  const t1 = performance.now()
  yield* c!.process.kill("SIGTERM")
  yield* c!.process.exited
  return { requests: sent, failed, sigtermUnderLoadMs: sigtermMs, sigtermIdleMs: performance.now() - t1 }
}))
