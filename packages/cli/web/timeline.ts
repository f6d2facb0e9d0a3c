/**
 * The timeline: one lane per agent, from its start to its release, with the
 * stretches it worked (a band), its model turns (top row), the tool calls
 * it made — the process's tools and pi's own — (bottom row), and the
 * messages it got (marks). Built from the run's log entries; what is still
 * open runs to now.
 */
import type { LogEntry } from "@ramure/core/RunEvent"
import type { RunStatus } from "@ramure/core/RunStatus"
import { count, duration, money, s } from "./dom.js"

export type Kind = "work" | "turn" | "tool" | "pitool"

export interface Bar {
  readonly kind: Kind
  readonly agent: string
  readonly start: number
  end: number | undefined
  label: string
  detail: string
  failed: boolean
}

export interface Mark {
  readonly agent: string
  readonly at: number
  readonly label: string
}

export interface Lane {
  readonly agent: string
  readonly start: number
  end: number | undefined
}

export interface Timeline {
  readonly lanes: Map<string, Lane>
  readonly bars: Array<Bar>
  readonly marks: Array<Mark>
}

/** Folds log entries into bars, marks and lanes; `add` takes entries in log order. */
export const builder = () => {
  const timeline: Timeline = { lanes: new Map(), bars: [], marks: [] }
  const open = new Map<string, Bar>()
  const turns = new Map<string, number>()
  const begin = (key: string, bar: Omit<Bar, "end" | "failed">) => {
    const started: Bar = { ...bar, end: undefined, failed: false }
    open.set(key, started)
    timeline.bars.push(started)
    return started
  }
  const finish = (key: string, at: number, failed = false) => {
    const bar = open.get(key)
    if (bar === undefined) return undefined
    open.delete(key)
    bar.end = at
    bar.failed = failed
    return bar
  }
  const closeAll = (agent: string, at: number) => {
    for (const [key, bar] of open) if (bar.agent === agent) finish(key, at)
  }

  const add = (entry: LogEntry) => {
    const agent = entry.agent
    if (agent === undefined) return
    const at = Date.parse(entry.ts)
    if (!timeline.lanes.has(agent)) timeline.lanes.set(agent, { agent, start: at, end: undefined })
    const event = entry.event
    switch (event._tag) {
      case "WorkStarted":
        begin(`work:${agent}`, { kind: "work", agent, start: at, label: "working", detail: "working on a prompt" })
        return
      case "WorkEnded":
        finish(`work:${agent}`, at)
        return
      case "TurnStarted": {
        finish(`turn:${agent}`, at)
        const n = (turns.get(agent) ?? 0) + 1
        turns.set(agent, n)
        begin(`turn:${agent}`, { kind: "turn", agent, start: at, label: `turn ${n}`, detail: `model turn ${n}` })
        return
      }
      case "MessageEnded": {
        const turn = open.get(`turn:${agent}`)
        if (turn === undefined || event.role !== "assistant") return
        const said = event.text.trim().slice(0, 120)
        const usage = event.usage === undefined
          ? ""
          : `\n${count(event.usage.input)} → ${count(event.usage.output)} tokens, ${money(event.usage.cost)}`
        const calls = event.toolCalls?.length ? `\ncalls ${event.toolCalls.join(", ")}` : ""
        turn.detail = `${turn.label}${said === "" ? "" : `: ${said}`}${calls}${usage}`
        return
      }
      case "ModelError": {
        const turn = open.get(`turn:${agent}`)
        if (turn !== undefined) turn.detail += `\nmodel error: ${event.message}`
        finish(`turn:${agent}`, at, true)
        return
      }
      case "TurnEnded":
        finish(`turn:${agent}`, at)
        return
      case "ToolCalled":
        begin(`tool:${agent}:${event.callId}`, { kind: "tool", agent, start: at, label: event.tool, detail: `${event.tool} ${JSON.stringify(event.args) ?? ""}`.slice(0, 300) })
        return
      case "ToolReturned": {
        const bar = finish(`tool:${agent}:${event.callId}`, at, event.isError)
        if (bar !== undefined) bar.detail += `\n${event.isError ? "error" : "→"} ${event.text.slice(0, 200)} (${event.durationMs} ms)`
        return
      }
      case "ToolExecutionStarted":
        begin(`pitool:${agent}:${event.toolCallId}`, { kind: "pitool", agent, start: at, label: event.tool, detail: event.tool })
        return
      case "ToolExecutionEnded": {
        const bar = finish(`pitool:${agent}:${event.toolCallId}`, at, event.isError)
        if (bar !== undefined) bar.detail += `\n${event.isError ? "failed" : "→"} ${event.result.slice(0, 200)}`
        return
      }
      case "MessageDelivered":
        timeline.marks.push({ agent, at, label: `message${event.from ? ` from ${event.from}` : event.via ? ` via ${event.via}` : ""}: ${event.text.slice(0, 200)}` })
        return
      case "AgentReleased":
      case "AgentCrashed":
      case "AgentStartFailed": {
        closeAll(agent, at)
        const lane = timeline.lanes.get(agent)
        if (lane !== undefined) lane.end = at
        return
      }
      default:
        return
    }
  }
  return { timeline, add }
}

