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
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpApp from "@effect/platform/HttpApp"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Effect, Option, Schema, Stream } from "effect"
import { STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"

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

/**
 * Reads and drops what is left of a request body that no one read (an answer
 * given before the body was looked at: 404, 405, 415, ...), up to the body
 * limit and for a few seconds at most. Node closes a `connection: close`
 * socket right after the answer; unread bytes in it make the kernel reset the
 * connection, and the client then loses the answer it was sent (it sees
 * EPIPE/ECONNRESET instead of the 404).
 */
const drainUnread = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<void>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    if (source.complete || source.readableEnded || source.destroyed) return resume(Effect.void)
    let bytes = 0
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > MAX_BODY_BYTES) done()
    }
    const done = () => {
      source.off("data", onData).off("end", done).off("error", done).off("close", done)
      resume(Effect.void)
    }
    source.on("data", onData).once("end", done).once("error", done).once("close", done)
    source.resume()
    return Effect.sync(done)
  }).pipe(Effect.timeout("5 seconds"), Effect.ignore)

/** `request` with its body already read: the same request for everything else. */
const withBody = (request: HttpServerRequest.HttpServerRequest, body: Uint8Array) => {
  const text = new TextDecoder().decode(body)
  return Object.create(request, {
    text: { value: Effect.succeed(text) },
    arrayBuffer: { value: Effect.succeed(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) },
    stream: { value: Stream.succeed(body) }
  }) as HttpServerRequest.HttpServerRequest
}

/**
 * Refuses what no route accepts (above) before routing. Its own answers are
 * given before the body is read: the rest of the body is read after them (see
 * `drainUnread`), so that the client gets the answer.
 */
export const middleware = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const refused = yield* refusal(request)
    if (Option.isNone(refused)) return yield* bounded(app, request)
    // a body over the limit is not read: its 413 may be cut off (the client learns the upload failed)
    if (refused.value.status !== 413) yield* drainUnread(request)
    return refused.value
  })
)

/**
 * An API-level middleware (`HttpApiBuilder.middleware`): reads the rest of any
 * body the answer did not need (a 404, a handler that ignores the body) before
 * the answer is written. The outer `middleware` runs only after the server
 * wrote the app's answer, too late for this.
 */
export const readsWholeBody = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.onExit(app, (exit) =>
      exit._tag === "Success" && exit.value.status === 413 ? Effect.void : drainUnread(request)))

/** The guard's own answer to `request`, if it refuses it before routing. */
const refusal = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.sync((): Option.Option<HttpServerResponse.HttpServerResponse> => {
    if (request.url.includes("\u0000") || /%00/i.test(request.url)) {
      return Option.some(json(400, new MalformedRequest({ message: "The URL contains a NUL byte" })))
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(length) && length > MAX_BODY_BYTES) return Option.some(tooLarge())
    // any declared body type but JSON is refused, even with an empty body: the multipart
    // parser waits forever for a boundary that never comes. An undeclared body is left to
    // the route (none, or a 400 when it is not JSON).
    const contentType = request.headers["content-type"]
    if (contentType !== undefined && contentType.trim() !== "" && !isJson(contentType)) {
      return Option.some(
        json(415, new UnsupportedMediaType({ message: "Request bodies must be JSON (content-type: application/json)" }))
      )
    }
    return Option.none()
  })

/** `app` with the body limit: a chunked body is read here, up to the limit; a declared length is left to the platform's limit. */
const bounded = <E, R>(app: HttpApp.Default<E, R>, request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    if (request.headers["content-length"] === undefined && request.headers["transfer-encoding"] !== undefined) {
      const body = yield* Effect.either(readBounded(request))
      if (body._tag === "Left") return json(400, new MalformedRequest({ message: "The request body could not be read" }))
      if (body.right === undefined) return tooLarge()
      return yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, withBody(request, body.right))
    }
    return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(MAX_BODY_BYTES))
  })

/**
 * Answers a request Node's HTTP parser refused (a raw byte where the request
 * line allows none, a broken header, ...) with a JSON 400, as a `clientError`
 * listener of the `node:http` server. Node's own answer destroys the socket
 * right after writing it: a body still arriving then resets the connection and
 * the client never reads the 400. Here the socket is ended and what is still
 * coming in is read and dropped, for a few seconds at most.
 */
export const answerClientError = (error: NodeJS.ErrnoException, socket: Duplex): void => {
  if (answered.has(socket)) return // the parser reports every later chunk again
  answered.add(socket)
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy()
    return
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400
  const body = JSON.stringify(encodeAnswer(new MalformedRequest({ message: "The request is not valid HTTP/1.1" })))
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  )
  socket.resume()
  setTimeout(() => socket.destroy(), 5_000).unref()
}
const answered = new WeakSet<Duplex>()

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
