/**
 * The knowledge app's HTTP API: the runtime's health and runs groups,
 * `IngestDocument` typed by its own schemas, and the domain's read routes,
 * exported for clients by package name.
 */
// the API's type names RequestGuard's errors: in scope here, the declaration build (tsc) can name them
// through the package entry (runtime-core exports no deep paths)
import type { RequestGuard as _RequestGuard } from "@duraflow/runtime-core"
import { RunsApi } from "@duraflow/runtime-core"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { IngestDocument } from "./IngestDocument.js"
import * as KnowledgeModel from "./KnowledgeModel.js"

export class DocumentNotFound extends Schema.TaggedError<DocumentNotFound>()("DocumentNotFound", {
  documentId: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

export class KnowledgeGroup extends HttpApiGroup.make("knowledge")
  .add(
    HttpApiEndpoint.get("document", "/documents/:documentId")
      .setPath(Schema.Struct({ documentId: KnowledgeModel.DocumentId }))
      .addSuccess(KnowledgeModel.DocumentView)
      .addError(DocumentNotFound)
      .addError(RunsApi.ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.get("entities", "/entities")
      .setUrlParams(Schema.Struct({
        type: Schema.optional(Schema.String.pipe(Schema.maxLength(500))),
        q: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
        limit: Schema.optional(
          Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, KnowledgeModel.MaxEntityLimit))
        )
      }))
      .addSuccess(Schema.Array(KnowledgeModel.EntityView))
      .addError(RunsApi.ServiceUnavailable)
  )
{}

export class KnowledgeApi extends RunsApi.make("knowledge", [IngestDocument]).add(KnowledgeGroup) {}
