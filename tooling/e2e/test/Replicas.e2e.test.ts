/**
 * Replicas: several processes per app on one database, each a runner of the
 * app's @effect/cluster (durable mode, whatever the run's WORKFLOW_MODE: a
 * replica is a durable-engine thing). Any replica accepts any request; a 202
 * means the run is persisted and it runs once, whichever replica owns its
 * shard; a replica killed with SIGKILL hands its shards to the live ones; a
 * rolling deploy (start a new replica, SIGTERM an old one) fails no request.
 * Timings are printed, not asserted (figures: `pnpm --filter @duraflow/faults figures`).
 */
import { SampleDocuments } from "@duraflow/knowledge"
import { SampleOntology } from "@duraflow/ontology"
import { TablePrefix } from "@duraflow/runtime-core"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, identity, Ref } from "effect"
import {
  allReady,
  allSucceeded,
  E2EError,
  executionId,
  onFreshDatabase,
  poll,
  readiness,
  retryUnavailable,
  type RunningApp,
  startReplicas,
  withApps
} from "../src/Apps.js"

const turtle = (i: number) =>
  `@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:r:C${i}> a owl:Class .`

/** 503 answers to starts (the documented "retry later" under overload), counted and printed, not failed. */
const unavailable = Ref.unsafeMake(0)

/**
 * Starts a run as a client should: a 503 is retried (nothing was recorded),
 * unless `strict` (the rolling deploy, where no answer may be a 503), and a
 * start that does not answer is a failure, not a hang.
 */
const timedStart = <E>(app: RunningApp, start: Effect.Effect<{ readonly executionId: string }, E>, strict = false) =>
  Effect.gen(function*() {
    const t0 = performance.now()
    const id = yield* start.pipe(
      Effect.timeoutFail({
        duration: "15 seconds",
        onTimeout: () => new E2EError({ message: `start on ${app.label} did not answer within 15 s` })
      }),
      strict ? identity : retryUnavailable(Ref.update(unavailable, (n) => n + 1)),
      executionId,
      Effect.mapError((e) => new E2EError({ message: `start on ${app.label}: ${String(e)}` }))
    )
    return { executionId: id, ms: performance.now() - t0 }
  })

const publish = (
  app: RunningApp<"ontology">,
  payload: { readonly ontologyId: string; readonly turtle: string },
  strict = false
) => timedStart(app, app.client.workflows.PublishOntology({ payload }), strict)

const p = (xs: ReadonlyArray<number>, q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]

