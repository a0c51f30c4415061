/**
 * What this build of the knowledge app can resume: `duraflow upgrade-check
 * --registry dist/registry.js` (deployed folder) or `--registry
 * apps/knowledge-server/src/registry.ts` (workspace) checks the stored runs against it.
 */
import { IngestDocument, KnowledgeDomain } from "@duraflow/knowledge"
import { UpgradeCheck } from "@duraflow/runtime-core"

export const registry: UpgradeCheck.Registry = UpgradeCheck.registry(KnowledgeDomain.prefix, [IngestDocument.declaration])
