/**
 * The page of `ramure web`: one run at a time, followed live through the
 * server (which follows the run's control channel, or reads its logs once
 * it is over), drawn from its log entries and its status.
 */
import type { LogEntry } from "@ramure/core/RunEvent"
import type { AgentStatus, EndpointStatus, RunStatus } from "@ramure/core/RunStatus"
import { budgetRow, describe } from "../src/Format.js"
import { byId, clock, count, duration, fill, h, money } from "./dom.js"
import { makeForm } from "./schemaForm.js"
import * as Timeline from "./timeline.js"

interface RunRow {
  readonly id: string
  readonly program: string
  readonly startedAt?: string
  readonly live: boolean
  readonly outcome?: string
}

interface Current {
  readonly id: string
  readonly source: EventSource
  live: boolean
  entries: Array<LogEntry>
  status: RunStatus | undefined
  timeline: ReturnType<typeof Timeline.builder>
  ended: boolean
  outcome: string | undefined
}

let current: Current | undefined
const cards = new Map<string, { readonly card: HTMLElement; readonly update: (agent: AgentStatus, status: RunStatus) => void }>()
const forms = new Map<string, HTMLElement>()

const api = (path: string) => `api/runs/${encodeURIComponent(current?.id ?? "")}/${path}`

/** POST a command to the current run; its value, or an Error with the run's one-line reason. */
const post = async (path: string, body: unknown): Promise<unknown> => {
  const response = await fetch(api(path), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  const answer = (await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }))) as { ok: boolean; value?: unknown; error?: string }
  if (!answer.ok) throw new Error(answer.error ?? `HTTP ${response.status}`)
  return answer.value
}

const notice = (text: string | undefined) => {
  const element = byId("notice")
  element.hidden = text === undefined
  element.textContent = text ?? ""
}

const canSteer = () => current !== undefined && current.live && !current.ended

// ---------------------------------------------------------------------------
// Agents

const stateLabel: Readonly<Record<AgentStatus["state"], string>> = {
  starting: "starting",
  idle: "ready",
  working: "working",
  done: "done",
  crashed: "crashed"
}

const lastOf = (agent: string): LogEntry | undefined => {
  const entries = current?.entries ?? []
  for (let i = entries.length - 1; i >= 0; i--) if (entries[i]!.agent === agent) return entries[i]
  return undefined
}

const makeCard = (id: string) => {
  const state = h("span", { class: "badge" })
  const model = h("div", { class: "muted" })
  const numbers = h("div", { class: "numbers" })
  const last = h("div", { class: "muted last" })
  // The agent's own budget, when it has one.
  const budget = h("div", { class: "budget", hidden: true })
  const text = h("input", { type: "text", placeholder: `message ${id}…`, "aria-label": `Message to ${id}`, name: "message" })
  const result = h("small", { class: "muted", "data-result": "" })
  const form = h("form", { class: "message" }, text, h("button", { type: "submit" }, "Send"), result)
  form.addEventListener("submit", (e) => {
    e.preventDefault()
    const message = text.value
    if (message.trim() === "") return
    result.textContent = "sending…"
    post("send", { agent: id, text: message }).then(
      () => {
        result.textContent = "delivered"
        text.value = ""
      },
      (error: Error) => (result.textContent = error.message)
    )
  })
  const card = h("article", { class: "card", "data-agent": id }, h("header", {}, h("strong", {}, id), state), model, numbers, budget, last, form)
  const update = (agent: AgentStatus, status: RunStatus) => {
    card.dataset.state = agent.state
    state.textContent = stateLabel[agent.state]
    state.className = `badge ${agent.state}`
    const machine = agent.machine === undefined
      ? ""
      : `${agent.machine.kind}${agent.machine.sandbox ? " sandbox" : ""}${agent.machine.host ? ` on ${agent.machine.host}` : ""}${agent.machine.worktree ? ` · ${agent.machine.worktree.branch}` : ""}`
    model.textContent = [agent.model ?? "default model", machine, agent.session ? `tmux ${agent.session}` : ""].filter((t) => t !== "").join(" · ")
    fill(
      numbers,
      h("span", { title: "input → output tokens" }, `${count(agent.inputTokens)} → ${count(agent.outputTokens)} tokens`),
      h("span", { class: "cost" }, money(agent.cost)),
      h("span", {}, `${agent.toolCalls} tool call${agent.toolCalls === 1 ? "" : "s"}${agent.toolErrors > 0 ? ` (${agent.toolErrors} failed)` : ""}`),
      h("span", {}, `${agent.piToolCalls} pi tool${agent.piToolCalls === 1 ? "" : "s"}`)
    )
    const own = [...status.budgets].reverse().find((b) => b.agent === id)
    budget.hidden = own === undefined
    if (own !== undefined) {
      const [, spent, policy, state] = budgetRow(own, status)
      budget.dataset.state = own.exceeded === undefined ? "ok" : "exceeded"
      budget.textContent = `budget: ${spent} · on exceeded: ${policy} · ${state}`
    }
    const lastEntry = lastOf(id)
    last.textContent = lastEntry === undefined ? "" : `${clock(lastEntry.ts)} ${describe(lastEntry)}`
    form.hidden = !canSteer() || agent.state === "done" || agent.state === "crashed"
  }
  return { card, update }
}

