/**
 * The `PublishOntology` workflow: parse the Turtle, validate it (every problem
 * reported, with its IRI), and persist a new version in one transaction.
 * Invalid input ends the run as failed and writes nothing. Idempotent twice
 * over: the execution id is derived from (ontology id, sha256 of the text), so
 * re-posting the same document is the same run; and persisting is keyed by
 * (ontology id, content hash), so the same ontology written differently does
 * not create a second version. The version is persisted by a transactional
 * activity, so a replay after a crash returns the committed version.
 */
import { TransactionalActivity, UpgradeCheck, WorkflowLayer } from "@duraflow/runtime-core"
import { Activity, Workflow } from "@effect/workflow"
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import * as ContentHash from "./ContentHash.js"
import { InvalidOntology, InvalidTurtle } from "./OntologyError.js"
import * as OntologyModel from "./OntologyModel.js"
import * as Repository from "./OntologyRepository.js"
import * as OntologyValidation from "./OntologyValidation.js"
import * as TurtleParser from "./TurtleParser.js"

export const PublishOntologyError = Schema.Union(InvalidTurtle, InvalidOntology)

export const PublishOntology = Workflow.make({
  name: "PublishOntology",
  payload: OntologyModel.PublishOntologyPayload.fields,
  success: OntologyModel.PublishedVersion,
  error: PublishOntologyError,
  idempotencyKey: ({ ontologyId, turtle }) => `${ontologyId}:${createHash("sha256").update(turtle).digest("hex")}`
})

/** The activities' names and schemas (declared for `UpgradeCheck`, spread into the activities below). */
export const ParseAndValidate = UpgradeCheck.activity({
  name: "parse-and-validate",
  success: OntologyModel.ParsedOntology,
  error: PublishOntologyError
})
export const PersistVersion = UpgradeCheck.activity({ name: "persist-version", success: OntologyModel.PublishedVersion })

export const layer = WorkflowLayer.make(PublishOntology, {
  dependencies: Repository.layer,
  execute: ({ ontologyId, turtle }) =>
    Effect.gen(function*() {
      const parsed = yield* Activity.make({
        ...ParseAndValidate,
        execute: Effect.flatMap(TurtleParser.parse(turtle), OntologyValidation.validate)
      })
      // writes and recorded result commit together: a replay never persists twice
      return yield* TransactionalActivity.make({
        ...PersistVersion,
        execute: Effect.flatMap(Repository.OntologyRepository, (repository) =>
          repository.publish({ ontologyId, turtle, parsed, contentHash: ContentHash.contentHash(parsed) }))
      })
    })
})
