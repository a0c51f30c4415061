/**
 * `Doctor` on a clean shared database (every check ok), then with each fault
 * planted, one at a time: a foreign-owned table inside a prefix, PUBLIC and
 * cross-prefix grants, two prefixes whose lock key spaces collide, a stuck
 * run (a ledger row the engine never got, an overdue clock, a suspended run
 * whose signal came), an edited or unknown applied migration, and a one-key
 * advisory lock. Each is reported by its check, by name; `fix` re-drives the
 * stuck runs to their end.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { DurableClock, DurableDeferred, Workflow, WorkflowEngine } from "@effect/workflow"
import { Effect, Either, Exit, Layer, Schema } from "effect"
import { Doctor, Migrations, TablePrefix, WorkflowLayer, WorkflowRuntime } from "../src/index.js"
import * as RunStore from "../src/internal/RunStore.js"
import * as RuntimeTables from "../src/internal/RuntimeTables.js"
import { TestDatabase } from "../src/testing/index.js"

const alpha = TablePrefix.unsafeMake("alpha")
const beta = TablePrefix.unsafeMake("beta")

const Noop = Workflow.make({ name: "Noop", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Sleeper = Workflow.make({ name: "Sleeper", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Waiter = Workflow.make({ name: "Waiter", payload: { id: Schema.String }, idempotencyKey: (p) => p.id })
const Go = DurableDeferred.make("go")
const betaMigrations = [{ id: 1, name: "things", sql: (t: (name: string) => string) => `CREATE TABLE ${t("things")} (id int PRIMARY KEY)` }]

// alpha: a real durable engine (cluster tables, shard and presence locks); beta: its runtime tables and a domain table
const Setup = Layer.mergeAll(
  WorkflowLayer.make(Noop, { dependencies: Layer.empty, execute: () => Effect.void }),
  WorkflowLayer.make(Sleeper, { dependencies: Layer.empty, execute: () => DurableClock.sleep({ name: "nap", duration: "1 hour" }) }),
  WorkflowLayer.make(Waiter, { dependencies: Layer.empty, execute: () => DurableDeferred.await(Go) })
).pipe(
  // the runs ledger, as AppRuntime provides it
  Layer.provideMerge(Layer.merge(WorkflowRuntime.layerDurable(alpha), RunStore.layer(alpha))),
  Layer.provideMerge(Layer.mergeAll(
    RuntimeTables.layer(beta),
    Migrations.layer(beta, betaMigrations)
  )),
  Layer.provideMerge(TestDatabase.layer("doctor"))
)

const verdictOf = (check: Doctor.Verdict["check"]) =>
  Effect.map(Doctor.run, ({ verdicts }) => verdicts.find((v) => v.check === check)!)

/** Runs `plant`, then `undo` whatever happens: each fault is checked on its own. */
const withFault = <A, E, R>(plant: string, undo: string, body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.acquireUseRelease(sql.unsafe(plant), () => body, () => Effect.orDie(sql.unsafe(undo))))

/** Two valid prefixes with the same lock key space (31-bit FNV-1a: a birthday search finds one quickly). */
const collidingPrefixes = (): [string, string] => {
  const seen = new Map<number, string>()
  for (let i = 0;; i++) {
    const prefix = `c${i.toString(36)}`
    const valid = TablePrefix.validate(prefix)
    if (Either.isLeft(valid)) continue // a reserved word ("case")
    const space = TablePrefix.lockSpace(valid.right)
    const other = seen.get(space)
    if (other !== undefined) return [other, prefix]
    seen.set(space, prefix)
  }
}

const role = `doctor_${Math.random().toString(36).slice(2, 8)}`

