/** The `duraflow` command's parts, for embedding or testing; `main.ts` runs it. */
export * from "./Cli.js"
export { runs } from "./Runs.js"
