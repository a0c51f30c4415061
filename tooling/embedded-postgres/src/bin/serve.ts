/**
 * `pnpm serve`: runs the workspace's local Postgres until SIGINT/SIGTERM.
 *
 * Data directory `EMBEDDED_PG_DIR` (default `<workspace root>/.data/postgres`),
 * port `EMBEDDED_PG_PORT` (default 54329, 0 = a free one), Postgres major
 * `EMBEDDED_PG_MAJOR` (15, 16, 17 or 18; default 18). Prints one line,
 * `DATABASE_URL=<url>`, on stdout; logs go to stderr. If a server already runs
 * on the directory it attaches and prints that server's URL instead, and leaves
 * it running on exit.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger } from "effect"
import * as EmbeddedPostgres from "../EmbeddedPostgres.js"

const Serve = Layer.scopedDiscard(
  Effect.gen(function*() {
    const server = yield* EmbeddedPostgres.EmbeddedPostgres
    yield* Console.log(`DATABASE_URL=${server.url}`)
    yield* Effect.logInfo(
      server.owned
        ? `Postgres ${server.version} (pid ${server.pid}) serving ${server.dataDir}; Ctrl-C stops it`
        : `Attached to the Postgres ${server.version} (pid ${server.pid}) already serving ${server.dataDir}; ` +
          `it keeps running when this exits`
    )
    yield* Effect.addFinalizer(() => Effect.logInfo(server.owned ? "Stopping Postgres" : "Detaching"))
  })
).pipe(Layer.provide(EmbeddedPostgres.layerConfig()))

Layer.launch(Serve).pipe(
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
