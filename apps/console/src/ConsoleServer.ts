/**
 * The console's HTTP server: a JSON API under `/api` that proxies to the apps
 * (the browser never talks to an app), and the page's static files (Preact,
 * htm and uPlot shipped from node_modules as ES modules; no build step).
 *
 * - `GET  /api/apps`                                             every app: prefix, URL, replicas, health
 * - `GET  /api/apps/:prefix/runs?workflow=&status=&limit=&cursor=` the app's runs, newest first
 * - `GET  /api/apps/:prefix/runs/:workflow/:executionId`          one run (payload, result or error)
 * - `GET  /api/apps/:prefix/runs/:workflow/:executionId/steps`    its steps (timeline)
 * - `POST /api/apps/:prefix/runs/:workflow/:executionId/cancel|resume|retry`   operator actions
 * - `POST /api/apps/:prefix/runs/:workflow/:executionId/signals/:name`         a signal, JSON body
 * - `GET  /api/apps/:prefix/stats`                               runs started, succeeded, failed per minute, last hour
 *
 * The app's answer (status and JSON body, its 401/404/409 included) is passed
 * through as it is; an app that does not answer is a 502 `AppUnreachable`, an
 * unknown prefix a 404 `UnknownApp`. Actions carry the console's operator token.
 */
import { RequestGuard } from "@duraflow/runtime-core"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { createServer } from "node:http"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Stats from "./Stats.js"
import { Upstreams } from "./Upstreams.js"

const require = createRequire(import.meta.url)
const packageDir = (name: string) => {
  const main = require.resolve(name)
  let dir = dirname(main)
  while (!dir.endsWith(`node_modules/${name}`) && dir !== dirname(dir)) dir = dirname(dir)
  return dir
}
const publicDir = fileURLToPath(new URL("../public/", import.meta.url))

interface Asset {
  readonly body: string
  readonly contentType: string
}

const js = "text/javascript; charset=utf-8"
const read = (path: string) => readFileSync(path, "utf8")

/** The import map the page loads modules with (bare names to the vendored files). */
const importMap = JSON.stringify({
  imports: {
    "preact": "/vendor/preact.mjs",
    "preact/hooks": "/vendor/preact-hooks.mjs",
    "htm": "/vendor/htm.mjs",
    "uplot": "/vendor/uplot.mjs"
  }
})

const loadAssets = (): ReadonlyMap<string, Asset> => {
  const preact = packageDir("preact")
  const htm = packageDir("htm")
  const uplot = packageDir("uplot")
  const index = read(join(publicDir, "index.html")).replace("__IMPORT_MAP__", importMap)
  return new Map<string, Asset>([
    ["/", { body: index, contentType: "text/html; charset=utf-8" }],
    ["/app.js", { body: read(join(publicDir, "app.js")), contentType: js }],
    ["/timeline.js", { body: read(join(publicDir, "timeline.js")), contentType: js }],
    ["/style.css", { body: read(join(publicDir, "style.css")), contentType: "text/css; charset=utf-8" }],
    ["/vendor/preact.mjs", { body: read(join(preact, "dist/preact.mjs")), contentType: js }],
    ["/vendor/preact-hooks.mjs", { body: read(join(preact, "hooks/dist/hooks.mjs")), contentType: js }],
    ["/vendor/htm.mjs", { body: read(join(htm, "dist/htm.module.js")), contentType: js }],
    ["/vendor/uplot.mjs", { body: read(join(uplot, "dist/uPlot.esm.js")), contentType: js }],
    ["/vendor/uplot.css", { body: read(join(uplot, "dist/uPlot.min.css")), contentType: "text/css; charset=utf-8" }]
  ])
}

/** Only our own scripts and the one inline import map (by its hash); nothing inline otherwise. */
const contentSecurityPolicy = () => {
  const hash = createHash("sha256").update(importMap).digest("base64")
  return `default-src 'self'; script-src 'self' 'sha256-${hash}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; ` +
    `connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`
}

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status })

const unknownApp = (prefix: string) => json(404, { _tag: "UnknownApp", prefix, message: `no app with prefix ${JSON.stringify(prefix)} is known to the console` })

const param = (params: Readonly<Record<string, string | undefined>>, name: string) => params[name] ?? ""

/** The app's base URL for the route's `:prefix`, then `f`; a 404 when the console does not know the app. */
const withApp = <R>(
  f: (url: string, params: Readonly<Record<string, string | undefined>>) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const upstreams = yield* Upstreams
    const url = yield* upstreams.urlOf(param(params, "prefix"))
    return yield* Option.match(url, { onNone: () => Effect.succeed(unknownApp(param(params, "prefix"))), onSome: (u) => f(u, params) })
  })

const runPath = (params: Readonly<Record<string, string | undefined>>) =>
  `/runs/${encodeURIComponent(param(params, "workflow"))}/${encodeURIComponent(param(params, "executionId"))}`

