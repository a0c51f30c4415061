/**
 * The release flow: a changeset for one publishable package turns, with
 * `changeset version`, into a version bump and a CHANGELOG entry for it, a
 * patch bump for the publishable packages that depend on it, and nothing for
 * the private apps and tooling. Runs on a throwaway copy of the committed tree.
 * Also: every publishable package builds to an `exports` map whose targets exist.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { root, workspacePackages } from "./workspace.js"

const version = (dir: string, project: string) =>
  JSON.parse(readFileSync(join(dir, project, "package.json"), "utf8")).version as string

describe("releases", () => {
  it("changeset version bumps the changed package, patches its publishable dependents, leaves apps alone", () => {
    const dir = mkdtempSync(join(tmpdir(), "duraflow-release-"))
    try {
      // the committed tree, without node_modules: what a release job checks out
      const files = execFileSync("git", ["ls-files", "-z"], { cwd: root, encoding: "utf8" }).split("\0").filter(Boolean)
      // the flow is tested on one changeset of its own: changesets pending in the repo would bump
      // their packages too (README.md and config.json are the folder's own files)
      const pending = (file: string) => /^\.changeset\/(?!README\.md$|config\.json$)[^/]+\.md$/.test(file)
      for (const file of files.filter((f) => !pending(f))) cpSync(join(root, file), join(dir, file), { recursive: true })
      execFileSync("git", ["init", "-q"], { cwd: dir })
      const before = {
        ontology: version(dir, "packages/ontology"),
        knowledge: version(dir, "packages/knowledge"),
        runtime: version(dir, "packages/runtime-core"),
        app: version(dir, "apps/ontology-server")
      }
      writeFileSync(
        join(dir, ".changeset", "duplicate-iris.md"),
        `---\n"@duraflow/ontology": minor\n---\n\nPublishOntology reports duplicate IRIs.\n`
      )
      execFileSync(join(root, "node_modules", ".bin", "changeset"), ["version"], { cwd: dir, stdio: "pipe" })

      const [major, minor] = before.ontology.split(".").map(Number)
      expect(version(dir, "packages/ontology")).toBe(`${major}.${minor + 1}.0`)
      const changelog = readFileSync(join(dir, "packages/ontology/CHANGELOG.md"), "utf8")
      expect(changelog).toContain(`## ${major}.${minor + 1}.0`)
      expect(changelog).toContain("PublishOntology reports duplicate IRIs.")
      // knowledge depends on ontology: a patch release with the updated dependency
      expect(version(dir, "packages/knowledge")).not.toBe(before.knowledge)
      expect(version(dir, "packages/runtime-core")).toBe(before.runtime)
      expect(version(dir, "apps/ontology-server")).toBe(before.app)
      expect(existsSync(join(dir, ".changeset", "duplicate-iris.md"))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("publishable packages have a version, public access and a dist exports map mirroring the source one", () => {
    const publishable = workspacePackages().filter((p) => !p.manifest.private)
    expect(publishable.map((p) => p.name).sort()).toEqual(["@duraflow/knowledge", "@duraflow/ontology", "@duraflow/runtime-core"])
    for (const { dir, manifest } of publishable) {
      const m = manifest as any
      expect(m.version).toMatch(/^\d+\.\d+\.\d+$/)
      expect(m.publishConfig.access).toBe("public")
      expect(Object.keys(m.publishConfig.exports)).toEqual(Object.keys(m.exports))
      for (const [key, target] of Object.entries<any>(m.exports)) {
        if (target === null) {
          expect(m.publishConfig.exports[key]).toBeNull()
          continue
        }
        expect(m.publishConfig.exports[key]).toEqual({
          types: target.replace("./src/", "./dist/").replace(/\.ts$/, ".d.ts"),
          default: target.replace("./src/", "./dist/").replace(/\.ts$/, ".js")
        })
        if (!target.includes("*")) expect(existsSync(join(root, dir, target))).toBe(true)
      }
      expect(m.files).toContain("dist")
      expect(m.scripts.build).toBe("tsc -p tsconfig.build.json")
    }
  })
})
