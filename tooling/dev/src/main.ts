/**
 * The main job (`pnpm start`): one Postgres for both apps, the two apps as
 * separate processes, their URLs, and Ctrl-C to stop everything.
 *
 * - `DATABASE_URL` set: both apps use it (each touches only its own tables).
 * - not set: an embedded Postgres in `.data/postgres` (reused across runs) is
 *   started, or attached to when already running, and stopped on exit.
 * - `--demo` (`pnpm demo`): also publishes the sample ontology, ingests the
 *   sample documents and prints the typed entities; with `--exit` it then stops.
 * Ports: `ONTOLOGY_PORT` (4001), `KNOWLEDGE_PORT` (4002); `WORKFLOW_MODE` is passed on.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Layer, Option } from "effect"
import * as AppProcesses from "./AppProcesses.js"
import * as Demo from "./Demo.js"
import * as PostgresProcess from "./PostgresProcess.js"

const args = process.argv.slice(2)

const config = Config.all({
  databaseUrl: Config.option(Config.string("DATABASE_URL")),
  ontologyPort: Config.integer("ONTOLOGY_PORT").pipe(Config.withDefault(4001)),
  knowledgePort: Config.integer("KNOWLEDGE_PORT").pipe(Config.withDefault(4002)),
  workflowMode: Config.option(Config.string("WORKFLOW_MODE"))
})

const database = (configured: Option.Option<string>) =>
  Option.match(configured, {
    onSome: (url) => Effect.as(Console.log("Using DATABASE_URL"), url),
    onNone: () =>
      Effect.gen(function*() {
        const { url } = yield* PostgresProcess.start
        yield* Console.log(`Embedded Postgres (data in .data/postgres) at ${new URL(url).host}`)
        return url
      })
  })

const program = Effect.gen(function*() {
  const c = yield* config
  const databaseUrl = yield* database(c.databaseUrl)
  const [ontology, knowledge] = yield* AppProcesses.startAll({
    databaseUrl,
    ontologyPort: c.ontologyPort,
    knowledgePort: c.knowledgePort,
    workflowMode: Option.getOrUndefined(c.workflowMode)
  })
  yield* Console.log(
    [
      "",
      "Both apps are up, sharing one database:",
      `  ontology   ${ontology.url}   (health: ${ontology.url}/health, API: ${ontology.url}/openapi.json)`,
      `  knowledge  ${knowledge.url}   (health: ${knowledge.url}/health, API: ${knowledge.url}/openapi.json)`,
      ""
    ].join("\n")
  )
  if (args.includes("--demo")) {
    yield* Demo.run({ ontology: ontology.url, knowledge: knowledge.url })
    if (args.includes("--exit")) return
  }
  yield* Console.log("Press Ctrl-C to stop.")
  return yield* Effect.never
})

program.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(NodeContext.layer)), NodeRuntime.runMain)
