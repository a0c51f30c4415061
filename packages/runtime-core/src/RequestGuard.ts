/**
 * What every app refuses before any handler runs, and how every answer that
 * no handler gave is shaped, so that each is a typed JSON body declared in the
 * OpenAPI document (`RunsApi.make` adds the errors below to every endpoint):
 *
 * - a body larger than `MAX_BODY_BYTES` (413 `PayloadTooLarge`), whether it
 *   declares a `content-length` or arrives chunked: the biggest payloads (a
 *   1 MiB ontology, a 200 000-character document) fit well under it;
 * - a request body that is not JSON (415 `UnsupportedMediaType`): multipart and
 *   form parsers are not needed by any route, and a binary body would be
 *   decoded byte by byte;
 * - a NUL byte anywhere in the path or query, or a body that is not valid JSON
 *   (400 `MalformedRequest`): Postgres text cannot hold a NUL;
 * - an unknown path (404 `NotFound`), a known path with another method (405
 *   `MethodNotAllowed`, with `Allow`);
 * - a defect in a handler (500 `InternalError`): the body carries an error id,
 *   logged with the cause, never a stack trace.
 *
 * Bodies are also checked for what Postgres' jsonb cannot store (NUL, lone
 * surrogates) and for absurd nesting in `RunsHttp`, after JSON parsing.
 */
import {
  HttpApiSchema,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Effect, Option, Schema, Stream } from "effect"

export const MAX_BODY_BYTES = 4 * 1024 * 1024

export class MalformedRequest extends Schema.TaggedError<MalformedRequest>()("MalformedRequest", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 400, description: "A NUL byte in the URL, or a body that is not valid JSON" })) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 413, description: `A request body over ${MAX_BODY_BYTES} bytes` })) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 415, description: "A request body that is not declared as JSON" })) {}

export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {
  /** Logged with the cause: quote it when reporting the problem. */
  errorId: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 500, description: "A bug; the error id is in the server's log" })) {}

/** No route has this path (not part of any endpoint, so not in the OpenAPI document). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }) {}

/** The path exists for other methods (listed in `allowed` and the `Allow` header). */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  message: Schema.String,
  allowed: Schema.Array(Schema.String)
}) {}

type Answer = MalformedRequest | PayloadTooLarge | UnsupportedMediaType | InternalError | NotFound | MethodNotAllowed
const Answer = Schema.Union(MalformedRequest, PayloadTooLarge, UnsupportedMediaType, InternalError, NotFound, MethodNotAllowed)
const encodeAnswer = Schema.encodeSync(Answer)

const json = (status: number, error: Answer, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson(encodeAnswer(error), { status, ...(headers ? { headers } : {}) })

const tooLarge = () =>
  json(413, new PayloadTooLarge({ message: `Request bodies are limited to ${MAX_BODY_BYTES} bytes` }))

const isJson = (contentType: string) => /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType.trim())

/**
 * Reads a body of unknown length (chunked) up to the limit. Past it the rest is
 * drained, not destroyed: destroying the request resets the connection before
 * the 413 can be written (the platform's own limit does that).
 */
const readBounded = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<Uint8Array | undefined, HttpServerError.RequestError>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let bytes = 0
    let done = false
    const finish = (result: Effect.Effect<Uint8Array | undefined, HttpServerError.RequestError>) => {
      if (done) return
      done = true
      resume(result)
    }
    source.on("data", (chunk: Buffer) => {
      if (done) return // draining after the limit
      bytes += chunk.length
      if (bytes > MAX_BODY_BYTES) {
        chunks.length = 0
        finish(Effect.succeed(undefined))
      } else {
        chunks.push(chunk)
      }
    })
    source.once("end", () => finish(Effect.succeed(Buffer.concat(chunks))))
    source.once("error", (cause) =>
      finish(Effect.fail(new HttpServerError.RequestError({ request, reason: "Transport", cause }))))
  })

