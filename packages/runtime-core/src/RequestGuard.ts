/**
 * What every app refuses before any handler runs, so that malformed requests
 * get a typed 4xx instead of reaching the body parser or the database:
 *
 * - a body larger than `MAX_BODY_BYTES` (413): the biggest payloads (a 1 MiB
 *   ontology, a 200 000-character document) fit well under it;
 * - a request body that is not JSON (415): multipart and form parsers are not
 *   needed by any route, and a binary body would be decoded byte by byte;
 * - a NUL byte anywhere in the path or query (400): Postgres text cannot hold it.
 *
 * Bodies are also checked for what Postgres' jsonb cannot store (NUL, lone
 * surrogates) and for absurd nesting in `RunsHttp`, after JSON parsing.
 */
import { HttpIncomingMessage, HttpMiddleware, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Option } from "effect"

export const MAX_BODY_BYTES = 4 * 1024 * 1024

const reject = (status: number, tag: string, message: string) =>
  Effect.succeed(HttpServerResponse.unsafeJson({ _tag: tag, message }, { status }))

const isJson = (contentType: string) => /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType.trim())

export const middleware = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.url.includes("\u0000") || /%00/i.test(request.url)) {
      return yield* reject(400, "MalformedRequest", "The URL contains a NUL byte")
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(length) && length > MAX_BODY_BYTES) {
      return yield* reject(413, "PayloadTooLarge", `Request bodies are limited to ${MAX_BODY_BYTES} bytes`)
    }
    // any declared body type but JSON is refused, even with an empty body: the multipart
    // parser waits forever for a boundary that never comes. An undeclared body is left to
    // the route (none, or a 400 when it is not JSON).
    const contentType = request.headers["content-type"]
    if (contentType !== undefined && contentType.trim() !== "" && !isJson(contentType)) {
      return yield* reject(415, "UnsupportedMediaType", "Request bodies must be JSON (content-type: application/json)")
    }
    return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(MAX_BODY_BYTES))
  })
)
