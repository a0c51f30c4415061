/**
 * Runs of one app over the last hour, per minute: started (by start time),
 * succeeded and failed (by the time they last changed, for runs started in the
 * hour), read from the app's `GET /runs?since=` page by page (at most 20 pages
 * of 500 runs; `truncated` says when there were more).
 */
import { Effect } from "effect"
import type { Upstreams } from "./Upstreams.js"

export interface Stats {
  readonly from: string
  readonly bucketSeconds: number
  /** each bucket's start, in seconds since the epoch */
  readonly times: ReadonlyArray<number>
  readonly started: ReadonlyArray<number>
  readonly succeeded: ReadonlyArray<number>
  readonly failed: ReadonlyArray<number>
  readonly truncated: boolean
}

const BUCKETS = 60
const BUCKET_MS = 60_000
const PAGE = 500
const MAX_PAGES = 20

interface RunRow {
  readonly status: string
  readonly createdAt: string
  readonly updatedAt: string
  readonly cursor?: string
}

export const lastHour = (upstreams: Upstreams["Type"], url: string) =>
  Effect.gen(function*() {
    const now = Date.now()
    const start = Math.floor(now / BUCKET_MS) * BUCKET_MS - (BUCKETS - 1) * BUCKET_MS
    const since = new Date(start).toISOString()
    const times = Array.from({ length: BUCKETS }, (_, i) => (start + i * BUCKET_MS) / 1000)
    const started = new Array<number>(BUCKETS).fill(0)
    const succeeded = new Array<number>(BUCKETS).fill(0)
    const failed = new Array<number>(BUCKETS).fill(0)
    const bucket = (iso: string) => Math.floor((Date.parse(iso) - start) / BUCKET_MS)
    const add = (series: Array<number>, iso: string) => {
      const i = bucket(iso)
      if (i >= 0 && i < BUCKETS) series[i]!++
    }
    let cursor: string | undefined
    let truncated = false
    for (let page = 0;; page++) {
      if (page === MAX_PAGES) {
        truncated = true
        break
      }
      const search = new URLSearchParams({ since, limit: String(PAGE), ...(cursor ? { cursor } : {}) })
      const answer = yield* upstreams.call(url, { method: "GET", path: `/runs?${search}` })
      if (answer.status !== 200 || !Array.isArray(answer.body)) break
      const runs = answer.body as ReadonlyArray<RunRow>
      for (const run of runs) {
        add(started, run.createdAt)
        if (run.status === "succeeded") add(succeeded, run.updatedAt)
        if (run.status === "failed") add(failed, run.updatedAt)
      }
      if (runs.length < PAGE) break
      cursor = runs[runs.length - 1]!.cursor
      if (!cursor) break
    }
    return { from: since, bucketSeconds: BUCKET_MS / 1000, times, started, succeeded, failed, truncated } satisfies Stats
  })
