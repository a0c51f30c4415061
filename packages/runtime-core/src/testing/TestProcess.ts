/**
 * Child processes for multi-process tests: start a TypeScript entry point
 * under tsx, collect its output lines, wait for a line that matches, and make
 * sure it is killed when the test's scope closes (no orphans between tests).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { Data, Deferred, Duration, Effect, Scope } from "effect"
import { createServer } from "node:net"

export class TestProcessError extends Data.TaggedError("TestProcessError")<{
  readonly message: string
}> {}

export interface TestProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** Every stdout/stderr line so far. */
  readonly lines: ReadonlyArray<string>
  /** Lines of stdout parsed as JSON objects (others are skipped). */
  readonly events: () => ReadonlyArray<Record<string, any>>
  /** Waits for the first line (past or future) matching `predicate`. */
  readonly waitFor: (predicate: (line: string) => boolean, timeout?: Duration.DurationInput) => Effect.Effect<string, TestProcessError>
  /** Waits for the first JSON event with this `event` field. */
  readonly waitForEvent: (event: string, timeout?: Duration.DurationInput) => Effect.Effect<Record<string, any>, TestProcessError>
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Effect.Effect<number | string>
  readonly kill: (signal?: NodeJS.Signals) => Effect.Effect<void>
}

const tsxLoader = (() => {
  const require = createRequire(import.meta.url)
  try {
    return require.resolve("tsx")
  } catch {
    return "tsx"
  }
})()

/** Spawns `node --import tsx <entry>` with `env` added to the current environment. */
export const spawnTs = (
  entry: string,
  options: { readonly env?: Record<string, string | undefined>; readonly args?: ReadonlyArray<string>; readonly cwd?: string } = {}
): Effect.Effect<TestProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", tsxLoader, entry, ...(options.args ?? [])], {
        env: { ...process.env, ...options.env },
        cwd: options.cwd,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<string> = []
      const waiters = new Set<{ test: (l: string) => boolean; done: (l: string) => void }>()
      let exitValue: number | string | undefined
      const exitWaiters: Array<(v: number | string) => void> = []
      const onData = (buffered: { rest: string }) => (chunk: Buffer) => {
        const parts = (buffered.rest + chunk.toString("utf8")).split("\n")
        buffered.rest = parts.pop() ?? ""
        for (const line of parts) {
          lines.push(line)
          if (process.env.TEST_PROCESS_ECHO) process.stderr.write(`[${child.pid}] ${line}\n`)
          for (const w of waiters) {
            if (w.test(line)) {
              waiters.delete(w)
              w.done(line)
            }
          }
        }
      }
      child.stdout!.on("data", onData({ rest: "" }))
      child.stderr!.on("data", onData({ rest: "" }))
      child.on("exit", (code, signal) => {
        exitValue = code ?? signal ?? "unknown"
        for (const w of exitWaiters.splice(0)) w(exitValue)
      })
      const exited = Effect.async<number | string>((resume) => {
        if (exitValue !== undefined) return resume(Effect.succeed(exitValue))
        exitWaiters.push((v) => resume(Effect.succeed(v)))
      })
      const waitFor = (predicate: (line: string) => boolean, timeout: Duration.DurationInput = "60 seconds") =>
        Effect.gen(function*() {
          const found = lines.find(predicate)
          if (found !== undefined) return found
          const deferred = yield* Deferred.make<string>()
          const waiter = { test: predicate, done: (l: string) => Deferred.unsafeDone(deferred, Effect.succeed(l)) }
          waiters.add(waiter)
          return yield* Deferred.await(deferred).pipe(
            Effect.raceFirst(Effect.flatMap(exited, (code) =>
              Effect.fail(
                new TestProcessError({
                  message: `process ${child.pid} exited (${code}) before the expected line; last output:\n` +
                    lines.slice(-20).join("\n")
                })
              ))),
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () =>
                new TestProcessError({
                  message: `timed out after ${Duration.format(timeout)} waiting on process ${child.pid}; last output:\n` +
                    lines.slice(-20).join("\n")
                })
            }),
            Effect.ensuring(Effect.sync(() => waiters.delete(waiter)))
          )
        })
      const events = () =>
        lines.flatMap((l) => {
          if (!l.startsWith("{")) return []
          try {
            return [JSON.parse(l) as Record<string, any>]
          } catch {
            return []
          }
        })
      const self: TestProcess = {
        pid: child.pid!,
        child,
        lines,
        events,
        waitFor,
        waitForEvent: (event, timeout) =>
          waitFor((l) => l.startsWith("{") && l.includes(`"event":"${event}"`), timeout).pipe(
            Effect.map((l) => JSON.parse(l) as Record<string, any>)
          ),
        exited,
        kill: (signal = "SIGKILL") =>
          Effect.suspend(() => {
            if (exitValue !== undefined) return Effect.void
            child.kill(signal)
            return Effect.asVoid(exited)
          })
      }
      return self
    }),
    (p) => p.kill("SIGKILL")
  )

/** A port nobody listens on right now (the OS picks it). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = createServer()
  server.unref()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})
