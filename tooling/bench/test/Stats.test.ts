import { describe, expect, it } from "vitest"
import * as Stats from "../src/Stats.js"

describe("Stats", () => {
  it("median of odd and even counts", () => {
    expect(Stats.median([3, 1, 2])).toBe(2)
    expect(Stats.median([4, 1, 3, 2])).toBe(2.5)
    expect(Stats.median([])).toBeNaN()
  })

  it("nearest-rank percentiles", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    expect(Stats.percentile(values, 50)).toBe(50)
    expect(Stats.percentile(values, 99)).toBe(99)
    expect(Stats.percentile(values, 100)).toBe(100)
    expect(Stats.percentile([7], 99)).toBe(7)
  })

  it("median (min-max)", () => {
    expect(Stats.summary([2, 1, 3])).toBe("2.0 (1.0-3.0)")
    expect(Stats.summary([5], 0)).toBe("5")
    expect(Stats.summary([])).toBe("-")
  })
})
