// Public API of @duraflow/knowledge: text processing (chunking, NER, co-occurrence) for knowledge ingestion, and
// persistence of indexed documents in the `knowledge_*` tables.
export * as Chunker from "./Chunker.js"
export * as CoOccurrence from "./CoOccurrence.js"
export * as EntityExtractor from "./EntityExtractor.js"
export * as IngestDocument from "./IngestDocument.js"
export * as KnowledgeApi from "./KnowledgeApi.js"
export * as KnowledgeDomain from "./KnowledgeDomain.js"
export * as KnowledgeError from "./KnowledgeError.js"
export * as KnowledgeHttp from "./KnowledgeHttp.js"
export * as KnowledgeModel from "./KnowledgeModel.js"
export * as KnowledgeRepository from "./KnowledgeRepository.js"
export * as OntologyClient from "./OntologyClient.js"
export * as SampleDocuments from "./SampleDocuments.js"
