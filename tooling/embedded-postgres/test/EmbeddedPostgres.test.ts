import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { chmod, readFile } from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { EmbeddedPostgres } from "../src/index.js"
import * as Embedded from "../src/internal/embedded.js"

const Postmaster = {
  file: (dataDir: string) => path.join(dataDir, "postmaster.pid"),
  isAlive: (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EPERM"
    }
  },
  read: async (dataDir: string) => ({ pid: Number((await readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]) })
}

// As root the server runs as the OS user "postgres", which must traverse the (0700) temp dir.
const root = mkdtempSync(path.join(os.tmpdir(), "embedded-pg-test-"))
await chmod(root, 0o755)
afterAll(() => rmSync(root, { recursive: true, force: true }))

const sql = (url: string, text: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(text)).rows
    } finally {
      await client.end()
    }
  })

const waitUntil = (condition: () => boolean) =>
  Effect.repeat(Effect.sync(condition), { until: (ok) => ok, schedule: Schedule.spaced("25 millis") }).pipe(
    Effect.timeout("5 seconds"),
    Effect.orDie
  )

/** Stopped for real: postmaster gone and its lock file removed. */
const expectStopped = (dataDir: string, pid: number) => {
  expect(Postmaster.isAlive(pid)).toBe(false)
  expect(existsSync(Postmaster.file(dataDir))).toBe(false)
}

