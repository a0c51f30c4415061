/**
 * Building blocks of the fuzz suite: the workflows, their payload schemas and
 * the known routes, all read from the apps' exported APIs; fast-check
 * generators for bodies (valid payloads from `Arbitrary.make` of each payload
 * schema, then mutated generically: a field dropped, a wrong type, an unknown
 * key, extra nesting, a string past the schema's maxLength, awkward text),
 * headers, path segments and query strings; and the filter that keeps any
 * generated request from being a valid start of a run.
 *
 * Generated values are small "recipes" (a payload, a mutation list, a nesting
 * depth) that are turned into bytes only when sent, so that fast-check's
 * counterexamples stay readable and shrink well.
 */
import { KnowledgeApi } from "@duraflow/knowledge"
import { OntologyApi } from "@duraflow/ontology"
import { RequestGuard } from "@duraflow/runtime-core"
import { Arbitrary, Either, FastCheck as fc, JSONSchema, Option, Schema } from "effect"

// ---------------------------------------------------------------------------------------------------------------
// What the APIs declare

interface Endpoint {
  readonly name: string
  readonly method: string
  readonly path: string
  readonly payloadSchema: Option.Option<Schema.Schema<unknown, unknown, never>>
}
type Api = { readonly groups: Record<string, { readonly endpoints: Record<string, Endpoint> }> }

const apis = { ontology: OntologyApi.OntologyApi, knowledge: KnowledgeApi.KnowledgeApi } as const
export type AppKey = keyof typeof apis
export const appKeys = Object.keys(apis) as ReadonlyArray<AppKey>

const endpointsOf = (app: AppKey) =>
  Object.values((apis[app] as unknown as Api).groups).flatMap((group) => Object.values(group.endpoints))

export interface Workflow {
  readonly name: string
  readonly schema: Schema.Schema<unknown, unknown, never>
  /** The payload's fields, with their `maxLength` where the schema has one. */
  readonly fields: Record<string, number | undefined>
}

/** The payload's properties in the schema's JSON Schema, `$ref`s resolved. */
const fieldsOf = (schema: Schema.Schema<unknown, unknown, never>): Record<string, number | undefined> => {
  const json = JSONSchema.make(schema) as { properties: Record<string, { $ref?: string; maxLength?: number }>; $defs?: Record<string, { maxLength?: number }> }
  return Object.fromEntries(Object.entries(json.properties).map(([key, p]) => [key, p.maxLength ?? json.$defs?.[p.$ref?.split("/").pop() ?? ""]?.maxLength]))
}

/** An app's workflows: its POST endpoints with a payload, signals excepted. */
const workflowsOf = (app: AppKey): ReadonlyArray<Workflow> =>
  endpointsOf(app).flatMap((e) =>
    e.method === "POST" && !e.name.includes(".signal.") && Option.isSome(e.payloadSchema)
      ? [{ name: e.name, schema: e.payloadSchema.value, fields: fieldsOf(e.payloadSchema.value) }]
      : []
  )
export const workflows = { ontology: workflowsOf("ontology"), knowledge: workflowsOf("knowledge") }
export const allWorkflows = appKeys.flatMap((app) => workflows[app])

/** The paths each app serves (parameters filled with `x`), with the methods it serves them for. */
export const knownRoutes = (app: AppKey): Map<string, Set<string>> => {
  const routes = new Map<string, Set<string>>([["/openapi.json", new Set(["GET"])]])
  for (const e of endpointsOf(app)) {
    const path = e.path.replace(/:[^/]+/g, "x")
    routes.set(path, (routes.get(path) ?? new Set()).add(e.method))
  }
  return routes
}

/** True when `value` decodes with any workflow's payload schema, exactly as the apps decode bodies. */
export const isValidPayload = (value: unknown): boolean =>
  allWorkflows.some((w) => Either.isRight(Schema.decodeUnknownEither(w.schema)(value, { onExcessProperty: "error", errors: "first" })))

