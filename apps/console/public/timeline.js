// A run's steps on a time axis, as SVG built by Preact (all text goes through
// text nodes: never innerHTML). One row per step; activities show every attempt
// (green succeeded, red failed, blue running, amber suspended), sleeps a grey
// bar to their wake-up time, signals and child runs a marker.
import { h } from "preact"
import htm from "htm"

const html = htm.bind(h)
const colors = { succeeded: "#16a34a", failed: "#dc2626", running: "#2563eb", suspended: "#d97706" }
const ms = (iso) => (iso ? Date.parse(iso) : NaN)

/** The rows of the picture: [{ label, kind, bars: [{ from, to, color, title }], marks: [{ at, color, title }] }] */
export const rowsOf = (steps) =>
  steps.map((s) => {
    switch (s._tag) {
      case "Activity":
        return {
          kind: "activity",
          label: `${s.name}${s.attempts.length > 1 ? ` (${s.attempts.length} attempts)` : ""}`,
          bars: s.attempts.map((a) => ({
            from: ms(a.startedAt),
            to: a.endedAt ? ms(a.endedAt) : NaN,
            color: colors[a.outcome] ?? "#6b7280",
            title: `attempt ${a.attempt}: ${a.outcome}${a.error !== undefined ? ` ${JSON.stringify(a.error)}` : ""}`
          })),
          marks: []
        }
      case "Sleep":
        return {
          kind: "sleep",
          label: `sleep ${s.name}`,
          bars: [{ from: ms(s.scheduledAt ?? s.wakeUpAt), to: ms(s.wakeUpAt), color: "#9ca3af", title: `until ${s.wakeUpAt}${s.woken ? " (woken)" : ""}` }],
          marks: []
        }
      case "Signal":
        return {
          kind: "signal",
          label: `signal ${s.name}`,
          bars: [],
          marks: s.receivedAt ? [{ at: ms(s.receivedAt), color: "#7c3aed", title: `received ${JSON.stringify(s.value ?? null)}` }] : []
        }
      case "ChildRun":
        return {
          kind: "child",
          label: `child ${s.workflow}/${s.executionId}`,
          bars: [],
          marks: s.startedAt ? [{ at: ms(s.startedAt), color: "#0891b2", title: "started" }] : []
        }
      default:
        return { kind: "other", label: String(s._tag), bars: [], marks: [] }
    }
  })

export function Timeline({ run, steps }) {
  const rows = rowsOf(steps)
  if (rows.length === 0) return html`<p class="muted" data-testid="timeline-empty">no steps recorded</p>`
  const now = Date.now()
  const finished = run && ["succeeded", "failed", "cancelled"].includes(run.status)
  const times = rows.flatMap((r) => [...r.bars.flatMap((b) => [b.from, b.to]), ...r.marks.map((m) => m.at)]).filter((t) => !isNaN(t))
  const start = Math.min(ms(run?.createdAt), ...times)
  const end = Math.max(finished ? ms(run?.updatedAt) : now, ...times, start + 1)
  const width = 900, labelWidth = 240, rowHeight = 22, top = 24
  const x = (t) => labelWidth + ((t - start) / (end - start)) * (width - labelWidth - 10)
  const height = top + rows.length * rowHeight + 8
  const ticks = Array.from({ length: 5 }, (_, i) => start + ((end - start) * i) / 4)
  const label = (t) => (end - start < 10_000 ? `+${Math.round(t - start)} ms` : `+${((t - start) / 1000).toFixed(1)} s`)
  return html`<svg class="timeline" data-testid="timeline" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`}>
    ${ticks.map((t) => html`<g><line x1=${x(t)} x2=${x(t)} y1=${top - 6} y2=${height} stroke="#e5e7eb" /><text x=${x(t)} y=${12} text-anchor=${t === end ? "end" : "middle"}>${label(t)}</text></g>`)}
    ${rows.map((r, i) => {
      const y = top + i * rowHeight
      return html`<g data-testid="timeline-row" data-kind=${r.kind}>
        <text x=${4} y=${y + 15}>${r.label.length > 38 ? `${r.label.slice(0, 37)}…` : r.label}</text>
        ${r.bars.map((b) => {
          const to = isNaN(b.to) ? (finished ? ms(run.updatedAt) : now) : b.to
          return html`<rect x=${x(b.from)} y=${y + 4} width=${Math.max(3, x(to) - x(b.from))} height=${rowHeight - 8} fill=${b.color} rx="2"><title>${b.title}</title></rect>`
        })}
        ${r.marks.map((m) => html`<circle cx=${x(m.at)} cy=${y + rowHeight / 2} r="5" fill=${m.color}><title>${m.title}</title></circle>`)}
      </g>`
    })}
  </svg>`
}