describe("replicas", () => {
  {
    it.scopedLive("3 ontology and 2 knowledge replicas: 300 runs started round-robin, each runs once; isolation holds", () =>
      onFreshDatabase("e2e_replicas_load", (url) => withApps((apps) =>
        Effect.gen(function*() {
          const db = { url }
          const sql = yield* SqlClient.SqlClient
          const ontology = yield* startReplicas(apps, "ontology", 3, { databaseUrl: db.url, mode: "durable" })
          const knowledge = yield* startReplicas(apps, "knowledge", 2, {
            databaseUrl: db.url,
            mode: "durable",
            ontologyUrl: ontology[0]!.baseUrl
          })
          yield* Effect.all([allReady(ontology), allReady(knowledge)], { concurrency: 2 })

          // the sample ontology first (knowledge types its entities with it), through replica 2
          yield* publish(ontology[1]!, { ontologyId: "news", turtle: SampleOntology.turtle })
          yield* allSucceeded("ontology", 1)

          // 240 publishes over the 3 ontology replicas, 60 ingests over the 2 knowledge replicas, at once
          const publishes = Array.from({ length: 240 }, (_, i) => ({ ontologyId: `o-${i}`, turtle: turtle(i) }))
          const samples = SampleDocuments.documents
          const ingests = Array.from({ length: 60 }, (_, i) => ({
            ...samples[i % samples.length]!,
            documentId: `doc-${i}`,
            ontologyId: "news"
          }))
          const starts = yield* Effect.all([
            Effect.forEach(publishes, (b, i) => publish(ontology[i % 3]!, b), { concurrency: 30 }),
            Effect.forEach(ingests, (b, i) => {
              const app = knowledge[i % 2]!
              return timedStart(app, app.client.workflows.IngestDocument({ payload: b }))
            }, { concurrency: 10 })
          ], { concurrency: 2 })
          const ms = starts.flat().map((s) => s.ms)
          console.log(
            `replicas: 300 starts answered, p50 ${p(ms, 0.5)?.toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms, ` +
              `${yield* Ref.get(unavailable)} answers 503 retried`
          )
          expect(new Set(starts[0].map((s) => s.executionId)).size).toBe(240)
          expect(new Set(starts[1].map((s) => s.executionId)).size).toBe(60)

          expect(yield* allSucceeded("ontology", 241)).toEqual({ succeeded: 241 })
          expect(yield* allSucceeded("knowledge", 60)).toEqual({ succeeded: 60 })
          // each run wrote once: one version per published ontology, one row per document
          const [versions] = yield* sql<{ n: number; distinct: number }>`
            SELECT count(*)::int AS n, count(DISTINCT ontology_id)::int AS distinct FROM ontology_versions`
          expect(versions).toEqual({ n: 241, distinct: 241 })
          const [documents] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM knowledge_documents`
          expect(documents.n).toBe(60)

          // isolation with replicas: every advisory lock is in one app's key space, held by that app's sessions
          const spaces = new Map(["ontology", "knowledge"].map((x) => [TablePrefix.lockSpace(TablePrefix.unsafeMake(x)), x]))
          const locks = yield* sql<{ classid: number; objsubid: number; application_name: string; pid: number }>`
            SELECT l.classid::bigint AS classid, l.objsubid, a.application_name, l.pid
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`
          for (const lock of locks) {
            expect(lock.objsubid).toBe(2)
            expect(lock.application_name).toBe(spaces.get(Number(lock.classid)))
          }
          // one lock session per replica: 3 ontology, 2 knowledge
          const sessions = (app: string) => new Set(locks.filter((l) => l.application_name === app).map((l) => l.pid)).size
          expect({ ontology: sessions("ontology"), knowledge: sessions("knowledge") }).toEqual({ ontology: 3, knowledge: 2 })
          const tables = yield* sql<{ relname: string }>`
            SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace`
          for (const { relname } of tables) expect(relname).toMatch(/^(ontology|knowledge)_/)
        }))), 400_000)

    it.scopedLive("SIGKILL of the replica holding most shards, mid-load: every run succeeds", () =>
      onFreshDatabase("e2e_replicas_kill", (url) => withApps((apps) =>
        Effect.gen(function*() {
          const db = { url }
          const replicas = yield* startReplicas(apps, "ontology", 3, { databaseUrl: db.url, mode: "durable" })
          yield* allReady(replicas)
          const states = yield* Effect.forEach(replicas, readiness)
          const victim = states.reduce((best, s, i) => (s?.runner?.shards ?? 0) > (states[best]?.runner?.shards ?? 0) ? i : best, 0)
          const live = replicas.filter((_, i) => i !== victim)

          const first = yield* Effect.forEach(
            Array.from({ length: 150 }, (_, i) => i),
            (i) => publish(replicas[i % 3]!, { ontologyId: `k-${i}`, turtle: turtle(i) }),
            { concurrency: 30 }
          )
          const killedAt = Date.now()
          yield* replicas[victim]!.process.kill("SIGKILL")
          // the live replicas keep taking starts while they take over
          const second = yield* Effect.forEach(
            Array.from({ length: 150 }, (_, i) => 150 + i),
            (i) => publish(live[i % 2]!, { ontologyId: `k-${i}`, turtle: turtle(i) }),
            { concurrency: 30 }
          )
          yield* poll("the live replicas to hold every shard", Effect.forEach(live, readiness), (rs) =>
            rs.reduce((n, r) => n + (r?.runner?.shards ?? 0), 0) === 300 && rs.every((r) => r?.runner?.runners === 2), {
            timeout: "60 seconds",
            interval: "100 millis"
          })
          const takeover = Date.now() - killedAt
          expect(yield* allSucceeded("ontology", 300)).toEqual({ succeeded: 300 })
          console.log(
            `replicas: SIGKILL of the holder of ${states[victim]?.runner?.shards} shards: ` +
              `shards taken over after ${takeover} ms, all 300 runs succeeded ${Date.now() - killedAt} ms after the kill`
          )
          expect(first.length + second.length).toBe(300)
        }))), 400_000)

    it.scopedLive("rolling deploy: start a new replica, SIGTERM an old one; no request fails or hangs", () =>
      onFreshDatabase("e2e_replicas_rolling", (url) => withApps((apps) =>
        Effect.gen(function*() {
          const db = { url }
          const [a, b] = yield* startReplicas(apps, "ontology", 2, { databaseUrl: db.url, mode: "durable" })
          yield* allReady([a!, b!])

          // a client that keeps starting runs round-robin over the replicas in `rotation`
          const rotation = yield* Ref.make<ReadonlyArray<RunningApp<"ontology">>>([a!, b!])
          const results = yield* Ref.make<Array<{ ok: boolean; error?: string }>>([])
          const stop = yield* Ref.make(false)
          const client = (tag: string) => Effect.gen(function*() {
            let i = 0
            while (!(yield* Ref.get(stop))) {
              const targets = yield* Ref.get(rotation)
              const id = `${tag}-${i}`
              const outcome = yield* publish(targets[i % targets.length]!, { ontologyId: id, turtle: turtle(i) }, true).pipe(
                Effect.as({ ok: true }),
                Effect.catchAll((e) => Effect.succeed({ ok: false, error: e.message }))
              )
              yield* Ref.update(results, (rs) => [...rs, outcome])
              i++
              yield* Effect.sleep("20 millis")
            }
          })
          const fiber = yield* Effect.fork(Effect.all([client("x"), client("y").pipe(Effect.delay("10 millis"))], {
            concurrency: 2
          }))

          yield* Effect.sleep("1 second")
          const [c] = yield* startReplicas(apps, "ontology", 1, { databaseUrl: db.url, mode: "durable" })
          yield* allReady([a!, b!, c!])
          // the load balancer stops sending to `a` (its /ready would fail from now on), then `a` gets SIGTERM
          yield* Ref.set(rotation, [b!, c!])
          const t0 = Date.now()
          yield* a!.process.kill("SIGTERM")
          const exitCode = yield* a!.process.exited
          const stopMs = Date.now() - t0
          yield* allReady([b!, c!])
          yield* Effect.sleep("1 second")
          yield* Ref.set(stop, true)
          yield* fiber.await

          const outcomes = yield* Ref.get(results)
          const failed = outcomes.filter((o) => !o.ok)
          console.log(
            `replicas: rolling deploy: ${outcomes.length} starts, ${failed.length} failed; ` +
              `SIGTERM to exit ${stopMs} ms (code ${exitCode})`
          )
          expect(failed).toEqual([])
          expect(exitCode).toBe(0)
          expect(yield* allSucceeded("ontology", outcomes.length)).toEqual({ succeeded: outcomes.length })
        }))), 400_000)
  }
})
