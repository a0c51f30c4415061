/**
 * The console in a real browser (Debian's chromium driven by playwright-core):
 * both apps under their app roles and the console as processes on a fresh
 * database. It finds the apps, filters the runs, opens a failed run (its
 * timeline, its error shown as text, not HTML), retries it once its cause is
 * repaired (the retry succeeds), and cancels a run that waits for the ontology
 * app; with a third app whose runs suspend on a signal (`fixtures/approvals-app.ts`), it
 * draws a timeline with retried activity, durable sleep and signal, delivers a signal and
 * cancels a suspended run. Screenshots go to test-artifacts/console/ at the workspace root.
 */
import type { TestProcess } from "@duraflow/runtime-core/testing"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium, type BrowserContext, type Page } from "playwright-core"
import { inject } from "vitest"
import { logsOnFailure, poll, post, request, startStack } from "./Stack.js"

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]
const artifacts = fileURLToPath(new URL("../../../test-artifacts/console/", import.meta.url))
const turtle = "@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:A> a owl:Class ."
const HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
const document = (documentId: string, ontologyId: string) => ({
  documentId,
  title: `Ada Lovelace ${HOSTILE}`,
  text: "Ada Lovelace worked with Charles Babbage in London.",
  ontologyId
})

/** A fresh profile per run; removed afterwards. */
const browser = Effect.acquireRelease(
  Effect.promise(async () => {
    const profile = mkdtempSync(join(tmpdir(), "duraflow-console-chromium-"))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: inject("chromiumPath"),
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 60_000
    })
    return { context, profile }
  }),
  ({ context, profile }) =>
    Effect.promise(async () => {
      await context.close().catch(() => undefined)
      rmSync(profile, { recursive: true, force: true })
    })
)

const step = <A>(f: () => Promise<A>) => Effect.promise(f)
const shot = (page: Page, name: string) => step(() => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true }))

const problem = inject("chromiumProblem")
if (problem !== "") console.warn(`console browser test skipped: ${problem}`)

