/**
 * The Postgres client every app uses. Built from `DATABASE_URL`, it checks the
 * server is reachable at startup (retrying briefly, since apps and their
 * database often start together) and otherwise fails with `DatabaseUnavailable`
 * naming host and port, instead of the driver's bare "Failed to connect".
 * Once running, `pg.Pool` replaces broken connections on the next query and the
 * cluster's storage loops retry failed reads, so a lost connection heals by itself.
 */
import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql"
import { Config, Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import * as Retry from "./Retry.js"
import { DatabaseUnavailable, InvalidRuntimeConfig } from "./RuntimeError.js"

export interface Options {
  readonly url: Redacted.Redacted<string>
  /** Shown in `pg_stat_activity.application_name`; use the app's prefix. */
  readonly applicationName?: string | undefined
  readonly maxConnections?: number | undefined
  /** How long startup keeps retrying an unreachable server before failing. */
  readonly connectTimeout?: Duration.DurationInput | undefined
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

/** A `PgClient` (and `SqlClient`) for the given URL; fails with `DatabaseUnavailable`. */
export const layer = (
  options: Options
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, DatabaseUnavailable | InvalidRuntimeConfig> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const target = yield* parseUrl(Redacted.value(options.url))
    const timeout = Duration.decode(options.connectTimeout ?? "5 seconds")
    const client = PgClient.layer({
      url: options.url,
      applicationName: options.applicationName,
      maxConnections: options.maxConnections ?? 10,
      connectTimeout: Duration.min(timeout, Duration.seconds(5))
    })
    return client.pipe(
      Layer.retry(
        Retry.connect(timeout).pipe(
          Schedule.whileInput((e: { message?: string }) => !/password|authentication|does not exist/i.test(describe(e)))
        )
      ),
      Layer.mapError((cause) => new DatabaseUnavailable({ ...target, reason: describe(cause) }))
    )
  }))

/** `DATABASE_URL` (required), `DATABASE_POOL_MAX` (default 10), `DATABASE_CONNECT_TIMEOUT` (default 5 s). */
export const config = Config.all({
  url: Config.redacted("DATABASE_URL").pipe(Config.option),
  maxConnections: Config.integer("DATABASE_POOL_MAX").pipe(Config.withDefault(10)),
  connectTimeout: Config.duration("DATABASE_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5)))
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
    return layer({ ...c, url: c.url.value, applicationName: options?.applicationName })
  }))
