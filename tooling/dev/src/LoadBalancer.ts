/**
 * A small load balancer for local runs with several replicas per app: what a
 * production load balancer does in front of an app, reduced to its essence.
 * It listens on the app's public port, sends each new TCP connection to the
 * next replica (round-robin) among those whose `GET /ready` answered 200 at
 * the last probe (every 500 ms), and stops sending to a replica as soon as it
 * is not ready (starting, shutting down, not a working cluster member).
 */
import { Effect } from "effect"
import { createServer, Socket } from "node:net"

export interface Backend {
  readonly port: number
}

export const make = (options: { readonly port: number; readonly backends: ReadonlyArray<Backend> }) =>
  Effect.acquireRelease(
    Effect.async<{ readonly close: () => void }, Error>((resume) => {
      const ready = new Set<number>()
      let next = 0
      const probe = () =>
        Promise.all(options.backends.map(async (b) => {
          const ok = await fetch(`http://127.0.0.1:${b.port}/ready`, { signal: AbortSignal.timeout(2000) })
            .then((r) => r.status === 200, () => false)
          if (ok) ready.add(b.port)
          else ready.delete(b.port)
        }))
      const timer = setInterval(probe, 500)
      void probe()
      const server = createServer((client) => {
        const live = options.backends.filter((b) => ready.has(b.port))
        if (live.length === 0) {
          client.end("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" +
            JSON.stringify({ _tag: "ServiceUnavailable", message: "no replica is ready" }))
          return
        }
        const target = live[next++ % live.length]!
        const upstream = new Socket()
        upstream.connect(target.port, "127.0.0.1")
        client.pipe(upstream).pipe(client)
        const close = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("error", close)
        upstream.on("error", close)
      })
      server.once("error", (e) => resume(Effect.fail(e)))
      server.listen(options.port, "127.0.0.1", () =>
        resume(Effect.succeed({
          close: () => {
            clearInterval(timer)
            server.close()
          }
        })))
    }),
    (lb) => Effect.sync(() => lb.close())
  )
