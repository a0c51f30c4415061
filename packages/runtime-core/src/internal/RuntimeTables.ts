/**
 * The tables runtime-core itself owns in every app's prefix, with their own
 * migration ledger (`<prefix>_runtime_migrations`) so their ids never clash
 * with the domain's: the runs ledger, the transactional-activity results and
 * every activity's recorded exit.
 */
import type { SqlClient } from "@effect/sql"
import type { Layer } from "effect"
import * as Migrations from "../Migrations.js"
import type { MigrationError } from "../RuntimeError.js"
import type * as TablePrefix from "../TablePrefix.js"

export const LEDGER = "runtime_migrations"

export const migrations: ReadonlyArray<Migrations.Migration> = [
  {
    id: 1,
    name: "create runs",
    sql: (t) =>
      `CREATE TABLE ${t("runs")} (
        execution_id text PRIMARY KEY,
        workflow text NOT NULL,
        status text NOT NULL CHECK (status IN ('running', 'suspended', 'succeeded', 'failed')),
        payload jsonb,
        result jsonb,
        error jsonb,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
      );
      CREATE INDEX ${t("runs_created_idx")} ON ${t("runs")} (created_at DESC, execution_id);
      CREATE INDEX ${t("runs_workflow_created_idx")} ON ${t("runs")} (workflow, created_at DESC);
      CREATE INDEX ${t("runs_status_created_idx")} ON ${t("runs")} (status, created_at DESC);`
  },
  {
    id: 2,
    name: "create activity results",
    sql: (t) =>
      `CREATE TABLE ${t("activity_results")} (
        execution_id text NOT NULL,
        activity text NOT NULL,
        attempt integer NOT NULL,
        result jsonb NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (execution_id, activity, attempt)
      );`
  },
  {
    id: 3,
    name: "runs: cancelled, retry links",
    // the CHECK of migration 1 is Postgres' default name <table>_status_check
    sql: (t) =>
      `ALTER TABLE ${t("runs")} DROP CONSTRAINT ${t("runs_status_check")};
      ALTER TABLE ${t("runs")} ADD CONSTRAINT ${t("runs_status_check")}
        CHECK (status IN ('running', 'suspended', 'succeeded', 'failed', 'cancelled'));
      ALTER TABLE ${t("runs")} ADD COLUMN retry_of text, ADD COLUMN retried_by text,
        ADD COLUMN attempt integer NOT NULL DEFAULT 1;`
  },
  {
    id: 4,
    name: "create activity exits",
    // every activity's recorded outcome on the durable engine (`InlineActivities`)
    sql: (t) =>
      `CREATE TABLE ${t("activity_exits")} (
        execution_id text NOT NULL,
        activity text NOT NULL,
        attempt integer NOT NULL,
        exit jsonb NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (execution_id, activity, attempt)
      );`
  },
  {
    id: 5,
    name: "runs: versions",
    // the app version that started a run, and the other versions that ran it since (in order);
    // what a suspended run awaits (signals, clocks), for upgrade checks and operators
    sql: (t) =>
      `ALTER TABLE ${t("runs")} ADD COLUMN started_by text, ADD COLUMN resumed_by text[] NOT NULL DEFAULT '{}',
        ADD COLUMN awaiting text[] NOT NULL DEFAULT '{}';`
  },
  {
    id: 6,
    name: "create schedules",
    // per schedule: the latest tick handled (run or skipped), see `WorkflowSchedule`
    sql: (t) =>
      `CREATE TABLE ${t("schedules")} (
        name text PRIMARY KEY,
        last_tick timestamptz NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
      );`
  }
]

export const layer = (prefix: TablePrefix.TablePrefix): Layer.Layer<never, MigrationError, SqlClient.SqlClient> =>
  Migrations.layer(prefix, migrations, { ledger: LEDGER })
