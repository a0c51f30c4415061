/**
 * Property-based fuzzing of both apps, running as real processes in durable
 * mode on one fresh database: random and malformed bodies, headers, route
 * parameters, query strings and methods. Every generated request gets an
 * answer below 500 (for POST /runs/{workflow}: a 4xx; other methods on known
 * paths: 404/405). No generated request is a valid start of a run (bodies any
 * reading of which decodes with a workflow's payload schema are filtered out),
 * so afterwards no public table but the engine's `*_cluster_*` tables has
 * changed, and both apps are alive and healthy. One property does send
 * schema-valid payloads (text Postgres cannot store, in runs that could only
 * fail); it checks that no domain table changed and that accepted runs fail.
 *
 * Each property sends requests for at most 12 s (then its remaining runs pass
 * without a request); a request left without an answer (30 s of silence) fails. The seed
 * is printed: rerun with FUZZ_SEED=<seed> to replay, scale the number of runs
 * with FUZZ_RUNS=<factor>. A failure reports fast-check's shrunk counterexample
 * and the first failure as generated, each with the exact request, the
 * response and the app's log lines for it.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer } from "effect"
import { AppSet, E2EError, isDomainTable, type RunningApp, rowCounts, startBoth } from "./helpers.js"
import {
  anyBody,
  boundary,
  buildBody,
  type BodyRecipe,
  contentType,
  describeRequest,
  almostValidFor,
  isValidPayload,
  jsonishBody,
  query,
  randomHeaders,
  type RawRequest,
  renderQuery,
  renderSegment,
  type Segment,
  segment,
  send,
  validPayloads,
  type Workflow,
  Workflows
} from "./fuzzing.js"

const seed = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED)
const scale = Number(process.env.FUZZ_RUNS ?? "1")
const runs = (n: number) => Math.max(1, Math.round(n * scale))
console.log(`[fuzz] seed=${seed} (replay: FUZZ_SEED=${seed})`)

/** Every public table but the engine's, whose rows (shards, runners, messages) come and go on their own. */
const tracked = (table: string) => !table.includes("_cluster_")

// ---------------------------------------------------------------------------------------------------------------
// The two apps, started once for the whole file

interface Target {
  readonly apps: AppSet
  readonly ontology: RunningApp
  readonly knowledge: RunningApp
  /** Row counts of the tracked tables right after startup. */
  readonly initial: Record<string, number>
}

class FuzzTarget extends Context.Tag("e2e/Fuzz/FuzzTarget")<FuzzTarget, Target>() {}

const FuzzTargetLive = Layer.scoped(
  FuzzTarget,
  Effect.gen(function*() {
    const db = yield* TestDatabase.TestDatabase
    const apps = new AppSet()
    // durable whatever the run's WORKFLOW_MODE: the properties are stated for the durable engine
    const { knowledge, ontology } = yield* startBoth(apps, db.url, { mode: "durable" }).pipe(
      Effect.tapError(() => Effect.sync(() => console.error(apps.logs())))
    )
    yield* ontology.client.health
    yield* knowledge.client.health
    const initial = yield* rowCounts(tracked)
    return { apps, ontology, knowledge, initial }
  })
)

type AppKey = "ontology" | "knowledge"
const appKey = fc.constantFrom<AppKey>("ontology", "knowledge")

// ---------------------------------------------------------------------------------------------------------------
// Running a property

type Expectation = (status: number) => boolean

/** What one property saw: statuses, and its first failure as generated (shrinking retries against the same apps). */
interface Probe {
  readonly tally: Map<number, number>
  first: string | undefined
}

const newProbe = (): Probe => ({ tally: new Map(), first: undefined })

