/**
 * The console process. Configured by `PORT` (default 4000), `HOST` (default
 * 127.0.0.1: it has no login of its own), `CONSOLE_APPS`
 * (the apps' base URLs, comma-separated), `DATABASE_URL` (optional: finds every
 * app on the database and its replicas; a read-only role is enough) and
 * `DURAFLOW_OPERATOR_TOKEN` (sent to the apps with cancel, resume, retry and
 * signals). SIGTERM/SIGINT stop it.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import * as ConsoleServer from "./ConsoleServer.js"
import * as Upstreams from "./Upstreams.js"

const nonEmpty = (name: string) =>
  Effect.map(Config.option(Config.redacted(name)), Option.filter((v) => Redacted.value(v).trim() !== ""))

const main = Layer.unwrapEffect(Effect.gen(function*() {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(4000))
  const host = yield* Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
  const apps = yield* Config.string("CONSOLE_APPS").pipe(Config.withDefault(""))
  const config: Upstreams.ConsoleConfig = {
    apps: apps.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    databaseUrl: yield* nonEmpty("DATABASE_URL"),
    operatorToken: yield* nonEmpty("DURAFLOW_OPERATOR_TOKEN")
  }
  return ConsoleServer.layer(port, host).pipe(Layer.provide(Upstreams.layer(config)), Layer.provide(FetchHttpClient.layer))
}))

Layer.launch(main).pipe(NodeRuntime.runMain)
