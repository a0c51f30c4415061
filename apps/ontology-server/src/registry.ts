/**
 * What this build of the ontology app can resume: the app's own `duraflow upgrade-check`
 * (`npm run -s duraflow -- upgrade-check` in its deployed folder) checks the stored runs
 * against it; elsewhere `--registry dist/registry.js` (or apps/ontology-server/src/registry.ts).
 */
import { OntologyWorkflows } from "@duraflow/ontology"

export const registry = OntologyWorkflows.registry