describe.skipIf(problem !== "")("console in a browser", () => {
  layer(TestDatabase.layer("console_browser"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("find the apps and runs, open a run's timeline, retry a failed run, signal and cancel suspended runs, cancel a waiting one", () => {
      let processes: ReadonlyArray<TestProcess.TestProcess> = []
      return logsOnFailure(() => processes, Effect.gen(function*() {
        mkdirSync(artifacts, { recursive: true })
        const stack = yield* startStack({ approvals: true })
        processes = stack.processes
        const [ontologyProcess, knowledgeProcess] = stack.processes

        // runs started through the apps' own APIs: one publish, one ingest that fails
        expect((yield* post(`${stack.ontology}/runs/PublishOntology`, { ontologyId: "tiny", turtle })).status).toBe(202)
        const failedId: string = (yield* post(`${stack.knowledge}/runs/IngestDocument`, document("doc-fail", "later"))).body.executionId
        yield* poll("the ingest to fail", request(`${stack.knowledge}/runs/IngestDocument/${failedId}`), (r) => r.body?.status === "failed")

        const { context } = yield* browser
        const page: Page = yield* step(() => context.newPage())
        const errors: Array<string> = []
        page.on("pageerror", (e) => errors.push(String(e)))

        // the apps: prefix, replicas, health, a chart each
        yield* step(() => page.goto(stack.console))
        const cards = page.getByTestId("app-card")
        yield* step(() => expectCount(cards, 3))
        yield* step(() => page.locator('[data-prefix="knowledge"] [data-testid="replicas"]').filter({ hasText: "1" }).waitFor())
        yield* step(() => page.locator('[data-prefix="knowledge"] [data-testid="health"]').filter({ hasText: "ok (durable)" }).waitFor())
        yield* step(() => page.locator('[data-testid="chart-knowledge"] canvas').waitFor())
        yield* shot(page, "1-apps")

        // the knowledge app's runs, filtered to the failed ones
        yield* step(() => page.getByRole("link", { name: "knowledge", exact: true }).click())
        yield* step(() => page.locator(`[data-testid="run-row"][data-execution-id="${failedId}"]`).waitFor())
        yield* step(() => page.getByTestId("filter-status").selectOption("succeeded"))
        yield* step(() => page.getByText("no runs").waitFor())
        yield* step(() => page.getByTestId("filter-status").selectOption("failed"))
        yield* step(() => expectCount(page.getByTestId("run-row"), 1))
        yield* shot(page, "2-runs-failed")

        // the failed run: its timeline, payload and error (the hostile title is text)
        yield* step(() => page.getByRole("link", { name: failedId }).click())
        yield* step(() => page.getByTestId("timeline").locator('[data-kind="activity"]').first().waitFor())
        const payload = yield* step(() => page.getByTestId("payload").textContent())
        expect(payload).toContain(HOSTILE.replace(/"/g, "\\\""))
        expect(yield* step(() => page.locator("main img").count())).toBe(0)
        expect(yield* step(() => page.locator("main b").count())).toBe(0)
        expect(yield* step(() => page.title())).toBe("duraflow console")
        expect(yield* step(() => page.getByTestId("error").textContent())).toContain("UnknownOntology")
        yield* shot(page, "3-failed-run")

        // repaired (the ontology is published), then retried from the console: the new run succeeds
        expect((yield* post(`${stack.ontology}/runs/PublishOntology`, { ontologyId: "later", turtle })).status).toBe(202)
        yield* poll("the ontology to be published", request(`${stack.ontology}/ontologies/later`), (r) => r.status === 200)
        yield* step(() => page.getByTestId("action-retry").click())
        yield* step(() => page.getByTestId("notice").filter({ hasText: `retried as ${failedId}-retry-1` }).waitFor())
        yield* step(() => page.getByTestId("notice-link").click())
        // the app first (a failure then says where the run stands), then the page
        const retried = `${stack.knowledge}/runs/IngestDocument/${encodeURIComponent(`${failedId}-retry-1`)}`
        yield* poll("the retried run to succeed", request(retried), (r) => r.body?.status === "succeeded")
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "succeeded" }).waitFor({ timeout: 30_000 }))
        yield* step(() => page.getByText(`retry of ${failedId}`).waitFor())
        yield* shot(page, "4-retried-run")

        // suspended runs of the approvals app: one is signalled, one cancelled
        const approvals = stack.approvals!
        const toSignal: string = (yield* post(`${approvals}/runs/Approve`, { id: "to-signal" })).body.executionId
        const toCancel: string = (yield* post(`${approvals}/runs/Approve`, { id: "to-cancel" })).body.executionId
        for (const id of [toSignal, toCancel]) {
          yield* poll(`run ${id} to suspend`, request(`${approvals}/runs/Approve/${id}`), (r) => r.body?.status === "suspended")
        }
        yield* step(() => page.goto(`${stack.console}/#/app/approvals`))
        yield* step(() => page.getByTestId("filter-status").selectOption("suspended"))
        yield* step(() => expectCount(page.getByTestId("run-row"), 2))
        yield* step(() => page.getByRole("link", { name: toSignal }).click())
        const timeline = page.getByTestId("timeline")
        yield* step(() => timeline.locator('[data-kind="sleep"]').waitFor())
        expect(yield* step(() => timeline.locator('[data-kind="activity"]').textContent())).toContain("prepare (2 attempts)")
        expect(yield* step(() => timeline.locator('[data-kind="activity"] rect').count())).toBe(2)
        yield* shot(page, "5-suspended-run")
        yield* step(() => page.getByTestId("signal-name").fill("approval"))
        yield* step(() => page.getByTestId("signal-value").fill("\"approved in the console\""))
        yield* step(() => page.getByTestId("action-signal").click())
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "succeeded" }).waitFor({ timeout: 60_000 }))
        yield* step(() => timeline.locator('[data-kind="signal"] circle').waitFor())
        expect(yield* step(() => page.getByTestId("result").textContent())).toContain("approved in the console")
        yield* shot(page, "6-signalled-run")
        yield* step(() => page.goto(`${stack.console}/#/run/approvals/Approve/${encodeURIComponent(toCancel)}`))
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "suspended" }).waitFor())
        yield* step(() => page.getByTestId("action-cancel").click())
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "cancelled" }).waitFor())
        expect((yield* request(`${approvals}/runs/Approve/${toCancel}`)).body.status).toBe("cancelled")
        yield* shot(page, "7-cancelled-suspended-run")

        // the ontology app goes away: a new ingest waits for it; the console cancels it
        yield* ontologyProcess!.kill("SIGKILL")
        const waitingId: string = (yield* post(`${stack.knowledge}/runs/IngestDocument`, document("doc-wait", "tiny"))).body.executionId
        yield* knowledgeProcess!.waitFor((l) => l.includes("retrying"), "60 seconds")
        yield* step(() => page.goto(`${stack.console}/#/run/knowledge/IngestDocument/${encodeURIComponent(waitingId)}`))
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "running" }).waitFor())
        yield* step(() => page.getByTestId("action-cancel").click())
        yield* step(() => page.locator('[data-testid="run"] [data-testid="status"]').filter({ hasText: "cancelled" }).waitFor())
        expect((yield* request(`${stack.knowledge}/runs/IngestDocument/${waitingId}`)).body.status).toBe("cancelled")
        yield* shot(page, "8-cancelled-waiting-run")

        // the apps page shows the ontology app as unreachable
        yield* step(() => page.goto(stack.console))
        yield* step(() => page.locator('[data-prefix="ontology"] [data-testid="health"]').filter({ hasText: "unreachable" }).waitFor({ timeout: 30_000 }))
        yield* shot(page, "9-apps-ontology-down")
        expect(errors).toEqual([])
      }))
    })
  })
})

const expectCount = async (locator: ReturnType<Page["locator"]>, n: number) => {
  const deadline = Date.now() + 30_000
  for (;;) {
    const count = await locator.count()
    if (count === n) return
    if (Date.now() > deadline) throw new Error(`expected ${n} elements, found ${count}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

export type { BrowserContext }
