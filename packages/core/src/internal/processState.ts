/** The state of a running process, shared by `Process` and `Agent`. */
import { Context, type Deferred, type Effect, type Schema, type Scope } from "effect"
import type { Agent } from "../Agent.js"
import type { EndpointError } from "../Errors.js"
import type { EventLog } from "./eventLog.js"

type Event =
  | { readonly _tag: "started"; readonly process: string }
  | { readonly _tag: "event"; readonly type: string; readonly data: unknown }
  | { readonly _tag: "agent"; readonly agent: string }
  | { readonly _tag: "endpoint"; readonly name: string }
  | { readonly _tag: "done"; readonly value: unknown }
  | { readonly _tag: "failed"; readonly error: unknown }
  | { readonly _tag: "cancelled"; readonly reason: string }

/**
 * What happens in a process. `source` is set on the events a parent forwards
 * from a child (`Process.bubble`): where the event came from.
 */
export type ProcessEvent = Event & { readonly source?: string }

export interface Endpoint {
  readonly name: string
  readonly description: string
  /** JSON Schema of the arguments. */
  readonly parameters: unknown
  /** Decode the arguments and run the handler in the exposing process; `caller` says who called (for the log). */
  readonly call: (args: unknown, caller: string) => Effect.Effect<unknown, EndpointError>
}

export interface ProcessState {
  readonly name: string
  readonly path: string
  readonly parent: ProcessState | undefined
  /** Agents, machines and spawned children: released first when the process ends. */
  readonly scope: Scope.CloseableScope
  /** The body's own `Scope` (its `acquireRelease`s): closed after the agents are released. */
  readonly resources: Scope.CloseableScope
  /** `done` / `fail`: a value, or a `ProcessError` or an error of the declared `failure` Schema. */
  readonly completion: Deferred.Deferred<unknown, unknown>
  /** The errors `Process.fail` keeps as they are, when the process declares them. */
  readonly failure: Schema.Schema<any, any, never> | undefined
  /** Completes once the process starts to end: its endpoints are no longer called. */
  readonly ended: Deferred.Deferred<void>
  readonly events: EventLog<ProcessEvent>
  readonly endpoints: Map<string, Endpoint>
  readonly agents: Map<string, Agent>
  readonly children: Map<string, number>
}

export class CurrentProcess extends Context.Tag("@ramure/core/CurrentProcess")<CurrentProcess, ProcessState>() {}
