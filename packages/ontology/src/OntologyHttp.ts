/** Handlers of the ontology domain's own routes (the runtime serves health and runs). */
import { RunsApi } from "@duraflow/runtime-core"
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { OntologyApi, OntologyNotFound } from "./OntologyApi.js"
import { OntologyRepository } from "./OntologyRepository.js"

export const layer = HttpApiBuilder.group(OntologyApi, "ontologies", (handlers) =>
  Effect.gen(function*() {
    const repository = yield* OntologyRepository
    return handlers.handle("get", ({ path }) =>
      repository.latest(path.ontologyId).pipe(
        Effect.catchAll((e) =>
          Effect.logError("Database request failed", e).pipe(
            Effect.zipRight(new RunsApi.ServiceUnavailable({ message: "The database is unavailable; retry later" }))
          )
        ),
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