const proxy = (method: "GET" | "POST", path: (params: Readonly<Record<string, string | undefined>>, search: string) => string, operator = false) =>
  withApp((url, params) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (method === "POST") {
        const refused = crossSite(request)
        if (refused) return refused
      }
      const search = new URL(request.url, "http://console").search
      const body = method === "POST" ? yield* Effect.orElseSucceed(request.json, () => null) : undefined
      const upstreams = yield* Upstreams
      const answer = yield* upstreams.call(url, { method, path: path(params, search), body, operator })
      return json(answer.status, answer.body)
    }).pipe(Effect.catchAll(() => Effect.succeed(json(400, { _tag: "MalformedRequest", message: "could not read the request" }))))
  )

/**
 * Actions carry the console's operator token, so another site must not be able to
 * make a visitor's browser send them (CSRF): a POST must be JSON (a cross-site
 * JSON POST needs a CORS preflight, which the console never grants) and, when the
 * browser names its origin, come from the console's own host.
 */
const crossSite = (request: HttpServerRequest.HttpServerRequest) => {
  const contentType = request.headers["content-type"] ?? ""
  if (!/^application\/json\b/i.test(contentType)) {
    return json(415, { _tag: "UnsupportedMediaType", message: "actions must be sent as application/json" })
  }
  const origin = request.headers["origin"]
  if (origin !== undefined && origin !== "null") {
    let host: string | undefined
    try {
      host = new URL(origin).host
    } catch {
      host = undefined
    }
    if (host !== request.headers["host"]) return json(403, { _tag: "Forbidden", message: "cross-site request refused" })
  } else if (origin === "null") {
    return json(403, { _tag: "Forbidden", message: "cross-site request refused" })
  }
  return undefined
}

/** Only the list's own filters are passed on. */
const listSearch = (search: string) => {
  const given = new URLSearchParams(search)
  const kept = new URLSearchParams()
  for (const key of ["workflow", "status", "limit", "cursor", "since", "until"]) {
    const value = given.get(key)
    if (value !== null && value !== "") kept.set(key, value)
  }
  const text = kept.toString()
  return text === "" ? "" : `?${text}`
}

export const router = (assets: ReadonlyMap<string, Asset>) => {
  let r = HttpRouter.empty.pipe(
    HttpRouter.get("/api/apps", Effect.flatMap(Upstreams, (u) => Effect.map(u.list, (apps) => json(200, apps)))),
    HttpRouter.get("/api/apps/:prefix/runs", proxy("GET", (_, search) => `/runs${listSearch(search)}`)),
    HttpRouter.get("/api/apps/:prefix/stats", withApp((url) =>
      Effect.flatMap(Upstreams, (u) => Effect.map(Stats.lastHour(u, url), (s) => json(200, s))))),
    HttpRouter.get("/api/apps/:prefix/runs/:workflow/:executionId", proxy("GET", (p) => runPath(p))),
    HttpRouter.get("/api/apps/:prefix/runs/:workflow/:executionId/steps", proxy("GET", (p) => `${runPath(p)}/steps`)),
    HttpRouter.post("/api/apps/:prefix/runs/:workflow/:executionId/cancel", proxy("POST", (p) => `${runPath(p)}/cancel`, true)),
    HttpRouter.post("/api/apps/:prefix/runs/:workflow/:executionId/resume", proxy("POST", (p) => `${runPath(p)}/resume`, true)),
    HttpRouter.post("/api/apps/:prefix/runs/:workflow/:executionId/retry", proxy("POST", (p) => `${runPath(p)}/retry`, true)),
    HttpRouter.post(
      "/api/apps/:prefix/runs/:workflow/:executionId/signals/:name",
      proxy("POST", (p) => `${runPath(p)}/signals/${encodeURIComponent(param(p, "name"))}`, true)
    ),
    HttpRouter.get("/health", Effect.succeed(json(200, { status: "ok" })))
  )
  const csp = contentSecurityPolicy()
  for (const [path, asset] of assets) {
    r = HttpRouter.get(r, path as HttpRouter.PathInput, Effect.succeed(HttpServerResponse.text(asset.body, {
      contentType: asset.contentType,
      headers: { "content-security-policy": csp, "x-content-type-options": "nosniff", "cache-control": "no-cache" }
    })))
  }
  // the page's routes (#/...) are client-side; anything else is a JSON 404
  return HttpRouter.all(r, "*", Effect.succeed(json(404, { _tag: "NotFound", message: "no such route" })))
}

/** The page polls every few seconds: only actions (POST) are worth a log line. */
const logActions = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    request.method === "GET" ? HttpMiddleware.withLoggerDisabled(app) : app)
)

/** The console on `host:port`; logs `Listening on http://...` and each action. */
export const layer = (port: number, host = "127.0.0.1") =>
  // as the apps: the rest of an unread body is read before the answer, a request Node cannot parse gets a 400
  HttpServer.serve(RequestGuard.readsWholeBody(router(loadAssets())), (app) => HttpMiddleware.logger(logActions(app))).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(() => createServer().on("clientError", RequestGuard.answerClientError), { port, host }))
  )
