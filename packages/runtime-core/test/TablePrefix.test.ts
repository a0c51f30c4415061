import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { TablePrefix } from "../src/index.js"

describe("TablePrefix", () => {
  it.effect("accepts lowercase identifiers and derives names within 63 bytes", () =>
    Effect.gen(function*() {
      for (const ok of ["knowledge", "ontology", "ab", "billing_v2", "a1_b2", "x".repeat(TablePrefix.MAX_LENGTH)]) {
        const prefix = yield* TablePrefix.make(ok)
        expect(prefix).toBe(ok)
        // the cluster's index names are the longest derived names (the pending index: our patch)
        for (const suffix of ["_messages_request_id_idx", "_messages_pending_idx", "_messages_shard_idx"]) {
          expect(Buffer.byteLength(`${TablePrefix.clusterPrefix(prefix)}${suffix}`)).toBeLessThanOrEqual(63)
        }
      }
    }))

  const rejects = (prefix: string, rule: RegExp) =>
    it.effect(`rejects ${JSON.stringify(prefix)}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(TablePrefix.make(prefix))
        expect(error._tag).toBe("InvalidTablePrefix")
        expect(error.prefix).toBe(prefix)
        expect(error.message).toContain(JSON.stringify(prefix))
        expect(error.message).toMatch(rule)
      }))

  rejects("", /2 to 31 characters/)
  rejects("a", /2 to 31 characters/)
  rejects("x".repeat(TablePrefix.MAX_LENGTH + 1), /63-byte identifier limit/)
  rejects("Knowledge", /lowercase identifier/)
  rejects("1abc", /start with a letter/)
  rejects("know-ledge", /lowercase identifier/)
  rejects("knowledge_", /not ending with an underscore/)
  rejects("know__ledge", /single underscores/)
  rejects("pg", /Postgres reserves/)
  rejects("pg_stats", /must not be "pg" or start with "pg_"/)
  rejects("cluster", /@effect\/cluster's default prefix/)
  rejects("select", /reserved word/)
  rejects("user", /reserved word/)

  it("the Schema rejects with the same rule", () => {
    const result = TablePrefix.decode("Bad-Prefix").pipe(Effect.either, Effect.runSync)
    expect(Either.isLeft(result) && result.left.message).toMatch(/Invalid table prefix "Bad-Prefix": must be a lowercase/)
  })

  it("table names carry the prefix and are bounded", () => {
    const p = TablePrefix.unsafeMake("knowledge")
    expect(TablePrefix.table(p, "documents")).toBe("knowledge_documents")
    expect(() => TablePrefix.table(p, "x".repeat(60))).toThrow(/at most 63 bytes/)
    expect(() => TablePrefix.table(p, "Bad Name")).toThrow(/lowercase/)
    expect(() => TablePrefix.unsafeMake("Nope")).toThrow(/Invalid table prefix "Nope"/)
  })

  it("lock spaces differ per prefix and are valid oids", () => {
    const spaces = ["knowledge", "ontology", "billing", "ab"].map((p) => TablePrefix.lockSpace(TablePrefix.unsafeMake(p)))
    expect(new Set(spaces).size).toBe(spaces.length)
    for (const s of spaces) expect(s >= 0 && s <= 0x7fffffff).toBe(true)
  })
})
