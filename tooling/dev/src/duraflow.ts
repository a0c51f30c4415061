/**
 * The workspace's `duraflow` (`npx -y pnpm@10.34.8 -s duraflow ...`): the operator's
 * command knowing the code of both domains, so `doctor` compares their migrations too.
 */
import { main } from "@duraflow/cli"
import { KnowledgeDomain } from "@duraflow/knowledge"
import { OntologyDomain } from "@duraflow/ontology"

main({ domains: [KnowledgeDomain, OntologyDomain] })
