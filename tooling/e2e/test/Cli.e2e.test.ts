/**
 * `duraflow runs ...` against a real app (the knowledge app, with an operator
 * token): list, get and steps of a failed run; retry refused without the token
 * and done with it; the API's refusals (an unknown signal, cancelling a
 * finished run) are the command's errors, exit 2, with their reason.
 * The CLI runs as an operator runs it: a child process started by file path.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { awaitRun, executionId, sampleDocuments, startBoth, withApps } from "../src/Apps.js"

const TOKEN = "e2e-cli-token"
const cli = fileURLToPath(new URL("../../../packages/cli/src/main.ts", import.meta.url))

const duraflow = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<{ readonly stdout: string; readonly stderr: string; readonly code: number | null }>((resume) => {
    const { DURAFLOW_OPERATOR_TOKEN: _, ...rest } = process.env
    const child = spawn(process.execPath, ["--import", "tsx", cli, ...args], { env: { ...rest, ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c) => (stdout += c))
    child.stderr.on("data", (c) => (stderr += c))
    child.on("close", (code) => resume(Effect.succeed({ stdout, stderr, code })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("duraflow runs", () => {
  layer(TestDatabase.layer("e2e_cli"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("list, get, steps, retry (with the token), and the API's refusals as errors", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const { knowledge } = yield* startBoth(apps, db.url, { operatorToken: TOKEN })
          const app = knowledge.baseUrl
          // a document typed with an ontology that does not exist: the run fails
          const id = yield* knowledge.client.workflows.IngestDocument({
            payload: { ...sampleDocuments(1)[0]!, ontologyId: "missing" }
          }).pipe(executionId)
          expect((yield* awaitRun(knowledge, "IngestDocument", id)).status).toBe("failed")

          const list = yield* duraflow(["runs", "list", "--app", app, "--json"])
          expect(list.code, list.stderr).toBe(0)
          expect(JSON.parse(list.stdout)).toContainEqual(expect.objectContaining({ executionId: id, status: "failed" }))
          const table = yield* duraflow(["runs", "list", "--app", app, "--status", "failed"])
          expect(table.stdout).toMatch(new RegExp(`^IngestDocument\\s+${id}\\s+failed\\s`, "m"))

          const get = yield* duraflow(["runs", "get", "--app", app, "IngestDocument", id, "--json"])
          expect(JSON.parse(get.stdout)).toMatchObject({ executionId: id, status: "failed", error: { _tag: "UnknownOntology" } })
          const steps = yield* duraflow(["runs", "steps", "--app", app, "IngestDocument", id])
          expect(steps.code, steps.stderr).toBe(0)
          expect(steps.stdout).toMatch(/^step\s+name\s+when\s+outcome$/m)
          expect(steps.stdout).toMatch(/^activity #1\s/m)

          const refused = yield* duraflow(["runs", "retry", "--app", app, "IngestDocument", id])
          expect(refused.code).toBe(2)
          expect(refused.stderr).toContain("Unauthorized")
          const retried = yield* duraflow(["runs", "retry", "--app", app, "IngestDocument", id, "--json"], {
            DURAFLOW_OPERATOR_TOKEN: TOKEN
          })
          expect(retried.code, retried.stderr).toBe(0)
          expect(JSON.parse(retried.stdout)).toMatchObject({ retryOf: id, attempt: 2 })

          const cancel = yield* duraflow(["runs", "cancel", "--app", app, "IngestDocument", id], { DURAFLOW_OPERATOR_TOKEN: TOKEN })
          expect(cancel.code).toBe(2)
          expect(cancel.stderr).toContain("RunConflict")
          const signal = yield* duraflow(["runs", "signal", "--app", app, "IngestDocument", id, "nope"], {
            DURAFLOW_OPERATOR_TOKEN: TOKEN
          })
          expect(signal.code).toBe(2)
          expect(signal.stderr).toMatch(/404 UnknownSignal/)
          expect(`${signal.stderr}${cancel.stderr}`).not.toMatch(/\n\s+at /)
        })), 240_000)
  })
})
