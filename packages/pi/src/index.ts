/**
 * @ramure/pi: Agents that are pi coding agents.
 */
export * as PiAgents from "./PiAgents.js"
export * as RemotePiAgents from "./RemotePiAgents.js"
