/**
 * The call a fiber works for: set while a tool call's or an endpoint call's
 * handler runs, so that what the handler logs says so (`LogEntry.call`). A
 * resumed run does not expect a call that was answered to be made again, so
 * its journal does not hold the program to what such a handler did.
 *
 * @internal
 */
import { FiberRef } from "effect"

export const currentCall: FiberRef.FiberRef<string | undefined> = FiberRef.unsafeMake<string | undefined>(undefined)

/** The annotation of a tool call of an agent. */
export const toolCall = (agent: string, callId: string): string => `tool:${agent}/${callId}`

/** The annotation of a call of a process's endpoint. */
export const endpointCall = (process: string, endpoint: string): string => `endpoint:${process}/${endpoint}`
