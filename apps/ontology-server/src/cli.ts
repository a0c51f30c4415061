/**
 * This app's `duraflow` command (`npm run -s duraflow -- doctor "$DATABASE_URL"` in its
 * deployed folder): the operator's command knowing this build's code, the ontology
 * domain's migrations (for `doctor`) and its workflows (`upgrade-check` needs no --registry).
 */
import { main } from "@duraflow/cli"
import { OntologyDomain } from "@duraflow/ontology"
import { registry } from "./registry.js"

main({ domains: [OntologyDomain], registry })
