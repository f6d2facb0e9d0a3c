/**
 * What a session taken over by a resumed run owes its journal: the agent
 * already has its tools, so the program giving them again tells it nothing,
 * and a call it sends before the program has given the tool again waits for
 * it; a call it made before the crash is not logged twice.
 *
 * @internal
 */
import { Deferred, Effect, FiberId } from "effect"
import type * as Protocol from "@ramure/protocol/Protocol"
import type { AgentJournal } from "../Journal.js"

export interface Adoption {
  /** Wait until the program gives the tool `name` again, if the agent has it from before and the program has not yet. */
  readonly awaitTool: (name: string) => Effect.Effect<void>
  /** The program gives a tool: true if the agent has exactly this one from before (it need not be told). */
  readonly readopt: (definition: typeof Protocol.ToolDefinition.Type) => boolean
  /** The program removes a tool the agent has from before and it has not given again: true if there was one. */
  readonly forget: (name: string) => boolean
  /** The call was made before the crash (it is in the log already). */
  readonly wasCalled: (callId: string) => boolean
}

/** Nothing to take over: a new agent. */
const none: Adoption = {
  awaitTool: () => Effect.void,
  readopt: () => false,
  forget: () => false,
  wasCalled: () => false
}

export const make = (journal: AgentJournal | undefined): Adoption => {
  if (journal === undefined) return none
  const pending = new Map(journal.tools)
  const given = new Map<string, Deferred.Deferred<void>>()
  const waiter = (name: string) => {
    let deferred = given.get(name)
    if (deferred === undefined) given.set(name, (deferred = Deferred.unsafeMake<void>(FiberId.none)))
    return deferred
  }
  const settle = (name: string) => {
    pending.delete(name)
    const deferred = given.get(name)
    if (deferred !== undefined) Deferred.unsafeDone(deferred, Effect.void)
  }
  return {
    awaitTool: (name) => Effect.suspend(() => (pending.has(name) ? Deferred.await(waiter(name)) : Effect.void)),
    readopt: (definition) => {
      const had = pending.get(definition.name)
      const same = had !== undefined && JSON.stringify(had) === JSON.stringify(definition)
      settle(definition.name)
      return same
    },
    forget: (name) => {
      const had = pending.has(name)
      settle(name)
      return had
    },
    wasCalled: (callId) => journal.inFlight.has(callId)
  }
}