const payloads = new Map<Workflow, fc.Arbitrary<Record<string, unknown>>>()
/** Valid payloads of `w`, from its schema. */
export const validPayload = (w: Workflow) => {
  if (!payloads.has(w)) payloads.set(w, Arbitrary.make(w.schema) as fc.Arbitrary<Record<string, unknown>>)
  return payloads.get(w)!
}

/** One of `f`'s arbitraries for each of `xs` (built once, unlike `chain`). */
export const oneOfEach = <X, T>(xs: ReadonlyArray<X>, f: (x: X) => fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof(...xs.map(f))

// ---------------------------------------------------------------------------------------------------------------
// Bodies

export type Shape = "array" | "object" | "mixed"

/** JSON text nested `depth` levels deep around `leaf`, built without recursion. */
const nestedJson = (depth: number, shape: Shape, leaf = "1"): string =>
  shape === "array"
    ? "[".repeat(depth) + leaf + "]".repeat(depth)
    : shape === "object"
    ? "{\"a\":".repeat(depth) + leaf + "}".repeat(depth)
    : "{\"a\":[".repeat(depth) + leaf + "]}".repeat(depth)

export type Mutation =
  | { readonly op: "drop"; readonly field: string }
  | { readonly op: "set"; readonly field: string; readonly value: fc.JsonValue }
  | { readonly op: "nest"; readonly field: string; readonly depth: number; readonly shape: Shape }
  | { readonly op: "huge"; readonly field: string; readonly over: number; readonly char: string }
  | { readonly op: "text"; readonly field: string; readonly text: string; readonly append: boolean }

type Wrap = "none" | "array" | "string" | "bom" | "twice" | { readonly truncate: number } | { readonly trailing: string }

export type BodyRecipe =
  | { readonly kind: "none" }
  | { readonly kind: "json"; readonly value: fc.JsonValue }
  | { readonly kind: "bytes"; readonly bytes: Uint8Array }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "deep"; readonly depth: number; readonly shape: Shape }
  | { readonly kind: "almost"; readonly payload: object; readonly mutations: ReadonlyArray<Mutation>; readonly wrap: Wrap }
  | {
    readonly kind: "form"
    readonly payload: object
    readonly mutations: ReadonlyArray<Mutation>
    readonly boundary: string | undefined
  }

/** `[key, JSON text]` of the mutated payload (JSON text, so that deep nesting needs no recursion). */
const mutated = (payload: object, mutations: ReadonlyArray<Mutation>) =>
  mutations.reduce((entries, m) => {
    const current = entries.get(m.field)
    const next = new Map(entries)
    if (m.op === "drop") next.delete(m.field)
    else if (m.op === "set") next.set(m.field, JSON.stringify(m.value))
    else if (m.op === "nest") next.set(m.field, nestedJson(m.depth, m.shape, current ?? "1"))
    else if (m.op === "huge") next.set(m.field, JSON.stringify(m.char.repeat(maxLength(m.field) + m.over)))
    else next.set(m.field, JSON.stringify(m.append && current?.startsWith("\"") ? JSON.parse(current) + m.text : m.text))
    return next
  }, new Map(Object.entries(payload).map(([k, v]) => [k, JSON.stringify(v)])))

const wrapJson = (json: string, wrap: Wrap): string =>
  wrap === "none" ? json
  : wrap === "array" ? `[${json}]`
  : wrap === "string" ? JSON.stringify(json)
  : wrap === "bom" ? `\uFEFF${json}`
  : wrap === "twice" ? json + json
  : "truncate" in wrap ? json.slice(0, Math.floor(json.length * wrap.truncate))
  : json + wrap.trailing

