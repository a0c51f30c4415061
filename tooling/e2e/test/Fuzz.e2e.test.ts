/**
 * Property-based fuzzing of both apps, running as real processes in durable
 * mode on one fresh database: random and malformed bodies (valid payloads
 * generated from the workflows' payload schemas, then mutated), headers, route
 * parameters, query strings and methods. Every generated request gets an
 * answer below 500 (for POST /runs/{workflow}: a 4xx; other methods on known
 * paths: 404/405), never with a stack trace in its body. No generated request
 * is a valid start of a run (bodies any reading of which decodes with a
 * workflow's payload schema are filtered out), so afterwards no public table
 * but the engine's `*_cluster_*` tables has changed, and both apps are alive
 * and healthy. One property does send schema-valid payloads (holding text
 * Postgres cannot store); it checks that no domain table changed and that
 * accepted runs fail.
 *
 * Each property sends at least 100 requests (asserted: a property cannot pass
 * without testing anything) and for at most 12 s; a request left without an
 * answer (30 s of silence) fails. The seed is printed: rerun with
 * FUZZ_SEED=<seed> to replay, scale the number of runs with FUZZ_RUNS=<factor>.
 * A failure reports fast-check's shrunk counterexample and the first failure as
 * generated, each with the exact request, the response and the app's log lines for it.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer } from "effect"
import { AppSet, awaitRun, E2EError, isDomainTable, type RawRequest, type RunningApp, rowCounts, send, startBoth } from "../src/Apps.js"
import {
  almostValid,
  allWorkflows,
  anyBody,
  type AppKey,
  appKeys,
  boundary,
  buildBody,
  contentType,
  isValidPayload,
  jsonishBody,
  knownRoutes,
  oneOfEach,
  query,
  randomHeaders,
  renderSegment,
  type Segment,
  segment,
  validPayload,
  workflows
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
  readonly ontology: RunningApp<"ontology">
  readonly knowledge: RunningApp<"knowledge">
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
    yield* ontology.client.health.health()
    yield* knowledge.client.health.health()
    return { apps, ontology, knowledge, initial: yield* rowCounts(tracked) }
  })
)

// ---------------------------------------------------------------------------------------------------------------
// Running a property

/** What one property saw: requests sent, statuses, and its first failure as generated. */
interface Probe {
  sent: number
  readonly tally: Map<number, number>
  first: string | undefined
}

