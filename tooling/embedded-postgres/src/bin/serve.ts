/**
 * `pnpm serve`: runs the workspace's local Postgres until SIGINT/SIGTERM.
 *
 *   --dir     EMBEDDED_PG_DIR     data directory (default `<workspace root>/.data/postgres`)
 *   --port    EMBEDDED_PG_PORT    port on 127.0.0.1 (default 54329, 0 = a free one)
 *   --major   EMBEDDED_PG_MAJOR   Postgres major: 15, 16, 17 or 18 (default 18)
 *
 * Prints one line, `DATABASE_URL=<url>`, on stdout; logs go to stderr. If a server
 * already runs on the directory it attaches and prints that server's URL instead,
 * and leaves it running on exit.
 */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Layer, Logger } from "effect"
import * as EmbeddedPostgres from "../EmbeddedPostgres.js"

const serve = Command.make("serve", {
  dir: Options.directory("dir").pipe(
    Options.withFallbackConfig(Config.string("EMBEDDED_PG_DIR")),
    Options.withDefault(EmbeddedPostgres.workspaceDataDir()),
    Options.withDescription("data directory")
  ),
  port: Options.integer("port").pipe(
    Options.withFallbackConfig(Config.integer("EMBEDDED_PG_PORT")),
    Options.withDefault(EmbeddedPostgres.defaultPort),
    Options.withDescription("port on 127.0.0.1 (0 = a free one)")
  ),
  major: Options.choiceWithValue("major", EmbeddedPostgres.majors.map((m) => [String(m), m] as const)).pipe(
    Options.withFallbackConfig(Config.literal(...EmbeddedPostgres.majors)("EMBEDDED_PG_MAJOR")),
    Options.withDefault(EmbeddedPostgres.defaultMajor),
    Options.withDescription("Postgres major")
  )
}, ({ dir, major, port }) =>
  Effect.gen(function*() {
    const server = yield* EmbeddedPostgres.make({ dataDir: dir, port, major })
    yield* Console.log(`DATABASE_URL=${server.url}`)
    yield* Effect.logInfo(
      server.owned
        ? `Postgres ${server.version} (pid ${server.pid}) serving ${server.dataDir}; Ctrl-C stops it`
        : `Attached to the Postgres ${server.version} (pid ${server.pid}) already serving ${server.dataDir}; ` +
          `it keeps running when this exits`
    )
    yield* Effect.addFinalizer(() => Effect.logInfo(server.owned ? "Stopping Postgres" : "Detaching"))
    return yield* Effect.never
  }).pipe(Effect.scoped)).pipe(Command.withDescription("Runs the workspace's embedded Postgres until SIGINT/SIGTERM"))

Command.run(serve, { name: "serve", version: "0.1.0" })(process.argv).pipe(
  Effect.provide(Layer.merge(NodeContext.layer, Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true })))),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
