/**
 * The knowledge-server process. Configured by `DATABASE_URL`, `PORT` (default
 * 4002), `WORKFLOW_MODE` and `ONTOLOGY_URL` (default http://127.0.0.1:4001);
 * SIGTERM/SIGINT shut it down gracefully.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as KnowledgeServer from "./KnowledgeServer.js"

Layer.launch(KnowledgeServer.layer).pipe(NodeRuntime.runMain)
