/**
 * How a pre-started (pooled) pi becomes a specific agent after start-up, so
 * that neither the model nor the agent's tools can tell it from a pi started
 * for that agent: the system prompt gets the agent's appended prompt, today's
 * date and its working directory; pi's built-in tools are re-created for that
 * directory; the process moves there and its environment names the agent.
 */
import type * as PiCodingAgent from "@mariozechner/pi-coding-agent"
import type { ExtensionAPI } from "@mariozechner/pi-coding-agent"
import * as AgentEnvironment from "@ramure/protocol/AgentEnvironment"
import * as path from "node:path"
import { importFile, piDistDirectory } from "./host.js"

export interface Identity {
  readonly agentId: string
  /** The agent's working directory. */
  readonly cwd: string
  /** The directory pi started in (baked into its system prompt). */
  readonly startCwd: string
  readonly systemPrompt: string | undefined
}

/** The identity this pi took on, if it was pooled; it outlives extension instances (pi re-creates them on `/new`). */
const state: { identity?: Identity } = ((globalThis as any)[Symbol.for("ramure/pi-extension/identity")] ??= {})

export const current = (): Identity | undefined => state.identity

const promptPath = (cwd: string) => cwd.replace(/\\/g, "/")

/** pi's date line: the local date, `YYYY-MM-DD`. */
const today = (): string => {
  const now = new Date()
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`
}

/**
 * The system prompt pi would have built had it started as the agent: pi ends
 * its prompt with `\nCurrent date: …\nCurrent working directory: <start cwd>`
 * and puts an appended prompt (`--append-system-prompt`) right before them
 * (ramure starts pi without context files and skills, which would come in
 * between). A prompt without that ending is left alone.
 */
export const rewritePrompt = (prompt: string, identity: Identity): string => {
  const cwdLine = `\nCurrent working directory: ${promptPath(identity.startCwd)}`
  if (!prompt.endsWith(cwdLine)) return prompt
  const dateAt = prompt.lastIndexOf("\nCurrent date: ")
  if (dateAt < 0) return prompt
  const appended = identity.systemPrompt ? `\n\n${identity.systemPrompt}` : ""
  return `${prompt.slice(0, dateAt)}${appended}\nCurrent date: ${today()}\nCurrent working directory: ${promptPath(identity.cwd)}`
}

/** Rewrite every string of a provider request that is the system prompt (its shape differs by provider). */
const rewritePayload = (value: unknown, identity: Identity, depth = 0): unknown => {
  if (typeof value === "string") return rewritePrompt(value, identity)
  if (depth > 6 || value === null || typeof value !== "object") return value
  if (Array.isArray(value)) return value.map((item) => rewritePayload(item, identity, depth + 1))
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, rewritePayload(item, identity, depth + 1)]))
}

/**
 * pi's own module, the instance pi runs: imported only when a pooled pi
 * becomes an agent, never at load (importing it through pi's extension
 * loader would evaluate a second copy of pi).
 */
const piModule = (): Promise<typeof PiCodingAgent> => {
  const dist = piDistDirectory()
  return dist === undefined
    ? Promise.reject(new Error("cannot find pi's installation from its entry point"))
    : (importFile(path.join(dist, "index.js")) as Promise<typeof PiCodingAgent>)
}

const builtInTools = async (cwd: string) => {
  const pi = await piModule()
  return [
    pi.createReadToolDefinition(cwd),
    pi.createBashToolDefinition(cwd),
    pi.createEditToolDefinition(cwd),
    pi.createWriteToolDefinition(cwd),
    pi.createGrepToolDefinition(cwd),
    pi.createFindToolDefinition(cwd),
    pi.createLsToolDefinition(cwd)
  ]
}

/** Give pi's built-in tools the identity's working directory (same names: they replace the originals, in place). */
export const registerBuiltIns = async (pi: ExtensionAPI, identity: Identity): Promise<void> => {
  for (const tool of await builtInTools(identity.cwd)) pi.registerTool(tool as any)
}

/**
 * Keep the system prompt right for every request: set it at each prompt
 * (`before_agent_start`), and fix any request still carrying the start-up
 * prompt — pi restores it when the active tools change mid-run.
 */
export const installPromptHooks = (pi: ExtensionAPI): void => {
  pi.on("before_agent_start", (event) => {
    const identity = state.identity
    return identity === undefined ? undefined : { systemPrompt: rewritePrompt(event.systemPrompt, identity) }
  })
  pi.on("before_provider_request", (event) => {
    const identity = state.identity
    return identity === undefined ? undefined : rewritePayload(event.payload, identity)
  })
}

/** Become the agent: move into its directory, name it in the environment, re-create the built-in tools. */
export const adopt = async (pi: ExtensionAPI, identity: Identity): Promise<void> => {
  const tools = await builtInTools(identity.cwd)
  state.identity = identity
  process.chdir(identity.cwd)
  process.env.PWD = identity.cwd
  process.env[AgentEnvironment.variables.agentId] = identity.agentId
  delete process.env[AgentEnvironment.variables.poolMember]
  for (const tool of tools) pi.registerTool(tool as any)
}
