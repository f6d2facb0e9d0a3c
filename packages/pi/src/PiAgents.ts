/**
 * An `AgentLauncher` that runs real pi coding agents
 * (`@mariozechner/pi-coding-agent`) with the ramure extension: interactive pi
 * in a tmux session on tmux machines, headless `--mode rpc` pi elsewhere.
 * Every agent gets its own pi agent directory, so agents never share settings,
 * models or sessions with each other or with the user's `~/.pi`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Duration, Effect, Layer, Option } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { AgentLauncher, type LaunchedAgent, type LaunchSpec, type PoolQuery } from "@ramure/core/AgentLauncher"
import { AgentStartError } from "@ramure/core/Errors"
import * as PiExtension from "./internal/piExtension.js"
import * as PiPool from "./internal/piPool.js"
import { type Machine, MachineProvider } from "@ramure/core/Machine"
import { RunInfo, workDirectory } from "@ramure/core/RunInfo"
import type { ChildProcesses } from "@ramure/core/ChildProcesses"
import { Run } from "@ramure/core/Run"
import type { RunLimits } from "@ramure/core/RunLimits"
import type { RunLog } from "@ramure/core/RunLog"
import type { RunRoutes } from "@ramure/core/RunRoutes"
import type * as AgentClient from "@ramure/protocol/AgentClient"
import * as AgentEnvironment from "@ramure/protocol/AgentEnvironment"
import * as RunAddress from "@ramure/protocol/RunAddress"

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
  /**
   * Keep pis started ahead of need: `agent()` then takes one and turns it
   * into the requested agent in milliseconds instead of seconds. Off by
   * default (see the README's "Warm pool" section). Needs a `modelsJson` that
   * is the same for every agent.
   */
  readonly pool?: PiPool.PoolOptions
  /**
   * How long an agent whose run is unreachable (the orchestrator died, its
   * connection is gone or does not answer) waits for it, frozen — no new
   * model request, no tool started —, before pi exits (default 60 s). A run
   * that comes back within it (at the same address, or at the one written to
   * the agent's address file, see `RunAddress`) finds the agent where it was.
   */
  readonly unreachableTimeout?: Duration.DurationInput
}

export type PoolOptions = PiPool.PoolOptions

/** What the pi launchers need from the run. */
export type Requirements =
  | RunInfo
  | FileSystem.FileSystem
  | Run
  | RunLog
  | RunLimits
  | RunRoutes
  | ChildProcesses
  | MachineProvider

const readJson = (file: string): any => JSON.parse(nodeFs.readFileSync(file, "utf8"))

const findCli = (): string | undefined => {
  const dir = PiExtension.findPackage("@mariozechner/pi-coding-agent")
  if (dir === undefined) return undefined
  const bin = readJson(path.join(dir, "package.json")).bin
  const entry = typeof bin === "string" ? bin : bin?.pi
  return typeof entry === "string" ? path.join(dir, entry) : undefined
}

let cli: string | undefined

/** pi's command-line entry point (the package's `pi` bin), if pi is installed (found once). */
export const piCli = (): string | undefined => (cli ??= findCli())

/**
 * The ramure pi extension a local pi loads: the built file while it is up to
 * date with its sources, else (a development checkout with edited sources)
 * the TypeScript source.
 */
export const extensionPath = (): string | undefined => PiExtension.resolve()?.path

/** The package directory containing `file` (the nearest `package.json` above it). */
const packageRoot = (file: string): string => {
  for (let dir = path.dirname(file); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (nodeFs.existsSync(path.join(dir, "package.json"))) return dir
  }
  return path.dirname(file)
}

/**
 * What pi and ramure's extension load: the `node_modules` holding pi (and
 * its dependencies), and the extension's and ramure core's package
 * directories (workspace links point outside `node_modules`).
 */
const piInstallation = (cli: string, extension: string): Array<string> => {
  const cliPath = path.resolve(cli)
  const at = cliPath.lastIndexOf(`${path.sep}node_modules${path.sep}`)
  const modules = at < 0 ? packageRoot(cliPath) : cliPath.slice(0, at + `${path.sep}node_modules`.length)
  // The extension's own ramure packages (workspace links point outside node_modules).
  const ramure = ["@ramure/protocol"].flatMap((name) => {
    const dir = PiExtension.findPackage(name)
    return dir === undefined ? [] : [nodeFs.realpathSync(dir)]
  })
  return [...new Set([modules, packageRoot(extension), ...ramure])]
}

