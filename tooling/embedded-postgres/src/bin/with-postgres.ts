/**
 * `with-postgres -- <command...>`: runs a command with an embedded Postgres.
 * Starts (or attaches to) the server in `EMBEDDED_PG_DIR` (default
 * `<workspace root>/.data/test-postgres`, on a free port), exports its URL as
 * both DATABASE_URL and TEST_DATABASE_URL, runs the command, stops the server,
 * and exits with the command's exit code. Used by the test command on machines
 * without a local Postgres.
 */
import { Command } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { join } from "node:path"
import * as EmbeddedPostgres from "../EmbeddedPostgres.js"

const separator = process.argv.indexOf("--")
const [cmd, ...args] = separator === -1 ? process.argv.slice(2) : process.argv.slice(separator + 1)

const program = Effect.gen(function*() {
  if (!cmd) return yield* Effect.dieMessage("usage: with-postgres -- <command> [args...]")
  const server = yield* EmbeddedPostgres.EmbeddedPostgres
  yield* Effect.logInfo(`Embedded Postgres ${server.version} at ${server.host}:${server.port}`)
  const exitCode = yield* Command.make(cmd, ...args).pipe(
    Command.env({ DATABASE_URL: server.url, TEST_DATABASE_URL: server.url }),
    Command.stdin("inherit"),
    Command.stdout("inherit"),
    Command.stderr("inherit"),
    Command.exitCode
  )
  process.exitCode = exitCode
})

program.pipe(
  Effect.provide(Layer.merge(
    EmbeddedPostgres.layer({
      dataDir: process.env.EMBEDDED_PG_DIR ?? join(EmbeddedPostgres.workspaceDataDir(), "..", "test-postgres"),
      port: 0
    }),
    NodeContext.layer
  )),
  NodeRuntime.runMain
)