const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000)

const LABEL = 130
const LANE = 46
const AXIS = 22

/** Draw the timeline into `container` as an SVG chart, from `from` to `to` (ms since the epoch). */
export const draw = (container: HTMLElement, timeline: Timeline, status: RunStatus, from: number, to: number) => {
  const width = Math.max(480, container.clientWidth)
  const agents = status.agents.map((agent) => agent.id).filter((id) => timeline.lanes.has(id))
  const height = AXIS + Math.max(1, agents.length) * LANE + 4
  const span = Math.max(1000, to - from)
  const x = (t: number) => LABEL + ((Math.min(Math.max(t, from), to) - from) / span) * (width - LABEL - 8)
  const chart = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Timeline of the agents' work" })

  const step = steps.find((candidate) => (candidate / span) * (width - LABEL) >= 90) ?? steps[steps.length - 1]!
  for (let t = 0; t <= span; t += step) {
    const at = x(from + t)
    chart.append(
      s("line", { x1: at, x2: at, y1: AXIS - 4, y2: height, class: "grid" }),
      s("text", { x: at + 3, y: 12, class: "axis" }, duration(t))
    )
  }
  if (agents.length === 0) chart.append(s("text", { x: LABEL, y: AXIS + 20, class: "axis" }, "no agents yet"))

  agents.forEach((agent, i) => {
    const top = AXIS + i * LANE
    const lane = timeline.lanes.get(agent)!
    chart.append(
      s("text", { x: 6, y: top + LANE / 2 + 4, class: "lane-label" }, agent),
      s("rect", { x: x(lane.start), y: top + 2, width: Math.max(1, x(lane.end ?? to) - x(lane.start)), height: LANE - 4, class: "lane", "data-agent": agent })
    )
    for (const bar of timeline.bars) {
      if (bar.agent !== agent) continue
      const row = bar.kind === "work" ? { y: top + 2, h: LANE - 4 } : bar.kind === "turn" ? { y: top + 6, h: 15 } : { y: top + 25, h: 15 }
      const left = x(bar.start)
      const right = x(bar.end ?? to)
      const title = `${bar.detail}\n${duration((bar.end ?? to) - bar.start)}${bar.end === undefined ? " so far" : ""}`
      chart.append(
        s(
          "rect",
          {
            x: left,
            y: row.y,
            width: Math.max(2, right - left),
            height: row.h,
            rx: bar.kind === "work" ? 0 : 3,
            class: `bar ${bar.kind}${bar.failed ? " failed" : ""}${bar.end === undefined ? " open" : ""}`,
            "data-kind": bar.kind,
            "data-agent": agent
          },
          s("title", {}, title)
        )
      )
      if (bar.kind !== "work" && right - left > 34) {
        chart.append(s("text", { x: left + 3, y: row.y + 11, class: "bar-label" }, bar.label.slice(0, Math.floor((right - left - 6) / 6.5))))
      }
    }
    for (const mark of timeline.marks) {
      if (mark.agent !== agent) continue
      const at = x(mark.at)
      chart.append(
        s("path", { d: `M${at} ${top + 21} l4 2.5 l-4 2.5 l-4 -2.5 z`, class: "mark", "data-kind": "message", "data-agent": agent }, s("title", {}, mark.label))
      )
    }
  })
  container.replaceChildren(chart)
}
