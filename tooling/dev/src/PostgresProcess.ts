/**
 * Runs the embedded Postgres (`@duraflow/embedded-postgres`'s `serve`) as a
 * detached child process, in a process group of its own. Ctrl-C in a terminal
 * signals the whole foreground group; if Postgres were in it, it would stop at
 * the same moment as the apps, which would then log a storm of connection
 * errors while shutting down. Detached, it is stopped by this scope's
 * finalizer, after the apps.
 */
import { Data, Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import { createRequire } from "node:module"

export class PostgresProcessError extends Data.TaggedError("PostgresProcessError")<{ readonly message: string }> {}

const require = createRequire(import.meta.url)
const serveBin = require.resolve("@duraflow/embedded-postgres/bin/serve")

export const start = Effect.acquireRelease(
  Effect.gen(function*() {
    const url = yield* Deferred.make<string, PostgresProcessError>()
    const child = spawn(process.execPath, ["--import", "tsx", serveBin], {
      detached: true,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8")
      const match = out.match(/^DATABASE_URL=(.+)$/m)
      if (match) Deferred.unsafeDone(url, Effect.succeed(match[1].trim()))
    })
    child.on("exit", (code) =>
      Deferred.unsafeDone(url, new PostgresProcessError({ message: `embedded Postgres exited (${code}) before it was ready` })))
    return { child, url: yield* Deferred.await(url).pipe(Effect.timeout("60 seconds")) }
  }),
  ({ child }) =>
    Effect.async<void>((resume) => {
      if (child.exitCode !== null) return resume(Effect.void)
      child.once("exit", () => resume(Effect.void))
      child.kill("SIGTERM")
    })
)
