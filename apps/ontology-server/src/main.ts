/**
 * The ontology-server process. Configured by `DATABASE_URL`, `PORT` (default
 * 4001), `WORKFLOW_MODE`, `LOG_FORMAT`, `LOG_LEVEL` and `OTEL_*` (see `Telemetry`); SIGTERM/SIGINT shut it down gracefully (the HTTP
 * server stops first, then the engine releases its shards, then the pool).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Telemetry } from "@duraflow/runtime-core"
import { Layer } from "effect"
import * as OntologyServer from "./OntologyServer.js"

// logs (LOG_FORMAT, LOG_LEVEL) and OTLP traces and metrics (OTEL_*) under everything the app runs
Layer.launch(OntologyServer.layer.pipe(Layer.provide(Telemetry.layerConfig("ontology")))).pipe(
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
