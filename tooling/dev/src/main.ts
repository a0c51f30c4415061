/**
 * The main job (`pnpm start`): one Postgres for both apps, the two apps as
 * separate processes, their URLs, and Ctrl-C to stop everything.
 *
 * - `DATABASE_URL` set: both apps use it (each touches only its own tables).
 * - not set: an embedded Postgres in `.data/postgres` (`EMBEDDED_PG_DIR`; reused
 *   across runs) is started, or attached to when already running, and stopped on
 *   exit; a progress line every 2 s while it boots.
 * - `--demo` (`pnpm demo`): also publishes the sample ontology, ingests the
 *   sample documents and prints the typed entities; with `--exit` it then stops.
 * - `--replicas N` (1 to 8, default 1): N processes per app, each a runner of
 *   its app's cluster, behind a round-robin load balancer on the app's port.
 * - `--ontology-port` (`ONTOLOGY_PORT`, 4001), `--knowledge-port` (`KNOWLEDGE_PORT`,
 *   4002), `--console-port` (`CONSOLE_PORT`, 4000: the web console, `ConsoleProcess`);
 *   a port that is taken is refused. `WORKFLOW_MODE` is passed on.
 *
 * Stopping: Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP) stop the apps,
 * then Postgres, and exit 0. If this process is killed outright (SIGKILL), its
 * children notice they lost their parent and stop on their own (`ParentWatch`).
 */
import "./ParentWatch.js"
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Option } from "effect"
import * as AppProcesses from "./AppProcesses.js"
import * as ConsoleProcess from "./ConsoleProcess.js"
import * as Demo from "./Demo.js"
import * as PostgresProcess from "./PostgresProcess.js"

const database = (configured: Option.Option<string>) =>
  Option.match(configured, {
    onSome: (url) => Effect.as(Console.log("Using DATABASE_URL"), url),
    onNone: () =>
      Effect.gen(function*() {
        const { url } = yield* PostgresProcess.start
        yield* Console.log(`Embedded Postgres (data in ${process.env.EMBEDDED_PG_DIR ?? ".data/postgres"}) at ${new URL(url).host}`)
        return url
      })
  })

const port = (name: string, env: string, fallback: number) =>
  Options.integer(name).pipe(
    Options.withFallbackConfig(Config.integer(env)),
    Options.withDefault(fallback),
    Options.withDescription(`HTTP port (env ${env}, default ${fallback})`)
  )

const start = Command.make("start", {
  replicas: Options.integer("replicas").pipe(
    Options.withDefault(1),
    Options.mapEffect((n) =>
      Number.isInteger(n) && n >= 1 && n <= 8
        ? Effect.succeed(n)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--replicas must be an integer from 1 to 8, got ${n}`)))
    ),
    Options.withDescription("processes per app, behind a load balancer on the app's port (1 to 8)")
  ),
  demo: Options.boolean("demo").pipe(Options.withDescription("publish and ingest the samples, print the entities found")),
  exit: Options.boolean("exit").pipe(Options.withDescription("with --demo: stop after the demo")),
  ontologyPort: port("ontology-port", "ONTOLOGY_PORT", 4001),
  knowledgePort: port("knowledge-port", "KNOWLEDGE_PORT", 4002),
  consolePort: port("console-port", "CONSOLE_PORT", 4000),
  databaseUrl: Options.text("database-url").pipe(
    Options.withFallbackConfig(Config.string("DATABASE_URL")),
    Options.optional,
    Options.withDescription("Postgres for both apps (env DATABASE_URL; default: the embedded one)")
  )
}, (args) =>
  Effect.gen(function*() {
    const { replicas } = args
    // refuse a taken port before waiting for Postgres
    yield* AppProcesses.ensureFree([...AppProcesses.portsOf(args), args.consolePort])
    const databaseUrl = yield* database(args.databaseUrl)
    const [ontology, knowledge] = yield* AppProcesses.startAll({
      databaseUrl,
      ontologyPort: args.ontologyPort,
      knowledgePort: args.knowledgePort,
      replicas,
      workflowMode: process.env.WORKFLOW_MODE || undefined
    })
    const consoleUrl = yield* ConsoleProcess.start({ port: args.consolePort, databaseUrl, apps: [ontology.url, knowledge.url] })
    const topology = (app: AppProcesses.App) =>
      replicas === 1 ? "" : `\n             ${replicas} replicas behind it: ${app.replicas.join(", ")}`
    yield* Console.log(
      [
        "",
        "Both apps are up, sharing one database:",
        `  ontology   ${ontology.url}   (ready: ${ontology.url}/ready, API: ${ontology.url}/openapi.json)${topology(ontology)}`,
        `  knowledge  ${knowledge.url}   (ready: ${knowledge.url}/ready, API: ${knowledge.url}/openapi.json)${topology(knowledge)}`,
        `  console    ${consoleUrl}   (open it in a browser: the apps, their runs, actions)`,
        ""
      ].join("\n")
    )
    if (args.demo) {
      yield* Demo.run({ ontology: ontology.url, knowledge: knowledge.url })
      if (args.exit) return
    }
    yield* Console.log("Press Ctrl-C to stop.")
    return yield* Effect.never
  }).pipe(Effect.scoped)).pipe(Command.withDescription("Postgres and both apps, until Ctrl-C"))

// `pnpm start -- --replicas 3` hands the script a lone `--`: not an end-of-options marker here
const argv = process.argv.filter((arg, i) => i < 2 || arg !== "--")

Command.run(start, { name: "start", version: "0.1.0" })(argv).pipe(
  // @effect/cli has printed what was wrong with the arguments: exit 1 without a second report
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => (process.exitCode = 1))),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
