// The console page: Preact components written with htm (no build step). Every
// value from an app (payloads, results, errors, names) is rendered as text by
// Preact, never as HTML. Views (by the URL's hash): #/ the apps with their
// charts, #/app/<prefix> its runs with filters, #/run/<prefix>/<workflow>/<id> one run.
// Live: the current view polls the console's API every 2 s.
import { h, render } from "preact"
import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import htm from "htm"
import uPlot from "uplot"
import { Timeline } from "/timeline.js"

const html = htm.bind(h)
const STATUSES = ["running", "suspended", "succeeded", "failed", "cancelled"]
const enc = encodeURIComponent

const api = async (path, init) => {
  const response = await fetch(`/api${path}`, init)
  let body = null
  try { body = await response.json() } catch { /* no body */ }
  return { ok: response.ok, status: response.status, body }
}

/** Calls `load` now and every `ms`, keeping the last answer. */
const usePoll = (load, deps, ms = 2000) => {
  const [state, setState] = useState({ loading: true })
  const tick = useCallback(() => load().then((v) => setState({ value: v }), (e) => setState({ error: String(e) })), deps)
  useEffect(() => {
    tick()
    const id = setInterval(tick, ms)
    return () => clearInterval(id)
  }, [tick])
  return [state, tick]
}

const useHash = () => {
  const [hash, setHash] = useState(location.hash || "#/")
  useEffect(() => {
    const on = () => setHash(location.hash || "#/")
    addEventListener("hashchange", on)
    return () => removeEventListener("hashchange", on)
  }, [])
  return hash
}

const Status = ({ status }) => html`<span class=${`status status-${status}`} data-testid="status">${status}</span>`
const Json = ({ value, testid }) => html`<pre data-testid=${testid}>${JSON.stringify(value, null, 2)}</pre>`
const problemOf = (answer) => `${answer.status} ${answer.body?._tag ?? ""}${answer.body?.message ? `: ${answer.body.message}` : ""}`

function Chart({ prefix }) {
  const el = useRef(null)
  const plot = useRef(null)
  const [state] = usePoll(() => api(`/apps/${enc(prefix)}/stats`), [prefix], 10000)
  useEffect(() => {
    const s = state.value?.body
    if (!el.current || !s?.times) return
    const data = [s.times, s.started, s.succeeded, s.failed]
    if (plot.current) plot.current.setData(data)
    else {
      plot.current = new uPlot({
        width: 440, height: 180,
        series: [{}, { label: "started", stroke: "#2563eb" }, { label: "succeeded", stroke: "#16a34a" }, { label: "failed", stroke: "#dc2626" }],
        axes: [{}, { size: 40 }],
        scales: { y: { range: (_, min, max) => [0, Math.max(1, max)] } }
      }, data, el.current)
    }
  }, [state])
  useEffect(() => () => plot.current?.destroy(), [])
  return html`<div data-testid=${`chart-${prefix}`}><div ref=${el}></div>
    <p class="muted">runs per minute, last hour${state.value?.body?.truncated ? " (only the newest 10 000)" : ""}</p></div>`
}

