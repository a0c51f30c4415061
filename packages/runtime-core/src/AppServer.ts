/**
 * Serves an app's HttpApi on Node: the runtime's `health`, `runs` and
 * `workflows` groups, the domain's groups, and the OpenAPI document at
 * `/openapi.json` (titled and versioned from `info`, the app's package). Every
 * answer no handler gave (unknown route, wrong method, unreadable body, a
 * defect) gets a JSON body (`RequestGuard.errors`). The port
 * comes from `PORT`. Closing the layer (SIGTERM/SIGINT through
 * `NodeRuntime.runMain`) stops accepting requests before the engine and the
 * database pool shut down, since they sit below it.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import type * as HttpApi from "@effect/platform/HttpApi"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpApp from "@effect/platform/HttpApp"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Duration, Effect, FiberRef, Layer, LogLevel, Schema } from "effect"
import { createServer } from "node:http"
import * as RequestGuard from "./RequestGuard.js"
import * as RunsHttp from "./RunsHttp.js"

export const portConfig = (fallback: number) =>
  Config.integer("PORT").pipe(
    Config.withDefault(fallback),
    Config.validate({ message: "PORT must be between 0 and 65535", validation: (p) => p >= 0 && p <= 65535 })
  )

/**
 * Nothing may keep a SIGTERM from finishing: a request stuck on an unreachable
 * peer, an activity that ignores interruption. Once SIGTERM or SIGINT
 * arrives, the graceful shutdown (HTTP server, then engine, then pool) gets
 * `timeout`; past it the process exits with code 1 and a log line. The timer
 * is unref'd, so a shutdown that finishes in time is not delayed by it. The
 * default leaves room for the engine's `entityTerminationTimeout` (5 s in runtime-core, see
 * `ClusterRunner.defaults`) and a slow pool close.
 */
export const shutdownDeadline = (timeout: Duration.DurationInput) =>
  Layer.scopedDiscard(
    Effect.acquireRelease(
      Effect.sync(() => {
        const ms = Duration.toMillis(Duration.decode(timeout))
        const arm = (signal: string) => {
          setTimeout(() => {
            console.error(`Shutdown did not finish within ${Duration.format(Duration.decode(timeout))} of ${signal}; exiting`)
            process.exit(1)
          }, ms).unref()
        }
        process.once("SIGTERM", arm)
        process.once("SIGINT", arm)
        return arm
      }),
      (arm) =>
        Effect.sync(() => {
          process.off("SIGTERM", arm)
          process.off("SIGINT", arm)
        })
    )
  )

/** `SHUTDOWN_TIMEOUT` (a duration, default 25 seconds). */
export const shutdownTimeoutConfig = Config.duration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(25)))

/** What the OpenAPI document says the app is: its package's name and version. */
export interface Info {
  readonly title: string
  readonly version: string
}

const OPENAPI_PATH = "/openapi.json"

/** Every method and path the app routes: the API's endpoints, the fallbacks, the document. */
const routesOf = (api: HttpApi.HttpApi.Any): RequestGuard.Routes => [
  ...Object.values((api as unknown as HttpApi.HttpApi.AnyWithProps).groups).flatMap((group) =>
    Object.values(group.endpoints).map((e) => ({ method: e.method, path: e.path }))
  ),
  ...RunsHttp.fallbackRoutes,
  { method: "GET", path: OPENAPI_PATH }
]

/** Whether `error` is one the API declares (it then encodes it with its status), as the platform collects them. */
const declaredErrors = (api: HttpApi.HttpApi.Any): ((error: unknown) => boolean) => {
  const { errorSchema, groups } = api as unknown as HttpApi.HttpApi.AnyWithProps
  const schemas = new Set<Schema.Schema.Any>()
  HttpApiSchema.deunionize(schemas, errorSchema)
  for (const group of Object.values(groups)) {
    HttpApiSchema.deunionize(schemas, group.errorSchema)
    for (const endpoint of Object.values(group.endpoints)) HttpApiSchema.deunionize(schemas, endpoint.errorSchema)
  }
  const checks = Array.from(schemas, (schema) => Schema.is(Schema.typeSchema(schema) as Schema.Schema<unknown>))
  return (error) => checks.some((is) => is(error))
}

/** Load balancers probe `/ready` and `/health` every second or so: not worth a log line each. */
const quietProbes = HttpMiddleware.make((app) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    request.method === "GET" && (request.url === "/ready" || request.url === "/health")
      ? HttpMiddleware.withLoggerDisabled(app)
      : app)
)

/**
 * The platform's request log (one line per request: method, url, status, time)
 * at `debug`: visible with `LOG_LEVEL=debug`. Only the request line is lowered,
 * what the handlers log keeps its own level.
 */
const requestLog = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.locally(
    HttpMiddleware.logger(Effect.locally(app, FiberRef.currentLogLevel, LogLevel.Info)),
    FiberRef.currentLogLevel,
    LogLevel.Debug
  )

export const layer = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR, GOut, E, R>(
  api_: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>,
  options: {
    /** Handlers of the domain's own groups. */
    readonly groups: Layer.Layer<GOut, E, R>
    readonly port: number
    readonly info?: Info | undefined
  }
) => {
  const api = options.info ? api_.annotate(OpenApi.Title, options.info.title).annotate(OpenApi.Version, options.info.version) : api_
  const errors = RequestGuard.errors(routesOf(api), declaredErrors(api))
  return HttpApiBuilder.serve((app) => requestLog(quietProbes(RequestGuard.middleware(app)))).pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: OPENAPI_PATH })),
    // inside the app, before the server turns a failure into an empty answer
    Layer.provide(HttpApiBuilder.middleware(errors)),
    Layer.provide(HttpApiBuilder.middleware(RequestGuard.readsWholeBody)),
    Layer.provide(
      HttpApiBuilder.api(api).pipe(
        Layer.provide(RunsHttp.layer(api)),
        Layer.provide(options.groups)
      )
    ),
    HttpServer.withLogAddress,
    // merged, so callers (tests) can read the bound address
    Layer.provideMerge(NodeHttpServer.layer(() => createServer().on("clientError", RequestGuard.answerClientError), { port: options.port }))
  )
}

/** `layer` with the port from `PORT` (default `fallback`) and the shutdown deadline from `SHUTDOWN_TIMEOUT`. */

export const layerConfig = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR, GOut, E, R>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>,
  options: {
    readonly groups: Layer.Layer<GOut, E, R>
    readonly defaultPort: number
    readonly info?: Info | undefined
  }
) =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all([portConfig(options.defaultPort), shutdownTimeoutConfig]),
      ([port, timeout]) =>
        Layer.merge(layer(api, { groups: options.groups, port, info: options.info }), shutdownDeadline(timeout))
    )
  )
