/**
 * Building blocks of the fuzz suite: a raw HTTP client (node:http, so that raw
 * bytes in the request target, odd headers and arbitrary bodies go out as
 * generated), fast-check generators for bodies, headers, path segments and
 * query strings, and the filter that keeps any generated request from being a
 * valid start of a run.
 *
 * Generated values are small "recipes" (a mutation list, a nesting depth, a
 * string length) that are turned into bytes only when sent, so that
 * fast-check's counterexamples stay readable and shrink well.
 */
import { IngestDocument, KnowledgeModel } from "@duraflow/knowledge"
import { OntologyModel, PublishOntology } from "@duraflow/ontology"
import { Either, FastCheck as fc, Schema } from "effect"
import { request as httpRequest } from "node:http"
import { RequestGuard } from "@duraflow/runtime-core"

// ---------------------------------------------------------------------------------------------------------------
// Raw HTTP

export interface RawRequest {
  readonly method: string
  /**
   * The request target exactly as written on the request line. Characters
   * U+0080..U+00FF stand for single raw bytes (Node writes the head as latin1).
   */
  readonly target: string
  /** Sent in this order, duplicates included; `host`, `connection` and `content-length` are added. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body?: Buffer | undefined
}

export interface RawResponse {
  readonly status: number
  /** The first 64 KiB of the body. */
  readonly body: string
}

/**
 * One request on a fresh connection; rejects when the connection stays silent for `timeoutMs`
 * (generous: it tells an app that never answers from one that is slow on a loaded machine).
 */
export const send = (port: number, req: RawRequest, timeoutMs = 30_000): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const headers: Array<string> = ["host", `127.0.0.1:${port}`, "connection", "close"]
    for (const [name, value] of req.headers) headers.push(name, value)
    if (req.body !== undefined) headers.push("content-length", String(req.body.length))
    let settled = false
    let responded = false
    const settle = (f: () => void) => {
      if (!settled) {
        settled = true
        f()
      }
    }
    const r = httpRequest({
      host: "127.0.0.1",
      port,
      method: req.method,
      path: req.target,
      headers,
      agent: false,
      timeout: timeoutMs
    })
    r.on("response", (res) => {
      responded = true
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (chunk: Buffer) => {
        if (size < 65_536) {
          chunks.push(chunk)
          size += chunk.length
        }
      })
      res.on("end", () => settle(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") })))
      res.on("error", (e) => settle(() => reject(e)))
      res.on("aborted", () => settle(() => reject(new Error("response aborted"))))
    })
    r.on("timeout", () => r.destroy(new Error(`no response within ${timeoutMs} ms`)))
    // a server that answers before reading the whole body may reset the upload: the response still counts
    r.on("error", (e) => {
      if (responded) return
      const code = (e as NodeJS.ErrnoException).code
      // an upload over the body limit is refused (413) before it is read; the server then
      // closes the connection, and Node's client reports the cut-off upload instead
      if ((code === "EPIPE" || code === "ECONNRESET") && (req.body?.length ?? 0) > RequestGuard.MAX_BODY_BYTES) {
        settle(() => resolve({ status: 413, body: "(upload cut off after the server refused it)" }))
        return
      }
      settle(() => reject(e))
    })
    r.end(req.body)
  })

