/**
 * Identity and home directory of the current run, shared by every service.
 */
import { Context, Effect, Layer } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { randomUUID } from "node:crypto"

export interface RunInfo {
  /** The execution id (a uuid); the CLI shows its first 8 characters. */
  readonly executionId: string
  /** `RAMURE_HOME`, or `~/.ramure`. */
  readonly home: string
  /** A short, human name of the program that started the run. */
  readonly program: string
  /** This is a run resumed after its orchestrator died: its log is the journal of what already happened. */
  readonly resumed: boolean
}

export const RunInfo = Context.GenericTag<RunInfo>("@ramure/core/RunInfo")

/** The first 8 characters of an execution id, as shown by the CLI. */
export const shortId = (executionId: string): string => executionId.slice(0, 8)

export const homeDirectory = (env: NodeJS.ProcessEnv = process.env): string =>
  env.RAMURE_HOME && env.RAMURE_HOME.length > 0 ? path.resolve(env.RAMURE_HOME) : path.join(os.homedir(), ".ramure")

export const logsDirectory = (home: string, executionId?: string): string =>
  executionId === undefined ? path.join(home, "logs") : path.join(home, "logs", executionId)

export const runtimesDirectory = (home: string): string => path.join(home, "runtimes")

export const workDirectory = (home: string, executionId: string): string => path.join(home, "work", executionId)

const defaultProgram = (): string => {
  const script = process.argv[1]
  return script ? path.basename(script) : "ramure"
}

export interface Options {
  readonly home?: string
  readonly program?: string
  /** Resume the run with this execution id (default: `RAMURE_RESUME`), instead of starting a new one. */
  readonly resume?: string
}

/** The run: a fresh one (new execution id), or the one to resume; the home from the environment unless given. */
export const layer = (options: Options = {}): Layer.Layer<RunInfo> =>
  Layer.sync(RunInfo, () => {
    const resume = options.resume ?? (process.env.RAMURE_RESUME || undefined)
    return {
      executionId: resume ?? randomUUID(),
      home: options.home ?? homeDirectory(),
      program: options.program ?? defaultProgram(),
      resumed: resume !== undefined
    }
  })

export const executionId: Effect.Effect<string, never, RunInfo> = Effect.map(RunInfo, (info) => info.executionId)
