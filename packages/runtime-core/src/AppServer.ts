/**
 * Serves an app's HttpApi on Node: the runtime's `health` and `runs` groups,
 * the domain's groups, and the OpenAPI document at `/openapi.json`. The port
 * comes from `PORT`. Closing the layer (SIGTERM/SIGINT through
 * `NodeRuntime.runMain`) stops accepting requests before the engine and the
 * database pool shut down, since they sit below it.
 */
import { HttpApiBuilder, HttpMiddleware, HttpServer } from "@effect/platform"
import type { HttpApi, HttpApiGroup } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import * as RequestGuard from "./RequestGuard.js"
import * as RunsHttp from "./RunsHttp.js"

export const portConfig = (fallback: number) =>
  Config.integer("PORT").pipe(
    Config.withDefault(fallback),
    Config.validate({ message: "PORT must be between 0 and 65535", validation: (p) => p >= 0 && p <= 65535 })
  )

export const layer = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR, GOut, E, R>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>,
  options: {
    /** Handlers of the domain's own groups. */
    readonly groups: Layer.Layer<GOut, E, R>
    readonly port: number
  }
) =>
  HttpApiBuilder.serve((app) => HttpMiddleware.logger(RequestGuard.middleware(app))).pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(
      HttpApiBuilder.api(api).pipe(
        Layer.provide(RunsHttp.layer(api)),
        Layer.provide(options.groups)
      )
    ),
    HttpServer.withLogAddress,
    // merged, so callers (tests) can read the bound address
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port }))
  )

/** `layer` with the port from `PORT` (default `fallback`). */
export const layerConfig = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, ApiE, ApiR, GOut, E, R>(
  api: HttpApi.HttpApi<Id, Groups, ApiE, ApiR>,
  options: { readonly groups: Layer.Layer<GOut, E, R>; readonly defaultPort: number }
) =>
  Layer.unwrapEffect(
    Effect.map(portConfig(options.defaultPort), (port) => layer(api, { groups: options.groups, port }))
  )
