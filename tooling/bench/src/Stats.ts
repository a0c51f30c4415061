/** The few statistics the benchmark prints: nearest-rank percentiles, medians and "median (min-max)". */

/** Nearest-rank percentile (0 < p <= 100) of `values`; NaN for none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/** The middle value (the mean of the two middle values for an even count); NaN for none. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** `median (min-max)`, or the value alone when there is one, with `digits` decimals. */
export const summary = (values: ReadonlyArray<number>, digits = 1): string => {
  if (values.length === 0) return "-"
  const fmt = (x: number) => x.toFixed(digits)
  const m = fmt(median(values))
  if (values.length === 1) return m
  return `${m} (${fmt(Math.min(...values))}-${fmt(Math.max(...values))})`
}
