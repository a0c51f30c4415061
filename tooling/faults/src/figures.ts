/**
 * `pnpm --filter @duraflow/faults figures`: runs the crash and latency
 * scenarios against real app processes and a real Postgres, and prints the
 * figures durability is judged by (targets in brackets):
 *
 * - kill -9 with 300 runs in flight: runs lost, transactional writes duplicated [0, 0]
 * - kill -9 with a 5000-run backlog: restart-to-all-succeeded time and peak
 *   RSS of the restarted process [< 10 s, < 512 MB], lost and duplicated [0, 0]
 * - actual duration of DurableClock.sleep("2 seconds") [within 10 %]
 * - signal-to-resume latency across processes, p50 and p99 [p50 < 100 ms]
 * - idle commits per second of each real app [< 1]
 * - replicas (`ReplicaFigures`): takeover after SIGKILL [all resumed < 5 s],
 *   SIGTERM to exit [< 5 s idle], failed requests in a rolling deploy [0],
 *   one app's throughput with 1, 2 and 3 replicas
 * - retention (`RetentionFigures`): 100k expired runs swept, rows left per run
 *   [0], live runs' p99 before and during the sweep
 *
 * `-- --only=replicas` (or `--only=crash`, `--only=retention`) runs one part.
 * Postgres: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * every scenario uses a fresh database that is dropped afterwards.
 */
import { AppSet, freePort } from "@duraflow/e2e"
import { TablePrefix, WorkflowRuntime, Database } from "@duraflow/runtime-core"
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { NodeRuntime } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { WorkflowEngine } from "@effect/workflow"
import { Console, Duration, Effect, Exit, Layer, Option, Redacted, Schedule } from "effect"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Approval, Await } from "./FaultApp.js"
import * as ReplicaFigures from "./ReplicaFigures.js"
import * as RetentionFigures from "./RetentionFigures.js"

const faultApp = fileURLToPath(new URL("./FaultApp.ts", import.meta.url))

const fresh = (name: string) =>
  Effect.gen(function*() {
    const db = yield* TestDatabase.make(name)
    const client = yield* Layer.build(Database.layer({ url: Redacted.make(db.url) }))
    const sql = (<A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, client))
    return { url: db.url, name: db.name, sql }
  })

const count = (prefix: string, step: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(DISTINCT wf_id)::int AS n FROM ${sql(`${prefix}_effects`)} WHERE step = ${step}`)
    .pipe(Effect.map((r) => r[0].n), Effect.orElseSucceed(() => 0))

const duplicated = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM (SELECT 1 FROM ${sql(`${prefix}_effects`)}
      WHERE step IN ('t1', 't3') GROUP BY wf_id, step HAVING count(*) > 1) d`).pipe(Effect.map((r) => r[0].n))

const succeeded = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${prefix}_runs`)} WHERE status = 'succeeded'`).pipe(
      Effect.map((r) => r[0].n),
      Effect.orElseSucceed(() => 0)
    )

const until = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean, timeout: Duration.DurationInput) =>
  read.pipe(Effect.filterOrFail(check), Effect.retry(Schedule.spaced("50 millis")), Effect.timeout(timeout), Effect.option)

const peakRssMb = (pid: number) => {
  try {
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1])
    return Math.round(kb / 1024)
  } catch {
    return NaN
  }
}

const crash = (options: { readonly prefix: string; readonly runs: number; readonly stepMs: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const db = yield* fresh(options.prefix)
    const env = {
      DATABASE_URL: db.url,
      WORKFLOW_MODE: "durable",
      PREFIX: options.prefix,
      STEP_MS: String(options.stepMs),
      POLL_MS: "1000"
    }
    const first = yield* TestProcess.spawnTs(faultApp, { env: { ...env, START: String(options.runs) } })
    yield* first.waitForEvent("started", "300 seconds")
    yield* until(db.sql(count(options.prefix, "t3")), (n) => n >= Math.min(30, options.runs / 10), "120 seconds")
    yield* first.kill("SIGKILL")
    const doneAtKill = yield* db.sql(count(options.prefix, "t3"))
    const restarted = Date.now()
    const second = yield* TestProcess.spawnTs(faultApp, { env: { ...env, START: "0" } })
    const all = yield* until(db.sql(succeeded(options.prefix)), (n) => n === options.runs, "300 seconds")
    const recoveryMs = Date.now() - restarted
    const rss = peakRssMb(second.pid)
    const ok = yield* db.sql(succeeded(options.prefix))
    const dup = yield* db.sql(duplicated(options.prefix))
    yield* second.kill("SIGTERM")
    return {
      runs: options.runs,
      doneAtKill,
      lost: options.runs - ok,
      duplicated: dup,
      recoveryMs: Option.isSome(all) ? recoveryMs : NaN,
      peakRssMb: rss
    }
  }))

