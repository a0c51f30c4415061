import { statusCounts } from "@duraflow/e2e"
import { SqlClient } from "@effect/sql"
import { TestProcess } from "@duraflow/runtime-core/testing"
import { Duration, Effect, Schedule } from "effect"
import { fileURLToPath } from "node:url"

export const faultApp = fileURLToPath(new URL("../src/FaultApp.ts", import.meta.url))

// crash recovery is a property of the durable engine: never inherit WORKFLOW_MODE=memory here
export const startApp = (env: Record<string, string>) =>
  TestProcess.spawnTs(faultApp, { env: { WORKFLOW_MODE: "durable", ...env } })

/** Rows per (run, step) of the transactional steps, and how many (run, step) pairs were written twice. */
export const effects = (prefix: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ t1: number; t3: number; duplicated: number }>`
      SELECT count(DISTINCT wf_id) FILTER (WHERE step = 't1')::int AS t1,
             count(DISTINCT wf_id) FILTER (WHERE step = 't3')::int AS t3,
             (SELECT count(*)::int FROM (SELECT 1 FROM ${sql(`${prefix}_effects`)} GROUP BY wf_id, step HAVING count(*) > 1) d)
               AS duplicated
      FROM ${sql(`${prefix}_effects`)}`).pipe(Effect.map((rows) => rows[0]))

export const succeededRuns = (prefix: string) => Effect.map(statusCounts(prefix), (counts) => counts.succeeded ?? 0)

/** Polls until `check` holds (database errors count as "not yet"). */
export const eventually = <A, E, R>(
  read: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  timeout: Duration.DurationInput = "120 seconds"
) =>
  read.pipe(
    Effect.filterOrFail(check),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout(timeout)
  )

/** What a stuck scenario looked like: run statuses and the app's last output. */
export const diagnose = (prefix: string, app: { readonly lines: ReadonlyArray<string> }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM ${sql(`${prefix}_runs`)} GROUP BY 1`,
      sql<{ error: unknown }>`SELECT error FROM ${sql(`${prefix}_runs`)} WHERE status = 'failed' LIMIT 1`
    ])).pipe(
      Effect.orElseSucceed(() => [[], []] as const),
      Effect.map(([rows, failed]) =>
        `runs: ${JSON.stringify(rows)}\nfirst failure: ${JSON.stringify(failed[0]?.error)}\n` +
        `app output (last 40 lines):\n${app.lines.slice(-40).join("\n")}`
      )
    )
