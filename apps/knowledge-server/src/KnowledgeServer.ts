/**
 * The knowledge app: the knowledge domain (prefix `knowledge`, its migrations,
 * the `IngestDocument` workflow, which asks the ontology app at `ONTOLOGY_URL`
 * for entity classes) on runtime-core, served over HTTP.
 */
import { IngestDocument, KnowledgeApi, KnowledgeDomain, KnowledgeHttp, KnowledgeRepository } from "@duraflow/knowledge"
import { AppRuntime, AppServer } from "@duraflow/runtime-core"
import { Layer } from "effect"
import { createRequire } from "node:module"

// the app's manifest: ../package.json from src/ (workspace) and from dist/ (deployed build) alike
const pkg = createRequire(import.meta.url)("../package.json") as { readonly name: string; readonly version: string }

export const DEFAULT_PORT = 4002

export const runtime = AppRuntime.layerConfig({
  prefix: KnowledgeDomain.prefix,
  migrations: KnowledgeDomain.migrations,
  workflows: IngestDocument.layer,
  // recorded on every run (startedBy / resumedBy); APP_VERSION overrides it
  version: pkg.version
})

/** Serves the app; `PORT` (default 4002), `DATABASE_URL`, `WORKFLOW_MODE`, `ONTOLOGY_URL`. */
export const layer = AppServer.layerConfig(KnowledgeApi.KnowledgeApi, {
  groups: KnowledgeHttp.layer.pipe(Layer.provide(KnowledgeRepository.layer)),
  defaultPort: DEFAULT_PORT,
  // the OpenAPI document names the app and its version
  info: { title: pkg.name, version: pkg.version }
}).pipe(Layer.provide(runtime))
