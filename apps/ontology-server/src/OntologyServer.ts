/**
 * The ontology app: the ontology domain (prefix `ontology`, its migrations,
 * the `PublishOntology` and nightly `RevalidateOntologies` workflows) on runtime-core, served over HTTP.
 */
import { AppRuntime, AppServer } from "@duraflow/runtime-core"
import { OntologyApi, OntologyDomain, OntologyHttp, OntologyRepository, OntologyWorkflows } from "@duraflow/ontology"
import { Layer } from "effect"
import { createRequire } from "node:module"

// the app's manifest: ../package.json from src/ (workspace) and from dist/ (deployed build) alike
const pkg = createRequire(import.meta.url)("../package.json") as { readonly name: string; readonly version: string }

export const DEFAULT_PORT = 4001

export const runtime = AppRuntime.layerConfig({
  prefix: OntologyDomain.prefix,
  migrations: OntologyDomain.migrations,
  // PublishOntology, RevalidateOntologies and its nightly schedule
  workflows: OntologyWorkflows.layer,
  // recorded on every run (startedBy / resumedBy); APP_VERSION overrides it
  version: pkg.version
})

/** Serves the app; `PORT` (default 4001), `DATABASE_URL`, `WORKFLOW_MODE`. */
export const layer = AppServer.layerConfig(OntologyApi.OntologyApi, {
  groups: OntologyHttp.layer.pipe(Layer.provide(OntologyRepository.layer)),
  defaultPort: DEFAULT_PORT,
  // the OpenAPI document names the app and its version
  info: { title: pkg.name, version: pkg.version }
}).pipe(Layer.provide(runtime))