/** Every way an app could read `body`: the text (with and without a byte order mark), its JSON, its urlencoded fields. */
const readings = (body: Buffer | undefined, extra: ReadonlyArray<unknown> = []): Array<unknown> => {
  if (body === undefined) return [undefined, null]
  if (body.length > RequestGuard.MAX_BODY_BYTES) return [] // refused unread (413)
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

/** The bytes of a body, the content type that goes with it (forms), and whether any reading of it starts a run. */
const fields = Object.assign({}, ...allWorkflows.map((w) => w.fields)) as Record<string, number | undefined>
/** A field's maxLength; 1 MiB for a field the JSON Schema gives none (the largest body field, Turtle), 1,000 for unknown keys. */
const maxLength = (field: string) => field in fields ? fields[field] ?? 2 ** 20 : 1_000

export interface BuiltBody {
  readonly body: Buffer | undefined
  readonly contentType?: string
  readonly startsRun: boolean
}
const built = new WeakMap<BodyRecipe, BuiltBody>()

export const buildBody = (recipe: BodyRecipe): BuiltBody => {
  if (!built.has(recipe)) built.set(recipe, build(recipe))
  return built.get(recipe)!
}

const build = (recipe: BodyRecipe): BuiltBody => {
  const of = (text: string | Uint8Array, extra: ReadonlyArray<unknown> = [], contentType?: string) => {
    const body = Buffer.from(text)
    return { body, ...(contentType === undefined ? {} : { contentType }), startsRun: readings(body, extra).some(isValidPayload) }
  }
  switch (recipe.kind) {
    case "none":
      return { body: undefined, startsRun: readings(undefined).some(isValidPayload) }
    case "json":
      return of(JSON.stringify(recipe.value) ?? "null")
    case "bytes":
      return of(recipe.bytes)
    case "text":
      return of(recipe.text)
    case "deep":
      return of(nestedJson(recipe.depth, recipe.shape))
    case "almost": {
      const entries = [...mutated(recipe.payload, recipe.mutations)]
      return of(wrapJson(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`, recipe.wrap))
    }
    case "form": {
      // as a form parser reads them: JSON strings become their content, anything else its JSON text
      const form = [...mutated(recipe.payload, recipe.mutations)].map(([k, v]): [string, string] => {
        const value: unknown = v.length < 2_000_000 && v.startsWith("\"") ? JSON.parse(v) : undefined
        return [k, typeof value === "string" ? value : v]
      })
      const b = recipe.boundary
      return b === undefined
        ? of(new URLSearchParams(form).toString(), [Object.fromEntries(form)], "application/x-www-form-urlencoded")
        : of(
          `${form.map(([k, v]) => `--${b}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join("")}--${b}--\r\n`,
          [Object.fromEntries(form)],
          `multipart/form-data; boundary=${b}`
        )
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: bodies

const jsonValue: fc.Arbitrary<fc.JsonValue> = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3, stringUnit: "binary" }))
const shape = fc.constantFrom<Shape>("array", "object", "mixed")
const depth = fc.integer({ min: 1, max: 6_000 })

/** Keys no payload has, and the workflows' own field names (of the other workflow, they are unknown keys). */
const anyKey = fc.oneof(
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("__proto__", "constructor", "toString", "_tag", "executionId", "version", "", " ", "\u0000"),
  fc.constantFrom(...allWorkflows.flatMap((w) => Object.keys(w.fields)))
)

const awkwardText = fc.oneof(
  fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }),
  fc.constantFrom("", " ", "\t\n", "\u00A0", "\u3000", "\u0000", "\u{1F600}", "\u202E", "\uFEFF", "\u200B", "\uD800", "e\u0301", "../..")
)

const mutation = (w: Workflow): fc.Arbitrary<Mutation> => {
  const field = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...Object.keys(w.fields)) }, { weight: 1, arbitrary: anyKey })
  return fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant("drop" as const), field }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("set" as const), field, value: jsonValue }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("nest" as const), field, depth, shape }) },
    { weight: 1, arbitrary: fc.record({
      op: fc.constant("huge" as const),
      field,
      over: fc.integer({ min: 1, max: 64 }),
      char: fc.constantFrom("a", "é", "\u{1F600}", " ", "\u0000")
    }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("text" as const), field, text: awkwardText, append: fc.boolean() }) }
  )
}