const latencies = Effect.scoped(Effect.gen(function*() {
  const db = yield* fresh("latency")
  const prefix = TablePrefix.unsafeMake("latency")
  const naps = 5
  const awaits = 30
  const app = yield* TestProcess.spawnTs(faultApp, {
    env: { DATABASE_URL: db.url, WORKFLOW_MODE: "durable", PREFIX: prefix, START_NAPS: String(naps), NAP_MS: "2000", START_AWAITS: String(awaits) }
  })
  yield* app.waitForEvent("ready", "60 seconds")

  // durable sleeps: DB-clock time from the recorded start to the wake-up commit
  yield* until(db.sql(count(prefix, "woke")), (n) => n === naps, "60 seconds")
  const sleeps = yield* db.sql(Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ ms: number }>`SELECT (extract(epoch FROM w.at - s.at) * 1000)::float8 AS ms
      FROM latency_effects s JOIN latency_effects w ON w.wf_id = s.wf_id AND w.step = 'woke'
      WHERE s.step = 'start'`))

  // signals from another process: this one, a client-only engine (it holds no shards)
  yield* until(db.sql(count(prefix, "armed")), (n) => n === awaits, "60 seconds")
  const client = yield* Layer.build(
    WorkflowRuntime.layerDurable(prefix, { sharding: { runnerAddress: Option.none() } }).pipe(
      Layer.provide(Database.layer({ url: Redacted.make(db.url), applicationName: "figures-signal" }))
    )
  )
  const engine = yield* Effect.provide(WorkflowEngine.WorkflowEngine, client)
  const signals: Array<number> = []
  for (let i = 0; i < awaits; i++) {
    const executionId = yield* Await.executionId({ id: `await-${i}` })
    const sent = Date.now()
    yield* engine.deferredDone(Approval, {
      workflowName: Await.name,
      executionId,
      deferredName: Approval.name,
      exit: Exit.succeed("ok")
    })
    const resumed = yield* until(
      db.sql(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ at: number }>`SELECT (extract(epoch FROM at) * 1000)::float8 AS at FROM latency_effects
          WHERE wf_id = ${`await-${i}`} AND step = 'resumed'`)),
      (rows) => rows.length > 0,
      "30 seconds"
    )
    signals.push(Option.isSome(resumed) ? resumed.value[0].at - sent : NaN)
  }
  yield* app.kill("SIGTERM")
  return { sleeps: sleeps.map((r) => r.ms), signals }
}))

const idleCommits = (app: "ontology" | "knowledge", seconds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const db = yield* fresh(`idle_${app}`)
    const { process: proc } = yield* new AppSet().start(app, { databaseUrl: db.url, port: yield* freePort, ontologyUrl: "http://127.0.0.1:9" })
    yield* Effect.sleep("10 seconds") // startup work (migrations, shard acquisition, first refreshes) is not idle
    const commits = db.sql(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ n: number }>`SELECT xact_commit::float8 AS n FROM pg_stat_database WHERE datname = current_database()`))
      .pipe(Effect.map((r) => r[0].n))
    const before = yield* commits
    yield* Effect.sleep(Duration.seconds(seconds))
    const after = yield* commits
    yield* proc.kill("SIGTERM")
    return (after - before - 1) / seconds // minus our own read
  }))

const pct = (xs: ReadonlyArray<number>, p: number) => {
  const s = xs.filter(Number.isFinite).slice().sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}
const ms = (x: number) => Number.isFinite(x) ? `${Math.round(x)} ms` : "n/a"

const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length)

