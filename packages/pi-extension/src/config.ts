/**
 * How a pi reaches its ramure run, from the environment the launcher
 * (`PiAgents`) gives it.
 */
import { Duration } from "effect"

/** How a pi instance reaches its run. */
export interface Config {
  readonly url: string
  readonly agentId: string
  readonly token: string
  readonly executionId: string
  /** Largest forwarded text (message text, tool result), in UTF-8 bytes. */
  readonly textCap: number
  /** The file that says where the run is now (read before every connection attempt), if any. */
  readonly addressFile: string | undefined
  /** How long the agent waits, frozen, for an unreachable run before pi exits. */
  readonly unreachableTimeout: Duration.Duration
}

const positiveInteger = (value: string | undefined): number | undefined => {
  const number = Number(value)
  return value !== undefined && value !== "" && Number.isInteger(number) && number > 0 ? number : undefined
}

/** The default of `RAMURE_UNREACHABLE_TIMEOUT_MS` (the launcher's `unreachableTimeout`). */
export const defaultUnreachableTimeout = Duration.seconds(60)

/**
 * The connection settings from the environment (`RAMURE_URL`,
 * `RAMURE_AGENT_ID`, `RAMURE_TOKEN`, `RAMURE_EXECUTION_ID`, optional
 * `RAMURE_TEXT_CAP`, `RAMURE_ADDRESS_FILE`, `RAMURE_UNREACHABLE_TIMEOUT_MS`),
 * or `undefined` outside a ramure run.
 */
export const configFromEnv = (env: NodeJS.ProcessEnv = process.env): Config | undefined => {
  const { RAMURE_AGENT_ID: agentId, RAMURE_EXECUTION_ID: executionId, RAMURE_TOKEN: token, RAMURE_URL: url } = env
  if (!url || !agentId || !token) return undefined
  const timeout = positiveInteger(env.RAMURE_UNREACHABLE_TIMEOUT_MS)
  return {
    url,
    agentId,
    token,
    executionId: executionId ?? "",
    textCap: positiveInteger(env.RAMURE_TEXT_CAP) ?? 4000,
    addressFile: env.RAMURE_ADDRESS_FILE || undefined,
    unreachableTimeout: timeout === undefined ? defaultUnreachableTimeout : Duration.millis(timeout)
  }
}

/** How a pre-started pi of a warm pool reaches its run before it knows its agent. */
export interface PoolConfig extends Omit<Config, "agentId"> {
  readonly memberId: string
}

/** The pool member's settings from the environment, or `undefined` for a pi that is not pooled. */
export const poolConfigFromEnv = (env: NodeJS.ProcessEnv = process.env): PoolConfig | undefined => {
  const { RAMURE_POOL_MEMBER: memberId } = env
  if (!memberId) return undefined
  const config = configFromEnv({ ...env, RAMURE_AGENT_ID: memberId })
  if (config === undefined) return undefined
  const { agentId: _member, ...rest } = config
  return { ...rest, memberId }
}
