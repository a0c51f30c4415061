/**
 * The main job (`pnpm start`): one Postgres for both apps, the two apps as
 * separate processes, their URLs, and Ctrl-C to stop everything.
 *
 * - `DATABASE_URL` set: both apps use it (each touches only its own tables).
 * - not set: an embedded Postgres in `.data/postgres` (reused across runs) is
 *   started, or attached to when already running, and stopped on exit.
 * - `--demo` (`pnpm demo`): also publishes the sample ontology, ingests the
 *   sample documents and prints the typed entities; with `--exit` it then stops.
 * - `--replicas N` (1 to 8, default 1): N processes per app, each a runner of
 *   its app's cluster, behind a round-robin load balancer on the app's port.
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

/** `--replicas N` or `--replicas=N`. */
const replicasArg = Effect.suspend(() => {
  const i = args.findIndex((a) => a === "--replicas" || a.startsWith("--replicas="))
  if (i === -1) return Effect.succeed(1)
  const raw = args[i]!.includes("=") ? args[i]!.split("=")[1] : args[i + 1]
  const n = Number(raw)
  return Number.isInteger(n) && n >= 1 && n <= 8
    ? Effect.succeed(n)
    : Effect.fail(new Error(`--replicas must be an integer from 1 to 8, got ${JSON.stringify(raw ?? "")}`))
})

const program = Effect.gen(function*() {
  const c = yield* config
  const replicas = yield* replicasArg
  const databaseUrl = yield* database(c.databaseUrl)
  const [ontology, knowledge] = yield* AppProcesses.startAll({
    databaseUrl,
    ontologyPort: c.ontologyPort,
    knowledgePort: c.knowledgePort,
    replicas,
    workflowMode: Option.getOrUndefined(c.workflowMode)
  })
  const topology = (app: AppProcesses.App) =>
    replicas === 1 ? "" : `\n             ${replicas} replicas behind it: ${app.replicas.join(", ")}`
  yield* Console.log(
    [
      "",
      "Both apps are up, sharing one database:",
      `  ontology   ${ontology.url}   (ready: ${ontology.url}/ready, API: ${ontology.url}/openapi.json)${topology(ontology)}`,
      `  knowledge  ${knowledge.url}   (ready: ${knowledge.url}/ready, API: ${knowledge.url}/openapi.json)${topology(knowledge)}`,
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
