/**
 * The environment a launcher gives pi so that ramure's extension finds its
 * run: the `RAMURE_*` variables, their defaults, and both directions — the
 * launcher `render`s an agent's (or a warm pool member's) settings, the
 * extension `parse`s them back at pi start.
 *
 * Schema-free, like the rest of what the extension loads at pi start (see
 * `internal/wire.ts`).
 */
import { Duration } from "effect"

/** The variables' names. */
export const variables = {
  url: "RAMURE_URL",
  agentId: "RAMURE_AGENT_ID",
  /** Instead of `agentId`: a pi started ahead of need for a warm pool. */
  poolMember: "RAMURE_POOL_MEMBER",
  token: "RAMURE_TOKEN",
  executionId: "RAMURE_EXECUTION_ID",
  textCap: "RAMURE_TEXT_CAP",
  addressFile: "RAMURE_ADDRESS_FILE",
  unreachableTimeout: "RAMURE_UNREACHABLE_TIMEOUT_MS",
  codeCache: "RAMURE_CODE_CACHE"
} as const

/** The default of `textCap`, in UTF-8 bytes. */
export const defaultTextCap = 4000

/** The default of `unreachableTimeout`. */
export const defaultUnreachableTimeout = /* @__PURE__ */ Duration.seconds(60)

/** How a pi reaches its run, whoever it is. */
interface Connection {
  readonly url: string
  /** The agent's (or pool member's) own secret. */
  readonly token: string
  readonly executionId: string
  /** Largest forwarded text (message text, tool result), in UTF-8 bytes. */
  readonly textCap: number
  /** The file that says where the run is now (read before every connection attempt), if any. */
  readonly addressFile: string | undefined
  /** How long the agent waits, frozen, for an unreachable run before pi exits. */
  readonly unreachableTimeout: Duration.Duration
  /** A private directory for the extension's V8 code cache, if any. */
  readonly codeCache: string | undefined
}

/** A pi started as the agent `agentId`. */
export interface Agent extends Connection {
  readonly agentId: string
}

/** A pi of a warm pool, which learns its agent later. */
export interface PoolMember extends Connection {
  readonly memberId: string
}

export type Settings = Agent | PoolMember

/** The environment that gives pi `settings` (optional settings left out are not set). */
export const render = (settings: Settings): Record<string, string> => ({
  [variables.url]: settings.url,
  ...("agentId" in settings ? { [variables.agentId]: settings.agentId } : { [variables.poolMember]: settings.memberId }),
  [variables.token]: settings.token,
  [variables.executionId]: settings.executionId,
  [variables.textCap]: String(settings.textCap),
  ...(settings.addressFile === undefined ? {} : { [variables.addressFile]: settings.addressFile }),
  [variables.unreachableTimeout]: String(Duration.toMillis(settings.unreachableTimeout)),
  ...(settings.codeCache === undefined ? {} : { [variables.codeCache]: settings.codeCache })
})

const positiveInteger = (value: string | undefined): number | undefined => {
  const number = Number(value)
  return value !== undefined && value !== "" && Number.isInteger(number) && number > 0 ? number : undefined
}

/**
 * The settings in `env`: a pool member's when it names one, else an agent's;
 * `undefined` outside a ramure run (no url, token, or agent or member). A
 * number that is not a positive integer is its default.
 */
export const parse = (env: Readonly<Record<string, string | undefined>>): Settings | undefined => {
  const url = env[variables.url]
  const token = env[variables.token]
  const memberId = env[variables.poolMember]
  const agentId = env[variables.agentId]
  if (!url || !token) return undefined
  const timeout = positiveInteger(env[variables.unreachableTimeout])
  const connection: Connection = {
    url,
    token,
    executionId: env[variables.executionId] ?? "",
    textCap: positiveInteger(env[variables.textCap]) ?? defaultTextCap,
    addressFile: env[variables.addressFile] || undefined,
    unreachableTimeout: timeout === undefined ? defaultUnreachableTimeout : Duration.millis(timeout),
    codeCache: env[variables.codeCache] || undefined
  }
  if (memberId) return { ...connection, memberId }
  return agentId ? { ...connection, agentId } : undefined
}
