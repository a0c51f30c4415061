/**
 * Socket writes of a cell's process: each `write`/`writev` a `net.Socket` hands to
 * libuv, which writes at once (one system call) when the socket can take it. On this
 * machine kind a write to Postgres holds the main thread 0.15 to 0.35 ms (the sandbox's
 * network stack runs in the call), so writes per workflow explain much of a system's
 * node CPU and throughput: the figure is counted, as commits are, for every system alike.
 */
import net from "node:net"

export interface Counter {
  /** writes handed to the sockets since `install` */
  readonly writes: () => number
}

/** Counts every socket write of this process from now on (the prototype's two write paths). */
export const install = (): Counter => {
  let writes = 0
  const proto = net.Socket.prototype as unknown as {
    _write: (...args: Array<unknown>) => unknown
    _writev: (...args: Array<unknown>) => unknown
  }
  const write = proto._write
  const writev = proto._writev
  proto._write = function(this: unknown, ...args: Array<unknown>) {
    writes++
    return write.apply(this, args)
  }
  proto._writev = function(this: unknown, ...args: Array<unknown>) {
    writes++
    return writev.apply(this, args)
  }
  return { writes: () => writes }
}
