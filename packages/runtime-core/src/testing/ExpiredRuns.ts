/**
 * Synthetic finished runs for retention tests and figures: each with a ledger
 * row (half succeeded, half failed, last updated `ageDays` ago), a stored
 * `run` request, its reply and one activity exit, as a durable app leaves
 * them. Execution ids are `<tag>-1` .. `<tag>-<count>`; message ids start at
 * 9e9 and reply ids at 9.5e9 (far below the engine's snowflakes).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type * as TablePrefix from "../TablePrefix.js"

export const FIRST_REPLY_ID = 9_500_000_001

export const seed = (prefix: TablePrefix.TablePrefix, options: {
  readonly count: number
  readonly tag: string
  readonly workflow: string
  readonly ageDays: number
}) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const { ageDays, count, tag, workflow } = options
    return sql.unsafe(`
      INSERT INTO ${prefix}_runs (execution_id, workflow, status, updated_at)
        SELECT '${tag}-' || i, '${workflow}', CASE WHEN i % 2 = 0 THEN 'succeeded' ELSE 'failed' END,
          now() - interval '${ageDays} days'
        FROM generate_series(1, ${count}) i;
      INSERT INTO ${prefix}_cluster_messages
          (id, message_id, shard_id, entity_type, entity_id, kind, tag, payload, headers, request_id, processed)
        SELECT 9000000000 + i, 'Workflow/${workflow}/${tag}-' || i || '/run/', 'default:1', 'Workflow/${workflow}',
          '${tag}-' || i, 0, 'run', '{}', '{}', 9000000000 + i, true
        FROM generate_series(1, ${count}) i;
      INSERT INTO ${prefix}_cluster_replies (id, kind, request_id, payload)
        SELECT 9500000000 + i, 0, 9000000000 + i, '{}' FROM generate_series(1, ${count}) i;
      INSERT INTO ${prefix}_activity_exits (execution_id, activity, attempt, exit, started_at)
        SELECT '${tag}-' || i, 'step', 1, '{"_tag":"Success"}', now() FROM generate_series(1, ${count}) i;
      ANALYZE`)
  })

/** Rows left of the seeded runs, in every table that held them. */
export const rowsLeft = (prefix: TablePrefix.TablePrefix, options: { readonly count: number; readonly tag: string }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(`SELECT (
      (SELECT count(*) FROM ${prefix}_runs WHERE execution_id LIKE '${options.tag}-%')
      + (SELECT count(*) FROM ${prefix}_cluster_messages WHERE entity_id LIKE '${options.tag}-%')
      + (SELECT count(*) FROM ${prefix}_cluster_replies WHERE id BETWEEN ${FIRST_REPLY_ID} AND ${FIRST_REPLY_ID + options.count - 1})
      + (SELECT count(*) FROM ${prefix}_activity_exits WHERE execution_id LIKE '${options.tag}-%'))::int AS n`).pipe(
      Effect.map(([row]) => row!.n)
    ))
