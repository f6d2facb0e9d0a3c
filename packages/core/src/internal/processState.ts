/** The state of a running process, shared by `Process` and `Agent`. */
import { Context, type Deferred, type Effect, type Scope } from "effect"
import type { Agent } from "../Agent.js"
import type { EndpointError, ProcessError } from "../Errors.js"
import type { EventLog } from "./eventLog.js"

export type ProcessEvent =
  | { readonly _tag: "started"; readonly process: string }
  | { readonly _tag: "event"; readonly type: string; readonly data: unknown }
  | { readonly _tag: "agent"; readonly agent: string }
  | { readonly _tag: "endpoint"; readonly name: string }
  | { readonly _tag: "done"; readonly value: unknown }
  | { readonly _tag: "failed"; readonly error: ProcessError | unknown }
  | { readonly _tag: "cancelled"; readonly reason: string }

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
  readonly scope: Scope.CloseableScope
  readonly completion: Deferred.Deferred<unknown, ProcessError>
  readonly events: EventLog<ProcessEvent>
  readonly endpoints: Map<string, Endpoint>
  readonly agents: Map<string, Agent>
  readonly children: Map<string, number>
}

export class CurrentProcess extends Context.Tag("@ramure/core/CurrentProcess")<CurrentProcess, ProcessState>() {}
