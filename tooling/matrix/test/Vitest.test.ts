import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { Vitest } from "../src/index.js"

const passing: Vitest.VitestReport = {
  numPassedTests: 3,
  numFailedTests: 0,
  numPendingTests: 1,
  testResults: [{ name: "/repo/a/test/Ok.test.ts", status: "passed", assertionResults: [] }]
}

describe("Vitest", () => {
  it("a non-zero exit with no failed test (an unhandled error: not in the JSON report) is one failure", () => {
    expect(Vitest.summarizeRun(Option.some(0), Option.some(passing), "/repo")).toEqual({
      passed: 3,
      failed: 0,
      skipped: 1,
      failures: []
    })
    expect(Vitest.summarizeRun(Option.some(1), Option.some(passing), "/repo")).toMatchObject({
      passed: 3,
      failed: 1,
      error: "vitest exited with 1 although no test failed"
    })
    expect(Vitest.summarizeRun(Option.some(1), Option.none(), "/repo")).toMatchObject({
      failed: 1,
      error: "vitest exited with 1 and wrote no report"
    })
    expect(Vitest.summarizeRun(Option.none(), Option.none(), "/repo")).toMatchObject({ failed: 1 })
  })

  it("failureDetails: the failed tests and unhandled errors from vitest's output, else its tail", () => {
    const output = [
      "$ npx vitest run",
      " ✓ |@duraflow/runtime-core| test/TablePrefix.test.ts (17 tests) 248ms",
      "",
      "⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯",
      "",
      " FAIL  |@duraflow/runtime-core| test/Signals.test.ts > raceAll",
      "Error: Test timed out in 60000ms.",
      "⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯[1/1]⎯",
      "",
      "⎯⎯⎯⎯⎯⎯ Unhandled Errors ⎯⎯⎯⎯⎯⎯",
      "Vitest caught 1 unhandled error during the test run.",
      "⎯⎯⎯⎯⎯ Unhandled Rejection ⎯⎯⎯⎯⎯",
      "Error: connection terminated",
      " ❯ test/Replicas.test.ts:12:3",
      "",
      " Test Files  1 failed | 30 passed (31)",
      "      Errors  1 error"
    ].join("\n")
    const details = Vitest.failureDetails(output)
    expect(details).not.toContain("TablePrefix")
    expect(details).toContain("FAIL  |@duraflow/runtime-core| test/Signals.test.ts > raceAll\nError: Test timed out")
    expect(details).toContain("Unhandled Rejection ⎯⎯⎯⎯⎯\nError: connection terminated\n ❯ test/Replicas.test.ts:12:3")
    expect(details).toContain("Errors  1 error")
    const long = Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n")
    expect(Vitest.failureDetails(long, 3)).toBe("line 97\nline 98\nline 99")
  })

  it("totals and the totals line", () => {
    expect(Vitest.formatTotals(Vitest.totals([{ passed: 1, failed: 2, skipped: 3 }, { passed: 10, failed: 0, skipped: 1 }])))
      .toBe("11 passed, 2 failed, 4 skipped")
  })
})