const renderAgents = (status: RunStatus) => {
  const container = byId("agents")
  for (const agent of status.agents) {
    let entry = cards.get(agent.id)
    if (entry === undefined) {
      entry = makeCard(agent.id)
      cards.set(agent.id, entry)
      container.append(entry.card)
    }
    entry.update(agent, status)
  }
  const { cost, inputTokens, outputTokens, piToolCalls, toolCalls } = status.totals
  byId("totals").textContent =
    `${status.agents.length} · ${count(inputTokens)} → ${count(outputTokens)} tokens · ${money(cost)} · ${toolCalls + piToolCalls} tool calls`
}

// ---------------------------------------------------------------------------
// Processes and endpoints

const renderProcesses = (status: RunStatus) => {
  fill(
    byId("processes"),
    ...status.processes.map((process) => {
      const item = h(
        "li",
        { "data-process": process.path },
        h("span", { class: "name" }, process.path),
        h("span", { class: `badge ${process.state}` }, process.state),
        h("span", { class: "muted" }, process.endedAt ? `ran ${duration(Date.parse(process.endedAt) - Date.parse(process.startedAt))}` : `for ${duration(Date.now() - Date.parse(process.startedAt))}`),
        process.error ? h("span", { class: "error" }, process.error) : undefined
      )
      // Set through the DOM: the page's policy refuses style attributes in markup.
      item.style.marginLeft = `${(process.path.split("/").length - 1) * 1.2}em`
      return item
    })
  )
}

const endpointForm = (endpoint: EndpointStatus) => {
  const key = `${endpoint.process}:${endpoint.name}`
  const { fields, read } = makeForm(endpoint.parameters, `endpoint-${key.replace(/[^A-Za-z0-9_-]/g, "_")}`)
  const output = h("pre", { class: "result", "data-result": "" })
  const form = h(
    "form",
    { class: "endpoint", "data-endpoint": endpoint.name, "data-process": endpoint.process },
    h("header", {}, h("strong", {}, endpoint.name), h("span", { class: "muted" }, ` in ${endpoint.process}`)),
    endpoint.description ? h("p", { class: "muted" }, endpoint.description) : undefined,
    ...fields,
    h("button", { type: "submit" }, "Call"),
    output
  )
  form.addEventListener("submit", (e) => {
    e.preventDefault()
    const args = read()
    if (args.error !== undefined) {
      output.className = "result error"
      output.textContent = args.error
      return
    }
    output.className = "result"
    output.textContent = "calling…"
    post("call", { process: endpoint.process, endpoint: endpoint.name, args: args.value }).then(
      (value) => (output.textContent = `→ ${JSON.stringify(value, null, 2)}`),
      (error: Error) => {
        output.className = "result error"
        output.textContent = error.message
      }
    )
  })
  forms.set(key, form)
  return form
}