/** A reproducible description of a request: exact target and headers, body as a preview and (if small) base64. */
export const describeRequest = (port: number, req: RawRequest): string => {
  const body = req.body
  return JSON.stringify(
    {
      method: req.method,
      url: `http://127.0.0.1:${port}${req.target}`,
      note: "characters U+0080..U+00FF in url and headers are raw bytes",
      headers: req.headers,
      body: body === undefined ? null : {
        bytes: body.length,
        utf8Preview: body.subarray(0, 1_500).toString("utf8") + (body.length > 1_500 ? "…" : ""),
        ...(body.length <= 8_192 ? { base64: body.toString("base64") } : {})
      }
    },
    null,
    2
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Payload schemas: nothing generated may be a valid start of a run

const payloadSchemas = [
  PublishOntology.PublishOntology.payloadSchema,
  IngestDocument.IngestDocument.payloadSchema
] as ReadonlyArray<Schema.Schema<unknown, unknown, never>>

/** True when `value` decodes with either workflow's payload schema, exactly as the apps decode bodies. */
export const isValidPayload = (value: unknown): boolean =>
  payloadSchemas.some((schema) =>
    Either.isRight(Schema.decodeUnknownEither(schema)(value, { onExcessProperty: "error", errors: "first" }))
  )

/**
 * Every way an app could read `body`: the text (with and without a byte order mark), its JSON,
 * its urlencoded fields, plus `extra`.
 */
export const interpretations = (body: Buffer | undefined, extra: ReadonlyArray<unknown> = []): Array<unknown> => {
  if (body === undefined) return [undefined, null, ...extra]
  const out: Array<unknown> = [...extra]
  for (const text of new Set([body.toString("utf8"), new TextDecoder().decode(body)])) {
    out.push(text, Object.fromEntries(new URLSearchParams(text)))
    try {
      out.push(JSON.parse(text))
    } catch {
      // not JSON
    }
  }
  return out
}

export const Workflows = ["PublishOntology", "IngestDocument"] as const
export type Workflow = typeof Workflows[number]

/** Valid payloads, the starting point of the "almost valid" bodies. */
export const validPayloads: Record<Workflow, Record<string, string>> = {
  PublishOntology: {
    ontologyId: "fuzz",
    turtle: "@prefix owl: <http://www.w3.org/2002/07/owl#> . <urn:fuzz:A> a owl:Class ."
  },
  IngestDocument: {
    documentId: "fuzz-doc",
    title: "Fuzz",
    text: "Alice Smith met Bob Jones in Paris.",
    ontologyId: "fuzz"
  }
}

/** The largest valid length of each field (`turtle`: bytes of UTF-8). */
const maxLength: Record<string, number> = {
  ontologyId: OntologyModel.OntologyIdMaxLength,
  turtle: OntologyModel.MaxTurtleBytes,
  documentId: KnowledgeModel.MaxDocumentIdLength,
  title: KnowledgeModel.MaxTitleLength,
  text: KnowledgeModel.MaxDocumentChars
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies

export type Shape = "array" | "object" | "mixed"

/** JSON text nested `depth` levels deep, built without recursion. */
export const nestedJson = (depth: number, shape: Shape, leaf = "1"): string =>
  shape === "array"
    ? "[".repeat(depth) + leaf + "]".repeat(depth)
    : shape === "object"
    ? "{\"a\":".repeat(depth) + leaf + "}".repeat(depth)
    : "{\"a\":[".repeat(depth) + leaf + "]}".repeat(depth)

export type Mutation =
  | { readonly op: "wrongType"; readonly field: string; readonly value: fc.JsonValue }
  | { readonly op: "missing"; readonly field: string }
  | { readonly op: "extraKey"; readonly key: string; readonly value: fc.JsonValue }
  | { readonly op: "duplicateKey"; readonly field: string; readonly value: fc.JsonValue; readonly first: boolean }
  | { readonly op: "huge"; readonly field: string; readonly over: number; readonly char: string }
  | { readonly op: "unicode"; readonly field: string; readonly value: string; readonly append: boolean }
  | { readonly op: "nul"; readonly field: string; readonly at: number; readonly count: number }
  | { readonly op: "deep"; readonly field: string; readonly depth: number; readonly shape: Shape }
  | { readonly op: "blank"; readonly field: string; readonly value: string }

export type Wrap =
  | { readonly op: "none" }
  | { readonly op: "array" }
  | { readonly op: "string" }
  | { readonly op: "truncate"; readonly keep: number }
  | { readonly op: "bom" }
  | { readonly op: "trailing"; readonly garbage: string }
  | { readonly op: "twice" }

export type BodyRecipe =
  | { readonly kind: "none" }
  | { readonly kind: "json"; readonly value: fc.JsonValue }
  | { readonly kind: "bytes"; readonly bytes: Uint8Array }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "deep"; readonly depth: number; readonly shape: Shape }
  | {
    readonly kind: "almost"
    readonly workflow: Workflow
    readonly mutations: ReadonlyArray<Mutation>
    readonly wrap: Wrap
  }
  | {
    readonly kind: "form"
    readonly workflow: Workflow
    readonly mutations: ReadonlyArray<Mutation>
    readonly encoding: "multipart" | "urlencoded"
    readonly boundary: string
    readonly fileField: boolean
  }

export interface BuiltBody {
  readonly body: Buffer | undefined
  /** The content type that matches the body, for bodies that have one (forms). */
  readonly contentType?: string
  /** Every value an app could decode from the body. */
  readonly readings: ReadonlyArray<unknown>
}

type Entry = readonly [key: string, json: string]

const stringAt = (entries: ReadonlyArray<Entry>, field: string): string => {
  const entry = entries.find(([k]) => k === field)
  if (entry === undefined) return ""
  const value: unknown = JSON.parse(entry[1])
  return typeof value === "string" ? value : ""
}

const replace = (entries: ReadonlyArray<Entry>, field: string, json: string): ReadonlyArray<Entry> =>
  entries.some(([k]) => k === field)
    ? entries.map(([k, v]): Entry => [k, k === field ? json : v])
    : [...entries, [field, json]]

const hugeString = (field: string, over: number, char: string): string => {
  const max = maxLength[field] ?? 1_000
  const count = field === "turtle" ? Math.ceil((max + over) / Buffer.byteLength(char, "utf8")) : max + over
  return char.repeat(count)
}

const mutate = (entries: ReadonlyArray<Entry>, m: Mutation): ReadonlyArray<Entry> => {
  switch (m.op) {
    case "wrongType":
      return replace(entries, m.field, JSON.stringify(m.value))
    case "missing":
      return entries.filter(([k]) => k !== m.field)
    case "extraKey":
      return [...entries, [m.key, JSON.stringify(m.value)]]
    case "duplicateKey":
      return m.first
        ? [[m.field, JSON.stringify(m.value)], ...entries]
        : [...entries, [m.field, JSON.stringify(m.value)]]
    case "huge":
      return replace(entries, m.field, JSON.stringify(hugeString(m.field, m.over, m.char)))
    case "unicode":
      return replace(entries, m.field, JSON.stringify(m.append ? stringAt(entries, m.field) + m.value : m.value))
    case "nul": {
      const s = stringAt(entries, m.field)
      const at = m.at % (s.length + 1)
      return replace(entries, m.field, JSON.stringify(s.slice(0, at) + "\u0000".repeat(m.count) + s.slice(at)))
    }
    case "deep":
      return replace(entries, m.field, nestedJson(m.depth, m.shape))
    case "blank":
      return replace(entries, m.field, JSON.stringify(m.value))
  }
}

const mutatedEntries = (workflow: Workflow, mutations: ReadonlyArray<Mutation>): ReadonlyArray<Entry> =>
  mutations.reduce(
    mutate,
    Object.entries(validPayloads[workflow]).map(([k, v]): Entry => [k, JSON.stringify(v)])
  )

const objectJson = (entries: ReadonlyArray<Entry>) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`

const wrapJson = (json: string, wrap: Wrap): string => {
  switch (wrap.op) {
    case "none":
      return json
    case "array":
      return `[${json}]`
    case "string":
      return JSON.stringify(json)
    case "truncate":
      return json.slice(0, Math.floor(json.length * wrap.keep))
    case "bom":
      return `\uFEFF${json}`
    case "trailing":
      return json + wrap.garbage
    case "twice":
      return json + json
  }
}

/** Form fields as a form parser reads them: JSON strings become their content, anything else its JSON text. */
const formFields = (entries: ReadonlyArray<Entry>): Array<[string, string]> =>
  entries.map(([k, v]) => {
    const value: unknown = v.length < 2_000_000 && v.startsWith("\"") ? JSON.parse(v) : undefined
    return [k, typeof value === "string" ? value : v]
  })

export const buildBody = (recipe: BodyRecipe): BuiltBody => {
  switch (recipe.kind) {
    case "none":
      return { body: undefined, readings: interpretations(undefined) }
    case "json": {
      const body = Buffer.from(JSON.stringify(recipe.value) ?? "null", "utf8")
      return { body, readings: interpretations(body) }
    }
    case "bytes": {
      const body = Buffer.from(recipe.bytes)
      return { body, readings: interpretations(body) }
    }
    case "text": {
      const body = Buffer.from(recipe.text, "utf8")
      return { body, readings: interpretations(body) }
    }
    case "deep": {
      const body = Buffer.from(nestedJson(recipe.depth, recipe.shape), "utf8")
      return { body, readings: interpretations(body) }
    }
    case "almost": {
      const body = Buffer.from(wrapJson(objectJson(mutatedEntries(recipe.workflow, recipe.mutations)), recipe.wrap), "utf8")
      return { body, readings: interpretations(body) }
    }
    case "form": {
      const fields = formFields(mutatedEntries(recipe.workflow, recipe.mutations))
      const record = Object.fromEntries(fields)
      if (recipe.encoding === "urlencoded") {
        const body = Buffer.from(new URLSearchParams(fields).toString(), "utf8")
        return { body, contentType: "application/x-www-form-urlencoded", readings: interpretations(body, [record]) }
      }
      const b = recipe.boundary
      const parts = fields.map(([k, v], i) =>
        `--${b}\r\ncontent-disposition: form-data; name="${k}"${
          recipe.fileField && i === 0 ? "; filename=\"payload.ttl\"\r\ncontent-type: text/turtle" : ""
        }\r\n\r\n${v}\r\n`
      )
      const body = Buffer.from(`${parts.join("")}--${b}--\r\n`, "utf8")
      return { body, contentType: `multipart/form-data; boundary=${b}`, readings: interpretations(body, [record]) }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: bodies

const allFields = ["ontologyId", "turtle", "documentId", "title", "text"] as const

export const jsonValue: fc.Arbitrary<fc.JsonValue> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 3, stringUnit: "binary" })
)

const awkwardKey = fc.oneof(
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("__proto__", "constructor", "prototype", "toString", "_tag", "executionId", "version", "", " ", "\u0000")
)

const mutationFor = (workflow: Workflow): fc.Arbitrary<Mutation> => {
  const own = Object.keys(validPayloads[workflow])
  // mostly the workflow's own fields, sometimes the other workflow's
  const field = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...own) }, { weight: 1, arbitrary: fc.constantFrom(...allFields) })
  return fc.oneof(
    fc.record({ op: fc.constant("wrongType" as const), field, value: jsonValue }),
    fc.record({ op: fc.constant("missing" as const), field }),
    fc.record({ op: fc.constant("extraKey" as const), key: awkwardKey, value: jsonValue }),
    fc.record({ op: fc.constant("duplicateKey" as const), field, value: jsonValue, first: fc.boolean() }),
    fc.record({
      op: fc.constant("huge" as const),
      field,
      over: fc.integer({ min: 1, max: 64 }),
      char: fc.constantFrom("a", "é", "\u{1F600}", " ", "\u0000")
    }),
    fc.record({
      op: fc.constant("unicode" as const),
      field,
      value: fc.oneof(
        fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }),
        fc.constantFrom("\u{1F600}", "\u202E", "\uFEFF", "\u200B", "\uD800", "e\u0301", "../..", "\r\n", "\\")
      ),
      append: fc.boolean()
    }),
    fc.record({
      op: fc.constant("nul" as const),
      field,
      at: fc.nat({ max: 200 }),
      count: fc.integer({ min: 1, max: 3 })
    }),
    fc.record({
      op: fc.constant("deep" as const),
      field,
      depth: fc.integer({ min: 1, max: 6_000 }),
      shape: fc.constantFrom("array" as const, "object" as const, "mixed" as const)
    }),
    fc.record({
      op: fc.constant("blank" as const),
      field,
      value: fc.constantFrom("", " ", "\t\n", "\u00A0", "\u200B", "\u3000")
    })
  )
}

const wrap: fc.Arbitrary<Wrap> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ op: "none" as const }) },
  { weight: 1, arbitrary: fc.constantFrom({ op: "array" as const }, { op: "string" as const }, { op: "bom" as const }, { op: "twice" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate" as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("trailing" as const),
      garbage: fc.oneof(fc.constantFrom(",", "}", "]", " x", "\u0000", "//", "\n{}"), fc.string({ maxLength: 10 }))
    })
  }
)

const workflow = fc.constantFrom(...Workflows)

const boundaryChar = fc.constantFrom(..."abcXYZ0123456789'()+_,-./:=?")
export const boundary = fc.string({ unit: boundaryChar, minLength: 1, maxLength: 70 })

/** A valid payload of `w` with one to three mutations. */
export const almostValidFor = (w: Workflow): fc.Arbitrary<BodyRecipe> =>
  fc.record({
    kind: fc.constant("almost" as const),
    workflow: fc.constant(w),
    mutations: fc.array(mutationFor(w), { minLength: 1, maxLength: 3 }),
    wrap
  })

export const almostValid: fc.Arbitrary<BodyRecipe> = workflow.chain(almostValidFor)

export const formBody: fc.Arbitrary<BodyRecipe> = workflow.chain((w) =>
  fc.record({
    kind: fc.constant("form" as const),
    workflow: fc.constant(w),
    mutations: fc.array(mutationFor(w), { minLength: 0, maxLength: 2 }),
    encoding: fc.constantFrom("multipart" as const, "urlencoded" as const),
    boundary,
    fileField: fc.boolean()
  })
)

/** Bodies meant as JSON: random JSON, bytes and text, deep nesting, almost valid payloads. */
export const jsonishBody: fc.Arbitrary<BodyRecipe> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("json" as const), value: jsonValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("bytes" as const), bytes: fc.uint8Array({ maxLength: 2_000 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("text" as const),
      text: fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.json(), fc.string({ maxLength: 300 }))
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("deep" as const),
      depth: fc.integer({ min: 1, max: 6_000 }),
      shape: fc.constantFrom("array" as const, "object" as const, "mixed" as const)
    })
  },
  { weight: 6, arbitrary: almostValid }
)

/** Any body: the above plus multipart and urlencoded forms. */
export const anyBody: fc.Arbitrary<BodyRecipe> = fc.oneof(
  { weight: 4, arbitrary: jsonishBody },
  { weight: 1, arbitrary: formBody }
)

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: headers

const tokenChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"

/** Headers that frame or route the request; generated ones never use these names. */
const framing = new Set(["host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "keep-alive", "proxy-connection", "http2-settings"])

const headerName = fc.oneof(
  fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: 40 }),
  fc.constantFrom(
    "accept", "accept-encoding", "accept-language", "accept-charset", "content-encoding", "content-language",
    "authorization", "cookie", "origin", "referer", "user-agent", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "forwarded", "x-real-ip", "traceparent", "tracestate", "b3", "x-b3-traceid",
    "x-b3-spanid", "x-b3-sampled", "x-request-id", "if-none-match", "if-modified-since", "range", "te", "via",
    "x-http-method-override", "content-md5", "prefer", "idempotency-key", "content-disposition"
  )
).filter((n) => !framing.has(n.toLowerCase()))

/** Characters Node allows in a header value: tab, visible ASCII and space, and bytes 0x80..0xFF. */
const headerValueChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7E }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xFF }) }
).map((c) => String.fromCharCode(c))

export const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: headerValueChar, maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-0000000000000000-00",
      "ff-zz-zz-zz",
      "gzip",
      "deflate, br",
      "bytes=0-0",
      "*",
      "PUT"
    )
  },
  // huge, but within Node's 16 KiB header limit
  { weight: 1, arbitrary: fc.record({ char: headerValueChar, count: fc.integer({ min: 1_000, max: 8_000 }) }).map(({ char, count }) => char.repeat(count)) }
)

export const randomHeaders = fc.uniqueArray(fc.tuple(headerName, headerValue), {
  maxLength: 8,
  selector: ([name]) => name.toLowerCase()
}).filter((hs) => hs.reduce((n, [k, v]) => n + k.length + v.length, 0) < 12_000)

/** A content-type header (or none), from the plausible to the bogus. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/json;charset=latin1",
      "application/json; charset=utf-16le",
      "application/json; charset=bogus",
      "application/problem+json",
      "application/json, text/plain",
      "text/plain",
      "text/plain; charset=utf-8",
      "text/html",
      "text/turtle",
      "application/x-www-form-urlencoded",
      "application/x-www-form-urlencoded; charset=utf-8",
      "multipart/form-data",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=\"\"",
      "multipart/mixed; boundary=x",
      "application/octet-stream",
      "application/xml",
      "*/*",
      "",
      ";",
      "application/",
      "/json",
      "json"
    )
  },
  { weight: 1, arbitrary: boundary.map((b) => `multipart/form-data; boundary=${b}`) },
  { weight: 2, arbitrary: headerValue }
)

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: path segments and query strings

export type Encoding = "encoded" | "raw" | "verbatim"

const hex = (b: number) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`
const unreserved = /^[A-Za-z0-9\-._~]$/

/**
 * `encoded`: percent-encodes the UTF-8 bytes of everything but unreserved characters;
 * `raw`: sends the UTF-8 bytes as they are (only bytes up to 0x20, which Node refuses to send, are percent-encoded);
 * `verbatim`: the text as written (for ready-made escapes such as `%00` or `%zz`).
 */
export const encode = (text: string, encoding: Encoding): string => {
  if (encoding === "verbatim") return text
  let out = ""
  for (const b of Buffer.from(text, "utf8")) {
    const c = String.fromCharCode(b)
    out += encoding === "encoded"
      ? (b < 0x80 && unreserved.test(c) ? c : hex(b))
      : (b <= 0x20 ? hex(b) : c)
  }
  return out
}

const segmentText = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom("PublishOntology", "IngestDocument", "news", "fuzz", "fuzz-doc", "x", "signals", "runs")
  },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 10 }) },
  // control characters, NUL above all, and code units that are no valid UTF-8 on their own
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.string({ maxLength: 5 }),
      fc.constantFrom("\u0000", "\u0000\u0000", "\u0001", "\u0008", "\u001B", "\u007F", "\u0085", "\uD800", "\uDFFF", "\uFFFE"),
      fc.string({ maxLength: 5 })
    ).map(([a, c, b]) => a + c + b)
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "..", ".", "/", "//", "a/b", "../../etc/passwd", "..%2F..", "\u0000", "a\u0000b", "\u{1F600}", "\u{1F469}\u200D\u{1F4BB}",
      "%", " ", "?", "#", "\\", "..\\..", "~", "'", "\"", ";", "$(id)", "${x}", "<script>", "\uFEFF", "\u202E", "\uFFFF",
      "\uD800", "NaN", "-1", "null", "undefined", "__proto__", "constructor", "Publish%4Fntology"
    )
  },
  {
    weight: 1,
    arbitrary: fc.record({
      char: fc.constantFrom("a", "\u{1F600}", "é", "\u0000", "/", "."),
      count: fc.integer({ min: 129, max: 4_000 })
    }).map(({ char, count }) => char.repeat(count))
  }
)

