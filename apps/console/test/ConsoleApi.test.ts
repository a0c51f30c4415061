/**
 * The console's JSON API against real processes: both apps under their own
 * app roles with an operator token, the console under a read-only observer role.
 * It finds the apps (prefix, replicas, health), lists and filters runs, shows a
 * run with its steps, proxies actions with the token (the app's refusals pass
 * through), and counts the last hour's runs.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { TestProcess } from "@duraflow/runtime-core/testing"
import { logsOnFailure, poll, post, request, startStack, TOKEN } from "./Stack.js"

const turtle = "@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:A> a owl:Class ."
const document = (documentId: string, ontologyId?: string) => ({
  documentId,
  title: "Ada Lovelace in London",
  text: "Ada Lovelace worked with Charles Babbage in London.",
  ...(ontologyId ? { ontologyId } : {})
})

describe("console API", () => {
  layer(TestDatabase.layer("console_api"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("apps, runs, a run with its steps, actions through the owning app, stats", () => {
      let processes: ReadonlyArray<TestProcess.TestProcess> = []
      return logsOnFailure(() => processes, Effect.gen(function*() {
        const stack = yield* startStack()
        processes = stack.processes
        const api = `${stack.console}/api`

        // the apps, found on the database by an observer role and asked for their health
        const apps = yield* poll("both apps with one replica", request(`${api}/apps`), (r) =>
          Array.isArray(r.body) && r.body.length === 2 && r.body.every((a: any) => a.replicas === 1))
        expect(apps.body.map((a: any) => [a.prefix, a.url, a.health?.status])).toEqual([
          ["knowledge", stack.knowledge, "ok"],
          ["ontology", stack.ontology, "ok"]
        ])

        // a run that succeeds, one that fails (its ontology does not exist)
        const published = yield* post(`${stack.ontology}/runs/PublishOntology`, { ontologyId: "tiny", turtle })
        expect(published.status).toBe(202)
        const failing = yield* post(`${stack.knowledge}/runs/IngestDocument`, document("doc-1", "missing"))
        expect(failing.status).toBe(202)
        const failedId: string = failing.body.executionId
        const run = yield* poll("the ingest to fail", request(`${api}/apps/knowledge/runs/IngestDocument/${failedId}`), (r) =>
          r.body?.status === "failed")
        expect(run.body.payload).toMatchObject({ documentId: "doc-1", ontologyId: "missing" })
        expect(run.body.error).toMatchObject({ _tag: "UnknownOntology" })

        // lists with filters
        const failedRuns = yield* request(`${api}/apps/knowledge/runs?status=failed&workflow=IngestDocument`)
        expect(failedRuns.status).toBe(200)
        expect(failedRuns.body.map((r: any) => r.executionId)).toEqual([failedId])
        expect((yield* request(`${api}/apps/knowledge/runs?status=succeeded`)).body).toEqual([])
        const ontologyRuns = yield* poll("the publish to succeed", request(`${api}/apps/ontology/runs`), (r) =>
          r.body?.[0]?.status === "succeeded")
        expect(ontologyRuns.body[0].workflow).toBe("PublishOntology")
        expect((yield* request(`${api}/apps/knowledge/runs?status=bogus`)).status).toBe(400)
        // pages: the cursor is passed on
        const first = yield* request(`${api}/apps/knowledge/runs?limit=1&ignored=x`)
        expect(first.body).toHaveLength(1)
        const next = yield* request(`${api}/apps/knowledge/runs?limit=1&cursor=${encodeURIComponent(first.body[0].cursor)}`)
        expect(next.status).toBe(200)
        expect(next.body.map((r: any) => r.executionId)).not.toContain(first.body[0].executionId)

        // its steps (the timeline's data)
        const steps = yield* request(`${api}/apps/knowledge/runs/IngestDocument/${failedId}/steps`)
        expect(steps.status).toBe(200)
        expect(steps.body.source).toBe("engine-storage")
        expect(steps.body.steps.length).toBeGreaterThan(0)

        // actions: the app wants the token, the console sends it
        expect((yield* post(`${stack.knowledge}/runs/IngestDocument/${failedId}/retry`)).status).toBe(401)
        const cancelFinished = yield* post(`${api}/apps/knowledge/runs/IngestDocument/${failedId}/cancel`)
        expect(cancelFinished.status).toBe(409)
        expect(cancelFinished.body._tag).toBe("RunConflict")
        const retried = yield* post(`${api}/apps/knowledge/runs/IngestDocument/${failedId}/retry`)
        expect(retried.status).toBe(202)
        expect(retried.body).toMatchObject({ retryOf: failedId, attempt: 2 })
        // no cross-site actions: JSON only, and from the console's own origin when one is named
        const retryUrl = `${api}/apps/knowledge/runs/IngestDocument/${failedId}/retry`
        expect((yield* request(retryUrl, { method: "POST", headers: { "content-type": "text/plain" }, body: "null" })).status).toBe(415)
        const foreign = yield* request(retryUrl, {
          method: "POST",
          headers: { "content-type": "application/json", origin: "http://evil.example" },
          body: "null"
        })
        expect(foreign.status).toBe(403)
        const sameOrigin = yield* request(retryUrl, {
          method: "POST",
          headers: { "content-type": "application/json", origin: stack.console },
          body: "null"
        })
        expect(sameOrigin.status).toBe(202)
        const signal = yield* post(`${api}/apps/knowledge/runs/IngestDocument/${failedId}/signals/nope`, {})
        expect(signal.status).toBe(404)

        // the last hour, per minute
        const stats = yield* poll("the stats to count both ingests", request(`${api}/apps/knowledge/stats`), (r) =>
          r.body?.started?.reduce((a: number, b: number) => a + b, 0) >= 2)
        expect(stats.body.times).toHaveLength(60)
        expect(stats.body.failed.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThanOrEqual(1)

        // unknown apps and routes; the page and its modules
        expect((yield* request(`${api}/apps/nope/runs`)).body._tag).toBe("UnknownApp")
        expect((yield* request(`${stack.console}/nope`)).status).toBe(404)
        const page = yield* request(`${stack.console}/`)
        expect(page.status).toBe(200)
        expect(page.headers.get("content-security-policy")).toContain("script-src 'self' 'sha256-")
        expect(page.body).toContain("/vendor/preact.mjs")
        for (const asset of ["/app.js", "/timeline.js", "/vendor/preact.mjs", "/vendor/preact-hooks.mjs", "/vendor/htm.mjs", "/vendor/uplot.mjs"]) {
          const answer = yield* request(`${stack.console}${asset}`)
          expect([asset, answer.status, answer.headers.get("content-type")]).toEqual([asset, 200, "text/javascript; charset=utf-8"])
        }
        // the token never reaches the browser
        expect(JSON.stringify((yield* request(`${api}/apps`)).body)).not.toContain(TOKEN)
      }))
    })
  })
})