/** Polls GET /health until it answers 200; the milliseconds that took, or undefined after `withinMs`. */
const awaitHealthy = async (port: number, withinMs: number): Promise<number | undefined> => {
  const started = Date.now()
  while (Date.now() - started < withinMs) {
    if (await send(port, { method: "GET", target: "/health" }, 1_000).then((r) => r.status === 200, () => false)) {
      return Date.now() - started
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return undefined
}

/** A reproducible description of a request: exact target and headers, body as a preview and (if small) base64. */
const describeRequest = (port: number, req: RawRequest): string =>
  JSON.stringify({
    method: req.method,
    url: `http://127.0.0.1:${port}${req.target}`,
    note: "characters U+0080..U+00FF in url and headers are raw bytes",
    headers: req.headers ?? [],
    body: req.body === undefined ? null : {
      bytes: req.body.length,
      utf8Preview: req.body.subarray(0, 1_500).toString("utf8") + (req.body.length > 1_500 ? "…" : ""),
      ...(req.body.length <= 8_192 ? { base64: req.body.toString("base64") } : {})
    }
  }, null, 2)

/** A stack frame (`at f (file.ts:1:2)`): never in a response body. */
const stackFrame = /\bat .*[.](?:ts|js|mjs|cjs):\d+:\d+/

/**
 * Sends `req` to `app` and throws (with the request, the response and the app's log lines for it)
 * unless the response status passes `ok` and its body holds no stack trace.
 */
const exchange = async (target: Target, app: AppKey, req: RawRequest, ok: (status: number) => boolean, probe: Probe) => {
  const running = target[app]
  const firstLine = running.process.lines.length
  const fail = async (what: string): Promise<never> => {
    await new Promise((resolve) => setTimeout(resolve, 200)) // let the app's log lines arrive
    const message = `${what}\nrequest to ${running.label}:\n${describeRequest(running.port, req)}\n` +
      `----- ${running.label} log from the moment of the request (may begin with the end of the previous one) -----\n` +
      `${running.process.lines.slice(firstLine, firstLine + 80).join("\n")}\n-----`
    probe.first ??= message
    throw new Error(message)
  }
  probe.sent++
  const response = await send(running.port, req).catch(async (e: unknown) => {
    // an app that stopped answering would fail every later request: say whether it recovered
    const recovered = await awaitHealthy(running.port, 10_000)
    return fail(`no HTTP response: ${e instanceof Error ? e.message : String(e)}; ${
      recovered === undefined
        ? "the app did not answer GET /health within 10 s after that either"
        : `the app answered GET /health again ${recovered} ms later`
    }`)
  })
  probe.tally.set(response.status, (probe.tally.get(response.status) ?? 0) + 1)
  if (!ok(response.status)) return fail(`unexpected HTTP ${response.status}: ${response.body.slice(0, 2_000)}`)
  if (stackFrame.test(response.body)) return fail(`a stack trace in the body: ${response.body.slice(0, 2_000)}`)
  return response
}

const below500 = (s: number) => s < 500
const clientError = (s: number) => s >= 400 && s < 500

/** Each property sends requests for at most this long (shrinking included); the runs left pass without a request. */
const budgetMs = 12_000
/** The fewest requests a property must have sent to pass. */
const minimumSent = 100

/**
 * Checks `predicate` for values of `arbitrary` within `budgetMs`, logs how many requests went out and which
 * statuses came back, fails with fast-check's report and the first failure as generated, and fails when
 * fewer than `minimumSent` requests went out.
 */
const check = <T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T, target: Target, probe: Probe) => Promise<unknown>,
  numRuns: number
) =>
  Effect.gen(function*() {
    const target = yield* FuzzTarget
    const probe: Probe = { sent: 0, tally: new Map(), first: undefined }
    // an earlier property may have left an app busy: start only with both answering, so failures are not misattributed
    for (const app of [target.ontology, target.knowledge]) {
      const waited = yield* Effect.promise(() => awaitHealthy(app.port, 60_000))
      if (waited === undefined) {
        return yield* new E2EError({ message: `${name}: ${app.label} did not answer GET /health within 60 s` })
      }
      if (waited > 1_000) console.log(`[fuzz] ${name}: waited ${waited} ms for ${app.label} to answer GET /health`)
    }
    const started = Date.now()
    // the budget is checked before each run, so that a run in flight always ends with its own verdict;
    // fast-check's own time limit is only a backstop for the generation of the runs left
    const property = fc.asyncProperty(arbitrary, async (value) => {
      if (Date.now() - started <= budgetMs) await predicate(value, target, probe)
    })
    const details = yield* Effect.promise(() =>
      fc.check(property, { numRuns, seed, interruptAfterTimeLimit: budgetMs + 30_000, markInterruptAsFailure: false })
    )
    const statuses = [...probe.tally.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(" ")
    console.log(
      `[fuzz] ${name}: ${details.numRuns} runs, ${probe.sent} requests, ${((Date.now() - started) / 1000).toFixed(1)} s; statuses ${statuses}`
    )
    if (details.failed) {
      return yield* new E2EError({
        message: `${name}: ${fc.defaultReportMessage(details) ?? "failed"}\n\n` +
          `===== the first failure, before shrinking =====\n${probe.first ?? "(none recorded)"}`
      })
    }
    expect(probe.sent, `${name}: requests sent`).toBeGreaterThanOrEqual(Math.min(minimumSent, numRuns))
    return target
  })

/** POST /runs/{workflow} with `body` and these headers. */
const postRun = (workflow: Segment, headers: ReadonlyArray<readonly [string, string]>, body: Buffer | undefined): RawRequest => ({
  method: "POST",
  target: `/runs/${renderSegment(workflow)}`,
  headers,
  body
})

/** Mostly one of the app's own workflows, sometimes the other app's, sometimes any segment. */
const workflowSegmentFor = (app: AppKey): fc.Arbitrary<Segment> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...workflows[app]).map((w) => ({ text: w.name, encoding: "encoded" as const })) },
    { weight: 1, arbitrary: fc.constantFrom(...allWorkflows).map((w) => ({ text: w.name, encoding: "encoded" as const })) },
    { weight: 2, arbitrary: segment }
  )