const preEncoded = fc.constantFrom(
  "%00", "a%00", "%00%00", "x%00y", "%2F", "%2f..%2f", "%2e%2e", "%2E%2E%2F%2E%2E", "%zz", "%", "%%", "%ED%A0%80", "%FF", "%C0%AF", "%C0%80",
  "%E0%A4%A", "%u0000", "%%32%65", "%252e%252e", "%F0%9F%98%80", "%EF%BB%BF", "%0A", "%0D%0A", "%09", "%20", "+"
)

export interface Segment {
  readonly text: string
  readonly encoding: Encoding
}

export const segment: fc.Arbitrary<Segment> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ text: segmentText, encoding: fc.constantFrom("encoded" as const, "raw" as const) }) },
  { weight: 1, arbitrary: fc.record({ text: preEncoded, encoding: fc.constant("verbatim" as const) }) }
)

export const renderSegment = (s: Segment) => encode(s.text, s.encoding)

export interface QueryPart {
  readonly key: Segment
  readonly value: Segment | undefined
}

const limitish = fc.oneof(
  fc.constantFrom(
    "abc", "-1", "0", "1", "500", "501", "1e3", "1e309", "99999999999999999999999", "1.5", " 1", "1 ", "0x10", "0b1", "",
    "NaN", "Infinity", "-Infinity", "-0", "+5", "1_000", "١٢", "\u0000", "[]", "{}", "null"
  ),
  fc.integer().map(String),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String),
  fc.double().map(String)
)

const queryKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("workflow", "status", "limit", "type", "q", "limit[]", "q[a]", "", "Limit") },
  { weight: 1, arbitrary: segmentText }
)

const queryValue = fc.oneof(
  { weight: 2, arbitrary: limitish },
  { weight: 1, arbitrary: fc.constantFrom("running", "suspended", "succeeded", "failed", "RUNNING", "PublishOntology", "IngestDocument", "person", "http://example.org/x#Person") },
  { weight: 3, arbitrary: segmentText }
)

const queryPart: fc.Arbitrary<QueryPart> = fc.record({
  key: fc.record({ text: queryKey, encoding: fc.constantFrom("encoded" as const, "raw" as const) }),
  value: fc.option(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ text: queryValue, encoding: fc.constantFrom("encoded" as const, "raw" as const) }) },
      { weight: 1, arbitrary: fc.record({ text: preEncoded, encoding: fc.constant("verbatim" as const) }) }
    ),
    { nil: undefined, freq: 8 }
  )
})

export interface Query {
  readonly parts: ReadonlyArray<QueryPart>
  readonly separator: "&" | ";" | "&&"
}

/** Query strings with repeated keys, keys without values, odd separators and any value. */
export const query: fc.Arbitrary<Query> = fc.record({
  parts: fc.array(queryPart, { maxLength: 6 }),
  separator: fc.constantFrom("&" as const, "&" as const, "&" as const, ";" as const, "&&" as const)
})

export const renderQuery = (q: Query): string =>
  q.parts.map((p) => p.value === undefined ? renderSegment(p.key) : `${renderSegment(p.key)}=${renderSegment(p.value)}`)
    .join(q.separator)
