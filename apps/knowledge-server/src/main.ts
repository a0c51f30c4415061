/**
 * The knowledge-server process. Configured by `DATABASE_URL`, `PORT` (default
 * 4002), `WORKFLOW_MODE` and `ONTOLOGY_URL` (default http://127.0.0.1:4001);
 * `LOG_FORMAT`, `LOG_LEVEL` and `OTEL_*` (see `Telemetry`); SIGTERM/SIGINT shut it down gracefully.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Telemetry } from "@duraflow/runtime-core"
import { Layer } from "effect"
import * as KnowledgeServer from "./KnowledgeServer.js"

// logs (LOG_FORMAT, LOG_LEVEL) and OTLP traces and metrics (OTEL_*) under everything the app runs
Layer.launch(KnowledgeServer.layer.pipe(Layer.provide(Telemetry.layerConfig("knowledge")))).pipe(
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
