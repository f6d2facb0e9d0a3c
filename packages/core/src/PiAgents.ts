/**
 * An `AgentLauncher` that runs real pi coding agents
 * (`@mariozechner/pi-coding-agent`) with the ramure extension: interactive pi
 * in a tmux session on tmux machines, headless `--mode rpc` pi elsewhere.
 * Every agent gets its own pi agent directory, so agents never share settings,
 * models or sessions with each other or with the user's `~/.pi`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Layer } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { AgentLauncher, type LaunchedAgent, type LaunchSpec } from "./AgentLauncher.js"
import { AgentStartError } from "./Errors.js"
import { RunInfo, workDirectory } from "./RunInfo.js"

export interface Options {
  /** `provider/id` for agents that name none (default: `RAMURE_MODEL`). */
  readonly model?: string
  /** pi's `models.json` (custom providers), or one per agent id. */
  readonly modelsJson?: object | ((agentId: string) => object)
  /** Extra environment for every pi. */
  readonly env?: Readonly<Record<string, string>>
  /**
   * Disable pi's start-up network calls (tool downloads, version check,
   * telemetry). Default: on when no provider credential is in the environment
   * or the model is ramure's scripted one.
   */
  readonly offline?: boolean
  /** Largest text an agent forwards per message or tool result, in bytes (default 4000). */
  readonly textCap?: number
}

const here = path.dirname(fileURLToPath(import.meta.url))

/** The directory of an installed package, looked up the way node does from this module. */
const findPackage = (name: string): string | undefined => {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name, "package.json")
    if (nodeFs.existsSync(candidate)) return path.dirname(candidate)
    if (path.dirname(dir) === dir) return undefined
  }
}

const readJson = (file: string): any => JSON.parse(nodeFs.readFileSync(file, "utf8"))

/** pi's command-line entry point (the package's `pi` bin), if pi is installed. */
export const piCli = (): string | undefined => {
  const dir = findPackage("@mariozechner/pi-coding-agent")
  if (dir === undefined) return undefined
  const bin = readJson(path.join(dir, "package.json")).bin
  const entry = typeof bin === "string" ? bin : bin?.pi
  return typeof entry === "string" ? path.join(dir, entry) : undefined
}

/** The ramure pi extension's source file (`@ramure/pi-extension`). */
export const extensionPath = (): string | undefined => {
  const dir = findPackage("@ramure/pi-extension")
  const candidates = [
    ...(dir === undefined ? [] : [path.join(dir, readJson(path.join(dir, "package.json")).exports?.["."] ?? "src/index.ts")]),
    path.resolve(here, "../../pi-extension/src/index.ts")
  ]
  const found = candidates.find((file) => nodeFs.existsSync(file))
  return found === undefined ? undefined : nodeFs.realpathSync(found)
}

const CREDENTIAL =
  /(_API_KEY|_OAUTH_TOKEN)$|^(AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|REGION|PROFILE|BEARER_TOKEN_BEDROCK)|GOOGLE_APPLICATION_CREDENTIALS|GOOGLE_CLOUD_(PROJECT|LOCATION)|GCLOUD_PROJECT|COPILOT_GITHUB_TOKEN)$/

/** The model providers' credentials found in `env` (API keys and the like). */
export const providerCredentials = (env: NodeJS.ProcessEnv = process.env): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => !!entry[1] && CREDENTIAL.test(entry[0])))

/** The provider of ramure's scripted model (see `ScriptedModel.piProvider`). */
const scriptedProvider = "ramure-scripted"

/** An `AgentLauncher` that starts a pi per agent on the agent's machine. */
export const layer = (options: Options = {}): Layer.Layer<AgentLauncher, never, RunInfo | FileSystem.FileSystem> =>
  Layer.effect(
    AgentLauncher,
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const { home } = yield* RunInfo

      /** A private (0700) pi agent directory with the agent's models and pinned model. */
      const prepareAgentDir = (spec: LaunchSpec, model: string | undefined) =>
        Effect.gen(function* () {
          const dir = path.join(workDirectory(home, spec.executionId), ".pi", spec.agentId)
          yield* fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
          yield* fs.chmod(dir, 0o700)
          const modelsJson = typeof options.modelsJson === "function" ? options.modelsJson(spec.agentId) : options.modelsJson
          if (modelsJson !== undefined) {
            yield* fs.writeFileString(path.join(dir, "models.json"), JSON.stringify(modelsJson, null, 2), { mode: 0o600 })
          }
          const slash = model?.indexOf("/") ?? -1
          const settings = {
            ...(model !== undefined && slash > 0
              ? { defaultProvider: model.slice(0, slash), defaultModel: model.slice(slash + 1) }
              : {}),
            // Messages that arrive while the agent works all reach its next model request.
            steeringMode: "all",
            followUpMode: "all"
          }
          yield* fs.writeFileString(path.join(dir, "settings.json"), JSON.stringify(settings, null, 2), { mode: 0o600 })
          return dir
        }).pipe(
          Effect.mapError((error) =>
            new AgentStartError({ agent: spec.agentId, reason: `cannot prepare its pi directory: ${error.message}` })
          )
        )

      const launch = Effect.fn("PiAgents.launch")(function* (spec: LaunchSpec) {
        const cli = piCli()
        if (cli === undefined) {
          return yield* new AgentStartError({
            agent: spec.agentId,
            reason: "pi is not installed (npm install @mariozechner/pi-coding-agent)"
          })
        }
        const extension = extensionPath()
        if (extension === undefined) {
          return yield* new AgentStartError({ agent: spec.agentId, reason: "the ramure pi extension (@ramure/pi-extension) is not installed" })
        }
        const model = spec.model ?? options.model ?? (process.env.RAMURE_MODEL || undefined)
        const agentDir = yield* prepareAgentDir(spec, model)
        const credentials = providerCredentials()
        const offline = options.offline ??
          (model?.startsWith(`${scriptedProvider}/`) === true || Object.keys(credentials).length === 0)
        const interactive = spec.machine.kind === "tmux"
        const env: Record<string, string> = {
          ...credentials,
          ...(offline ? { PI_OFFLINE: "1", PI_SKIP_VERSION_CHECK: "1", PI_TELEMETRY: "0" } : {}),
          PI_CODING_AGENT_DIR: agentDir,
          RAMURE_URL: spec.url,
          RAMURE_AGENT_ID: spec.agentId,
          RAMURE_TOKEN: spec.token,
          RAMURE_EXECUTION_ID: spec.executionId,
          ...(options.textCap === undefined ? {} : { RAMURE_TEXT_CAP: String(options.textCap) }),
          ...options.env
        }
        const args = [
          cli,
          "--no-extensions",
          "-e",
          extension,
          "--no-skills",
          "--no-prompt-templates",
          "--no-context-files",
          "--no-session",
          ...(model === undefined ? [] : ["--model", model]),
          ...(spec.systemPrompt === undefined ? [] : ["--append-system-prompt", spec.systemPrompt]),
          ...(interactive ? [] : ["--mode", "rpc"])
        ]
        const spawned = yield* spec.machine.spawn({
          name: spec.sessionName,
          command: process.execPath,
          args,
          env,
          // rpc mode reads commands from stdin and exits when it closes.
          keepStdinOpen: !interactive
        }).pipe(
          Effect.mapError((error) => new AgentStartError({ agent: spec.agentId, reason: error.message }))
        )
        return {
          pid: spawned.pid,
          session: spawned.session,
          exited: spawned.exited,
          outputTail: spawned.outputTail
        } satisfies LaunchedAgent
      })

      return AgentLauncher.of({ launch })
    })
  )
