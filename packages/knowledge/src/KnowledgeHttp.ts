/** Handlers of the knowledge domain's own routes (the runtime serves health and runs). */
import { RunsHttp } from "@duraflow/runtime-core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Option } from "effect"
import { DocumentNotFound, KnowledgeApi } from "./KnowledgeApi.js"
import { KnowledgeRepository } from "./KnowledgeRepository.js"

export const layer = HttpApiBuilder.group(KnowledgeApi, "knowledge", (handlers) =>
  Effect.gen(function*() {
    const repository = yield* KnowledgeRepository
    return handlers
      .handle("document", ({ path }) =>
        repository.getDocument(path.documentId).pipe(
          Effect.catchAll(RunsHttp.unavailable),
          Effect.flatMap(Option.match({
            onNone: () =>
              new DocumentNotFound({
                documentId: path.documentId,
                message: `No indexed document ${JSON.stringify(path.documentId)}`
              }),
            onSome: Effect.succeed
          }))
        ))
      .handle("entities", ({ urlParams }) => repository.findEntities(urlParams).pipe(Effect.catchAll(RunsHttp.unavailable)))
  }))
