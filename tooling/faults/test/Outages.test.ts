/**
 * The database going away under a running app: Postgres restarted in the
 * middle of runs (an embedded server this test owns), and every app connection
 * killed with pg_terminate_backend. The app reconnects by itself, every run
 * finishes, and no transactional write is applied twice.
 */
import { EmbeddedPostgres } from "@duraflow/embedded-postgres"
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { diagnose, effects, eventually, startApp, succeededRuns } from "./helpers.js"

describe("database outages", () => {
  /**
   * Postgres (an embedded server this test owns) stops in the middle of `prefix`'s 100 runs
   * and starts again after `outage`; every run then finishes, each transactional step once.
   */
  const restartedAfter = (prefix: string, outage: Duration.DurationInput) =>
    Effect.gen(function*() {
      const dataDir = mkdtempSync(join(tmpdir(), "duraflow-restart-"))
      chmodSync(dataDir, 0o755) // embedded Postgres runs as the postgres user when we are root
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const port = yield* TestProcess.freePort
      const startServer = Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* EmbeddedPostgres.make({ dataDir, port, ifRunning: "fail" }).pipe(Scope.extend(scope))
        return { server, scope }
      })
      const first = yield* startServer
      yield* first.server.createDatabase("app")
      const url = first.server.databaseUrl("app")
      const db = Layer.orDie(PgClient.layer({ url: Redacted.make(url) }))
      const read = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, db)

      const app = yield* startApp({ DATABASE_URL: url, PREFIX: prefix, START: "100", STEP_MS: "50", POLL_MS: "1000" })
      yield* app.waitForEvent("started", "60 seconds")
      yield* eventually(read(effects(prefix)), (e) => e.t3 >= 10)

      yield* Scope.close(first.scope, Exit.void) // Postgres stops: every connection breaks
      yield* Effect.sleep(outage)
      const second = yield* startServer
      yield* Effect.addFinalizer(() => Scope.close(second.scope, Exit.void))

      yield* eventually(read(succeededRuns(prefix)), (n) => n === 100, "180 seconds").pipe(
        Effect.tapError(() =>
          Effect.flatMap(read(diagnose(prefix, app)), (d) => Effect.sync(() => console.error(d)))
        )
      )
      expect(yield* read(effects(prefix))).toEqual({ t1: 100, t3: 100, duplicated: 0 })
      expect(app.events().filter((e) => e.event === "failed")).toEqual([])
      yield* app.kill("SIGTERM")
    })

  it.scopedLive(
    "Postgres restarted in the middle of runs: the app reconnects and every run finishes",
    () => restartedAfter("restart", "2 seconds"),
    { timeout: 300_000 }
  )

  // Longer than every retry budget of a run's writes (the engine's storage calls: 1 minute;
  // a transactional step's transaction: 2 minutes, `Retry`): the runner loses its shard locks
  // with their session, which stops its runs without an outcome, and the runs carry on once
  // Postgres is back, none ended as failed.
  it.scopedLive(
    "Postgres away longer than every retry budget (130 s): no run fails, every run finishes once it is back",
    () => restartedAfter("longout", "130 seconds"),
    { timeout: 420_000 }
  )

  layer(TestDatabase.layer("terminate"), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("every app connection killed with pg_terminate_backend: the app carries on", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const sql = yield* SqlClient.SqlClient
        const app = yield* startApp({ DATABASE_URL: db.url, PREFIX: "terminate", START: "200", STEP_MS: "20", POLL_MS: "1000" })
        yield* app.waitForEvent("started", "60 seconds")
        yield* eventually(effects("terminate"), (e) => e.t3 >= 20)
        // three rounds, each once the app has connected again (how soon depends on the
        // machine's load, not on the property): every connection it has is killed
        const terminate = Effect.map(
          sql<{ n: number }>`SELECT count(pg_terminate_backend(pid))::int AS n
            FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'terminate%'`,
          ([row]) => row!.n
        )
        for (let round = 0; round < 3; round++) {
          // (fails the test unless a round finds one)
          yield* eventually(terminate, (n) => n > 0, "60 seconds")
          yield* Effect.sleep("500 millis")
        }
        yield* eventually(succeededRuns("terminate"), (n) => n === 200, "180 seconds").pipe(
          Effect.tapError(() => Effect.flatMap(diagnose("terminate", app), (d) => Effect.sync(() => console.error(d))))
        )
        expect(yield* effects("terminate")).toEqual({ t1: 200, t3: 200, duplicated: 0 })
        yield* app.kill("SIGTERM")
      }), { timeout: 300_000 })

    it.scoped("SIGTERM during an activity: the process exits cleanly and the run resumes after restart", () =>
      Effect.gen(function*() {
        const db = yield* TestDatabase.TestDatabase
        const env = { DATABASE_URL: db.url, PREFIX: "sigterm", POLL_MS: "1000", TERMINATION_MS: "1000" }
        // the activity would outlast the test (an hour): a process that exits at all after SIGTERM
        // gave up on it after the grace period, whatever the machine's load
        const first = yield* startApp({ ...env, STEP_MS: "3600000", START: "1" })
        yield* eventually(effects("sigterm"), (e) => e.t1 === 1) // t3 is now sleeping inside its activity
        first.child.kill("SIGTERM")
        const code = yield* first.exited
        expect(code).toBe(0)
        expect(yield* effects("sigterm")).toMatchObject({ t1: 1, t3: 0 })

        const second = yield* startApp({ ...env, STEP_MS: "0", START: "0" })
        yield* eventually(succeededRuns("sigterm"), (n) => n === 1, "60 seconds")
        expect(yield* effects("sigterm")).toEqual({ t1: 1, t3: 1, duplicated: 0 })
        yield* second.kill("SIGTERM")
      }), { timeout: 120_000 })
  })
})
