/**
 * This app's `duraflow` command (`npm run -s duraflow -- doctor "$DATABASE_URL"` in its
 * deployed folder): the operator's command, knowing the knowledge domain's migrations.
 */
import { main } from "@duraflow/cli"
import { KnowledgeDomain } from "@duraflow/knowledge"

main({ domains: [KnowledgeDomain] })