const replicaRows = Effect.gen(function*() {
  yield* Console.log("Running the replica scenarios (a few minutes)...")
  const rates: Array<[string, string, string]> = []
  for (const n of [1, 2, 3]) {
    const t = yield* ReplicaFigures.throughput(n, 600)
    rates.push([`throughput, 600 publishes over ${n} replica(s)`, `${t.runsPerSecond.toFixed(1)}/s`, ""])
    if (t.failedStarts > 0) rates.push([`  failed starts with ${n} replica(s)`, String(t.failedStarts), "0"])
    yield* Console.log(`  throughput with ${n} replica(s): done`)
  }
  const k = yield* ReplicaFigures.takeover
  yield* Console.log(`  SIGKILL takeover: done`)
  const r = yield* ReplicaFigures.rollingDeploy
  yield* Console.log(`  rolling deploy: done`)
  return [
    [`SIGKILL of 1 of 3 replicas (${k.victimShards} shards): live replicas hold all shards`, ms(k.shardsMs), "< 5000 ms"],
    ["SIGKILL of 1 of 3 replicas, 300 runs in flight: all succeeded", ms(k.allSucceededMs), "< 5000 ms"],
    ["SIGTERM to exit, idle replica", ms(r.sigtermIdleMs), "< 5000 ms"],
    ["SIGTERM to exit, replica under load (rolling deploy)", ms(r.sigtermUnderLoadMs), ""],
    [`rolling deploy: failed or hanging requests (of ${r.requests})`, String(r.failed), "0"],
    ...rates
  ] as Array<[string, string, string]>
})

const program = Effect.gen(function*() {
  const rows: Array<[string, string, string]> = []
  if (only === undefined || only === "crash") rows.push(...(yield* crashRows))
  if (only === undefined || only === "replicas") rows.push(...(yield* replicaRows))
  if (only === undefined || only === "retention") rows.push(...(yield* RetentionFigures.rows))
  const width = Math.max(...rows.map((r) => r[0].length))
  yield* Console.log(`\n${"figure".padEnd(width)}  ${"value".padStart(10)}  target`)
  for (const [name, value, target] of rows) yield* Console.log(`${name.padEnd(width)}  ${value.padStart(10)}  ${target}`)
})

const crashRows = Effect.gen(function*() {
  yield* Console.log("Running the fault and latency scenarios (a few minutes)...")
  const inFlight = yield* crash({ prefix: "crash", runs: 300, stepMs: 20 })
  yield* Console.log(`  kill -9 with 300 in flight: done`)
  const backlog = yield* crash({ prefix: "backlog", runs: 5000, stepMs: 0 })
  yield* Console.log(`  kill -9 with a 5000 backlog: done`)
  const lat = yield* latencies
  yield* Console.log(`  timers and signals: done`)
  const idle = {
    ontology: yield* idleCommits("ontology", 30),
    knowledge: yield* idleCommits("knowledge", 30)
  }
  const rows: Array<[string, string, string]> = [
    ["kill -9, 300 in flight: runs lost", String(inFlight.lost), "0"],
    ["kill -9, 300 in flight: duplicated transactional writes", String(inFlight.duplicated), "0"],
    ["kill -9, 300 in flight: restart to all succeeded", ms(inFlight.recoveryMs), ""],
    ["kill -9, 5000 backlog: runs lost", String(backlog.lost), "0"],
    ["kill -9, 5000 backlog: duplicated transactional writes", String(backlog.duplicated), "0"],
    ["kill -9, 5000 backlog: restart to all succeeded", ms(backlog.recoveryMs), "< 10000 ms"],
    ["kill -9, 5000 backlog: peak RSS after restart", `${backlog.peakRssMb} MB`, "< 512 MB"],
    [`DurableClock.sleep("2 seconds"), median of ${lat.sleeps.length}`, ms(pct(lat.sleeps, 50)), "2000-2200 ms"],
    [`DurableClock.sleep("2 seconds"), max`, ms(Math.max(...lat.sleeps)), "2000-2200 ms"],
    [`signal -> resume across processes, p50 (n=${lat.signals.length})`, ms(pct(lat.signals, 50)), "< 100 ms"],
    ["signal -> resume across processes, p99", ms(pct(lat.signals, 99)), ""],
    ["idle commits/s, ontology app", idle.ontology.toFixed(2), "< 1"],
    ["idle commits/s, knowledge app", idle.knowledge.toFixed(2), "< 1"]
  ]
  return rows
})

program.pipe(Effect.provide(Layer.empty), NodeRuntime.runMain)
