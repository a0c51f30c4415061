/**
 * Everything the ontology domain runs on its engine, in one place: the
 * workflow layers and schedule an app registers, and the `registry` that
 * `duraflow upgrade-check` checks stored runs against (workflows, the
 * activities they record, their signals).
 */
// the layer's type names these modules: in scope here, the declaration build (tsc) can name them
import type { RuntimeError as _RuntimeError, WorkflowRuntime as _WorkflowRuntime } from "@duraflow/runtime-core"
import { UpgradeCheck } from "@duraflow/runtime-core"
import { Layer } from "effect"
import * as OntologyDomain from "./OntologyDomain.js"
import * as PublishOntology from "./PublishOntology.js"
import * as RevalidateOntologies from "./RevalidateOntologies.js"

/** The workflows and schedules, for `AppRuntime.layerConfig({ workflows })`. */
export const layer = Layer.mergeAll(PublishOntology.layer, RevalidateOntologies.layer, RevalidateOntologies.nightly)

export const registry: UpgradeCheck.Registry = UpgradeCheck.registry(OntologyDomain.prefix, [
  UpgradeCheck.workflow(PublishOntology.PublishOntology, {
    activities: [PublishOntology.ParseAndValidate, PublishOntology.PersistVersion]
  }),
  UpgradeCheck.workflow(RevalidateOntologies.RevalidateOntologies, { activities: [RevalidateOntologies.Revalidate] })
])
