/**
 * The web console (apps/console) as its own Node process next to the apps: it
 * finds the apps on the database, reads their runs through their HTTP APIs and
 * sends operator actions with `DURAFLOW_OPERATOR_TOKEN` (inherited, like the
 * apps). Waits until it answers `/health`; closing the scope sends it SIGTERM.
 */
import * as Command from "@effect/platform/Command"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { Scope } from "effect"
import { Console, Effect, Schedule, Stream, String as Str } from "effect"
import { fileURLToPath } from "node:url"

const consoleDir = fileURLToPath(new URL("../../../apps/console", import.meta.url))
const parentWatch = new URL("./ParentWatch.ts", import.meta.url).href

export const start = (options: {
  readonly port: number
  readonly databaseUrl: string
  readonly apps: ReadonlyArray<string>
}): Effect.Effect<string, Error, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    const url = `http://127.0.0.1:${options.port}`
    const process = yield* Command.make(globalThis.process.execPath, "--import", "tsx", "--import", parentWatch, "src/main.ts").pipe(
      Command.workingDirectory(consoleDir),
      Command.env({ PORT: String(options.port), DATABASE_URL: options.databaseUrl, CONSOLE_APPS: options.apps.join(",") }),
      Command.start
    )
    yield* Stream.merge(process.stdout, process.stderr).pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter(Str.isNonEmpty),
      Stream.runForEach((line) => Console.log(`\x1b[33m[console]\x1b[0m ${line}`)),
      Effect.forkScoped
    )
    yield* Effect.flatMap(HttpClient.HttpClient, (client) => client.get(`${url}/health`)).pipe(
      Effect.filterOrFail((response) => response.status === 200),
      Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("60 seconds"))),
      Effect.mapError(() => new Error(`the console did not answer ${url}/health within 60 s`)),
      Effect.provide(FetchHttpClient.layer)
    )
    return url
  })
