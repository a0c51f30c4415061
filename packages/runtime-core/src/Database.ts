/**
 * The Postgres client every app uses. Built from `DATABASE_URL`, it checks the
 * server is reachable at startup (retrying briefly, since apps and their
 * database often start together) and otherwise fails with `DatabaseUnavailable`
 * naming host and port, instead of the driver's bare "Failed to connect".
 * Once running, `pg.Pool` replaces broken connections on the next query and the
 * cluster's storage loops retry failed reads, so a lost connection heals by itself.
 */
import { Reactivity } from "@effect/experimental"
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import pg from "pg"
import * as PgPool from "./internal/PgPool.js"
import * as PreparedStatements from "./internal/PreparedStatements.js"
import * as Retry from "./Retry.js"
import { DatabaseUnavailable, InvalidRuntimeConfig } from "./RuntimeError.js"

export interface Options {
  readonly url: Redacted.Redacted<string>
  /** Shown in `pg_stat_activity.application_name`; use the app's prefix. */
  readonly applicationName?: string | undefined
  readonly maxConnections?: number | undefined
  /** How long startup keeps retrying an unreachable server before failing. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Statements sent again and again go by name, parsed once per connection
   * (`PreparedStatements`); default true. False behind a pooler that does not
   * keep a session's prepared statements (PgBouncer in transaction mode before 1.21).
   */
  readonly preparedStatements?: boolean | undefined
}

export interface Target {
  readonly host: string
  readonly port: number
  readonly database: string
}

/** Where a URL points, for error messages (never includes the password). */
export const parseUrl = (url: string): Effect.Effect<Target, InvalidRuntimeConfig> =>
  Effect.try({
    try: () => {
      const parsed = new URL(url)
      if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
        throw new Error(`expected a postgres:// or postgresql:// URL, got "${parsed.protocol}"`)
      }
      return {
        host: parsed.hostname || "localhost",
        port: parsed.port ? Number(parsed.port) : 5432,
        database: decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "postgres"
      }
    },
    catch: (e) =>
      new InvalidRuntimeConfig({
        key: "DATABASE_URL",
        reason: e instanceof TypeError ? "not a valid URL" : (e as Error).message
      })
  })

/** The pool size when none is given (`DATABASE_POOL_MAX` unset or empty). */
const defaultMaxConnections = 10

/**
 * A pool size: a whole number of connections, at least 1 (pg's pool would wait forever
 * for a connection with a negative size, and silently use its default for 0).
 */
export const parseMaxConnections = (
  value: number | string,
  key = "DATABASE_POOL_MAX"
): Effect.Effect<number, InvalidRuntimeConfig> => {
  const text = String(value).trim()
  return /^\d{1,6}$/.test(text) && Number(text) >= 1
    ? Effect.succeed(Number(text))
    : Effect.fail(
      new InvalidRuntimeConfig({ key, reason: `must be a whole number of connections, at least 1, got ${JSON.stringify(text)}` })
    )
}

const describe = (cause: unknown): string => {
  const inner = (cause as { cause?: unknown })?.cause ?? cause
  const err = inner as { code?: string; message?: string; errors?: Array<{ message?: string }> }
  if (err?.errors?.length) return err.errors.map((e) => e.message).join("; ")
  return [err?.code, err?.message].filter(Boolean).join(" ") || String(inner)
}

/** The URL a `PgClient` connects with, for the dedicated sessions beside its pool (LISTEN, locks). */
export const urlOf = (client: PgClient.PgClient): string =>
  client.config.url
    ? Redacted.value(client.config.url)
    : `postgres://${encodeURIComponent(client.config.username ?? "")}:${
      encodeURIComponent(client.config.password ? Redacted.value(client.config.password) : "")
    }@${client.config.host ?? "localhost"}:${client.config.port ?? 5432}/${client.config.database ?? ""}`

/**
 * A `pg.Pool` as `PgClient.make` builds one (errors of idle connections
 * listened to, not thrown), once `SELECT 1` answered within `connectTimeout`;
 * ended with its scope.
 */
