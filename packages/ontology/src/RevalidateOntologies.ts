/**
 * `RevalidateOntologies`: re-parses and re-validates the latest published
 * version of every ontology with this build's parser and rules, and reports
 * the ones that no longer pass (rules tighten between releases; a published
 * version is immutable, so its owner has to publish a fixed one). Read-only.
 *
 * Runs nightly on a schedule (`nightly`, 03:00 UTC; `WorkflowSchedule`), one
 * run per night whatever the number of replicas, with the execution id
 * `revalidate-nightly@<tick>`; after downtime the latest missed night runs.
 * It can be started by hand too: `POST /runs/RevalidateOntologies`.
 */
// the schedule's layer type names these modules: in scope here, the declaration build (tsc) can name them
// through the package entry (runtime-core exports no deep paths)
import type { RuntimeError as _RuntimeError, WorkflowRuntime as _WorkflowRuntime } from "@duraflow/runtime-core"
import { UpgradeCheck, WorkflowLayer, WorkflowSchedule } from "@duraflow/runtime-core"
import { SqlClient } from "@effect/sql"
import { Activity, Workflow } from "@effect/workflow"
import { Effect, Layer, Schema } from "effect"
import * as OntologyDomain from "./OntologyDomain.js"
import * as OntologyValidation from "./OntologyValidation.js"
import * as TurtleParser from "./TurtleParser.js"

export const RevalidationReport = Schema.Struct({
  /** Ontologies whose latest version was checked. */
  checked: Schema.Int,
  /** Those that fail this build's parser or rules, with the first line of the reason. */
  invalid: Schema.Array(Schema.Struct({ ontologyId: Schema.String, version: Schema.Int, reason: Schema.String }))
})

export const RevalidateOntologies = Workflow.make({
  name: "RevalidateOntologies",
  payload: { scheduledAt: Schema.String },
  success: RevalidationReport,
  idempotencyKey: ({ scheduledAt }) => scheduledAt
})

/** The activity's name and schemas (declared for `UpgradeCheck`, spread into `Activity.make`). */
export const Revalidate = UpgradeCheck.activity({ name: "revalidate-latest", success: RevalidationReport })

const revalidate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const latest = yield* sql<{ ontology_id: string; version: number; turtle: string }>`
    SELECT DISTINCT ON (ontology_id) ontology_id, version, turtle FROM ${sql(OntologyDomain.table("versions"))}
    ORDER BY ontology_id, version DESC`
  const invalid = []
  for (const row of latest) {
    const outcome = yield* Effect.either(Effect.flatMap(TurtleParser.parse(row.turtle), OntologyValidation.validate))
    if (outcome._tag === "Left") {
      invalid.push({ ontologyId: row.ontology_id, version: row.version, reason: outcome.left.message.split("\n")[0]! })
    }
  }
  return { checked: latest.length, invalid }
}).pipe(Effect.orDie)

export const layer = WorkflowLayer.make(RevalidateOntologies, {
  dependencies: Layer.effect(SqlClient.SqlClient, SqlClient.SqlClient),
  execute: () => Activity.make({ ...Revalidate, execute: revalidate })
})

/** Every night at 03:00 UTC. */
export const nightly = WorkflowSchedule.make({
  name: "revalidate-nightly",
  workflow: RevalidateOntologies,
  cron: "0 3 * * *",
  timeZone: "UTC",
  payload: (tick) => ({ scheduledAt: tick.at.toISOString() })
})