/** Polls GET /health until it answers 200; the milliseconds that took, or undefined after `withinMs`. */
const awaitHealthy = async (port: number, withinMs: number): Promise<number | undefined> => {
  const started = Date.now()
  while (Date.now() - started < withinMs) {
    const ok = await send(port, { method: "GET", target: "/health", headers: [] }, 1_000).then(
      (r) => r.status === 200,
      () => false
    )
    if (ok) return Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return undefined
}

/**
 * Sends `req` to `app` and throws (with the request, the response and the app's log lines for it)
 * unless the response status passes `ok`.
 */
const exchange = async (target: Target, app: AppKey, req: RawRequest, ok: Expectation, probe: Probe) => {
  const running = target[app]
  const firstLine = running.process.lines.length
  const fail = async (what: string): Promise<never> => {
    await new Promise((resolve) => setTimeout(resolve, 200)) // let the app's log lines arrive
    const log = running.process.lines.slice(firstLine, firstLine + 80).join("\n")
    const message = `${what}\nrequest to ${running.label}:\n${describeRequest(running.port, req)}\n` +
      `----- ${running.label} log from the moment of the request (may begin with the end of the previous one) -----\n` +
      `${log}\n-----`
    probe.first ??= message
    throw new Error(message)
  }
  let response: Awaited<ReturnType<typeof send>>
  try {
    response = await send(running.port, req)
  } catch (e) {
    // an app that stopped answering would fail every later request: say whether it recovered
    const recovered = await awaitHealthy(running.port, 10_000)
    return fail(
      `no HTTP response: ${e instanceof Error ? e.message : String(e)}; ${
        recovered === undefined
          ? "the app did not answer GET /health within 10 s after that either"
          : `the app answered GET /health again ${recovered} ms later`
      }`
    )
  }
  probe.tally.set(response.status, (probe.tally.get(response.status) ?? 0) + 1)
  if (!ok(response.status)) return fail(`unexpected HTTP ${response.status}: ${response.body.slice(0, 2_000)}`)
  return response
}

const below500: Expectation = (s) => s < 500
const clientError: Expectation = (s) => s >= 400 && s < 500

/** Each property sends requests for at most this long (shrinking included); the runs left pass without a request. */
const budgetMs = 12_000

/**
 * Checks `predicate` for values of `arbitrary` within `budgetMs`, logs how many requests went out and which
 * statuses came back, and fails with fast-check's report and the first failure as generated.
 */
const check = <T>(
  name: string,
  target: Target,
  probe: Probe,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<unknown>,
  numRuns: number
) =>
  Effect.gen(function*() {
    // an earlier property may have left an app busy: start only with both answering, so failures are not misattributed
    for (const app of [target.ontology, target.knowledge]) {
      const waited = yield* Effect.promise(() => awaitHealthy(app.port, 60_000))
      if (waited === undefined) {
        return yield* new E2EError({ message: `${name}: ${app.label} did not answer GET /health within 60 s` })
      }
      if (waited > 1_000) console.log(`[fuzz] ${name}: waited ${waited} ms for ${app.label} to answer GET /health`)
    }
    const started = Date.now()
    let executed = 0
    // the budget is checked before each run, so that a run in flight (an app that stopped answering) always ends
    // with its own verdict; fast-check's own time limit is only a backstop for the generation of the runs left
    const property = fc.asyncProperty(arbitrary, async (value) => {
      if (Date.now() - started > budgetMs) return
      executed++
      await predicate(value)
    })
    const details = yield* Effect.promise(() =>
      fc.check(property, { numRuns, seed, interruptAfterTimeLimit: budgetMs + 30_000, markInterruptAsFailure: false })
    )
    const statuses = [...probe.tally.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(" ")
    console.log(
      `[fuzz] ${name}: ${details.numRuns} runs, ${executed} executed${
        executed < details.numRuns ? " (time budget)" : ""
      }, ${((Date.now() - started) / 1000).toFixed(1)} s; statuses ${statuses}`
    )
    if (details.failed) {
      return yield* new E2EError({
        message: `${name}: ${fc.defaultReportMessage(details) ?? "failed"}\n\n` +
          `===== the first failure, before shrinking =====\n${probe.first ?? "(none recorded)"}`
      })
    }
  })

/** A body as sent: its bytes, the content type to send, and whether any reading of it is a valid payload. */
const prepare = (recipe: BodyRecipe, ct: string | undefined) => {
  const built = buildBody(recipe)
  const type = built.contentType ?? ct
  return { body: built.body, contentType: type, startsRun: built.readings.some(isValidPayload) }
}

/** The workflow of each app. */
const ownWorkflow: Record<AppKey, Workflow> = { ontology: "PublishOntology", knowledge: "IngestDocument" }

/** Mostly the app's own workflow, sometimes the other app's, sometimes any segment. */
const workflowSegmentFor = (app: AppKey): fc.Arbitrary<Segment> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant({ text: ownWorkflow[app], encoding: "encoded" as const }) },
    { weight: 1, arbitrary: fc.constantFrom(...Workflows).map((w) => ({ text: w, encoding: "encoded" as const })) },
    { weight: 2, arbitrary: segment }
  )