/** `request` with its body already read: the same request for everything else. */
const withBody = (request: HttpServerRequest.HttpServerRequest, body: Uint8Array) => {
  const text = new TextDecoder().decode(body)
  return Object.create(request, {
    text: { value: Effect.succeed(text) },
    arrayBuffer: { value: Effect.succeed(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) },
    stream: { value: Stream.succeed(body) }
  }) as HttpServerRequest.HttpServerRequest
}

/** Refuses what no route accepts (above) before routing. */
export const middleware = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.url.includes("\u0000") || /%00/i.test(request.url)) {
      return json(400, new MalformedRequest({ message: "The URL contains a NUL byte" }))
    }
    const declared = request.headers["content-length"]
    const length = Number(declared ?? "0")
    if (Number.isFinite(length) && length > MAX_BODY_BYTES) return tooLarge()
    // any declared body type but JSON is refused, even with an empty body: the multipart
    // parser waits forever for a boundary that never comes. An undeclared body is left to
    // the route (none, or a 400 when it is not JSON).
    const contentType = request.headers["content-type"]
    if (contentType !== undefined && contentType.trim() !== "" && !isJson(contentType)) {
      return json(415, new UnsupportedMediaType({ message: "Request bodies must be JSON (content-type: application/json)" }))
    }
    if (declared === undefined && request.headers["transfer-encoding"] !== undefined) {
      const body = yield* Effect.either(readBounded(request))
      if (body._tag === "Left") return json(400, new MalformedRequest({ message: "The request body could not be read" }))
      if (body.right === undefined) return tooLarge()
      return yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, withBody(request, body.right))
    }
    return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(MAX_BODY_BYTES))
  })
)

/** What the router knows: each path pattern (`/runs/:workflow`) with its methods. */
export type Routes = ReadonlyArray<{ readonly method: string; readonly path: string }>

const patternOf = (path: string) =>
  new RegExp(
    "^" + path.split("/").map((segment) =>
      segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    ).join("/") + "/?$"
  )

/**
 * Gives every answer no handler gave a JSON body: 404 `NotFound` or 405
 * `MethodNotAllowed` (from `routes`) for an unrouted request, 400
 * `MalformedRequest` for a body that could not be read as JSON, and a 500
 * `InternalError` with an error id (logged with the cause) for a defect or an
 * error the API does not declare. Errors the API declares (`isDeclared`) are
 * left to it. An API-level middleware: it runs inside the app, where a
 * failure can still become any answer.
 */
export const errors = (routes: Routes, isDeclared: (error: unknown) => boolean) => {
  const patterns = routes.map((r) => ({ method: r.method.toUpperCase(), pattern: patternOf(r.path) }))
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.catchAllCause(app, (cause) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const failure = Cause.failureOption(cause)
        // the client went away (nobody reads the answer), or the API's own errors: encoded by the API
        if (Cause.isInterruptedOnly(cause) || (Option.isSome(failure) && isDeclared(failure.value))) {
          return yield* Effect.failCause(cause)
        }
        const error = Cause.squash(cause)
        if (HttpServerError.isServerError(error) && error._tag === "RouteNotFound") {
          const path = request.url.split("?")[0]!
          const allowed = [...new Set(patterns.filter((p) => p.pattern.test(path)).map((p) => p.method))].sort()
          if (allowed.includes(request.method)) {
            // a route has this shape but the router refused a segment: over its 100-character limit
            return json(400, new MalformedRequest({ message: "A path segment is too long" }))
          }
          return allowed.length > 0
            ? json(
              405,
              new MethodNotAllowed({ message: `${request.method} is not allowed on ${path}`, allowed }),
              { allow: allowed.join(", ") }
            )
            : json(404, new NotFound({ message: `No route for ${request.method} ${path.slice(0, 200)}` }))
        }
        if (HttpServerError.isServerError(error) && error._tag === "RequestError") {
          return /maxBytes/.test(String((error.cause as Error | undefined)?.message))
            ? tooLarge()
            : json(400, new MalformedRequest({ message: "The request body is not valid JSON" }))
        }
        const errorId = crypto.randomUUID()
        yield* Effect.logError(`Internal error ${errorId}`, cause)
        return json(500, new InternalError({ errorId, message: `Internal error; the server's log has ${errorId}` }))
      }))
}
