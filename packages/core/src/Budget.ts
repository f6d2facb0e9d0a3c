/**
 * Budgets: how much a process (with everything beneath it) or an agent may
 * spend — tokens, dollars, model turns, wall-clock time. The run is their
 * authority (`Budgets`): it accounts what each agent reports after every
 * model answer, answers each model turn an agent under a budget asks for, and
 * on a breach logs `BudgetExceeded` and applies the budget's policy: `fail`
 * (its process fails with the `BudgetExceeded` error) or `pause` (the agents
 * beneath it start no model turn until it is raised). The agents enforce
 * what the run tells them before each model request (see `Protocol.Budget`),
 * so a run spends at most one model turn per agent past a limit.
 *
 * A child's budget is carved out of what its parents have left when it
 * starts: it is never granted more than any ancestor still has, and what it
 * spends counts against every ancestor too.
 */
import {
  Context,
  Duration,
  Effect,
  FiberHandle,
  Layer,
  Option,
  PubSub,
  Queue,
  Ref,
  Schema,
  type Scope,
  Stream,
  SubscriptionRef,
  type Types
} from "effect"
import type * as Protocol from "@ramure/protocol/Protocol"
import { BudgetExceeded } from "./Errors.js"
import {
  agentKey,
  type Breach,
  carve,
  chain,
  errorOf,
  exhausted,
  gateOf,
  hasRoom,
  kinds,
  type Node,
  passed,
  processKey,
  type Restored,
  restore,
  spentOf
} from "./internal/budgetTree.js"
import * as Spend from "./internal/spend.js"
import { CurrentProcess } from "./internal/processState.js"
import { Journal } from "./Journal.js"
import type { BudgetAmounts, BudgetKind, BudgetPolicy, RunEvent } from "./RunEvent.js"
import { RunLog } from "./RunLog.js"

export { BudgetExceeded } from "./Errors.js"

/** A budget: limits (each optional) and what happens when one is passed. */
export interface Options {
  readonly inputTokens?: number
  readonly outputTokens?: number
  /** Input (cache reads and writes included) and output tokens together. */
  readonly totalTokens?: number
  /** Dollars, as pi prices the model's usage (`usage.cost`). */
  readonly cost?: number
  /** Model turns (answers of the model). */
  readonly turns?: number
  /** Wall-clock time from the start of the process or agent. */
  readonly time?: Duration.DurationInput
  /** `fail` (default): the process fails with `BudgetExceeded`; `pause`: the agents wait until the budget is raised. */
  readonly onExceeded?: BudgetPolicy
  /** The fraction of a limit at which `BudgetWarning` is logged (default 0.8). */
  readonly warnAt?: number
}

/** What `raise` adds: an amount per kind (time as a duration). */
export type Raise = Omit<Options, "onExceeded" | "warnAt">

export { kinds } from "./internal/budgetTree.js"

/** The amounts of `options`, time in milliseconds; kinds without a limit are left out. */
export const amountsOf = (options: Raise): BudgetAmounts => {
  const amounts: Types.Mutable<BudgetAmounts> = {}
  for (const kind of kinds) {
    const value = kind === "time"
      ? (options.time === undefined ? undefined : Duration.toMillis(Duration.decode(options.time)))
      : options[kind]
    if (value !== undefined) amounts[kind] = value
  }
  return amounts
}

/** Why `options` is not a budget (a limit that is not a number of at least 0, a `warnAt` outside (0, 1]), if it is not. */
export const check = (options: Options): string | undefined => {
  for (const kind of kinds) {
    if (kind === "time") continue
    const limit = options[kind]
    if (limit !== undefined && !(typeof limit === "number" && Number.isFinite(limit) && limit >= 0)) {
      return `the budget's ${kind} must be a number of at least 0 (got ${String(limit)})`
    }
  }
  if (options.time !== undefined) {
    const time = Duration.decodeUnknown(options.time)
    if (Option.isNone(time) || !Duration.isFinite(time.value)) {
      return `the budget's time must be a finite duration (got ${Option.isSome(time) ? Duration.format(time.value) : String(options.time)})`
    }
  }
  if (options.warnAt !== undefined && !(options.warnAt > 0 && options.warnAt <= 1)) {
    return `the budget's warnAt must be a fraction in (0, 1] (got ${String(options.warnAt)})`
  }
  if (options.onExceeded !== undefined && options.onExceeded !== "fail" && options.onExceeded !== "pause") {
    return `the budget's onExceeded must be "fail" or "pause" (got ${String(options.onExceeded)})`
  }
  return undefined
}

