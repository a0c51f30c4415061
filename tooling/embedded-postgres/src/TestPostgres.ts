/**
 * The one way tests get a Postgres: vitest's global setup for every project
 * (vitest.shared.ts), run once in the vitest process before any test:
 *
 * 1. `TEST_DATABASE_URL`, when set (CI's service container, the matrix's cell);
 *    `TEST_DATABASE_URL=embedded` skips 2 and asks for 3;
 * 2. else the local server on 127.0.0.1:5432, started with `pg_ctlcluster` when a
 *    cluster is installed (/etc/postgresql) but down;
 * 3. else one embedded Postgres 18 on a fresh temporary directory, stopped (and
 *    the directory deleted) when the run ends.
 *
 * It sets `TEST_DATABASE_URL` in the vitest process: the test workers (forked
 * after the global setups ran) inherit it, `TestDatabase` reads it, and the
 * setups of the run's other projects find it set and reuse the same server.
 */
import * as Command from "@effect/platform/Command"
import { NodeContext } from "@effect/platform-node"
import { Effect, Exit, Schedule, Scope } from "effect"
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as EmbeddedPostgres from "./EmbeddedPostgres.js"

export const localUrl = "postgres://postgres@127.0.0.1:5432/postgres"

const reachable = (host: string, port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect({ host, port, timeout: 1000 })
    const done = (ok: boolean) => {
      socket.destroy()
      resume(Effect.succeed(ok))
    }
    socket.once("connect", () => done(true)).once("timeout", () => done(false)).once("error", () => done(false))
  })

const localReachable = reachable("127.0.0.1", 5432)

/** Starts every installed local cluster; whether 127.0.0.1:5432 then answers (within 10 s). */
const startLocalClusters = Effect.gen(function*() {
  const versions = (() => {
    try {
      return readdirSync("/etc/postgresql")
    } catch {
      return []
    }
  })()
  if (versions.length === 0) return false
  for (const version of versions) {
    console.log(`Postgres on 127.0.0.1:5432 is down: starting cluster ${version}/main`)
    yield* Command.make("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start").pipe(
      Command.stdout("inherit"),
      Command.stderr("inherit"),
      Command.exitCode,
      Effect.ignore
    )
  }
  return yield* localReachable.pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("500 millis"), times: 20 })
  )
})

/** A fresh embedded Postgres for this scope: stopped and its directory deleted when the scope closes. */
const embedded = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "duraflow-test-postgres-"))
      chmodSync(dir, 0o755) // as root the server runs as the OS user postgres
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  const server = yield* EmbeddedPostgres.make({
    dataDir: path.join(dir, "data"),
    ifRunning: "fail",
    serverArgs: ["-c", "fsync=off", "-c", "max_connections=200"],
    startTimeout: "60 seconds"
  })
  console.log(`Tests use an embedded Postgres ${server.version} at ${server.url}`)
  return server.url
})

/** The test server's URL (see the module comment); an embedded server lives as long as the scope. */
export const acquire = Effect.gen(function*() {
  const given = process.env.TEST_DATABASE_URL?.trim()
  if (given && given !== "embedded") return given
  if (!given && ((yield* localReachable) || (yield* startLocalClusters))) return localUrl
  return yield* embedded
})

/** vitest global setup: sets `TEST_DATABASE_URL`; the returned teardown stops what it started. */
export default async function setup(): Promise<() => Promise<void>> {
  const scope = Effect.runSync(Scope.make())
  const url = await Effect.runPromise(acquire.pipe(
    Scope.extend(scope),
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))),
    Effect.provide(NodeContext.layer)
  ))
  const previous = process.env.TEST_DATABASE_URL
  process.env.TEST_DATABASE_URL = url
  return async () => {
    if (previous === undefined) delete process.env.TEST_DATABASE_URL
    else process.env.TEST_DATABASE_URL = previous
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
