/**
 * The link from a public `Agent` value to its session, for the modules of
 * this package that need more than the public interface (attaching endpoints,
 * connecting agents).
 *
 * @internal
 */
import { Effect } from "effect"
import type { Agent } from "../Agent.js"
import type { AgentSession, ToolHandler } from "./agentSession.js"
import { toolName } from "./tools.js"

class AgentValue {
  readonly #session: AgentSession
  constructor(session: AgentSession) {
    this.#session = session
  }
  static sessionOf(value: object): AgentSession | undefined {
    return #session in value ? value.#session : undefined
  }
}

/** An `Agent` value that knows its session. */
export const makeAgent = (session: AgentSession, agent: Agent): Agent => Object.assign(new AgentValue(session), agent)

/** The session of an agent made by `makeAgent`. */
export const sessionOf = (agent: Agent): AgentSession => {
  const session = AgentValue.sessionOf(agent)
  if (session === undefined) throw new TypeError(`not an agent of this run: ${agent.id}`)
  return session
}

/** Add a tool under a name a process may use (not one of ramure's built-ins). */
export const addUserTool = (session: AgentSession, handler: ToolHandler) =>
  Effect.zipRight(toolName(handler.definition.name), session.addTool(handler))

/** Add a tool to `agent` that is not one of the process's handlers (an attached endpoint). */
export const addTool = (agent: Agent, handler: ToolHandler) => addUserTool(sessionOf(agent), handler)
