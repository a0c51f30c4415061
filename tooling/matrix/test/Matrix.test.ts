import { describe, expect, it } from "@effect/vitest"
import { CliConfig, HelpDoc, Options } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Effect, Option } from "effect"
import { Matrix } from "../src/index.js"

const root = "/repo"
const report: Matrix.VitestReport = {
  numPassedTests: 7,
  numFailedTests: 1,
  numPendingTests: 2,
  numTodoTests: 1,
  testResults: [
    {
      name: "/repo/packages/a/test/Ok.test.ts",
      status: "passed",
      assertionResults: [{ fullName: "a works", status: "passed", failureMessages: [] }]
    },
    {
      name: "/repo/packages/a/test/Bad.test.ts",
      status: "failed",
      assertionResults: [
        { fullName: "a > breaks", status: "failed", failureMessages: ["AssertionError: expected 1 to be 2\n    at x.ts:1"] },
        { fullName: "a > skips", status: "skipped", failureMessages: [] }
      ]
    },
    {
      name: "/repo/tooling/e2e/test/Broken.e2e.test.ts",
      status: "failed",
      message: "Hook timed out in 120000ms.\nmore",
      assertionResults: []
    }
  ]
}

describe("Matrix", () => {
  it("counts a vitest report: a file that failed without a failed test is one more failure", () => {
    const summary = Matrix.summarizeReport(report, root)
    expect(summary).toMatchObject({ passed: 7, failed: 2, skipped: 3 })
    expect(summary.failures).toEqual([
      "packages/a/test/Bad.test.ts > a > breaks: AssertionError: expected 1 to be 2",
      "tooling/e2e/test/Broken.e2e.test.ts: Hook timed out in 120000ms."
    ])
  })

  it("every major x every mode, majors outer", () => {
    expect(Matrix.cells().map(Matrix.cellName)).toEqual([
      "pg15-memory",
      "pg15-durable",
      "pg16-memory",
      "pg16-durable",
      "pg17-memory",
      "pg17-durable",
      "pg18-memory",
      "pg18-durable"
    ])
  })

  it.effect("parses --majors, --modes and --json (@effect/cli); rejects anything else", () =>
    Effect.gen(function*() {
      const parse = (argv: ReadonlyArray<string>) =>
        Options.processCommandLine(Options.all(Matrix.options), Matrix.normalizeArgv(argv), CliConfig.defaultConfig).pipe(
          Effect.map(([error, leftover, args]) =>
            Option.isSome(error)
              ? HelpDoc.toAnsiText(error.value.error).trim()
              : leftover.length > 0
              ? `unknown argument: ${leftover[0]}`
              : args
          ),
          Effect.catchAll((error) => Effect.succeed(HelpDoc.toAnsiText(error.error).trim())),
          Effect.provide(NodeContext.layer)
        )
      expect(yield* parse([])).toEqual({
        majors: [15, 16, 17, 18],
        modes: ["memory", "durable"],
        projects: Matrix.integrationProjects,
        json: Option.none()
      })
      expect(yield* parse(["--", "--majors=18,15", "--modes=durable", "--json", "--projects=@duraflow/ontology"])).toEqual({
        majors: [15, 18],
        modes: ["durable"],
        projects: ["@duraflow/ontology"],
        json: Option.some("-")
      })
      expect(yield* parse(["--json=/tmp/x.json"])).toMatchObject({ json: Option.some("/tmp/x.json") })
      expect(yield* parse(["--majors=14"])).toBe(`--majors: unknown value "14" (expected 15, 16, 17, 18)`)
      expect(yield* parse(["--modes=fast"])).toContain("unknown value \"fast\"")
      expect(yield* parse(["--majors", ","])).toBe("--majors: empty")
      expect(yield* parse(["--major=15"])).toBe("The flag '--major' is not recognized. Did you mean '--majors'?")
    }))

  it("prints the version x mode table, the failures, and the totals line", () => {
    const cell = (major: Matrix.Major, mode: Matrix.Mode, counts: Matrix.Counts, extra: Partial<Matrix.CellResult> = {}) => ({
      major,
      mode,
      version: `${major}.1`,
      durationMs: 65_400,
      failures: [],
      log: `/logs/pg${major}-${mode}.log`,
      ...counts,
      ...extra
    })
    const results: ReadonlyArray<Matrix.CellResult> = [
      cell(15, "memory", { passed: 120, failed: 0, skipped: 1 }),
      cell(15, "durable", { passed: 119, failed: 1, skipped: 1 }, { failures: ["x.test.ts > y: boom"] }),
      cell(16, "memory", { passed: 0, failed: 1, skipped: 0 }, { version: "", error: "StartFailed" })
    ]
    expect(Matrix.formatTable(results)).toBe([
      "postgres  mode     passed  failed  skipped  time  result",
      "--------  -------  ------  ------  -------  ----  ------",
      "15.1      memory      120       0        1  1:05  ok",
      "15.1      durable     119       1        1  1:05  FAIL",
      "16        memory        0       1        0  1:05  ERROR",
      "",
      "15.1 durable: 1 failed (log: /logs/pg15-durable.log)",
      "  - x.test.ts > y: boom",
      "",
      "16 memory: StartFailed (log: /logs/pg16-memory.log)"
    ].join("\n"))
    expect(Matrix.formatTotals(Matrix.totals(results))).toBe("239 passed, 2 failed, 2 skipped")
  })
})