// ---------------------------------------------------------------------------------------------------------------

describe("fuzz", () => {
  layer(FuzzTargetLive.pipe(Layer.provideMerge(TestDatabase.layer("e2e_fuzz"))), {
    timeout: 180_000,
    excludeTestServices: true
  })((it) => {
    it.effect("each app's API declares its workflows; the payloads generated from their schemas are valid", () =>
      Effect.sync(() => {
        expect({ ontology: workflows.ontology.map((w) => w.name), knowledge: workflows.knowledge.map((w) => w.name) })
          .toEqual({ ontology: ["PublishOntology", "RevalidateOntologies"], knowledge: ["IngestDocument"] })
        for (const w of allWorkflows) {
          const payloads = fc.sample(validPayload(w), { numRuns: 200, seed })
          expect(payloads.filter((p) => !isValidPayload(p)), w.name).toEqual([])
        }
      }))

    it.effect("random and almost valid JSON bodies of POST /runs/{workflow}: always a 4xx", () =>
      check(
        "bodies",
        oneOfEach(appKeys, (app) =>
          fc.record({
            app: fc.constant(app),
            workflow: workflowSegmentFor(app),
            body: fc.oneof(almostValid(workflows[app]), jsonishBody(workflows[app])),
            // content types at large are the next property's business
            contentType: fc.oneof(
              { weight: 6, arbitrary: fc.constant<string | undefined>("application/json") },
              { weight: 1, arbitrary: fc.constantFrom(undefined, "application/json; charset=utf-8", "text/plain", "application/octet-stream") }
            )
          })
        ).filter((r) => !buildBody(r.body).startsRun),
        async (r, target, probe) => {
          const built = buildBody(r.body)
          const ct = built.contentType ?? r.contentType
          await exchange(target, r.app, postRun(r.workflow, ct === undefined ? [] : [["content-type", ct]], built.body), clientError, probe)
        },
        runs(500)
      ), 120_000)

    it.effect("random headers and content types on POST /runs/{workflow}: always a 4xx", () =>
      check(
        "headers",
        oneOfEach(appKeys, (app) =>
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
          })
        ).filter((r) => !buildBody(r.body).startsRun),
        async (r, target, probe) => {
          const built = buildBody(r.body)
          const types = r.keepFormType && built.contentType !== undefined ? [built.contentType] : r.contentTypes
          const typeHeaders = types.map((t): [string, string] => ["content-type", t])
          const headers = r.contentTypeFirst ? [...typeHeaders, ...r.headers] : [...r.headers, ...typeHeaders]
          await exchange(target, r.app, postRun(r.workflow, headers, built.body), clientError, probe)
        },
        runs(400)
      ), 120_000)

    it.effect("random route parameters and query strings: never a 5xx", () =>
      check(
        "routes",
        oneOfEach(appKeys, (app) => {
          const get = (target: string): [AppKey, RawRequest] => [app, { method: "GET", target }]
          const w = workflowSegmentFor(app)
          return fc.oneof(
            fc.tuple(w, segment).map(([w, id]) => get(`/runs/${renderSegment(w)}/${renderSegment(id)}`)),
            fc.tuple(w, segment, segment, fc.constantFrom("{}", "null", "1", "\"x\"", "{\"value\":true}", "[")).map((
              [w, id, signal, body]
            ): [AppKey, RawRequest] => [app, {
              ...postRun(w, [["content-type", "application/json"]], Buffer.from(body)),
              target: `/runs/${renderSegment(w)}/${renderSegment(id)}/signals/${renderSegment(signal)}`
            }]),
            segment.map((id): [AppKey, RawRequest] => ["knowledge", { method: "GET", target: `/documents/${renderSegment(id)}` }]),
            segment.map((id): [AppKey, RawRequest] => ["ontology", { method: "GET", target: `/ontologies/${renderSegment(id)}` }]),
            query.map((q) => get(`/runs?${q}`)),
            query.map((q): [AppKey, RawRequest] => ["knowledge", { method: "GET", target: `/entities?${q}` }]),
            fc.tuple(fc.array(segment, { maxLength: 6 }), fc.option(query, { nil: undefined })).map(([segments, q]) =>
              get(`/${segments.map(renderSegment).join("/")}${q === undefined ? "" : `?${q}`}`)
            )
          )
        }),
        ([app, req], target, probe) => exchange(target, app, req, below500, probe),
        runs(600)
      ), 120_000)

    it.effect("other methods on known paths: 404 or 405", () =>
      check(
        "methods",
        oneOfEach(appKeys, (app) => {
          const routes = knownRoutes(app)
          return fc.record({
            app: fc.constant(app),
            path: fc.constantFrom(...routes.keys()),
            method: fc.constantFrom("PUT", "DELETE", "PATCH", "OPTIONS", "GET", "POST"),
            body: fc.option(fc.constantFrom("{}", "[]", "x", "{\"ontologyId\":\"fuzz\",\"turtle\":\"<urn:a> a <urn:b> .\"}"), { nil: undefined })
          }).filter((r) => !routes.get(r.path)!.has(r.method))
        }),
        (r, target, probe) =>
          exchange(target, r.app, {
            method: r.method,
            target: r.path,
            headers: r.body === undefined ? [] : [["content-type", "application/json"]],
            body: r.body === undefined ? undefined : Buffer.from(r.body)
          }, (s) => s === 404 || s === 405, probe),
        runs(200)
      ), 120_000)

    it.effect("nothing generated above wrote a row: every public table but the engine's is unchanged", () =>
      Effect.gen(function*() {
        const target = yield* FuzzTarget
        // the comparison is not vacuous: the domain tables and the run ledgers exist
        expect(Object.keys(target.initial)).toEqual(expect.arrayContaining([
          "ontology_runs",
          "ontology_versions",
          "knowledge_runs",
          "knowledge_documents",
          "knowledge_entities"
        ]))
        expect(yield* rowCounts(tracked)).toEqual(target.initial)
      }))

    it.effect("schema-valid payloads holding text Postgres cannot store (NUL, lone surrogates): never a 5xx", () =>
      Effect.gen(function*() {
        const started: Array<{ app: AppKey; workflow: string; executionId: string }> = []
        const bad = fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom("\u0000", "\uD800", "\uDFFF", "\u0000\u0000"), fc.string({ maxLength: 8 }))
          .map((parts) => parts.join(""))
        // a valid payload with bad text in one of its string fields (those whose schema takes any text)
        const request = oneOfEach(appKeys, (app) =>
          oneOfEach(workflows[app], (w) =>
            fc.record({ app: fc.constant(app), workflow: fc.constant(w.name), payload: validPayload(w), field: fc.constantFrom(...Object.keys(w.fields)), bad })
          )
        ).filter(({ field, payload }) => typeof payload[field] === "string")
          .map(({ bad, field, payload, ...r }) => ({ ...r, payload: { ...payload, [field]: `${payload[field] as string}${bad}` } }))
          .filter((r) => isValidPayload(r.payload))
        const target = yield* check(
          "unstorable",
          request,
          async (r, target, probe) => {
            const req = postRun({ text: r.workflow, encoding: "encoded" }, [["content-type", "application/json"]], Buffer.from(JSON.stringify(r.payload)))
            const response = await exchange(target, r.app, req, below500, probe)
            // a 202 (the app accepted the text) is fine; the run is checked below
            if (response.status === 202) started.push({ ...r, executionId: (JSON.parse(response.body) as { executionId: string }).executionId })
          },
          runs(100)
        )
        // runs that were accepted end failed and wrote no domain data
        for (const s of started) {
          const run = yield* awaitRun(target[s.app], s.workflow, s.executionId, "60 seconds")
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
          const health = yield* app.client.health.health()
          expect(health.status, app.label).toBe("ok")
          expect(health.mode, app.label).toBe("durable")
        }
      }).pipe(
        Effect.tapError(() => Effect.flatMap(FuzzTarget, (t) => Effect.sync(() => console.error(t.apps.logs().slice(-20_000)))))
      ))
  })
})
