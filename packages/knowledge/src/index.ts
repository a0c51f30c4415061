// Public API of @duraflow/knowledge: pure text processing (chunking, NER, co-occurrence) for knowledge ingestion.
export * as Chunker from "./Chunker.js"
export * as CoOccurrence from "./CoOccurrence.js"
export * as EntityExtractor from "./EntityExtractor.js"
export * as KnowledgeError from "./KnowledgeError.js"
export * as KnowledgeModel from "./KnowledgeModel.js"
export * as SampleDocuments from "./SampleDocuments.js"
