/**
 * The `duraflow` command (see `Cli`) without any domain's code:
 * `npx -y pnpm@10.34.8 duraflow <command>` in the workspace runs the workspace's
 * own (tooling/dev/src/duraflow.ts, with every domain); an app's folder runs the app's.
 */
import { main } from "./Cli.js"

main()
