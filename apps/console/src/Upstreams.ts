/**
 * The apps the console talks to. Their base URLs come from `CONSOLE_APPS`
 * (comma-separated); each app says its own prefix on `GET /health`. With a
 * `DATABASE_URL`, the console also finds every app on the database and its live
 * replicas (`AppDirectory.discover`: system catalogs only, so a read-only role
 * with no grant on any app's tables is enough), including apps it has no URL
 * for. Runs are never read from the database: they come from the owning app's
 * HTTP API, which keeps the authority (its operator token, its ledger).
 */
import { AppDirectory, Database } from "@duraflow/runtime-core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Option, Redacted } from "effect"

export interface AppView {
  readonly prefix: string
  /** the app's base URL, when the console was told it */
  readonly url: string | null
  /** live replicas from the database (null without a database) */
  readonly replicas: number | null
  /** the app's `/health` answer; null when it did not answer or has no URL */
  readonly health: { readonly status: string; readonly mode: string; readonly databaseReachable: boolean | null } | null
  readonly problem?: string | undefined
}

export interface ConsoleConfig {
  readonly apps: ReadonlyArray<string>
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly operatorToken: Option.Option<Redacted.Redacted<string>>
}

export class Upstreams extends Context.Tag("@duraflow/console/Upstreams")<Upstreams, {
  /** Every app: configured URLs (by their health) merged with those found on the database. */
  readonly list: Effect.Effect<ReadonlyArray<AppView>>
  /** The base URL of the app with `prefix`. */
  readonly urlOf: (prefix: string) => Effect.Effect<Option.Option<string>>
  /** A request to the app: its status and JSON body (operator requests carry the token). */
  readonly call: (
    url: string,
    request: { readonly method: "GET" | "POST"; readonly path: string; readonly body?: unknown; readonly operator?: boolean }
  ) => Effect.Effect<{ readonly status: number; readonly body: unknown }>
}>() {}

const trimSlash = (url: string) => url.replace(/\/+$/, "")

export const make = (config: ConsoleConfig) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    const urls = config.apps.map(trimSlash)
    const prefixOfUrl = new Map<string, string>()

    const call: Context.Tag.Service<Upstreams>["call"] = (url, request) => {
      let req = request.method === "GET"
        ? HttpClientRequest.get(`${url}${request.path}`)
        : HttpClientRequest.post(`${url}${request.path}`).pipe(HttpClientRequest.bodyUnsafeJson(request.body ?? null))
      if (request.operator && Option.isSome(config.operatorToken)) {
        req = HttpClientRequest.bearerToken(req, Redacted.value(config.operatorToken.value))
      }
      return client.execute(req).pipe(
        Effect.flatMap((response) =>
          Effect.map(Effect.orElseSucceed(response.json, () => null), (body) => ({ status: response.status, body }))
        ),
        Effect.scoped,
        Effect.timeout(Duration.seconds(10)),
        Effect.catchAll((e) =>
          Effect.succeed({
            status: 502,
            body: { _tag: "AppUnreachable", message: `the app at ${url} did not answer: ${e._tag === "TimeoutException" ? "timeout" : e.message}` }
          })
        )
      )
    }

    const healthOf = (url: string) =>
      Effect.map(call(url, { method: "GET", path: "/health" }), ({ body, status }) => {
        const health = (body as any)?._tag === "Unhealthy" ? (body as any).health : body
        if (typeof health?.prefix !== "string") {
          return { url, prefix: undefined, health: null, problem: (body as any)?.message ?? `GET /health answered ${status}` }
        }
        prefixOfUrl.set(url, health.prefix)
        return {
          url,
          prefix: health.prefix as string,
          health: {
            status: String(health.status),
            mode: String(health.mode),
            databaseReachable: health.database === null ? null : Boolean(health.database?.reachable)
          },
          problem: undefined
        }
      })

    const discovered = Option.match(sql, {
      onNone: () => Effect.succeed(Option.none<ReadonlyArray<AppDirectory.DiscoveredApp>>()),
      onSome: (sql) =>
        AppDirectory.discover.pipe(
          Effect.provideService(SqlClient.SqlClient, sql),
          Effect.map(Option.some),
          Effect.catchAll((e) => Effect.as(Effect.logWarning("cannot read the apps from the database", e), Option.none()))
        )
    })

    const list = Effect.gen(function*() {
      const [healths, found] = yield* Effect.all([
        Effect.forEach(urls, healthOf, { concurrency: "unbounded" }),
        discovered
      ], { concurrency: 2 })
      const views = new Map<string, AppView>()
      for (const h of healths) {
        const key = h.prefix ?? `?${h.url}`
        views.set(key, {
          prefix: h.prefix ?? "(unknown)",
          url: h.url,
          replicas: Option.isSome(found) ? found.value.find((a) => a.prefix === h.prefix)?.replicas ?? 0 : null,
          health: h.health,
          problem: h.problem
        })
      }
      if (Option.isSome(found)) {
        for (const app of found.value) {
          if (!views.has(app.prefix)) {
            const known = [...prefixOfUrl].find(([, p]) => p === app.prefix)?.[0] ?? null
            views.set(app.prefix, {
              prefix: app.prefix,
              url: known,
              replicas: app.replicas,
              health: null,
              problem: known ? "did not answer /health" : "no URL configured for it (CONSOLE_APPS)"
            })
          }
        }
      }
      return [...views.values()].sort((a, b) => a.prefix.localeCompare(b.prefix))
    })

    const urlOf = (prefix: string) =>
      Effect.gen(function*() {
        const known = [...prefixOfUrl].find(([, p]) => p === prefix)
        if (known) return Option.some(known[0])
        yield* Effect.forEach(urls, healthOf, { concurrency: "unbounded" })
        return Option.fromNullable([...prefixOfUrl].find(([, p]) => p === prefix)?.[0])
      })

    return Upstreams.of({ list, urlOf, call })
  })

/** The upstreams from `config`; with a database URL, a small pool (2 connections) for discovery. */
export const layer = (config: ConsoleConfig) =>
  Option.match(config.databaseUrl, {
    onNone: () => Layer.effect(Upstreams, make(config)),
    onSome: (url) =>
      Layer.effect(Upstreams, make(config)).pipe(
        Layer.provide(Database.layer({ url, applicationName: "duraflow-console", maxConnections: 2 }))
      )
  })
