// Derives an entity graph from mentions: entities named in the same chunk are related, and the more chunks
// they share the stronger the relation. This is the simplest relation signal that needs no extra model.
import type { Mention, Relation } from "./KnowledgeModel.js"

/**
 * Undirected relations between entities that co-occur in at least one chunk. Each pair appears once with
 * `source < target` (code-unit order, locale independent), `weight` = number of distinct chunks containing
 * both, `chunkIndex` = the first such chunk. Several mentions of a pair in one chunk count once.
 * Ordered by `source`, then `target`.
 */
export const relations = (mentions: ReadonlyArray<Mention>): ReadonlyArray<Relation> => {
  const byChunk = new Map<number, Set<string>>()
  for (const { chunkIndex, entity } of mentions) {
    const entities = byChunk.get(chunkIndex)
    if (entities === undefined) byChunk.set(chunkIndex, new Set([entity]))
    else entities.add(entity)
  }
  const pairs = new Map<string, { source: string; target: string; chunkIndex: number; weight: number }>()
  for (const [chunkIndex, entities] of byChunk) {
    const sorted = [...entities].sort(compare)
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        const source = sorted[i]!
        const target = sorted[j]!
        const key = JSON.stringify([source, target])
        const pair = pairs.get(key)
        if (pair === undefined) pairs.set(key, { source, target, chunkIndex, weight: 1 })
        else {
          pair.weight += 1
          pair.chunkIndex = Math.min(pair.chunkIndex, chunkIndex)
        }
      }
    }
  }
  return [...pairs.values()].sort((a, b) => compare(a.source, b.source) || compare(a.target, b.target))
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
