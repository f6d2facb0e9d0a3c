/**
 * @ramure/protocol: The wire between a ramure run and its agents.
 */
export * as AgentClient from "./AgentClient.js"
export * as AgentEnvironment from "./AgentEnvironment.js"
export * as Connection from "./Connection.js"
export * as Protocol from "./Protocol.js"
export * as RunAddress from "./RunAddress.js"
