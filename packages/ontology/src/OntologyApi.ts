/**
 * The ontology app's HTTP API, exported so other teams derive typed clients
 * from it by package name (`HttpApiClient.make(OntologyApi, ...)`): the
 * runtime's health and runs groups, `PublishOntology` typed by its own schemas
 * (`client.workflows.PublishOntology({ payload })`), and the domain's read routes.
 */
// the API's type names RequestGuard's errors: in scope here, the declaration build (tsc) can name them
// through the package entry (runtime-core exports no deep paths)
import type { RequestGuard as _RequestGuard } from "@duraflow/runtime-core"
import { RunsApi } from "@duraflow/runtime-core"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import * as OntologyModel from "./OntologyModel.js"
import { PublishOntology } from "./PublishOntology.js"
import { RevalidateOntologies } from "./RevalidateOntologies.js"

export class OntologyNotFound extends Schema.TaggedError<OntologyNotFound>()("OntologyNotFound", {
  ontologyId: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

export class OntologiesGroup extends HttpApiGroup.make("ontologies")
  .add(
    HttpApiEndpoint.get("get", "/ontologies/:ontologyId")
      .setPath(Schema.Struct({ ontologyId: OntologyModel.OntologyId }))
      .addSuccess(OntologyModel.OntologyView)
      .addError(OntologyNotFound)
      .addError(RunsApi.ServiceUnavailable)
  )
{}

export class OntologyApi extends RunsApi.make("ontology", [PublishOntology, RevalidateOntologies]).add(OntologiesGroup) {}
