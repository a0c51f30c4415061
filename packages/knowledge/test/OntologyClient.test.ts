/**
 * How the knowledge app reads the ontology app's answers: an id the ontology app
 * refuses (400) or does not know (404), whatever the body, is a permanent
 * `UnknownOntology` after ONE request (IngestDocument retries only
 * `OntologyUnavailable`); an id its `OntologyId` schema rejects is refused
 * without a request; a server error stays transient. The "ontology app" here is
 * a plain HTTP server answering as a (possibly other) version of it would.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import * as OntologyClient from "../src/OntologyClient.js"

/** An HTTP server on a free port answering every request with `answer`; counts requests. */
const server = (answer: (req: IncomingMessage, res: ServerResponse) => void) =>
  Effect.gen(function*() {
    let requests = 0
    const s = createServer((req, res) => {
      requests++
      answer(req, res)
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void s.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () => Effect.sync(() => s.close())
    )
    const { port } = s.address() as { port: number }
    return { url: `http://127.0.0.1:${port}`, requests: () => requests }
  })

const json = (status: number, body?: unknown) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, body === undefined ? {} : { "content-type": "application/json" })
  res.end(body === undefined ? undefined : JSON.stringify(body))
}

const entityClasses = (url: string, ontologyId: string) =>
  Effect.flatMap(OntologyClient.OntologyClient, (c) => c.entityClasses(ontologyId)).pipe(
    Effect.provide(OntologyClient.layer(url)),
    Effect.exit
  )

const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : `not a failure: ${String(exit)}`

describe("OntologyClient", () => {
  it.scoped("a 400 from the ontology app (an id it refuses) is UnknownOntology after one request", () =>
    Effect.gen(function*() {
      const app = yield* server(json(400, { _tag: "HttpApiDecodeError", issues: [], message: "ontologyId: bad" }))
      const exit = yield* entityClasses(app.url, "news")
      expect(failureTag(exit)).toBe("UnknownOntology")
      expect(app.requests()).toBe(1)
    }))

  it.scoped("a 404, with the app's body or with none at all, is UnknownOntology with the app's message", () =>
    Effect.gen(function*() {
      const known = yield* server(json(404, { _tag: "OntologyNotFound", ontologyId: "news", message: "No ontology news" }))
      const exit = yield* entityClasses(known.url, "news")
      expect(exit).toMatchObject({ cause: { error: { _tag: "UnknownOntology", ontologyId: "news" } } })
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error.message).toContain("No ontology news")
      const bare = yield* server(json(404))
      expect(failureTag(yield* entityClasses(bare.url, "news"))).toBe("UnknownOntology")
      expect(bare.requests()).toBe(1)
    }))

  it.scoped("an id the OntologyId schema rejects is UnknownOntology without a request", () =>
    Effect.gen(function*() {
      const app = yield* server(json(500))
      for (const id of ["bad id", "-lead", "a/b", "x".repeat(129)]) {
        expect(failureTag(yield* entityClasses(app.url, id))).toBe("UnknownOntology")
      }
      expect(app.requests()).toBe(0)
    }))

  it.scoped("a server error or no server at all stays transient (OntologyUnavailable)", () =>
    Effect.gen(function*() {
      const app = yield* server(json(503, { _tag: "ServiceUnavailable", message: "db down" }))
      expect(failureTag(yield* entityClasses(app.url, "news"))).toBe("OntologyUnavailable")
      const crashing = yield* server(json(500))
      expect(failureTag(yield* entityClasses(crashing.url, "news"))).toBe("OntologyUnavailable")
      expect(failureTag(yield* entityClasses("http://127.0.0.1:9", "news"))).toBe("OntologyUnavailable")
    }))
})
