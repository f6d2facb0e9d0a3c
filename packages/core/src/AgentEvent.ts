/**
 * What `agent.events` streams: the events the agent reports (see
 * `Protocol.AgentEvent`) plus what the runtime observes about it.
 */
import type * as Protocol from "./Protocol.js"

export type AgentEventRecord =
  | Protocol.AgentEvent
  | { readonly _tag: "connected"; readonly after: number }
  | { readonly _tag: "disconnected"; readonly code: number }
  | { readonly _tag: "tool_call"; readonly callId: string; readonly tool: string; readonly args: unknown }
  | {
    readonly _tag: "tool_result"
    readonly callId: string
    readonly tool: string
    readonly isError: boolean
    readonly text: string
  }
  | { readonly _tag: "message"; readonly text: string; readonly from: string | undefined }
  | { readonly _tag: "crashed"; readonly exitCode: number | undefined; readonly output: string }
  | { readonly _tag: "released" }
