/**
 * Starts the two app processes against one database, each as its own Node
 * process (as they are deployed), with its output prefixed by its name, and
 * waits until both answer `/health`. Closing the scope sends them SIGTERM.
 */
import { Command, FetchHttpClient, HttpClient } from "@effect/platform"
import type { CommandExecutor } from "@effect/platform"
import { Console, Duration, Effect, Schedule, Stream, String as Str } from "effect"
import { fileURLToPath } from "node:url"

export interface App {
  readonly name: "ontology" | "knowledge"
  readonly port: number
  readonly url: string
}

const appDir = (name: string) => fileURLToPath(new URL(`../../../apps/${name}-server`, import.meta.url))

const colors = { ontology: "\x1b[35m", knowledge: "\x1b[36m" } as const

const start = (app: App, env: Record<string, string>) =>
  Effect.gen(function*() {
    const process = yield* Command.make(globalThis.process.execPath, "--import", "tsx", "src/main.ts").pipe(
      Command.workingDirectory(appDir(app.name)),
      Command.env({ ...env, PORT: String(app.port) }),
      Command.start
    )
    const tag = `${colors[app.name]}[${app.name}]\x1b[0m `
    yield* Stream.merge(process.stdout, process.stderr).pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter(Str.isNonEmpty),
      Stream.runForEach((line) => Console.log(tag + line)),
      Effect.forkScoped
    )
    return process
  })

const healthy = (app: App) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.get(`${app.url}/health`)).pipe(
    Effect.filterOrFail((response) => response.status === 200),
    Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds"))),
    Effect.mapError(() => new Error(`${app.name} did not become healthy at ${app.url}/health within 60 s`)),
    Effect.provide(FetchHttpClient.layer)
  )

export const startAll = (options: {
  readonly databaseUrl: string
  readonly ontologyPort: number
  readonly knowledgePort: number
  readonly workflowMode?: string | undefined
}): Effect.Effect<ReadonlyArray<App>, Error, CommandExecutor.CommandExecutor | import("effect/Scope").Scope> =>
  Effect.gen(function*() {
    const ontology: App = {
      name: "ontology",
      port: options.ontologyPort,
      url: `http://127.0.0.1:${options.ontologyPort}`
    }
    const knowledge: App = {
      name: "knowledge",
      port: options.knowledgePort,
      url: `http://127.0.0.1:${options.knowledgePort}`
    }
    const env = {
      DATABASE_URL: options.databaseUrl,
      ...(options.workflowMode ? { WORKFLOW_MODE: options.workflowMode } : {})
    }
    yield* start(ontology, env)
    yield* start(knowledge, { ...env, ONTOLOGY_URL: ontology.url })
    yield* Effect.all([healthy(ontology), healthy(knowledge)], { concurrency: 2 }).pipe(
      Effect.timeout(Duration.seconds(90)),
      Effect.mapError((e) => e instanceof Error ? e : new Error(String(e)))
    )
    return [ontology, knowledge]
  })
