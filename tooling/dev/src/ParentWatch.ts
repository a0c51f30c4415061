/**
 * Loaded first by the main job and by every process it starts (`node --import
 * <this file>`): a process stops gracefully (SIGTERM to itself, which Effect's
 * `runMain` turns into an interruption: finalizers run, exit code 0) when the
 * process that started it is gone, however it went (SIGKILL included: the orphan
 * is re-parented and `process.ppid` changes), and when its terminal closes (SIGHUP,
 * which would otherwise kill Node on the spot, skipping every finalizer).
 *
 * Only while `runMain`'s SIGTERM handler is installed: before that the check waits
 * for it, and after the first signal (`runMain` removes it) the process is already
 * shutting down. Later SIGINTs and SIGTERMs are ignored rather than fatal: pnpm
 * forwards the terminal's Ctrl-C to the script it runs, which then gets it twice,
 * and a second one must not kill a process that is stopping its children. Once the
 * parent or the terminal is gone nobody reads this process's output: write errors
 * on stdout and stderr (EPIPE, EIO) are ignored.
 */
const parent = process.ppid
let stopping = false

let silenced = false
const orphaned = () => {
  if (silenced) return
  silenced = true
  const ignore = () => {}
  process.stdout.on("error", ignore)
  process.stderr.on("error", ignore)
}

// these stay installed: with no listener, a signal would kill the process on the spot
const ignoreSignal = () => {}
process.on("SIGINT", ignoreSignal)
process.on("SIGTERM", ignoreSignal)

const stop = () => {
  if (stopping || process.listenerCount("SIGTERM") < 2) return
  stopping = true
  process.kill(process.pid, "SIGTERM")
}

setInterval(() => {
  if (process.ppid !== parent) {
    orphaned()
    stop()
  }
}, 250).unref()

process.on("SIGHUP", () => {
  orphaned()
  stop()
})

export {}
