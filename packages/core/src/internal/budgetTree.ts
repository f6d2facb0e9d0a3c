/**
 * The tree of budgets the run's `Budgets` service keeps: its nodes (a process
 * or an agent, with its limits and spend), and the pure rules over them —
 * when a limit is passed or used up, where an agent stands, what a child is
 * granted, what a resumed run had.
 *
 * @internal
 */
import type * as Protocol from "@ramure/protocol/Protocol"
import { BudgetExceeded } from "../Errors.js"
import { type BudgetAmounts, BudgetKind, type BudgetPolicy, type LogEntry } from "../RunEvent.js"
import type { Effect, FiberHandle, SubscriptionRef, Types } from "effect"
import * as Spend from "./spend.js"

export const kinds: ReadonlyArray<BudgetKind> = BudgetKind.literals

export type GateState = Protocol.Budget["state"]

export interface Breach {
  readonly kind: BudgetKind
  readonly limit: number
  readonly spent: number
}

export interface Node {
  readonly key: string
  readonly process: string
  readonly agent: string | undefined
  readonly parent: string | undefined
  readonly limits: BudgetAmounts
  readonly policy: BudgetPolicy
  readonly warnAt: number
  readonly spent: Spend.Spend
  readonly startedAt: number
  readonly warned: ReadonlyArray<BudgetKind>
  readonly exceeded: Breach | undefined
  /** How the owner fails (a process's own; an agent's is its process's). */
  readonly fail: (error: BudgetExceeded) => Effect.Effect<void>
  /** Whether the owning process has its outcome (an agent's: its process's). */
  readonly ended: Effect.Effect<boolean>
  /** The agent's gate (agents only). */
  readonly gate: SubscriptionRef.SubscriptionRef<Protocol.Budget> | undefined
  /** The timer of a time limit. */
  readonly timer: FiberHandle.FiberHandle | undefined
}

/** Dollars add up in floating point: $0.60 + 3 × $0.30 is exactly $1.50 here, not a hair past it. */
export const epsilon = 1e-9
export const hasRoom = (spent: number, limit: number) => limit - spent > epsilon

export const processKey = (path: string) => `process:${path}`
export const agentKey = (id: string) => `agent:${id}`

export const spentOf = (node: Node, kind: BudgetKind, now: number): number =>
  kind === "time" ? now - node.startedAt : node.spent[kind]

/** The node and its ancestors, nearest first. */
export const chain = (nodes: ReadonlyMap<string, Node>, key: string): Array<Node> => {
  const out: Array<Node> = []
  for (let node = nodes.get(key); node !== undefined; node = node.parent === undefined ? undefined : nodes.get(node.parent)) {
    out.push(node)
  }
  return out
}

/** Where an agent stands: stopped if a `fail` budget above it ran out, paused if a `pause` one did. */
export const gateOf = (nodes: ReadonlyMap<string, Node>, key: string): { readonly state: GateState; readonly reason?: string } => {
  let paused: Node | undefined
  for (const node of chain(nodes, key)) {
    if (node.exceeded === undefined) continue
    if (node.policy === "fail") return { state: "stopped", reason: reasonOf(node, node.exceeded) }
    paused ??= node
  }
  return paused === undefined ? { state: "open" } : { state: "paused", reason: reasonOf(paused, paused.exceeded!) }
}

/** The error a breach of the node's budget is. */
export const errorOf = (node: Node, breach: Breach): BudgetExceeded =>
  new BudgetExceeded({ process: node.process, ...(node.agent === undefined ? {} : { agent: node.agent }), ...breach })

export const reasonOf = (node: Node, breach: Breach): string => errorOf(node, breach).message

/** What a budget had before the run was resumed: its limits (raises included), since when, and what was spent under it. */
export interface Restored {
  readonly limits: BudgetAmounts | undefined
  readonly since: number | undefined
  readonly spent: Spend.Spend
}

/**
 * The budgets of the log a resumed run goes on from, by node: the limits
 * each was set (and raised) to, and what was spent beneath it, so that a
 * resume neither forgets the spend nor grants a budget afresh.
 */
export const restore = (entries: ReadonlyArray<LogEntry>): ReadonlyMap<string, Restored> => {
  const nodes = new Map<string, Restored>()
  const get = (key: string) => nodes.get(key) ?? { limits: undefined, since: undefined, spent: Spend.zero }
  for (const entry of entries) {
    const event = entry.event
    const key = entry.agent === undefined ? processKey(entry.process) : agentKey(entry.agent)
    if (event._tag === "BudgetSet") nodes.set(key, { ...get(key), limits: event.limits, since: Date.parse(entry.ts) })
    else if (event._tag === "BudgetRaised") nodes.set(key, { ...get(key), limits: event.limits })
    else if (event._tag === "MessageEnded" && event.role === "assistant" && entry.agent !== undefined) {
      const spend = Spend.ofAnswer(event.usage)
      const parts = entry.process.split("/")
      const keys = [key, ...parts.map((_, i) => processKey(parts.slice(0, i + 1).join("/")))]
      for (const k of keys) nodes.set(k, { ...get(k), spent: Spend.add(get(k).spent, spend) })
    }
  }
  return nodes
}

/** The first limit of the node that `over` says is run out. */
const breachOf = (over: (kind: BudgetKind, spent: number, limit: number) => boolean) => (node: Node, now: number): Breach | undefined => {
  for (const kind of kinds) {
    const limit = node.limits[kind]
    if (limit === undefined) continue
    const spent = spentOf(node, kind, now)
    if (over(kind, spent, limit)) return { kind, limit, spent }
  }
  return undefined
}

/** A limit the node's spend has passed (a time limit: reached). */
export const passed = breachOf((kind, spent, limit) => (kind === "time" ? !hasRoom(spent, limit) : spent - limit > epsilon))

/** A limit with no room left for another turn. */
export const exhausted = breachOf((_, spent, limit) => !hasRoom(spent, limit))

/** What the parents have left of each kind the budget limits: it gets no more. */
export const carve = (all: ReadonlyMap<string, Node>, parent: string | undefined, requested: BudgetAmounts, now: number) => {
  const granted: Types.Mutable<BudgetAmounts> = { ...requested }
  for (const ancestor of parent === undefined ? [] : chain(all, parent)) {
    for (const kind of kinds) {
      const mine = granted[kind]
      const limit = ancestor.limits[kind]
      if (mine === undefined || limit === undefined) continue
      granted[kind] = Math.max(0, Math.min(mine, limit - spentOf(ancestor, kind, now)))
    }
  }
  return granted
}
