/**
 * Type-level test: a workflow whose activity needs a service that its
 * dependencies do not provide must not compile. Compiles small programs with
 * the TypeScript compiler and asserts on the diagnostics.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const packageDir = fileURLToPath(new URL("..", import.meta.url))

const program = (body: string) => `
import { Activity, Workflow } from "@effect/workflow"
import { Context, Effect, Layer, Schema } from "effect"
import { WorkflowLayer } from "../../src/index.js"

class Mailer extends Context.Tag("Mailer")<Mailer, { readonly send: (to: string) => Effect.Effect<void> }>() {}
class Ledger extends Context.Tag("Ledger")<Ledger, { readonly book: (id: string) => Effect.Effect<void> }>() {}

const Signup = Workflow.make({
  name: "Signup",
  payload: { email: Schema.String },
  idempotencyKey: ({ email }) => email
})
const MailerLive = Layer.succeed(Mailer, { send: () => Effect.void })
${body}
`

const diagnostics = (source: string): ReadonlyArray<string> => {
  const dir = mkdtempSync(join(packageDir, "test", ".types-"))
  try {
    const file = join(dir, "case.ts")
    writeFileSync(file, source)
    const config = ts.getParsedCommandLineOfConfigFile(join(packageDir, "tsconfig.json"), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => undefined
    })!
    const options = { ...config.options, noUnusedLocals: false }
    const prog = ts.createProgram([file], options, ts.createCompilerHost(options))
    return ts.getPreEmitDiagnostics(prog)
      .filter((d) => d.file?.fileName === file)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe("WorkflowLayer.make", () => {
  it("compiles when every service an activity needs is provided", () => {
    expect(diagnostics(program(`
      export const SignupLayer = WorkflowLayer.make(Signup, {
        dependencies: MailerLive,
        execute: ({ email }) => Activity.make({ name: "mail", execute: Effect.flatMap(Mailer, (m) => m.send(email)) })
      })
    `))).toEqual([])
  }, 60_000)

  it("does not compile when an activity needs a service that was not provided", () => {
    const errors = diagnostics(program(`
      export const SignupLayer = WorkflowLayer.make(Signup, {
        dependencies: MailerLive,
        execute: ({ email }) =>
          Effect.gen(function*() {
            yield* Activity.make({ name: "mail", execute: Effect.flatMap(Mailer, (m) => m.send(email)) })
            yield* Activity.make({ name: "book", execute: Effect.flatMap(Ledger, (l) => l.book(email)) })
          })
      })
    `))
    expect(errors.length).toBeGreaterThan(0)
    expect(errors.join("\n")).toMatch(/Type 'Ledger' is not assignable to type '.*Mailer.*'/s)
  }, 60_000)

  it("plain Workflow.toLayer compiles the same mistake, which is why the helper exists", () => {
    expect(diagnostics(program(`
      export const SignupLayer = Signup.toLayer(({ email }) =>
        Activity.make({ name: "book", execute: Effect.flatMap(Ledger, (l) => l.book(email)) }))
    `))).toEqual([])
  }, 60_000)
})