const CREDENTIAL =
  /(_API_KEY|_OAUTH_TOKEN)$|^(AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|REGION|PROFILE|BEARER_TOKEN_BEDROCK)|GOOGLE_APPLICATION_CREDENTIALS|GOOGLE_CLOUD_(PROJECT|LOCATION)|GCLOUD_PROJECT|COPILOT_GITHUB_TOKEN)$/

/** The model providers' credentials found in `env` (API keys and the like). */
export const providerCredentials = (env: NodeJS.ProcessEnv = process.env): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => !!entry[1] && CREDENTIAL.test(entry[0])))

/** The provider of ramure's scripted model (see `ScriptedModel.piProvider`). */
const scriptedProvider = "ramure-scripted"

/** pi's settings.json for an agent: the model pinned, every queued message delivered. */
export const piSettings = (model: string | undefined): object => {
  const slash = model?.indexOf("/") ?? -1
  return {
    ...(model !== undefined && slash > 0 ? { defaultProvider: model.slice(0, slash), defaultModel: model.slice(slash + 1) } : {}),
    // Messages that arrive while the agent works all reach its next model request.
    steeringMode: "all",
    followUpMode: "all"
  }
}

/**
 * pi's environment: provider credentials, offline switches, its agent
 * directory and how to reach the run (`AgentEnvironment`). `identity` names
 * the agent, or (a pooled pi) the pool member.
 */
export const piEnvironment = (
  options: Options,
  model: string | undefined,
  agentDir: string,
  run: { readonly url: string; readonly secret: string; readonly executionId: string },
  identity: { readonly agentId: string } | { readonly memberId: string },
  files: {
    /** The agent's address file (see `RunAddress`). */
    readonly address: string
    /** A private directory for the extension's V8 code cache. */
    readonly codeCache: string | undefined
  }
): Record<string, string> => {
  const credentials = providerCredentials()
  const offline = options.offline ??
    (model?.startsWith(`${scriptedProvider}/`) === true || Object.keys(credentials).length === 0)
  return {
    ...credentials,
    ...(offline ? { PI_OFFLINE: "1", PI_SKIP_VERSION_CHECK: "1", PI_TELEMETRY: "0" } : {}),
    PI_CODING_AGENT_DIR: agentDir,
    ...AgentEnvironment.render({
      ...identity,
      url: run.url,
      token: run.secret,
      executionId: run.executionId,
      textCap: options.textCap ?? AgentEnvironment.defaultTextCap,
      addressFile: files.address,
      unreachableTimeout: Duration.decode(options.unreachableTimeout ?? defaultUnreachableTimeout),
      codeCache: files.codeCache
    }),
    ...options.env
  }
}

/** The model of agents that name none: `options.model`, else `RAMURE_MODEL`. */
export const modelOf = (options: Options): string | undefined => options.model ?? (process.env.RAMURE_MODEL || undefined)

/** The default of `Options.unreachableTimeout`. */
export const defaultUnreachableTimeout = AgentEnvironment.defaultUnreachableTimeout

/**
 * The run's address in pi's environment (`options.env` may override it):
 * what the agent's address file starts with. Its token is the agent's (or
 * pool member's) own credential.
 */
export const addressOf = (env: Readonly<Record<string, string>>): AgentClient.Address => ({
  url: env[AgentEnvironment.variables.url] ?? "",
  token: env[AgentEnvironment.variables.token] ?? ""
})

/** Where an agent's pi keeps its session (its conversation), inside its pi directory. */
export const sessionDirectory = (agentDir: string, join: (...parts: Array<string>) => string = path.join): string =>
  join(agentDir, "sessions")

/**
 * pi's arguments after its entry point: ramure's extension only, nothing of
 * the user's pi setup. The session is kept in the agent's pi directory, so
 * that a pi started again for a resumed run (`continueSession`) goes on with
 * the conversation.
 */