const pool = (options: {
  readonly url: Redacted.Redacted<string>
  readonly applicationName?: string | undefined
  readonly maxConnections: number
  readonly connectTimeout: Duration.Duration
  readonly preparedStatements: boolean
}): Effect.Effect<pg.Pool, SqlError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const created = new pg.Pool({
        connectionString: Redacted.value(options.url),
        connectionTimeoutMillis: Duration.toMillis(options.connectTimeout),
        max: options.maxConnections,
        application_name: options.applicationName ?? "@effect/sql-pg"
      })
      created.on("error", () => undefined)
      if (options.preparedStatements) {
        const statements = new PreparedStatements.Registry()
        created.on("connect", (client) => PreparedStatements.install(client, statements))
      }
      return created
    }),
    (created) => Effect.promise(() => created.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
  ).pipe(
    Effect.tap((created) =>
      Effect.tryPromise({
        try: () => created.query("SELECT 1"),
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      }).pipe(
        Effect.timeoutFail({
          duration: options.connectTimeout,
          onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
        })
      )
    )
  )

/**
 * A `PgClient` (and `SqlClient`) on a pool this process owns
 * (`PgClient.fromPool`), known to the runtime by client (`PgPool`):
 * transactional steps take their connections from it directly.
 */
export const layerFromPool = (
  acquire: Effect.Effect<pg.Pool, SqlError, Scope.Scope>
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const owned = yield* acquire
    const client = yield* PgClient.fromPool({ acquire: Effect.succeed(owned) })
    PgPool.register(client, owned)
    return Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))
  })).pipe(Layer.provide(Reactivity.layer))

/** The most connections `sql`'s pool opens (its configured maximum, else pg's default of 10). */
export const maxConnections = (sql: object): number =>
  PgPool.of(sql)?.options.max ?? (sql as Partial<PgClient.PgClient>).config?.maxConnections ?? 10

/** A `PgClient` (and `SqlClient`) for the given URL; fails with `DatabaseUnavailable`. */
export const layer = (
  options: Options
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseUnavailable | InvalidRuntimeConfig> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const target = yield* parseUrl(Redacted.value(options.url))
    const maxConnections = options.maxConnections === undefined
      ? defaultMaxConnections
      : yield* parseMaxConnections(options.maxConnections, "maxConnections")
    const timeout = Duration.decode(options.connectTimeout ?? "5 seconds")
    const client = layerFromPool(pool({
      url: options.url,
      applicationName: options.applicationName,
      maxConnections,
      connectTimeout: Duration.min(timeout, Duration.seconds(5)),
      preparedStatements: options.preparedStatements ?? true
    }))
    return client.pipe(
      Layer.retry(
        Retry.connect(timeout).pipe(
          Schedule.whileInput((e: { message?: string }) => !/password|authentication|does not exist/i.test(describe(e)))
        )
      ),
      Layer.mapError((cause) => new DatabaseUnavailable({ ...target, reason: describe(cause) }))
    )
  }))

/**
 * `DATABASE_URL` (required), `DATABASE_POOL_MAX` (default 10, also when empty; read as
 * text, checked by `layerConfig` with `parseMaxConnections`), `DATABASE_CONNECT_TIMEOUT` (default 5 s),
 * `DATABASE_PREPARED_STATEMENTS` (default true; false behind PgBouncer in transaction mode).
 */
export const config = Config.all({
  url: Config.redacted("DATABASE_URL").pipe(Config.option),
  maxConnections: Config.string("DATABASE_POOL_MAX").pipe(Config.withDefault("")),
  connectTimeout: Config.duration("DATABASE_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  preparedStatements: Config.boolean("DATABASE_PREPARED_STATEMENTS").pipe(Config.withDefault(true))
})

export const layerConfig = (options?: { readonly applicationName?: string | undefined }) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const c = yield* config
    if (Option.isNone(c.url)) {
      return yield* new InvalidRuntimeConfig({
        key: "DATABASE_URL",
        reason: "is not set; point it at Postgres, e.g. postgres://postgres@127.0.0.1:5432/postgres"
      })
    }
    // unset, or set but empty (a compose file's `DATABASE_POOL_MAX=`): the default
    const maxConnections = c.maxConnections.trim() === ""
      ? defaultMaxConnections
      : yield* parseMaxConnections(c.maxConnections)
    return layer({ ...c, url: c.url.value, maxConnections, applicationName: options?.applicationName })
  }))
