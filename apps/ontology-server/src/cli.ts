/**
 * This app's `duraflow` command (`npm run -s duraflow -- doctor "$DATABASE_URL"` in its
 * deployed folder): the operator's command, knowing the ontology domain's migrations.
 */
import { main } from "@duraflow/cli"
import { OntologyDomain } from "@duraflow/ontology"

main({ domains: [OntologyDomain] })