const renderEndpoints = (status: RunStatus) => {
  const container = byId("endpoints")
  const live = new Set(status.processes.filter((p) => p.state === "running").map((p) => p.path))
  const shown = status.endpoints.filter((endpoint) => live.has(endpoint.process))
  if (shown.length === 0 || !canSteer()) {
    forms.clear()
    fill(container, h("p", { class: "muted" }, canSteer() ? "No live process exposes an endpoint." : "Endpoints can be called while the run is live."))
    return
  }
  const wanted = new Set(shown.map((endpoint) => `${endpoint.process}:${endpoint.name}`))
  for (const key of forms.keys()) if (!wanted.has(key)) forms.delete(key)
  fill(container, ...shown.map((endpoint) => forms.get(`${endpoint.process}:${endpoint.name}`) ?? endpointForm(endpoint)))
}

// ---------------------------------------------------------------------------
// Log

const kinds: Readonly<Record<string, (entry: LogEntry) => boolean>> = {
  messages: (e) => e.event._tag === "MessageDelivered" || e.event._tag === "MessageEnded",
  tools: (e) => /^(Tool(Called|Returned|Execution)|Endpoint(Called|Returned))/.test(e.event._tag),
  model: (e) => /^(Turn|Work|MessageEnded|ModelError)/.test(e.event._tag),
  lifecycle: (e) => /^(Run|Process|Agent)(Started|Ended|Created|Connected|Disconnected|Released|Crashed|StartFailed)$/.test(e.event._tag),
  problems: (e) => {
    const event = e.event
    return /^(ModelError|AgentCrashed|AgentStartFailed|ProtocolViolation|ConnectionRefused)$/.test(event._tag) ||
      (event._tag === "ToolReturned" && event.isError) || (event._tag === "EndpointReturned" && !event.ok) ||
      (event._tag === "ToolExecutionEnded" && event.isError) || (event._tag === "ProcessEnded" && event.outcome !== "done")
  }
}

const renderLog = () => {
  if (current === undefined) return
  const subject = byId<HTMLSelectElement>("log-agent").value
  const kind = kinds[byId<HTMLSelectElement>("log-kind").value]
  const text = byId<HTMLInputElement>("log-search").value.toLowerCase()
  const lines: Array<HTMLElement> = []
  for (let i = current.entries.length - 1; i >= 0 && lines.length < 300; i--) {
    const entry = current.entries[i]!
    if (subject !== "" && (entry.agent ?? entry.process) !== subject) continue
    if (kind !== undefined && !kind(entry)) continue
    const said = describe(entry)
    if (text !== "" && !said.toLowerCase().includes(text) && !(entry.agent ?? entry.process).toLowerCase().includes(text)) continue
    lines.push(h("li", { "data-tag": entry.event._tag }, h("time", {}, clock(entry.ts)), h("span", { class: "subject" }, entry.agent ?? (entry.process || "run")), h("span", {}, said)))
  }
  // A tail: it stays at its end, unless the reader has scrolled up.
  const log = byId("log")
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24
  fill(log, ...lines.reverse())
  if (atEnd) log.scrollTop = log.scrollHeight
  const select = byId<HTMLSelectElement>("log-agent")
  const subjects = [...new Set(current.entries.map((entry) => entry.agent ?? entry.process).filter((s) => s !== ""))]
  if (select.options.length !== subjects.length + 1) {
    fill(select, h("option", { value: "" }, "all agents and processes"), ...subjects.map((s) => h("option", { value: s }, s)))
    select.value = subject
  }
}

// ---------------------------------------------------------------------------

const renderHeader = () => {
  if (current === undefined) return
  const status = current.status
  const state = byId("run-state")
  const outcome = current.ended ? current.outcome ?? status?.outcome ?? "ended" : current.live ? "live" : "…"
  state.textContent = outcome
  state.className = `badge ${current.ended ? (outcome === "done" ? "done" : "failed") : "working"}`
  const trace = status?.traceId ? ` · trace ${status.traceId}` : ""
  byId("run-info").textContent = status === undefined
    ? current.id
    : `${status.program ?? "?"} · ${current.id.slice(0, 8)} · started ${status.startedAt ? new Date(status.startedAt).toLocaleString() : "?"}${status.endedAt ? ` · ran ${duration(Date.parse(status.endedAt) - Date.parse(status.startedAt ?? status.endedAt))}` : ""}${trace}`
  byId("stop").hidden = !canSteer()
}