const knownPaths: Record<AppKey, ReadonlyArray<string>> = {
  ontology: [
    "/health",
    "/openapi.json",
    "/runs",
    "/runs?limit=5",
    "/runs/PublishOntology",
    "/runs/PublishOntology/x",
    "/runs/PublishOntology/x/signals/s",
    "/ontologies/news",
    "/ontologies/fuzz"
  ],
  knowledge: [
    "/health",
    "/openapi.json",
    "/runs",
    "/runs?workflow=IngestDocument",
    "/runs/IngestDocument",
    "/runs/IngestDocument/x",
    "/runs/IngestDocument/x/signals/s",
    "/documents/fuzz-doc",
    "/entities",
    "/entities?q=a&limit=3"
  ]
}

/** The known paths served for POST (start a run, deliver a signal); all others are served for GET. */
const servesPost = (p: string) => /^\/runs\/[^/?]+(\/[^/]+\/signals\/[^/]+)?$/.test(p)

// ---------------------------------------------------------------------------------------------------------------

describe("fuzz", () => {
  layer(FuzzTargetLive.pipe(Layer.provideMerge(TestDatabase.layer("e2e_fuzz"))), {
    timeout: 180_000,
    excludeTestServices: true
  })((it) => {
    it.effect("the base payloads are valid, so every mutation starts from a valid run", () =>
      Effect.sync(() => {
        for (const w of Workflows) expect(isValidPayload(validPayloads[w]), w).toBe(true)
      }))

    it.effect("random and almost valid JSON bodies of POST /runs/{workflow}: always a 4xx", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const probe = newProbe()
        const request = appKey.chain((app) =>
          fc.record({
            app: fc.constant(app),
            workflow: workflowSegmentFor(app),
            body: fc.oneof({ weight: 1, arbitrary: almostValidFor(ownWorkflow[app]) }, { weight: 1, arbitrary: jsonishBody }),
          // content types at large are the next property's business
          contentType: fc.oneof(
            { weight: 6, arbitrary: fc.constant<string | undefined>("application/json") },
            {
              weight: 1,
              arbitrary: fc.constantFrom(undefined, "application/json; charset=utf-8", "text/plain", "application/octet-stream")
            }
          )
        })).filter((r) => !prepare(r.body, r.contentType).startsRun)
        yield* check(
          "bodies",
          target,
          probe,
          request,
          async (r) => {
            const { body, contentType: ct } = prepare(r.body, r.contentType)
            await exchange(target, r.app, {
              method: "POST",
              target: `/runs/${renderSegment(r.workflow)}`,
              headers: ct === undefined ? [] : [["content-type", ct]],
              body
            }, clientError, probe)
          },
          runs(500)
        )
      }), 120_000)

    it.effect("random headers and content types on POST /runs/{workflow}: always a 4xx", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const probe = newProbe()
        const request = appKey.chain((app) =>
          fc.record({
            app: fc.constant(app),
            workflow: workflowSegmentFor(app),
            body: anyBody,
          contentTypes: fc.oneof(
            { weight: 4, arbitrary: contentType.map((ct) => ct === undefined ? [] : [ct]) },
            { weight: 1, arbitrary: fc.array(contentType.filter((ct) => ct !== undefined), { minLength: 2, maxLength: 3 }) },
            { weight: 1, arbitrary: boundary.map((b) => [`multipart/form-data; boundary=${b}`]) }
          ),
          // forms come with their own matching content type unless this says otherwise
          keepFormType: fc.boolean(),
          headers: randomHeaders,
          contentTypeFirst: fc.boolean()
        })).filter((r) => !prepare(r.body, undefined).startsRun)
        yield* check(
          "headers",
          target,
          probe,
          request,
          async (r) => {
            const built = prepare(r.body, undefined)
            const types = r.keepFormType && built.contentType !== undefined ? [built.contentType] : r.contentTypes
            const typeHeaders = types.map((t): [string, string] => ["content-type", t])
            await exchange(target, r.app, {
              method: "POST",
              target: `/runs/${renderSegment(r.workflow)}`,
              headers: r.contentTypeFirst ? [...typeHeaders, ...r.headers] : [...r.headers, ...typeHeaders],
              body: built.body
            }, clientError, probe)
          },
          runs(400)
        )
      }), 120_000)

    it.effect("random route parameters and query strings: never a 5xx", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const probe = newProbe()
        const route = fc.oneof(
          appKey.chain((app) =>
            fc.record({ kind: fc.constant("run" as const), app: fc.constant(app), workflow: workflowSegmentFor(app), id: segment })
          ),
          appKey.chain((app) => fc.record({
            kind: fc.constant("signal" as const),
            app: fc.constant(app),
            workflow: workflowSegmentFor(app),
            id: segment,
            signal: segment,
            body: fc.constantFrom("{}", "null", "1", "\"x\"", "{\"value\":true}", "[")
          })),
          fc.record({ kind: fc.constant("document" as const), id: segment }),
          fc.record({ kind: fc.constant("ontology" as const), id: segment }),
          fc.record({ kind: fc.constant("runs" as const), app: appKey, query }),
          fc.record({ kind: fc.constant("entities" as const), query }),
          fc.record({
            kind: fc.constant("path" as const),
            app: appKey,
            segments: fc.array(segment, { maxLength: 6 }),
            query: fc.option(query, { nil: undefined })
          })
        )
        yield* check(
          "routes",
          target,
          probe,
          route,
          async (r) => {
            const get = (path: string): RawRequest => ({ method: "GET", target: path, headers: [] })
            const [app, req]: [AppKey, RawRequest] = (() => {
              switch (r.kind) {
                case "run":
                  return [r.app, get(`/runs/${renderSegment(r.workflow)}/${renderSegment(r.id)}`)]
                case "signal":
                  return [r.app, {
                    method: "POST",
                    target: `/runs/${renderSegment(r.workflow)}/${renderSegment(r.id)}/signals/${renderSegment(r.signal)}`,
                    headers: [["content-type", "application/json"]],
                    body: Buffer.from(r.body)
                  }]
                case "document":
                  return ["knowledge", get(`/documents/${renderSegment(r.id)}`)]
                case "ontology":
                  return ["ontology", get(`/ontologies/${renderSegment(r.id)}`)]
                case "runs":
                  return [r.app, get(`/runs?${renderQuery(r.query)}`)]
                case "entities":
                  return ["knowledge", get(`/entities?${renderQuery(r.query)}`)]
                case "path":
                  return [
                    r.app,
                    get(`/${r.segments.map(renderSegment).join("/")}${r.query === undefined ? "" : `?${renderQuery(r.query)}`}`)
                  ]
              }
            })()
            await exchange(target, app, req, below500, probe)
          },
          runs(600)
        )
      }), 120_000)

    it.effect("other methods on known paths: 404 or 405", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const probe = newProbe()
        const request = appKey.chain((app) =>
          fc.record({
            app: fc.constant(app),
            path: fc.constantFrom(...knownPaths[app]),
            method: fc.constantFrom("PUT", "DELETE", "PATCH", "OPTIONS", "GET", "POST"),
            body: fc.option(fc.constantFrom("{}", "[]", "x", JSON.stringify(validPayloads.PublishOntology)), { nil: undefined })
          })
        ).filter((r) =>
          // GET and POST only where the path does not serve them
          r.method === "GET" ? servesPost(r.path) : r.method === "POST" ? !servesPost(r.path) : true
        )
        yield* check(
          "methods",
          target,
          probe,
          request,
          async (r) => {
            await exchange(target, r.app, {
              method: r.method,
              target: r.path,
              headers: r.body === undefined ? [] : [["content-type", "application/json"]],
              body: r.body === undefined ? undefined : Buffer.from(r.body)
            }, (s) => s === 404 || s === 405, probe)
          },
          runs(200)
        )
      }), 120_000)

    it.effect("nothing generated above wrote a row: every public table but the engine's is unchanged", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const now = yield* rowCounts(tracked)
        // the comparison is not vacuous: the domain tables and the run ledgers exist
        expect(Object.keys(target.initial)).toEqual(expect.arrayContaining([
          "ontology_runs",
          "ontology_versions",
          "knowledge_runs",
          "knowledge_documents",
          "knowledge_entities"
        ]))
        expect(now).toEqual(target.initial)
      }))

    it.effect("schema-valid payloads holding text Postgres cannot store (NUL, lone surrogates): never a 5xx", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        const probe = newProbe()
        const started: Array<{ app: AppKey; workflow: string; executionId: string }> = []
        // bad text inside fields the schemas accept any text in; runs (if any start) must fail without writing:
        // the turtle is no Turtle, the document names an ontology that does not exist
        const bad = fc.record({
          prefix: fc.string({ maxLength: 8 }),
          char: fc.constantFrom("\u0000", "\uD800", "\uDFFF", "\u0000\u0000"),
          suffix: fc.string({ maxLength: 8 })
        }).map(({ char, prefix, suffix }) => `${prefix}${char}${suffix}`)
        const request = fc.oneof(
          fc.record({ n: fc.nat({ max: 1_000 }), turtle: bad }).map(({ n, turtle }) => ({
            app: "ontology" as const,
            workflow: "PublishOntology",
            payload: { ontologyId: `fuzz-unstorable-${n}`, turtle: `@@ not turtle ${turtle}` }
          })),
          fc.record({ n: fc.nat({ max: 1_000 }), title: bad, text: bad, where: fc.constantFrom("title", "text", "both") })
            .map(({ n, text, title, where }) => ({
              app: "knowledge" as const,
              workflow: "IngestDocument",
              payload: {
                documentId: `fuzz-unstorable-${n}`,
                title: where === "text" ? "Title" : `Title ${title}`,
                text: where === "title" ? "Alice met Bob." : `Alice met Bob. ${text}`,
                ontologyId: "fuzz-missing-ontology"
              }
            }))
        ).filter((r) => isValidPayload(r.payload))
        yield* check(
          "unstorable",
          target,
          probe,
          request,
          async (r) => {
            const body = Buffer.from(JSON.stringify(r.payload), "utf8")
            const req: RawRequest = {
              method: "POST",
              target: `/runs/${r.workflow}`,
              headers: [["content-type", "application/json"]],
              body
            }
            const response = await exchange(target, r.app, req, below500, probe)
            // a 202 (the app accepted the text) is fine; the run is checked below
            if (response.status === 202) {
              started.push({ app: r.app, workflow: r.workflow, executionId: (JSON.parse(response.body) as { executionId: string }).executionId })
            }
          },
          runs(40)
        )
        // runs that were accepted end failed and wrote no domain data
        for (const s of started) {
          const run = yield* target[s.app].client.awaitRun(s.workflow, s.executionId, "60 seconds")
          expect(run.status, JSON.stringify(run)).toBe("failed")
        }
        expect(yield* rowCounts(isDomainTable)).toEqual(
          Object.fromEntries(Object.entries(target.initial).filter(([t]) => isDomainTable(t)))
        )
      }), 120_000)

    it.effect("afterwards: no domain rows, both apps alive and healthy", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        expect(yield* rowCounts(isDomainTable)).toEqual(
          Object.fromEntries(Object.entries(target.initial).filter(([t]) => isDomainTable(t)))
        )
        for (const app of [target.ontology, target.knowledge]) {
          expect(app.process.child.exitCode, `${app.label} exited`).toBeNull()
          expect(app.process.child.signalCode, `${app.label} was killed`).toBeNull()
          const health = yield* app.client.health
          expect(health.status, app.label).toBe("ok")
          expect(health.mode, app.label).toBe("durable")
        }
      }).pipe(
        Effect.tapError(() => Effect.flatMap(FuzzTarget, (t) => Effect.sync(() => console.error(t.apps.logs().slice(-20_000)))))
      ))
  })
})
