/**
 * What this build of the ontology app can resume: `duraflow upgrade-check
 * --registry dist/registry.js` (deployed folder) or `--registry
 * apps/ontology-server/src/registry.ts` (workspace) checks the stored runs against it.
 */
import { OntologyWorkflows } from "@duraflow/ontology"

export const registry = OntologyWorkflows.registry