describe("EmbeddedPostgres", () => {
  const dataDir = path.join(root, "shared")

  it.scopedLive("initialises a fresh directory, serves Postgres 18 and keeps data across restarts", () =>
    Effect.gen(function*() {
      const dir = path.join(root, "fresh")
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir: dir, password: "s3cret/pw" })
        expect(server.owned).toBe(true)
        expect(server.url).toBe(`postgres://postgres:s3cret%2Fpw@127.0.0.1:${server.port}/postgres`)
        expect(server.version).toMatch(/^18\./)
        const [row] = yield* sql(server.url, "SELECT version()")
        expect(row.version).toMatch(/^PostgreSQL 18\./)
        yield* sql(server.url, "CREATE TABLE kept AS SELECT 42 AS answer")
        return server
      }))
      expectStopped(dir, first.pid)

      const second = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir: dir, password: "s3cret/pw" })
        expect(server.owned).toBe(true)
        expect(server.pid).not.toBe(first.pid)
        expect(yield* sql(server.url, "SELECT answer FROM kept")).toEqual([{ answer: 42 }])
        return server
      }))
      expectStopped(dir, second.pid)
    }))

  it.scopedLive("attaches to the server already running on the directory and leaves it running", () =>
    Effect.gen(function*() {
      const owner = Context.get(
        yield* Layer.build(EmbeddedPostgres.layer({ dataDir })),
        EmbeddedPostgres.EmbeddedPostgres
      )
      expect(owner.owned).toBe(true)

      const attached = yield* Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.EmbeddedPostgres
        expect(yield* sql(server.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
        return server
      }).pipe(Effect.provide(EmbeddedPostgres.layer({ dataDir, port: 1 })))
      expect(attached.owned).toBe(false)
      expect(attached.pid).toBe(owner.pid)
      expect(attached.url).toBe(owner.url)

      // The attaching layer is released: the owner's server must still serve.
      expect(Postmaster.isAlive(owner.pid)).toBe(true)
      expect(yield* sql(owner.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    }))

  it.scopedLive("fails with DataDirLocked when asked not to share a running server", () =>
    Effect.gen(function*() {
      const owner = yield* EmbeddedPostgres.make({ dataDir })
      const error = yield* Effect.flip(Effect.scoped(EmbeddedPostgres.make({ dataDir, ifRunning: "fail" })))
      expect(error._tag).toBe("EmbeddedPostgresError")
      expect(error.reason).toBe("DataDirLocked")
      expect(error.message).toContain(`pid ${owner.pid}`)
      expect(Postmaster.isAlive(owner.pid)).toBe(true)
    }))

  it.scopedLive("fails with PortInUse when the port is taken", () =>
    Effect.gen(function*() {
      const blocker = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<net.Server>((resolve) => {
            const server = net.createServer().listen(0, "127.0.0.1", () => resolve(server))
          })
        ),
        (server) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
      )
      const port = (blocker.address() as net.AddressInfo).port
      const error = yield* Effect.flip(Effect.scoped(EmbeddedPostgres.make({ dataDir, port })))
      expect(error.reason).toBe("PortInUse")
      expect(error.message).toContain(`Port ${port}`)
      expect(existsSync(Postmaster.file(dataDir))).toBe(false)
    }))

  it.scopedLive("refuses a non-empty directory that holds no cluster", () =>
    Effect.gen(function*() {
      const dir = path.join(root, "not-a-cluster")
      mkdirSync(dir)
      writeFileSync(path.join(dir, "notes.txt"), "mine")
      const error = yield* Effect.flip(EmbeddedPostgres.make({ dataDir: dir }))
      expect(error.reason).toBe("InitdbFailed")
      expect(error.message).toContain("holds no Postgres cluster")
    }))

  it.scopedLive("starts after a crash that left postmaster.pid behind", () =>
    Effect.gen(function*() {
      const crashed = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* EmbeddedPostgres.make({ dataDir })
        process.kill(server.pid, "SIGKILL")
        yield* waitUntil(() => !Postmaster.isAlive(server.pid))
        return server
      }))
      expect(existsSync(Postmaster.file(dataDir))).toBe(true)

      const server = yield* EmbeddedPostgres.make({ dataDir })
      expect(server.owned).toBe(true)
      expect(server.pid).not.toBe(crashed.pid)
      expect(yield* sql(server.url, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    }))

  it.scopedLive("creates and drops databases", () =>
    Effect.gen(function*() {
      const server = yield* EmbeddedPostgres.make({ dataDir })
      yield* server.createDatabase("app one")
      yield* server.createDatabase("app one") // idempotent
      const url = server.databaseUrl("app one")
      expect(yield* sql(url, "SELECT current_database() AS db")).toEqual([{ db: "app one" }])
      yield* server.dropDatabase("app one")
      yield* server.dropDatabase("app one")
      expect(yield* sql(server.url, "SELECT count(*)::int AS n FROM pg_database WHERE datname = 'app one'"))
        .toEqual([{ n: 0 }])
    }))

  it("every major's binaries are installed, with their shared-library symlinks", () => {
    expect(EmbeddedPostgres.majors).toEqual([15, 16, 17, 18])
    for (const major of EmbeddedPostgres.majors) expect(Embedded.checkBinaries(major), `Postgres ${major}`).toBeUndefined()
  })

  it.scopedLive("serves older majors (15, 17) from their own packages, each on a fresh directory", () =>
    Effect.gen(function*() {
      for (const major of [15, 17] as const) {
        const dir = path.join(root, `major-${major}`)
        const server = yield* Effect.scoped(Effect.gen(function*() {
          const server = yield* EmbeddedPostgres.make({ dataDir: dir, major })
          expect(server.owned).toBe(true)
          expect(server.major).toBe(major)
          expect(server.version.startsWith(`${major}.`)).toBe(true)
          const [row] = yield* sql(server.url, "SHOW server_version")
          expect(row.server_version.startsWith(`${major}.`), row.server_version).toBe(true)
          return server
        }))
        expectStopped(dir, server.pid)
      }
    }))

  it.scopedLive("refuses a directory of another major, running or not (VersionMismatch)", () =>
    Effect.gen(function*() {
      const dir = path.join(root, "major-15") // initialised by 15 above
      const stopped = yield* Effect.flip(EmbeddedPostgres.make({ dataDir: dir, major: 17 }))
      expect(stopped.reason).toBe("VersionMismatch")
      expect(stopped.message).toContain("holds a Postgres 15 cluster")

      const owner = yield* EmbeddedPostgres.make({ dataDir: dir, major: 15 })
      const running = yield* Effect.flip(Effect.scoped(EmbeddedPostgres.make({ dataDir: dir })))
      expect(running.reason).toBe("VersionMismatch")
      expect(running.message).toContain(`pid ${owner.pid}`)
      expect(Postmaster.isAlive(owner.pid)).toBe(true)
    }))

  it.scopedLive("serve prints DATABASE_URL and stops the server on SIGTERM", () =>
    Effect.gen(function*() {
      const bin = fileURLToPath(new URL("../src/bin/serve.ts", import.meta.url))
      const child = spawn(process.execPath, ["--import", "tsx", bin], {
        env: { ...process.env, EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: "0" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const url = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => {
          let out = ""
          child.stdout.on("data", (chunk: Buffer) => {
            out += chunk.toString()
            const match = /^DATABASE_URL=(\S+)$/m.exec(out)
            if (match) resolve(match[1]!)
          })
          child.on("exit", (code) => reject(new Error(`serve exited with ${code} before printing a URL`)))
        })
      )
      const { pid } = (yield* Effect.promise(() => Postmaster.read(dataDir)))!
      expect(yield* sql(url, "SELECT 1 AS one")).toEqual([{ one: 1 }])

      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
      child.kill("SIGTERM")
      expect(yield* Effect.promise(() => exited)).toBe(0)
      expectStopped(dataDir, pid)
    }))
})
