/**
 * The link from a public `Agent` value to its session, for the modules of
 * this package that need more than the public interface (attaching endpoints,
 * connecting agents).
 *
 * @internal
 */
import type { Agent } from "../Agent.js"
import type { AgentSession } from "./agentSession.js"

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