const wrap: fc.Arbitrary<Wrap> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("none" as const) },
  { weight: 1, arbitrary: fc.constantFrom("array" as const, "string" as const, "bom" as const, "twice" as const) },
  { weight: 1, arbitrary: fc.record({ truncate: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ trailing: fc.oneof(fc.constantFrom(",", "}", "]", " x", "\u0000", "//", "\n{}"), fc.string({ maxLength: 10 })) }) }
)

export const boundary = fc.string({ unit: fc.constantFrom(..."abcXYZ0123456789'()+_,-./:=?"), minLength: 1, maxLength: 70 })

/** A valid payload of one of `ws` (from its schema) with one to three mutations. */
export const almostValid = (ws: ReadonlyArray<Workflow>): fc.Arbitrary<BodyRecipe> =>
  oneOfEach(ws, (w) =>
    fc.record({ kind: fc.constant("almost" as const), payload: validPayload(w), mutations: fc.array(mutation(w), { minLength: 1, maxLength: 3 }), wrap })
  )

/** Bodies meant as JSON: random JSON, bytes and text, deep nesting, almost valid payloads of `ws`. */
export const jsonishBody = (ws: ReadonlyArray<Workflow>): fc.Arbitrary<BodyRecipe> =>
  fc.oneof(
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
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("deep" as const), depth, shape }) },
    { weight: 6, arbitrary: almostValid(ws) }
  )

/** Any body: the above plus multipart and urlencoded forms of (mutated) payloads. */
export const anyBody: fc.Arbitrary<BodyRecipe> = fc.oneof(
  { weight: 4, arbitrary: jsonishBody(allWorkflows) },
  {
    weight: 1,
    arbitrary: oneOfEach(allWorkflows, (w) =>
      fc.record({
        kind: fc.constant("form" as const),
        payload: validPayload(w),
        mutations: fc.array(mutation(w), { maxLength: 2 }),
        boundary: fc.option(boundary, { nil: undefined })
      })
    )
  }
)

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: headers

const tokenChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"

/** Headers that frame or route the request; generated ones never use these names. */
const framing = new Set(["host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "keep-alive", "proxy-connection", "http2-settings"])

const headerName = fc.oneof(
  fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: 40 }),
  fc.constantFrom(
    "accept", "accept-encoding", "accept-charset", "content-encoding", "content-language", "authorization", "cookie", "origin",
    "user-agent", "x-forwarded-for", "x-forwarded-host", "forwarded", "traceparent", "tracestate", "b3", "x-request-id",
    "if-none-match", "range", "te", "via", "x-http-method-override", "content-md5", "prefer", "idempotency-key", "content-disposition"
  )
).filter((n) => !framing.has(n.toLowerCase()))

/** Characters Node allows in a header value: tab, visible ASCII and space, and bytes 0x80..0xFF. */
const headerValueChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7E }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xFF }) }
).map((c) => String.fromCharCode(c))

const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: headerValueChar, maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "ff-zz-zz-zz", "gzip", "deflate, br", "bytes=0-0", "*", "PUT")
  },
  // huge, but within Node's 16 KiB header limit
  { weight: 1, arbitrary: fc.tuple(headerValueChar, fc.integer({ min: 1_000, max: 8_000 })).map(([c, n]) => c.repeat(n)) }
)

export const randomHeaders = fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 8, selector: ([name]) => name.toLowerCase() })
  .filter((hs) => hs.reduce((n, [k, v]) => n + k.length + v.length, 0) < 12_000)

/** A content-type header (or none), from the plausible to the bogus. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=latin1",
      "application/json; charset=utf-16le", "application/json; charset=bogus", "application/problem+json",
      "application/json, text/plain", "text/plain", "text/html", "text/turtle", "application/x-www-form-urlencoded",
      "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=x", "application/octet-stream",
      "*/*", "", ";", "application/", "/json", "json"
    )
  },
  { weight: 1, arbitrary: boundary.map((b) => `multipart/form-data; boundary=${b}`) },
  { weight: 2, arbitrary: headerValue }
)

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: path segments and query strings