/** There is no such budget to raise (or read). */
export class NoBudget extends Schema.TaggedError<NoBudget>()("NoBudget", {
  target: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot change the budget of ${this.target}: ${this.reason}`
  }
}

/** Whose budget: a live process (by path) or agent (by id). */
export type Target = { readonly process: string } | { readonly agent: string }

const targetText = (target: Target): string => ("agent" in target ? `agent ${target.agent}` : `process ${target.process}`)

/** The run's side of one agent's budgets: what it reports is accounted, each turn it asks for is answered. */
export interface AgentGate {
  /** Whether any budget (its own or above it) applies: only then is the agent told anything. */
  readonly limited: boolean
  /** Where it stands now, and each change. */
  readonly changes: Stream.Stream<Protocol.Budget>
  /** Account an event the agent reported; a `TurnStarted` gets its answer. */
  readonly observe: (event: RunEvent) => Effect.Effect<Option.Option<Protocol.Budget>>
}

export class Budgets extends Context.Tag("@ramure/core/Budgets")<
  Budgets,
  {
    /** Put a process in the tree, with its budget if it has one, until the scope closes. `fail` ends it. */
    readonly process: (options: {
      readonly path: string
      readonly parent: string | undefined
      readonly budget: Options | undefined
      readonly fail: (error: BudgetExceeded) => Effect.Effect<void>
      /** Whether the process has its outcome: its agents start no model turn from then on. */
      readonly ended: Effect.Effect<boolean>
    }) => Effect.Effect<void, never, Scope.Scope>
    /** Put an agent of `process` in the tree, with its budget if it has one, until the scope closes. */
    readonly agent: (options: {
      readonly id: string
      readonly process: string
      readonly budget: Options | undefined
    }) => Effect.Effect<AgentGate, never, Scope.Scope>
    /** Add to the limits of a live budget; its agents go on if it has room again. The limits it has now. */
    readonly raise: (target: Target, by: BudgetAmounts, caller?: string) => Effect.Effect<BudgetAmounts, NoBudget>
    /**
     * A breach beneath the process `path` (its own budget, its agents', its
     * children's): one in effect now (not raised past yet), else the next.
     */
    readonly exceeded: (path: string) => Effect.Effect<BudgetExceeded>
  }
>() {}

export const layer: Layer.Layer<Budgets, never, RunLog | Journal> = Layer.effect(
  Budgets,
  Effect.gen(function* () {
    const runLog = yield* RunLog
    const journal = yield* Journal
    const restored = journal.resuming ? restore(yield* runLog.history()) : new Map<string, Restored>()
    const nodes = yield* Ref.make<ReadonlyMap<string, Node>>(new Map())
    const breaches = yield* PubSub.unbounded<BudgetExceeded>()

    const subject = (node: Node) => ({ process: node.process, ...(node.agent === undefined ? {} : { agent: node.agent }) })

    /** Tell every agent whose standing changed. */
    const refreshGates = Effect.gen(function* () {
      const all = yield* Ref.get(nodes)
      for (const node of all.values()) {
        if (node.gate === undefined) continue
        const { reason, state } = gateOf(all, node.key)
        const current = yield* SubscriptionRef.get(node.gate)
        if (current.state !== state || current.reason !== reason) {
          yield* SubscriptionRef.set(node.gate, { _tag: "Budget", state, answers: 0, ...(reason === undefined ? {} : { reason }) })
        }
      }
    })

    const breach = (node: Node, found: Breach) =>
      Effect.gen(function* () {
        yield* runLog.log(subject(node), { _tag: "BudgetExceeded", ...found, onExceeded: node.policy })
        const error = errorOf(node, found)
        yield* PubSub.publish(breaches, error)
        if (node.policy === "fail") yield* node.fail(error)
      })

    const warn = (node: Node, kind: BudgetKind, now: number) =>
      runLog.log(subject(node), { _tag: "BudgetWarning", kind, limit: node.limits[kind]!, spent: spentOf(node, kind, now) })

    /**
     * Apply `update` to the node `key` and its ancestors, then log (and act on)
     * the breaches and warnings it caused. `check` finds a node's breach.
     */
    const settle = (
      key: string,
      update: (node: Node) => Node,
      check: (node: Node, now: number) => Breach | undefined,
      /** A timer's time: a timer may fire a millisecond early, and must still find its time up. */
      notBefore = 0
    ) =>
      Effect.gen(function* () {
        const now = Math.max(Date.now(), notBefore)
        const effects = yield* Ref.modify(nodes, (all): [Array<Effect.Effect<void>>, ReadonlyMap<string, Node>] => {
          const next = new Map(all)
          const effects: Array<Effect.Effect<void>> = []
          for (const old of chain(all, key)) {
            let node = update(old)
            const found = node.exceeded === undefined ? check(node, now) : undefined
            if (found !== undefined) {
              node = { ...node, exceeded: found }
              effects.push(breach(node, found))
            }
            for (const kind of kinds) {
              const limit = node.limits[kind]
              if (limit === undefined || node.warned.includes(kind)) continue
              if (!hasRoom(spentOf(node, kind, now), limit * node.warnAt) && (found === undefined || found.kind !== kind)) {
                node = { ...node, warned: [...node.warned, kind] }
                const warned = node
                effects.push(warn(warned, kind, now))
              }
            }
            next.set(node.key, node)
          }
          return [effects, next]
        })
        yield* Effect.all(effects, { discard: true })
        yield* refreshGates
      })

    /** A node's time limit: warned about at `warnAt` of it, run out when the time is up, unless raised first. */
    const startTimer = (node: Node) => {
      const limit = node.limits.time
      if (node.timer === undefined || limit === undefined) return Effect.void
      const at = (ms: number) =>
        Effect.zipRight(
          Effect.sleep(Duration.millis(Math.max(0, node.startedAt + ms - Date.now()))),
          settle(node.key, (n) => n, passed, node.startedAt + ms)
        )
      return FiberHandle.run(node.timer, Effect.zipRight(at(limit * node.warnAt), at(limit)))
    }

    const open = (options: {
      readonly key: string
      readonly process: string
      readonly agent: string | undefined
      readonly parent: string | undefined
      readonly budget: Options | undefined
      readonly fail: (error: BudgetExceeded) => Effect.Effect<void>
      readonly ended: Effect.Effect<boolean>
      readonly gate: SubscriptionRef.SubscriptionRef<Protocol.Budget> | undefined
    }) =>
      Effect.gen(function* () {
        const now = Date.now()
        const requested = options.budget === undefined ? {} : amountsOf(options.budget)
        const all = yield* Ref.get(nodes)
        // Resumed: the budget it had, and what it had spent, go on.
        const past = restored.get(options.key)
        const resumed = options.budget !== undefined && past?.limits !== undefined
        const limits = resumed ? past!.limits! : carve(all, options.parent, requested, now)
        const node: Node = {
          key: options.key,
          process: options.process,
          agent: options.agent,
          parent: options.parent !== undefined && all.has(options.parent) ? options.parent : undefined,
          limits,
          policy: options.budget?.onExceeded ?? "fail",
          warnAt: options.budget?.warnAt ?? 0.8,
          spent: past?.spent ?? Spend.zero,
          startedAt: resumed ? past!.since ?? now : now,
          warned: [],
          exceeded: undefined,
          fail: options.fail,
          ended: options.ended,
          gate: options.gate,
          timer: limits.time === undefined ? undefined : yield* FiberHandle.make()
        }
        yield* Effect.acquireRelease(
          Ref.update(nodes, (all) => new Map(all).set(node.key, node)),
          () => Ref.update(nodes, (all) => {
            const next = new Map(all)
            next.delete(node.key)
            return next
          })
        )
        if (options.budget !== undefined && !resumed) {
          const carved = kinds.some((kind) => requested[kind] !== limits[kind])
          yield* runLog.log(subject(node), {
            _tag: "BudgetSet",
            limits,
            ...(carved ? { requested } : {}),
            onExceeded: node.policy,
            warnAt: node.warnAt
          })
        }
        yield* startTimer(node)
        return node
      })

    const raise = (target: Target, by: BudgetAmounts, caller?: string) =>
      Effect.gen(function* () {
        const key = "agent" in target ? agentKey(target.agent) : processKey(target.process)
        const all = yield* Ref.get(nodes)
        const node = all.get(key)
        const fail = (reason: string) => Effect.fail(new NoBudget({ target: targetText(target), reason }))
        if (node === undefined) return yield* fail("it is not live")
        const raised = kinds.filter((kind) => by[kind] !== undefined)
        if (raised.length === 0) return yield* fail("nothing to raise")
        for (const kind of raised) {
          if (!(by[kind]! > 0)) return yield* fail(`a raise must be positive (${kind}: ${by[kind]})`)
          if (node.limits[kind] === undefined) {
            const has = kinds.filter((k) => node.limits[k] !== undefined)
            return yield* fail(`it has no ${kind} limit (${has.length === 0 ? "no budget" : `its budget limits ${has.join(", ")}`})`)
          }
        }
        const now = Date.now()
        const limits: Types.Mutable<BudgetAmounts> = { ...node.limits }
        for (const kind of raised) limits[kind] = limits[kind]! + by[kind]!
        const updated: Node = { ...node, limits, warned: node.warned.filter((kind) => !raised.includes(kind)) }
        // It goes on if it has room again; another limit it has run out of stops it at its next turn.
        const cleared: Node = updated.exceeded !== undefined && hasRoom(spentOf(updated, updated.exceeded.kind, now), limits[updated.exceeded.kind]!)
          ? { ...updated, exceeded: undefined }
          : updated
        yield* Ref.update(nodes, (all) => new Map(all).set(key, cleared))
        yield* runLog.log(subject(cleared), { _tag: "BudgetRaised", by, limits, ...(caller === undefined ? {} : { caller }) })
        if (raised.includes("time")) yield* startTimer(cleared)
        yield* refreshGates
        return limits as BudgetAmounts
      })

    return {
      process: ({ budget, ended, fail, parent, path }) =>
        Effect.asVoid(open({
          key: processKey(path),
          process: path,
          agent: undefined,
          parent: parent === undefined ? undefined : processKey(parent),
          budget,
          fail,
          ended,
          gate: undefined
        })),
      agent: ({ budget, id, process }) =>
        Effect.gen(function* () {
          const owner = (yield* Ref.get(nodes)).get(processKey(process))
          const gate = yield* SubscriptionRef.make<Protocol.Budget>({ _tag: "Budget", state: "open", answers: 0 })
          const node = yield* open({
            key: agentKey(id),
            process,
            agent: id,
            parent: processKey(process),
            budget,
            fail: owner?.fail ?? (() => Effect.void),
            ended: owner?.ended ?? Effect.succeed(false),
            gate
          })
          yield* refreshGates
          const limited = chain(yield* Ref.get(nodes), node.key).some((n) => kinds.some((kind) => n.limits[kind] !== undefined))
          // A turn asked once its process has its outcome (a tool call that ended it, answered just before
          // the agent is shut down) is refused: it would only spend.
          const answer = Effect.gen(function* () {
            if (yield* node.ended) {
              return Option.some<Protocol.Budget>({ _tag: "Budget", state: "stopped", answers: 1, reason: `its process ${process} has ended` })
            }
            return Option.some({ ...(yield* SubscriptionRef.get(gate)), answers: 1 })
          })
          return {
            limited,
            changes: gate.changes,
            observe: (event) => {
              if (event._tag === "MessageEnded" && event.role === "assistant") {
                const spend = Spend.ofAnswer(event.usage)
                return Effect.as(settle(node.key, (n) => ({ ...n, spent: Spend.add(n.spent, spend) }), passed), Option.none())
              }
              if (event._tag === "TurnStarted") return Effect.zipRight(settle(node.key, (n) => n, exhausted), answer)
              return Effect.succeedNone
            }
          } satisfies AgentGate
        }),
      raise,
      exceeded: (path) =>
        Effect.scoped(Effect.gen(function* () {
          const beneath = (process: string) => process === path || process.startsWith(`${path}/`)
          // Subscribed before looking: a breach between the look and the wait is not missed.
          const next = yield* PubSub.subscribe(breaches)
          const now = [...(yield* Ref.get(nodes)).values()].find((node) => node.exceeded !== undefined && beneath(node.process))
          if (now !== undefined) return errorOf(now, now.exceeded!)
          while (true) {
            const breach = yield* Queue.take(next)
            if (beneath(breach.process)) return breach
          }
        }))
    }
  })
)

// ---------------------------------------------------------------------------
// In a process

/**
 * Raise a live budget: a process's (by path) or an agent's (by id). Its
 * agents paused for it go on if it has room again.
 */
export const raise = Effect.fn("Budget.raise")(function* (target: Target, by: Raise) {
  const caller = yield* Effect.serviceOption(CurrentProcess)
  return yield* (yield* Budgets).raise(target, amountsOf(by), Option.match(caller, { onNone: () => undefined, onSome: (p) => p.path }))
})

/**
 * A breach of a budget of the current process, of one of its agents, or of
 * anything beneath it — one in effect now, else the next: for a process that
 * raises the budget itself, or gives up (`Process.fail`) rather than wait.
 */
export const exceeded: Effect.Effect<BudgetExceeded, never, Budgets | CurrentProcess> = Effect.flatMap(
  CurrentProcess,
  ({ path }) => Effect.flatMap(Budgets, (budgets) => budgets.exceeded(path))
)
