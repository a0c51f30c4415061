// One lint config for the workspace: typescript-eslint's recommended rules, plus
// Nx module boundaries so domains talk through public entry points only.
import nx from "@nx/eslint-plugin"
import tseslint from "typescript-eslint"

// @effect/platform's index loads every module, Swagger UI and Scalar's bundled pages among them:
// 22 MB of heap and 0.2 s of start-up in every process that imports it. Import the modules.
const platformBarrel = {
  name: "@effect/platform",
  message: "Import the module (`import * as HttpApiBuilder from \"@effect/platform/HttpApiBuilder\"`): the index loads Swagger UI and Scalar (22 MB of heap)."
}

export default tseslint.config(
  { ignores: ["**/node_modules/**", "**/dist/**", "**/.data/**", "**/.nx/**", "**/test/.types-*/**"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    plugins: { "@nx": nx },
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-namespace": "off",
      "no-restricted-imports": ["error", { paths: [platformBarrel] }],
      "@nx/enforce-module-boundaries": ["error", {
        allow: [],
        enforceBuildableLibDependency: false,
        depConstraints: [
          { sourceTag: "type:runtime", onlyDependOnLibsWithTags: ["type:runtime"] },
          { sourceTag: "type:domain", onlyDependOnLibsWithTags: ["type:runtime", "type:domain"] },
          { sourceTag: "type:app", onlyDependOnLibsWithTags: ["type:runtime", "type:domain"] },
          { sourceTag: "type:tooling", onlyDependOnLibsWithTags: ["type:runtime", "type:domain", "type:tooling"] }
        ]
      }]
    }
  },
  {
    // apps have no `exports`/`main`, so Nx cannot map `@duraflow/<app>` to a project and
    // @nx/enforce-module-boundaries stays silent on it: packages and tooling never import apps
    files: ["packages/**/*.ts", "tooling/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        paths: [platformBarrel],
        patterns: [{
          group: ["@duraflow/*-server", "@duraflow/*-server/*"],
          message: "Packages and tooling never import an app: talk to it over HTTP."
        }]
      }]
    }
  },
  {
    // build configs import the shared root config by path; they are not part of the module graph
    files: ["**/vitest.config.ts"],
    rules: { "@nx/enforce-module-boundaries": "off" }
  }
)
