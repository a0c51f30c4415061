/**
 * The `PublishOntology` workflow: parse the Turtle, validate it (every problem
 * reported, with its IRI), and persist a new version in one transaction.
 * Invalid input ends the run as failed and writes nothing. Idempotent twice
 * over: the execution id is derived from (ontology id, sha256 of the text), so
 * re-posting the same document is the same run; and persisting is keyed by
 * (ontology id, content hash), so the same ontology written differently does
 * not create a second version.
 */
import { WorkflowLayer } from "@duraflow/runtime-core"
import { Activity, Workflow } from "@effect/workflow"
import { Effect, Schedule, Schema } from "effect"
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

/** Transient database failures are retried inside the activity instead of failing the run. */
const retryTransient = Schedule.exponential("100 millis", 2).pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.upTo("2 minutes")
)

export const layer = WorkflowLayer.make(PublishOntology, {
  dependencies: Repository.layer,
  execute: ({ ontologyId, turtle }) =>
    Effect.gen(function*() {
      const parsed = yield* Activity.make({
        name: "parse-and-validate",
        success: OntologyModel.ParsedOntology,
        error: PublishOntologyError,
        execute: Effect.flatMap(TurtleParser.parse(turtle), OntologyValidation.validate)
      })
      return yield* Activity.make({
        name: "persist-version",
        success: OntologyModel.PublishedVersion,
        execute: Effect.flatMap(Repository.OntologyRepository, (repository) =>
          repository.publish({ ontologyId, turtle, parsed, contentHash: ContentHash.contentHash(parsed) })).pipe(
            Effect.retry(retryTransient),
            Effect.orDie
          )
      })
    })
})
