/**
 * Child processes for multi-process tests: start a TypeScript entry point
 * under tsx, collect its output lines, wait for a line that matches, and make
 * sure it is killed when the test's scope closes (no orphans between tests).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { Data, Deferred, Duration, Effect, Scope } from "effect"
import { readFileSync } from "node:fs"
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

/**
 * The ports a process may take for its own listeners: below the kernel's
 * ephemeral range (`ip_local_port_range`, 32768 on Linux), from which every
 * outgoing connection (a pool's Postgres connections, an HTTP client) gets its
 * local port. A port the OS hands out for `listen(0)` comes from that range,
 * so between the moment it is found free and the moment the child process
 * listens on it, an outgoing connection may take it (EADDRINUSE).
 */
const listenRange = ((): readonly [number, number] => {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0])
    if (Number.isInteger(low) && low > 12_000) return [10_000, low - 1]
  } catch {
    // not Linux: the default ephemeral ranges elsewhere start at 49152
  }
  return [10_000, 32_767]
})()

/**
 * Test files run side by side in vitest workers: each worker takes its own
 * slice of the range (by `VITEST_POOL_ID`), so two workers never pick the same
 * port in the moment before it is bound.
 */
const slice = ((): readonly [number, number] => {
  const slices = 16
  const [low, high] = listenRange
  const size = Math.floor((high - low + 1) / slices)
  const index = (Number(process.env.VITEST_POOL_ID ?? process.pid) || 0) % slices
  return [low + index * size, low + (index + 1) * size - 1]
})()
const handedOut = new Set<number>()

const bindable = (port: number) =>
  Effect.async<boolean>((resume) => {
    const server = createServer()
    server.unref()
    server.once("error", () => resume(Effect.succeed(false)))
    // every interface, as the apps listen
    server.listen(port, () => server.close(() => resume(Effect.succeed(true))))
  })

/**
 * A port nobody listens on right now, outside the range outgoing connections
 * take theirs from, and never the same twice in one process.
 */
export const freePort: Effect.Effect<number> = Effect.suspend(() => {
  const [low, high] = slice
  const port = low + Math.floor(Math.random() * (high - low + 1))
  if (handedOut.has(port)) return freePort
  handedOut.add(port)
  return Effect.flatMap(bindable(port), (ok) => ok ? Effect.succeed(port) : freePort)
})