export const piArguments = (
  extension: string,
  model: string | undefined,
  systemPrompt: string | undefined,
  session: { readonly directory: string; readonly continueSession?: boolean }
): Array<string> => [
  "--no-extensions",
  "-e",
  extension,
  "--no-skills",
  "--no-prompt-templates",
  "--no-context-files",
  "--session-dir",
  session.directory,
  ...(session.continueSession === true ? ["--continue"] : []),
  ...(model === undefined ? [] : ["--model", model]),
  ...(systemPrompt === undefined ? [] : ["--append-system-prompt", systemPrompt])
]

/** Machine kinds whose programs run on this host (a pooled pi can move into any of their directories). */
const hostKinds = new Set(["local", "tmux"])

/**
 * An `AgentLauncher` that starts a pi per agent on the agent's machine, or
 * (with `options.pool`) hands out pis started ahead of need.
 */
export const layer = (
  options: Options = {}
): Layer.Layer<AgentLauncher, never, Requirements> =>
  Layer.scoped(
    AgentLauncher,
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const { executionId, home } = yield* RunInfo
      const agentsDirectory = path.join(workDirectory(home, executionId), ".pi")
      const defaultModel = modelOf(options)

      // The extension's V8 code cache, shared by the home's pis (a sandboxed one only reads it); none if it cannot be made.
      const codeCache = yield* fs.makeDirectory(path.join(home, "cache"), { recursive: true, mode: 0o700 }).pipe(
        Effect.as(path.join(home, "cache")),
        Effect.orElseSucceed(() => undefined)
      )

      /** A private (0700) pi agent directory with the agent's models, pinned model and run address. */
      const prepareAgentDir = (agentId: string, dir: string, model: string | undefined, env: Record<string, string>) =>
        Effect.gen(function* () {
          yield* fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
          yield* fs.chmod(dir, 0o700)
          const modelsJson = typeof options.modelsJson === "function" ? options.modelsJson(agentId) : options.modelsJson
          const write = (name: string, text: string) => fs.writeFileString(path.join(dir, name), text, { mode: 0o600 })
          yield* Effect.all([
            ...(modelsJson === undefined ? [] : [write("models.json", JSON.stringify(modelsJson, null, 2))]),
            write("settings.json", JSON.stringify(piSettings(model), null, 2)),
            write(RunAddress.fileName, RunAddress.render(addressOf(env)))
          ], { concurrency: "unbounded", discard: true })
        }).pipe(
          Effect.mapError((error) =>
            new AgentStartError({ agent: agentId, reason: `cannot prepare its pi directory: ${error.message}` })
          )
        )

      /**
       * pi's command line and environment. `identity` is the agent's id, or
       * (`pooled`) the pool member's: a pooled pi learns its agent later.
       */
      const piProgram = Effect.fn("PiAgents.program")(function* (
        identity: string,
        model: string | undefined,
        machine: Machine,
        role: {
          readonly agent: { readonly url: string; readonly secret: string; readonly executionId: string }
          readonly pooled: boolean
          readonly systemPrompt?: string | undefined
          /** Started again for a resumed run: continue the agent's saved session. */
          readonly resume?: boolean | undefined
        }
      ) {
        const cli = piCli()
        if (cli === undefined) {
          return yield* new AgentStartError({ agent: identity, reason: "pi is not installed (npm install @mariozechner/pi-coding-agent)" })
        }
        const extension = extensionPath()
        if (extension === undefined) {
          return yield* new AgentStartError({ agent: identity, reason: "the ramure pi extension (@ramure/pi-extension) is not installed" })
        }
        const agentDir = path.join(agentsDirectory, identity)
        const env = piEnvironment(options, model, agentDir, role.agent, role.pooled ? { memberId: identity } : { agentId: identity }, {
          address: path.join(agentDir, RunAddress.fileName),
          codeCache
        })
        yield* prepareAgentDir(identity, agentDir, model, env)
        const interactive = machine.kind === "tmux"
        const session = { directory: sessionDirectory(agentDir), continueSession: role.resume === true }
        const args = [cli, ...piArguments(extension, model, role.systemPrompt, session), ...(interactive ? [] : ["--mode", "rpc"])]
        return {
          agentDir,
          // rpc mode reads commands from stdin and exits when it closes.
          spec: {
            command: process.execPath,
            args,
            env,
            keepStdinOpen: !interactive,
            // What a sandbox must show pi: its installation and ramure's extension (read-only), its own directory.
            needs: { read: [...piInstallation(cli, extension), ...(codeCache === undefined ? [] : [codeCache])], write: [agentDir] }
          }
        }
      })

      const launchCold = Effect.fn("PiAgents.launch")(function* (spec: LaunchSpec) {
        if (spec.machine.remote !== undefined) {
          return yield* new AgentStartError({
            agent: spec.agentId,
            reason: `its machine is on host ${spec.machine.remote.name}: start pi there with RemotePiAgents (Ramure.layer does)`
          })
        }
        const model = spec.model ?? defaultModel
        const program = yield* piProgram(spec.agentId, model, spec.machine, {
          agent: spec,
          pooled: false,
          systemPrompt: spec.systemPrompt,
          resume: spec.resume
        })
        const spawned: LaunchedAgent = yield* spec.machine.spawn({ ...program.spec, name: spec.sessionName }).pipe(
          Effect.mapError((error) => new AgentStartError({ agent: spec.agentId, reason: error.message }))
        )
        return { ...spawned, model }
      })

      /**
       * The pi a previous orchestrator of this run started for the agent, if it
       * still runs: its tmux session is taken over, and its address file now
       * names this run and the agent's new secret — the pi, waiting for its
       * run (its dead-man switch), reconnects to it where it was.
       */
      const adopt = Effect.fn("PiAgents.adopt")(function* (spec: LaunchSpec) {
        if (spec.machine.adopt === undefined) return Option.none<LaunchedAgent>()
        const found = yield* spec.machine.adopt(spec.sessionName).pipe(
          Effect.mapError((error) => new AgentStartError({ agent: spec.agentId, reason: error.message }))
        )
        if (Option.isNone(found)) return Option.none<LaunchedAgent>()
        const file = path.join(agentsDirectory, spec.agentId, RunAddress.fileName)
        yield* RunAddress.write(file, { url: spec.url, token: spec.secret }).pipe(
          Effect.mapError((error) =>
            new AgentStartError({ agent: spec.agentId, reason: `cannot tell its pi where the run is now: ${error.message}` })
          )
        )
        return Option.some<LaunchedAgent>({ ...found.value, model: spec.model ?? defaultModel })
      })

      if (options.pool === undefined || options.pool.size <= 0) return AgentLauncher.of({ launch: launchCold, adopt })

      if (typeof options.modelsJson === "function") {
        return yield* Effect.dieMessage(
          "PiAgents: a warm pool needs a modelsJson that is the same for every agent (an object, not a function)"
        )
      }
      const { url } = yield* Run
      const provider = yield* MachineProvider
      const warmModels = options.pool.models ?? [defaultModel ?? ""]
      const keyOf = (model: string | undefined) => model ?? defaultModel ?? ""
      const pool = yield* PiPool.make(options.pool, warmModels, {
        provider,
        program: (memberId, model, machine, secret) =>
          piProgram(memberId, model === "" ? undefined : model, machine, { agent: { url, secret, executionId }, pooled: true }),
        linkAgentDir: (member, agentId) =>
          fs.symlink(member.agentDir, path.join(agentsDirectory, agentId)).pipe(Effect.ignore),
        writeAddress: (member, secret) => {
          const file = path.join(member.agentDir, RunAddress.fileName)
          return Effect.flatMap(RunAddress.read(file), (current) => RunAddress.write(file, { url: current?.url ?? url, token: secret }))
        }
      })
      // A sandbox's view is fixed when it starts: a pi started for the pool cannot move into one.
      const pooled = (query: PoolQuery) =>
        hostKinds.has(provider.kind) &&
        query.sandboxed !== true &&
        (query.machine === undefined || (query.machine.kind === provider.kind && query.machine.describe.sandbox === undefined)) &&
        warmModels.includes(keyOf(query.model))

      return AgentLauncher.of({
        // An agent started again for a resumed run continues its own session: never a pooled pi.
        launch: (spec) =>
          spec.resume !== true && pooled({ model: spec.model, machine: spec.machine })
            ? Effect.map(pool.launch(keyOf(spec.model), spec), (launched) => ({ ...launched, model: keyOf(spec.model) || undefined }))
            : launchCold(spec),
        adopt,
        pooled,
        evictIdle: pool.evictIdle
      })
    })
  )