const drawTimeline = () => {
  if (current?.status === undefined) return
  const from = Date.parse(current.status.startedAt ?? current.entries[0]?.ts ?? new Date().toISOString())
  const to = current.status.endedAt !== undefined ? Date.parse(current.status.endedAt) : Date.now()
  Timeline.draw(byId("timeline"), current.timeline.timeline, current.status, from, Math.max(to, from + 1000))
}

let scheduled = false
const render = () => {
  if (scheduled) return
  scheduled = true
  requestAnimationFrame(() => {
    scheduled = false
    if (current?.status === undefined) return
    renderHeader()
    renderAgents(current.status)
    drawTimeline()
    renderProcesses(current.status)
    renderEndpoints(current.status)
    renderLog()
  })
}

const open = (id: string) => {
  current?.source.close()
  cards.clear()
  forms.clear()
  fill(byId("agents"))
  fill(byId("log"))
  fill(byId("timeline"))
  notice(undefined)
  history.replaceState(null, "", `#${id}`)
  const source = new EventSource(`api/runs/${encodeURIComponent(id)}/events`)
  const run: Current = { id, source, live: false, entries: [], status: undefined, timeline: Timeline.builder(), ended: false, outcome: undefined }
  current = run
  source.addEventListener("reset", (message) => {
    const { live } = JSON.parse((message as MessageEvent<string>).data) as { live: boolean }
    Object.assign(run, { live, entries: [], status: undefined, timeline: Timeline.builder(), ended: false })
    cards.clear()
    fill(byId("agents"))
  })
  source.addEventListener("batch", (message) => {
    const { entries, status } = JSON.parse((message as MessageEvent<string>).data) as { entries: Array<LogEntry>; status: RunStatus }
    for (const entry of entries) {
      run.entries.push(entry)
      run.timeline.add(entry)
    }
    run.status = status
    if (current === run) render()
  })
  source.addEventListener("end", (message) => {
    run.ended = true
    run.outcome = (JSON.parse((message as MessageEvent<string>).data) as { outcome?: string }).outcome
    source.close()
    if (current === run) {
      render()
      void loadRuns(false)
    }
  })
  source.addEventListener("failure", (message) => {
    notice(`cannot follow this run: ${(JSON.parse((message as MessageEvent<string>).data) as { message: string }).message}`)
    source.close()
  })
}

const loadRuns = async (openOne: boolean) => {
  const runs = (await (await fetch("api/runs")).json()) as ReadonlyArray<RunRow>
  const select = byId<HTMLSelectElement>("run")
  fill(
    select,
    ...[...runs].reverse().map((run) =>
      h("option", { value: run.id }, `${run.program} · ${run.id.slice(0, 8)} · ${run.live ? "live" : run.outcome ?? "ended"}${run.startedAt ? ` · ${new Date(run.startedAt).toLocaleString()}` : ""}`))
  )
  if (runs.length === 0) {
    notice("No runs yet in this RAMURE_HOME.")
    return
  }
  const wanted = location.hash.slice(1)
  const chosen = current?.id ?? runs.find((run) => run.id === wanted)?.id ?? [...runs].reverse().find((run) => run.live)?.id ?? runs[runs.length - 1]!.id
  select.value = chosen
  if (openOne) open(chosen)
}

const stop = byId<HTMLButtonElement>("stop")
stop.addEventListener("click", () => {
  // A second click confirms.
  if (stop.dataset.confirm !== "yes") {
    stop.dataset.confirm = "yes"
    stop.textContent = "Really stop?"
    return
  }
  stop.disabled = true
  stop.textContent = "Stopping…"
  post("stop", {}).then(
    () => (stop.textContent = "Stop requested"),
    (error: Error) => {
      notice(error.message)
      stop.disabled = false
    }
  )
})
byId<HTMLSelectElement>("run").addEventListener("change", (e) => {
  stop.dataset.confirm = ""
  stop.textContent = "Stop run"
  stop.disabled = false
  open((e.target as HTMLSelectElement).value)
})
for (const id of ["log-agent", "log-kind", "log-search"]) byId(id).addEventListener("input", renderLog)
// Open bars and lanes grow with time while the run is live.
setInterval(() => {
  if (current !== undefined && current.live && !current.ended) drawTimeline()
}, 1000)
window.addEventListener("resize", drawTimeline)

loadRuns(true).catch((error: Error) => notice(`cannot list runs: ${error.message}`))
