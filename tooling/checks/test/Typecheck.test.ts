/**
 * `pnpm test` type-checks the workspace as one program (`tsconfig.workspace.json`), not each
 * project on its own (tooling/matrix/src/WorkspaceTest.ts). That checks what the projects'
 * own runs check only while every project compiles with the workspace program's options and
 * its files are in that program: asserted here with TypeScript's own reading of each config.
 */
import { join } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { root, workspacePackages } from "./workspace.js"

/** The config at `file` as `tsc -p` reads it: its compiler options and files. */
const parse = (file: string) => {
  const parsed = ts.getParsedCommandLineOfConfigFile(file, undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })
  if (parsed === undefined) throw new Error(`cannot read ${file}`)
  expect(parsed.errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))).toEqual([])
  // where the config file is, not how the program compiles
  const { configFilePath: _path, ...options } = parsed.options
  return { options, fileNames: parsed.fileNames }
}

describe("the workspace typecheck", () => {
  const workspace = parse(join(root, "tsconfig.workspace.json"))
  const projects = workspacePackages()

  it("covers every project", () => {
    expect(projects.length).toBeGreaterThan(10)
  })

  it.each(projects.map((p) => [p.name, p.dir] as const))("%s: the same options, and every file in the program", (_name, dir) => {
    const project = parse(join(root, dir, "tsconfig.json"))
    expect(project.options).toEqual(workspace.options)
    expect(project.fileNames.length).toBeGreaterThan(0)
    const missing = project.fileNames.filter((file) => !workspace.fileNames.includes(file))
    expect(missing).toEqual([])
  })
})
