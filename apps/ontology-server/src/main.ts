/**
 * The ontology-server process. Configured by `DATABASE_URL`, `PORT` (default
 * 4001) and `WORKFLOW_MODE`; SIGTERM/SIGINT shut it down gracefully (the HTTP
 * server stops first, then the engine releases its shards, then the pool).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as OntologyServer from "./OntologyServer.js"

Layer.launch(OntologyServer.layer).pipe(NodeRuntime.runMain)
