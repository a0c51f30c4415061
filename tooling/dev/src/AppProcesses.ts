/**
 * Starts the two apps against one database, each replica as its own Node
 * process (as they are deployed), with its output prefixed by its name, and
 * waits until every replica answers `/ready`. Closing the scope sends them SIGTERM.
 *
 * With one replica per app, each app listens on its public port. With N > 1,
 * replica i of an app listens on `port + 10 * i` (ontology 4011, 4021, ...;
 * knowledge 4012, 4022, ...) and a round-robin load balancer (`LoadBalancer`)
 * takes the public port, sending traffic only to ready replicas.
 */
import { Command, FetchHttpClient, HttpClient } from "@effect/platform"
import type { CommandExecutor } from "@effect/platform"
import { Console, Duration, Effect, Schedule, Stream, String as Str } from "effect"
import { fileURLToPath } from "node:url"
import * as LoadBalancer from "./LoadBalancer.js"

export interface App {
  readonly name: "ontology" | "knowledge"
  readonly port: number
  readonly url: string
  /** The replicas' own URLs (the app's URL itself when there is one replica). */
  readonly replicas: ReadonlyArray<string>
}

interface Replica {
  readonly name: App["name"]
  readonly label: string
  readonly port: number
  readonly url: string
}

const appDir = (name: string) => fileURLToPath(new URL(`../../../apps/${name}-server`, import.meta.url))

const colors = { ontology: "\x1b[35m", knowledge: "\x1b[36m" } as const

const start = (app: Replica, env: Record<string, string>) =>
  Effect.gen(function*() {
    const process = yield* Command.make(globalThis.process.execPath, "--import", "tsx", "src/main.ts").pipe(
      Command.workingDirectory(appDir(app.name)),
      Command.env({ ...env, PORT: String(app.port) }),
      Command.start
    )
    const tag = `${colors[app.name]}[${app.label}]\x1b[0m `
    yield* Stream.merge(process.stdout, process.stderr).pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter(Str.isNonEmpty),
      Stream.runForEach((line) => Console.log(tag + line)),
      Effect.forkScoped
    )
    return process
  })

const ready = (app: Replica) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.get(`${app.url}/ready`)).pipe(
    Effect.filterOrFail((response) => response.status === 200),
    Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds"))),
    Effect.mapError(() => new Error(`${app.label} did not become ready at ${app.url}/ready within 60 s`)),
    Effect.provide(FetchHttpClient.layer)
  )

const replicasOf = (name: App["name"], port: number, count: number): ReadonlyArray<Replica> =>
  count === 1
    ? [{ name, label: name, port, url: `http://127.0.0.1:${port}` }]
    : Array.from({ length: count }, (_, i) => ({
      name,
      label: `${name}-${i + 1}`,
      port: port + 10 * (i + 1),
      url: `http://127.0.0.1:${port + 10 * (i + 1)}`
    }))

export const startAll = (options: {
  readonly databaseUrl: string
  readonly ontologyPort: number
  readonly knowledgePort: number
  readonly replicas?: number | undefined
  readonly workflowMode?: string | undefined
}): Effect.Effect<ReadonlyArray<App>, Error, CommandExecutor.CommandExecutor | import("effect/Scope").Scope> =>
  Effect.gen(function*() {
    const count = options.replicas ?? 1
    const app = (name: App["name"], port: number): App => {
      const replicas = replicasOf(name, port, count).map((r) => r.url)
      return { name, port, url: `http://127.0.0.1:${port}`, replicas }
    }
    const ontology = app("ontology", options.ontologyPort)
    const knowledge = app("knowledge", options.knowledgePort)
    const env = {
      DATABASE_URL: options.databaseUrl,
      ...(options.workflowMode ? { WORKFLOW_MODE: options.workflowMode } : {})
    }
    const ontologyReplicas = replicasOf("ontology", ontology.port, count)
    const knowledgeReplicas = replicasOf("knowledge", knowledge.port, count)
    yield* Effect.forEach(ontologyReplicas, (r) => start(r, env))
    // knowledge calls ontology through its public URL (the load balancer when there are replicas)
    yield* Effect.forEach(knowledgeReplicas, (r) => start(r, { ...env, ONTOLOGY_URL: ontology.url }))
    if (count > 1) {
      yield* LoadBalancer.make({ port: ontology.port, backends: ontologyReplicas })
      yield* LoadBalancer.make({ port: knowledge.port, backends: knowledgeReplicas })
    }
    yield* Effect.forEach([...ontologyReplicas, ...knowledgeReplicas], ready, { concurrency: "unbounded" }).pipe(
      Effect.timeout(Duration.seconds(90)),
      Effect.mapError((e) => e instanceof Error ? e : new Error(String(e)))
    )
    return [ontology, knowledge]
  })