/**
 * `encoded`: percent-encodes the UTF-8 bytes of everything but unreserved characters;
 * `raw`: sends the UTF-8 bytes as they are (bytes up to 0x20, which Node refuses to send, percent-encoded);
 * `verbatim`: the text as written (for ready-made escapes such as `%00` or `%zz`).
 */
export interface Segment {
  readonly text: string
  readonly encoding: "encoded" | "raw" | "verbatim"
}

export const renderSegment = ({ encoding, text }: Segment): string => {
  if (encoding === "verbatim") return text
  let out = ""
  for (const b of Buffer.from(text, "utf8")) {
    const c = String.fromCharCode(b)
    const keep = encoding === "encoded" ? b < 0x80 && /^[A-Za-z0-9\-._~]$/.test(c) : b > 0x20
    out += keep ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

const segmentText = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...allWorkflows.map((w) => w.name), "news", "fuzz", "x", "signals", "runs") },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 10 }) },
  // control characters, NUL above all, and code units that are no valid UTF-8 on their own
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.string({ maxLength: 5 }),
      fc.constantFrom("\u0000", "\u0000\u0000", "\u0001", "\u001B", "\u007F", "\u0085", "\uD800", "\uDFFF", "\uFFFE"),
      fc.string({ maxLength: 5 })
    ).map(([a, c, b]) => a + c + b)
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "..", ".", "/", "//", "a/b", "../../etc/passwd", "..%2F..", "a\u0000b", "\u{1F469}\u200D\u{1F4BB}", "%", " ", "?", "#", "\\",
      "~", "'", "\"", ";", "$(id)", "${x}", "<script>", "\uFEFF", "\u202E", "\uFFFF", "NaN", "-1", "null", "__proto__", "Publish%4Fntology"
    )
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("a", "\u{1F600}", "é", "\u0000", "/", "."), fc.integer({ min: 129, max: 4_000 })).map(([c, n]) => c.repeat(n)) }
)

const preEncoded = fc.constantFrom(
  "%00", "a%00", "%00%00", "%2F", "%2f..%2f", "%2E%2E%2F%2E%2E", "%zz", "%", "%%", "%ED%A0%80", "%FF", "%C0%AF", "%C0%80", "%E0%A4%A",
  "%u0000", "%252e%252e", "%F0%9F%98%80", "%EF%BB%BF", "%0D%0A", "%09", "%20", "+"
)

const segmentOf = (text: fc.Arbitrary<string>): fc.Arbitrary<Segment> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ text, encoding: fc.constantFrom("encoded" as const, "raw" as const) }) },
    { weight: 1, arbitrary: fc.record({ text: preEncoded, encoding: fc.constant("verbatim" as const) }) }
  )

export const segment = segmentOf(segmentText)

const queryValue = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom("-1", "0", "1", "500", "501", "1e3", "1e309", "99999999999999999999999", "1.5", " 1", "0x10", "", "NaN", "-0", "+5", "١٢"),
      fc.integer().map(String),
      fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String),
      fc.double().map(String)
    )
  },
  { weight: 1, arbitrary: fc.constantFrom("running", "succeeded", "failed", "RUNNING", ...allWorkflows.map((w) => w.name), "person") },
  { weight: 3, arbitrary: segmentText }
)

/** Query strings with repeated keys, keys without values, odd separators and any value. */
export const query = fc.tuple(
  fc.array(fc.tuple(
    segmentOf(fc.oneof({ weight: 4, arbitrary: fc.constantFrom("workflow", "status", "limit", "type", "q", "limit[]", "", "Limit") }, { weight: 1, arbitrary: segmentText })),
    fc.option(segmentOf(queryValue), { nil: undefined, freq: 8 })
  ), { maxLength: 6 }),
  fc.constantFrom("&", "&", "&", ";", "&&")
).map(([parts, separator]) => parts.map(([k, v]) => v === undefined ? renderSegment(k) : `${renderSegment(k)}=${renderSegment(v)}`).join(separator))
