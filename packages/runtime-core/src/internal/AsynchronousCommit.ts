/**
 * Asynchronous commit for the runtime's own writes whose loss only repeats work.
 *
 * A commit with `synchronous_commit = on` waits for its WAL to reach disk: on
 * this machine kind 0.6 to 0.8 ms, against 0.2 ms without the wait, and a run's
 * steps are a chain of such commits. Two of the runtime's writes may skip the
 * wait (`synchronous_commit = off` for their own transaction only):
 *
 * - a plain activity's exit row (`InlineActivities`). The step is at-least-once:
 *   losing its record runs it again, as a crash of the app between its body and
 *   that write already does;
 * - the runs ledger's `running` status at an execution's start (`RunStore`): the
 *   next execution writes it again, and the run's outcome commits synchronously.
 *
 * What such a commit risks is a crash of Postgres itself (not of the app) within
 * about three `wal_writer_delay`s (600 ms by default). The committed rows are
 * visible at once to every session (a replica replaying the run finds them), and
 * Postgres writes its WAL in order, so any later synchronous commit (a step's own
 * writes, the run's reply, a transactional step) makes them durable too: a crash
 * loses a suffix of these writes, never a record between two that survive.
 * A run's start message, its outcome and a transactional step's exit row (its
 * body's writes commit with it) stay synchronous, as does anything written inside
 * a transaction the caller opened (the setting would cover the whole transaction).
 *
 * The setting is local to the statement's own transaction (`set_config(..., true)`
 * in the statement): one parameterized statement, one round trip, and the
 * connection's next transaction commits as configured.
 */
import type { SqlClient } from "@effect/sql"
import type * as Statement from "@effect/sql/Statement"

/**
 * A FROM item (one row) that turns off the WAL flush wait for the statement's own
 * transaction: `INSERT ... SELECT ... FROM ${AsynchronousCommit.from(sql)}, ...`.
 * The statement must be its own transaction (autocommit).
 */
export const from = (sql: SqlClient.SqlClient): Statement.Fragment =>
  sql`(SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit`
