/** Handlers of the ontology domain's own routes (the runtime serves health and runs). */
import { RunsHttp } from "@duraflow/runtime-core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, Option } from "effect"
import { OntologyApi, OntologyNotFound } from "./OntologyApi.js"
import { OntologyRepository } from "./OntologyRepository.js"

export const layer = HttpApiBuilder.group(OntologyApi, "ontologies", (handlers) =>
  Effect.gen(function*() {
    const repository = yield* OntologyRepository
    return handlers.handle("get", ({ path }) =>
      repository.latest(path.ontologyId).pipe(
        Effect.catchAll(RunsHttp.unavailable),
        Effect.flatMap(Option.match({
          onNone: () =>
            new OntologyNotFound({
              ontologyId: path.ontologyId,
              message: `No published ontology ${JSON.stringify(path.ontologyId)}`
            }),
          onSome: Effect.succeed
        }))
      ))
  }))
