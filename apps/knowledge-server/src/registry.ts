/**
 * What this build of the knowledge app can resume: the app's own `duraflow upgrade-check`
 * (`npm run -s duraflow -- upgrade-check` in its deployed folder) checks the stored runs
 * against it; elsewhere `--registry dist/registry.js` (or apps/knowledge-server/src/registry.ts).
 */
import { IngestDocument, KnowledgeDomain } from "@duraflow/knowledge"
import { UpgradeCheck } from "@duraflow/runtime-core"

export const registry: UpgradeCheck.Registry = UpgradeCheck.registry(KnowledgeDomain.prefix, [IngestDocument.declaration])
