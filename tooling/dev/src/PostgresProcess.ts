/**
 * Runs the embedded Postgres (`@duraflow/embedded-postgres`'s `serve`) as a child
 * process (@effect/platform `Command`: a process group of its own, so Ctrl-C in the
 * terminal reaches the main job only; Postgres is stopped by this scope's finalizer,
 * after the apps, which otherwise would log a storm of connection errors while
 * shutting down). It stops on its own when the main job is gone (`ParentWatch`).
 * It says at once that Postgres is starting, then, while it boots (initdb on a first run
 * takes a while), a progress line every 2 s.
 */
import * as Command from "@effect/platform/Command"
import { Console, Data, Duration, Effect, Fiber, Option, Schedule, Stream } from "effect"
import { createRequire } from "node:module"

export class PostgresProcessError extends Data.TaggedError("PostgresProcessError")<{ readonly message: string }> {}

const require = createRequire(import.meta.url)
const serveBin = require.resolve("@duraflow/embedded-postgres/bin/serve")
const parentWatch = new URL("./ParentWatch.ts", import.meta.url).href

export const start = Effect.gen(function*() {
  const started = Date.now()
  yield* Console.log("starting Postgres…")
  const progress = yield* Effect.suspend(() => Console.log(`starting Postgres… ${Math.round((Date.now() - started) / 1000)}s`)).pipe(
    Effect.repeat(Schedule.spaced("2 seconds")),
    Effect.delay("2 seconds"),
    Effect.fork
  )
  const child = yield* Command.make(process.execPath, "--import", "tsx", "--import", parentWatch, serveBin).pipe(
    Command.stderr("inherit"),
    Command.start
  )
  // serve prints one line, DATABASE_URL=<url>, once Postgres accepts connections
  const url = yield* child.stdout.pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.filterMap((line) => Option.fromNullable(line.match(/^DATABASE_URL=(.+)$/)?.[1]?.trim())),
    Stream.runHead,
    Effect.flatten,
    Effect.catchAll(() =>
      Effect.flatMap(child.exitCode, (code) =>
        new PostgresProcessError({ message: `embedded Postgres exited (${code}) before it was ready` }))
    ),
    Effect.timeoutFail({
      duration: Duration.seconds(120),
      onTimeout: () => new PostgresProcessError({ message: "embedded Postgres was not ready within 120 s" })
    }),
    Effect.ensuring(Fiber.interrupt(progress))
  )
  return { url }
})