function Apps() {
  const [state] = usePoll(() => api("/apps"), [])
  const apps = state.value?.body
  if (!Array.isArray(apps)) return html`<p>${state.error ?? "loading…"}</p>`
  if (apps.length === 0) return html`<p>No apps found (set CONSOLE_APPS or DATABASE_URL).</p>`
  return html`<div class="cards">${apps.map((a) => html`
    <div class="card" data-testid="app-card" data-prefix=${a.prefix}>
      <h2>${a.url ? html`<a href=${`#/app/${enc(a.prefix)}`}>${a.prefix}</a>` : a.prefix}</h2>
      <div>URL: ${a.url ?? html`<span class="muted">none</span>`} · replicas: <span data-testid="replicas">${a.replicas ?? "?"}</span> ·
        health: <span data-testid="health">${a.health ? `${a.health.status} (${a.health.mode}${a.health.databaseReachable === false ? ", database unreachable" : ""})` : "unreachable"}</span></div>
      ${a.problem ? html`<div class="error">${a.problem}</div>` : null}
      ${a.url && a.health ? html`<${Chart} prefix=${a.prefix} />` : null}
    </div>`)}</div>`
}

function Runs({ prefix, query }) {
  const [workflow, setWorkflow] = useState(query.get("workflow") ?? "")
  const [status, setStatus] = useState(query.get("status") ?? "")
  const [workflows, setWorkflows] = useState([])
  const search = new URLSearchParams({ limit: "100", ...(workflow ? { workflow } : {}), ...(status ? { status } : {}) })
  const [state] = usePoll(() => api(`/apps/${enc(prefix)}/runs?${search}`), [prefix, workflow, status])
  const answer = state.value
  // older pages, fetched on demand with the last run's cursor (the first page stays live)
  const [older, setOlder] = useState([])
  useEffect(() => setOlder([]), [prefix, workflow, status])
  const shown = Array.isArray(answer?.body) ? [...answer.body, ...older.filter((o) => !answer.body.some((r) => r.executionId === o.executionId))] : []
  const loadOlder = async () => {
    const last = shown[shown.length - 1]
    if (!last?.cursor) return
    const page = await api(`/apps/${enc(prefix)}/runs?${new URLSearchParams({ ...Object.fromEntries(search), cursor: last.cursor })}`)
    if (page.ok && Array.isArray(page.body)) setOlder((o) => [...o, ...page.body])
  }
  useEffect(() => {
    if (Array.isArray(answer?.body)) setWorkflows((known) => [...new Set([...known, ...answer.body.map((r) => r.workflow)])].sort())
  }, [answer])
  return html`<div>
    <h2>Runs of ${prefix}</h2>
    <div class="filters">
      <label>workflow <select data-testid="filter-workflow" value=${workflow} onChange=${(e) => setWorkflow(e.currentTarget.value)}>
        <option value="">all</option>${workflows.map((w) => html`<option value=${w}>${w}</option>`)}</select></label>
      <label>status <select data-testid="filter-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
        <option value="">all</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <span class="muted">live, every 2 s</span>
    </div>
    ${answer && !answer.ok ? html`<p class="error">${problemOf(answer)}</p>` : null}
    ${Array.isArray(answer?.body) ? html`<table data-testid="runs">
      <thead><tr><th>workflow</th><th>execution id</th><th>status</th><th>started</th><th>updated</th><th>retry</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr data-testid="run-row" data-execution-id=${r.executionId} data-status=${r.status}>
        <td>${r.workflow}</td>
        <td><a href=${`#/run/${enc(prefix)}/${enc(r.workflow)}/${enc(r.executionId)}`}>${r.executionId}</a></td>
        <td><${Status} status=${r.status} /></td><td>${r.createdAt}</td><td>${r.updatedAt}</td>
        <td>${r.retryOf ? `retry of ${r.retryOf}` : r.retriedBy ? `retried by ${r.retriedBy}` : ""}</td></tr>`)}</tbody>
    </table>${answer.body.length === 0 ? html`<p class="muted">no runs</p>` : null}
    ${shown.length >= 100 ? html`<p><button data-testid="load-older" onClick=${loadOlder}>Older runs</button></p>` : null}` : html`<p>loading…</p>`}
  </div>`
}

function Run({ prefix, workflow, executionId }) {
  const base = `/apps/${enc(prefix)}/runs/${enc(workflow)}/${enc(executionId)}`
  const [runState, reloadRun] = usePoll(() => api(base), [base])
  const [stepsState, reloadSteps] = usePoll(() => api(`${base}/steps`), [base])
  const [notice, setNotice] = useState(null)
  const [signal, setSignal] = useState({ name: "", value: "null" })
  const run = runState.value?.ok ? runState.value.body : null
  const act = async (action, body, label = action) => {
    const answer = await api(`${base}/${action}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? null) })
    if (!answer.ok) setNotice({ error: true, text: `${label}: ${problemOf(answer)}` })
    else if (action === "retry") {
      setNotice({ text: `retried as ${answer.body.executionId}`, link: `#/run/${enc(prefix)}/${enc(workflow)}/${enc(answer.body.executionId)}` })
    } else setNotice({ text: `${label}: done` })
    reloadRun()
    reloadSteps()
  }
  const sendSignal = () => {
    let value
    try { value = JSON.parse(signal.value) } catch { return setNotice({ error: true, text: "the signal's value is not JSON" }) }
    act(`signals/${enc(signal.name)}`, value, `signal ${signal.name}`)
  }
  if (runState.value && !runState.value.ok) return html`<p class="error">${problemOf(runState.value)}</p>`
  if (!run) return html`<p>loading…</p>`
  const linkTo = (id) => html`<a href=${`#/run/${enc(prefix)}/${enc(workflow)}/${enc(id)}`}>${id}</a>`
  return html`<div data-testid="run">
    <p><a href=${`#/app/${enc(prefix)}`}>← runs of ${prefix}</a></p>
    <h2>${workflow} <span data-testid="run-id">${executionId}</span> <${Status} status=${run.status} /></h2>
    <div>started ${run.createdAt} · updated ${run.updatedAt}${run.attempt ? ` · attempt ${run.attempt}` : ""}</div>
    ${run.retryOf ? html`<div>retry of ${linkTo(run.retryOf)}</div>` : null}
    ${run.retriedBy ? html`<div>retried by ${linkTo(run.retriedBy)}</div>` : null}
    <div class="actions">
      <button data-testid="action-cancel" disabled=${!["running", "suspended"].includes(run.status)} onClick=${() => act("cancel")}>Cancel</button>
      <button data-testid="action-resume" disabled=${run.status !== "suspended"} onClick=${() => act("resume")}>Resume</button>
      <button data-testid="action-retry" disabled=${!["failed", "cancelled"].includes(run.status)} onClick=${() => act("retry")}>Retry</button>
      <span>signal <input data-testid="signal-name" placeholder="name" value=${signal.name} onInput=${(e) => setSignal({ ...signal, name: e.currentTarget.value })} />
        <input data-testid="signal-value" placeholder="JSON value" value=${signal.value} onInput=${(e) => setSignal({ ...signal, value: e.currentTarget.value })} />
        <button data-testid="action-signal" disabled=${signal.name === ""} onClick=${sendSignal}>Send</button></span>
    </div>
    ${notice ? html`<div class="notice ${notice.error ? "error" : ""}" data-testid="notice">${notice.text}${notice.link ? html` <a data-testid="notice-link" href=${notice.link}>open</a>` : null}</div>` : null}
    <h3>Timeline</h3>
    ${stepsState.value?.ok
      ? html`<div><${Timeline} run=${run} steps=${stepsState.value.body.steps} /><p class="muted">source: ${stepsState.value.body.source}</p></div>`
      : stepsState.value ? html`<p class="error">${problemOf(stepsState.value)}</p>` : html`<p>loading…</p>`}
    <h3>Payload</h3><${Json} value=${run.payload ?? null} testid="payload" />
    ${run.result !== undefined ? html`<h3>Result</h3><${Json} value=${run.result} testid="result" />` : null}
    ${run.error !== undefined ? html`<h3>Error</h3><${Json} value=${run.error} testid="error" />` : null}
    ${stepsState.value?.ok ? html`<h3>Steps</h3><${Json} value=${stepsState.value.body.steps} testid="steps" />` : null}
  </div>`
}

function App() {
  const hash = useHash()
  const [path, search] = hash.slice(1).split("?")
  const parts = path.split("/").filter((p) => p !== "").map(decodeURIComponent)
  const query = new URLSearchParams(search ?? "")
  let view
  if (parts[0] === "app" && parts[1]) view = html`<${Runs} key=${parts[1]} prefix=${parts[1]} query=${query} />`
  else if (parts[0] === "run" && parts.length === 4) view = html`<${Run} key=${hash} prefix=${parts[1]} workflow=${parts[2]} executionId=${parts[3]} />`
  else view = html`<${Apps} />`
  return html`<header><a href="#/">duraflow console</a><span class="muted">apps on one database</span></header><main>${view}</main>`
}

render(html`<${App} />`, document.getElementById("root"))
