/** What every `duraflow` command shares: its usage error and its plain text tables. */
import { Data } from "effect"

/** The command cannot do what was asked (bad arguments, an answer the API refused): exit 2. */
export class Usage extends Data.TaggedError("Usage")<{ readonly problem: string }> {}

/** A plain text table: a header row, then one row per entry, columns padded. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}
