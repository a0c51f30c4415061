/**
 * Starts the two apps against one database, each replica as its own Node
 * process (as they are deployed), with its output prefixed by its name, and
 * waits until every replica answers `/ready`. Closing the scope sends them SIGTERM;
 * each also stops on its own when the main job is gone (`ParentWatch`).
 *
 * A port that is already taken (a leftover app of an earlier start, or anything
 * else) is refused before anything starts: the main job never reports, nor sends
 * traffic to, a process it did not start. A replica that exits before it is ready
 * fails the start at once.
 *
 * With one replica per app, each app listens on its public port. With N > 1,
 * replica i of an app listens on `port + 10 * i` (ontology 4011, 4021, ...;
 * knowledge 4012, 4022, ...) and a round-robin load balancer (`LoadBalancer`)
 * takes the public port, sending traffic only to ready replicas.
 */
import * as Command from "@effect/platform/Command"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Console, Duration, Effect, Schedule, Stream, String as Str } from "effect"
import { Socket } from "node:net"
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

const parentWatch = new URL("./ParentWatch.ts", import.meta.url).href

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
const listening = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = new Socket()
    const done = (taken: boolean) => {
      socket.destroy()
      resume(Effect.succeed(taken))
    }
    socket.setTimeout(1000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
    socket.connect(port, "127.0.0.1")
  })

/** Fails, naming the port, when something already listens on one of `ports`. */
export const ensureFree = (ports: ReadonlyArray<number>) =>
  Effect.forEach(ports, (port) =>
    Effect.flatMap(listening(port), (taken) =>
      taken
        ? Effect.fail(
          new Error(
            `port ${port} is taken: another process listens there (a leftover app of an earlier start?). ` +
              `Stop it, or choose other ports (--ontology-port, --knowledge-port).`
          )
        )
        : Effect.void), { discard: true })

const start = (app: Replica, env: Record<string, string>) =>
  Effect.gen(function*() {
    const process = yield* Command.make(
      globalThis.process.execPath,
      "--max-semi-space-size=64", // as the apps' Dockerfiles set it (NODE_OPTIONS)
      "--import",
      "tsx",
      "--import",
      parentWatch,
      "src/main.ts"
    ).pipe(
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

class Exited extends Error {}

const ready = (app: Replica, process: CommandExecutor.Process) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    Effect.zipRight(
      // a process of ours answers, not one that was there before
      Effect.filterOrFail(process.isRunning, (running) => running, () => new Exited(`${app.label} exited before it was ready`)),
      client.get(`${app.url}/ready`)
    )).pipe(
      Effect.filterOrFail((response) => response.status === 200),
      Effect.retry({ schedule: Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds")), while: (e) => !(e instanceof Exited) }),
      Effect.mapError((e) => e instanceof Exited ? e : new Error(`${app.label} did not become ready at ${app.url}/ready within 60 s`)),
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

/** Every port a start with these options listens on: the public ones and the replicas'. */
export const portsOf = (options: { readonly ontologyPort: number; readonly knowledgePort: number; readonly replicas?: number | undefined }) => {
  const count = options.replicas ?? 1
  const replicaPorts = (port: number) => replicasOf("ontology", port, count).map((r) => r.port)
  return [...new Set([options.ontologyPort, options.knowledgePort, ...replicaPorts(options.ontologyPort), ...replicaPorts(options.knowledgePort)])]
}

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
    yield* ensureFree(portsOf(options))
    const ontologyProcesses = yield* Effect.forEach(ontologyReplicas, (r) => start(r, env))
    // knowledge calls ontology through its public URL (the load balancer when there are replicas)
    const knowledgeProcesses = yield* Effect.forEach(knowledgeReplicas, (r) => start(r, { ...env, ONTOLOGY_URL: ontology.url }))
    if (count > 1) {
      yield* LoadBalancer.make({ port: ontology.port, backends: ontologyReplicas })
      yield* LoadBalancer.make({ port: knowledge.port, backends: knowledgeReplicas })
    }
    const processes = [...ontologyProcesses, ...knowledgeProcesses]
    yield* Effect.forEach([...ontologyReplicas, ...knowledgeReplicas], (r, i) => ready(r, processes[i]!), {
      concurrency: "unbounded"
    }).pipe(
      Effect.timeout(Duration.seconds(90)),
      Effect.mapError((e) => e instanceof Error ? e : new Error(String(e)))
    )
    return [ontology, knowledge]
  })
