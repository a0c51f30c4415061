/**
 * Shared pieces of the ported upstream suites (`test/upstream/*.test.ts`):
 * runtime-core's durable engine on a fresh set of prefixed tables, and the
 * queries that stand in for upstream's in-memory `MessageStorage.MemoryDriver`
 * (its `requests` map and `journal` array) by reading the same envelopes from
 * the engine's Postgres tables (`<prefix>_cluster_messages` / `_replies`).
 */
import { SqlClient } from "@effect/sql"
import type { ExitEncoded } from "effect/Schema"
import { Duration, Effect } from "effect"
import { TablePrefix, WorkflowRuntime } from "../../src/index.js"

let counter = 0

/** A prefix not used before in this test file: each test gets its own tables, as upstream gets its own memory storage. */
export const freshPrefix = (base: string): TablePrefix.TablePrefix =>
  TablePrefix.unsafeMake(`${base}_${++counter}_${Math.random().toString(36).slice(2, 6)}`)

/**
 * The durable engine as apps get it (`WorkflowRuntime.layerDurable`), with the
 * sharding settings of upstream's `TestShardingConfig`: the `workflow` shard
 * group is available and assigned to this runner, the storage poll interval is
 * upstream's 5 s (wake-ups do not wait for it), and entities are not waited
 * for at shutdown (`entityTerminationTimeout: 0`; ours is 5 s), so a test that
 * leaves a run in the middle of an activity ends at once.
 */
export const durableEngine = (prefix: TablePrefix.TablePrefix) =>
  WorkflowRuntime.layerDurable(prefix, {
    sharding: {
      shardsPerGroup: 300,
      availableShardGroups: ["default", "workflow"],
      assignedShardGroups: ["default", "workflow"],
      entityMailboxCapacity: 10,
      entityTerminationTimeout: 0,
      entityMessagePollInterval: Duration.seconds(5),
      sendRetryInterval: Duration.millis(100)
    }
  })

/** One stored envelope (a row of `<prefix>_cluster_messages`), in storage order (`rowid`). */
export interface MessageRow {
  readonly id: string
  readonly rowid: string
  readonly kind: number
  readonly shard_id: string
  readonly entity_type: string
  readonly entity_id: string
  readonly tag: string | null
  readonly payload: string | null
  readonly trace_id: string | null
  readonly span_id: string | null
  readonly sampled: boolean | null
  readonly request_id: string
}

/** `kind` of a Request envelope (SqlMessageStorage: Request 0, AckChunk 1, Interrupt 2). */
export const REQUEST = 0

/** Every stored envelope, oldest first: upstream's `driver.journal`. */
export const journal = (prefix: TablePrefix.TablePrefix) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<MessageRow>`
      SELECT id::text, rowid::text, kind, shard_id, entity_type, entity_id, tag, payload, trace_id, span_id, sampled,
        request_id::text
      FROM ${sql(`${TablePrefix.clusterPrefix(prefix)}_messages`)} ORDER BY rowid`).pipe(Effect.orDie)

/** The stored Request envelopes: upstream's `driver.requests` (keyed by request id). */
export const requests = (prefix: TablePrefix.TablePrefix) =>
  Effect.map(journal(prefix), (rows) => rows.filter((r) => Number(r.kind) === REQUEST))

/**
 * Upstream's request count: the stored Request envelopes plus the activity
 * attempts runtime-core records as exit rows (`InlineActivities`: an activity
 * runs in its run's fiber and stores one `<prefix>_activity_exits` row, where
 * the library stores an `activity` request and its reply).
 */
export const storedSteps = (prefix: TablePrefix.TablePrefix) =>
  Effect.flatMap(requests(prefix), (rows) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${prefix}_activity_exits`)}`).pipe(
        Effect.orDie,
        Effect.map(([row]) => rows.length + row!.n)
      ))

/** The stored replies to one request, oldest first, as `Reply.ReplyEncoded` (SqlMessageStorage's `replyFromRow`). */
export const replies = (prefix: TablePrefix.TablePrefix, requestId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ kind: number | null; payload: string }>`
      SELECT kind, payload FROM ${sql(`${TablePrefix.clusterPrefix(prefix)}_replies`)}
      WHERE request_id = ${requestId}::bigint ORDER BY rowid`).pipe(
      Effect.orDie,
      Effect.map((rows) =>
        rows.map((r) =>
          r.kind === null
            ? { _tag: "Chunk" as const, values: JSON.parse(r.payload) as ReadonlyArray<unknown> }
            : { _tag: "WithExit" as const, exit: JSON.parse(r.payload) as ExitEncoded<unknown, unknown, unknown> }
        )
      )
    )