describe("Doctor", () => {
  layer(Setup, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a clean shared database: every check ok", () =>
      Effect.gen(function*() {
        const { prefixes, verdicts } = yield* Doctor.run
        expect(prefixes).toEqual(["alpha", "beta"])
        for (const v of verdicts) expect(v, v.details.join("; ")).toMatchObject({ ok: true })
        expect(verdicts.map((v) => v.check)).toEqual(["relations", "lock-spaces", "advisory-locks", "grants", "migrations", "stuck-runs"])
        const withCode = yield* Doctor.check({ domains: [{ prefix: beta, migrations: betaMigrations }] })
        const migrations = withCode.verdicts.find((v) => v.check === "migrations")!
        expect(migrations.ok).toBe(true)
        expect(migrations.details[0]).toMatch(/^\d+ applied migrations match the code; domain migrations not checked for alpha/)
      }))

    it.effect("an applied migration edited since, and one the code does not know", () =>
      withFault(
        `UPDATE beta_migrations SET checksum = repeat('0', 64) WHERE id = 1;
         INSERT INTO alpha_runtime_migrations (id, name, checksum) VALUES (99, 'from a newer build', 'x')`,
        `UPDATE beta_migrations SET checksum = '${Migrations.checksum(`CREATE TABLE beta_things (id int PRIMARY KEY)`)}' WHERE id = 1;
         DELETE FROM alpha_runtime_migrations WHERE id = 99`,
        Effect.gen(function*() {
          const { verdicts } = yield* Doctor.check({ domains: [{ prefix: beta, migrations: betaMigrations }] })
          const v = verdicts.find((v) => v.check === "migrations")!
          expect(v.ok).toBe(false)
          expect(v.details).toContainEqual(expect.stringMatching(
            /^beta_migrations: migration 1 "things" was applied with checksum 000000000000, the code's is [0-9a-f]{12}/
          ))
          expect(v.details).toContainEqual(
            `alpha_runtime_migrations: migration 99 "from a newer build" is applied but not in this code (a newer build's?)`
          )
          // without the domain's code only runtime-core's own ledger is compared
          const runtimeOnly = yield* verdictOf("migrations")
          expect(runtimeOnly.details).toHaveLength(1)
        })
      ))

    it.effect("a table inside a prefix owned by another role", () =>
      withFault(
        `CREATE ROLE ${role}; CREATE TABLE alpha_foreign (id int); ALTER TABLE alpha_foreign OWNER TO ${role}`,
        `DROP TABLE alpha_foreign; DROP ROLE ${role}`,
        Effect.gen(function*() {
          const v = yield* verdictOf("relations")
          expect(v.ok).toBe(false)
          expect(v.details.join("\n")).toMatch(new RegExp(`alpha: its relations have 2 owners \\(.*${role}`))
        })
      ))

    it.effect("a table in no prefix", () =>
      withFault(`CREATE TABLE stray (id int)`, `DROP TABLE stray`, Effect.gen(function*() {
        const v = yield* verdictOf("relations")
        expect(v.ok).toBe(false)
        expect(v.details).toContainEqual(expect.stringMatching(/^stray: belongs to no app's prefix/))
      })))

    it.effect("PUBLIC privileges, and a role with privileges in two apps", () =>
      withFault(
        `CREATE ROLE ${role}; GRANT SELECT ON beta_things TO PUBLIC; GRANT SELECT ON alpha_runs, beta_things TO ${role}`,
        `REVOKE ALL ON beta_things FROM PUBLIC; REVOKE ALL ON alpha_runs, beta_things FROM ${role}; DROP ROLE ${role}`,
        Effect.gen(function*() {
          const v = yield* verdictOf("grants")
          expect(v.ok).toBe(false)
          expect(v.details).toContain("beta_things: privileges granted to PUBLIC")
          expect(v.details).toContain(`role ${role}: privileges on the relations of alpha and beta`)
        })
      ))

    it.effect("two prefixes whose lock key spaces collide", () => {
      const [a, b] = collidingPrefixes()
      return withFault(
        `CREATE TABLE ${a}_runtime_migrations (id int); CREATE TABLE ${b}_runtime_migrations (id int)`,
        `DROP TABLE ${a}_runtime_migrations; DROP TABLE ${b}_runtime_migrations`,
        Effect.gen(function*() {
          const v = yield* verdictOf("lock-spaces")
          expect(v.ok).toBe(false)
          expect(v.details.join("\n")).toContain(`${a} and ${b}: the same advisory-lock key space`)
        })
      )
    })

    it.effect("a run the ledger calls running, with no engine request", () =>
      withFault(
        `INSERT INTO alpha_runs (execution_id, workflow, status, updated_at) VALUES ('ghost', 'Noop', 'running', now() - interval '5 minutes')`,
        `DELETE FROM alpha_runs WHERE execution_id = 'ghost'`,
        Effect.gen(function*() {
          const v = yield* verdictOf("stuck-runs")
          expect(v.ok).toBe(false)
          expect(v.details).toContain("alpha: run Noop/ghost is 'running' but the engine has no request for it")
        })
      ))

    it.effect("--fix: an overdue clock nobody delivers is delivered; a run the engine never got becomes failed", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* WorkflowEngine.WorkflowEngine
        const executionId = yield* Sleeper.executionId({ id: "s" })
        yield* Sleeper.execute({ id: "s" }, { discard: true })
        const clock = () => sql<{ id: string }>`SELECT id::text FROM alpha_cluster_messages
          WHERE entity_id = ${executionId} AND entity_type = 'Workflow/-/DurableClock' AND processed = false`
        while ((yield* clock()).length === 0) yield* Effect.sleep("50 millis")
        // its process read it and died before finishing it: due long ago, marked read
        yield* sql`UPDATE alpha_cluster_messages SET last_read = now(),
            deliver_at = (extract(epoch from now()) * 1000)::bigint - 300000
          WHERE entity_id = ${executionId} AND entity_type = 'Workflow/-/DurableClock'`
        yield* sql`INSERT INTO alpha_runs (execution_id, workflow, status, updated_at)
          VALUES ('orphan', 'Noop', 'running', now() - interval '5 minutes')`
        const before = yield* verdictOf("stuck-runs")
        expect(before.details).toContain(`alpha: run message of ${executionId} was due over a minute ago and is not delivered`)
        expect(before.details).toContain("alpha: run Noop/orphan is 'running' but the engine has no request for it")

        expect(yield* Doctor.fix).toContainEqual({ prefix: "alpha", redriven: 1, orphansFailed: 1, resumed: 0 })
        // the clock fires now and the run ends; the orphan is failed, with the reason, ready for a retry
        while ((yield* engine.poll(Sleeper, executionId))?._tag !== "Complete") yield* Effect.sleep("100 millis")
        expect(yield* sql`SELECT status, error->>'_tag' AS reason FROM alpha_runs WHERE execution_id = 'orphan'`).toEqual([
          { status: "failed", reason: "NoEngineRequest" }
        ])
        expect((yield* verdictOf("stuck-runs")).ok).toBe(true)
      }))

    it.effect("--fix: a suspended run whose signal completed without waking it runs on", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const executionId = yield* Waiter.executionId({ id: "w" })
        yield* Waiter.execute({ id: "w" }, { discard: true })
        const suspendedReply = () =>
          sql<{ id: string; request_id: string; payload: string }>`
            SELECT r.id::text, r.request_id::text, r.payload FROM alpha_cluster_replies r
            JOIN alpha_cluster_messages m ON m.id = r.request_id
            WHERE m.entity_id = ${executionId} AND m.tag = 'run' AND r.kind = 0
              AND r.payload::jsonb #>> '{value,_tag}' = 'Suspended'`
        let suspended = yield* suspendedReply()
        while (suspended.length === 0) {
          yield* Effect.sleep("50 millis")
          suspended = yield* suspendedReply()
        }
        const [reply] = suspended
        // the signal comes and the run ends; then the state of a lost wake-up is put back: the run's
        // Suspended reply, older than the signal's, and the ledger saying suspended (for 5 minutes)
        yield* DurableDeferred.done(Go, {
          token: DurableDeferred.tokenFromExecutionId(Go, { workflow: Waiter, executionId }),
          exit: Exit.void
        })
        const status = () => sql<{ status: string }>`SELECT status FROM alpha_runs WHERE execution_id = ${executionId}`
        while ((yield* status())[0]?.status !== "succeeded") yield* Effect.sleep("50 millis")
        yield* sql`DELETE FROM alpha_cluster_replies WHERE request_id = ${reply!.request_id} AND kind = 0`
        yield* sql`INSERT INTO alpha_cluster_replies (id, kind, request_id, payload)
          VALUES (${reply!.id}, 0, ${reply!.request_id}, ${reply!.payload})`
        yield* sql`UPDATE alpha_cluster_messages SET processed = true WHERE id = ${reply!.request_id}`
        yield* sql`UPDATE alpha_runs SET status = 'suspended', result = NULL, updated_at = now() - interval '5 minutes'
          WHERE execution_id = ${executionId}`

        const before = yield* verdictOf("stuck-runs")
        expect(before.details).toContain(`alpha: run Waiter/${executionId} is suspended but its signal go completed after it suspended`)
        expect(yield* Doctor.fix).toContainEqual({ prefix: "alpha", redriven: 0, orphansFailed: 0, resumed: 1 })
        // woken, it reads the completed signal and ends; the ledger follows
        while ((yield* status())[0]?.status !== "succeeded") yield* Effect.sleep("100 millis")
        expect((yield* verdictOf("stuck-runs")).ok).toBe(true)
      }))

    it.effect("a one-key advisory lock", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const other = yield* sql.reserve
        yield* other.executeRaw(`SELECT pg_advisory_lock(42)`, [])
        const v = yield* verdictOf("advisory-locks")
        yield* other.executeRaw(`SELECT pg_advisory_unlock(42)`, [])
        expect(v.ok).toBe(false)
        expect(v.details.join("\n")).toMatch(/a one-key advisory lock, outside every app's key space/)
      }).pipe(Effect.scoped))
  })
})
