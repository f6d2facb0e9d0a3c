/**
 * pi agents on machines of other hosts (`SshMachineProvider`): an
 * `AgentLauncher` that starts pi there itself and hands every other machine
 * to `PiAgents`.
 *
 * On the remote, pi is the host's `piCommand`, the extension is the
 * self-contained bundle (`@ramure/pi-extension`'s `dist/`, built at install)
 * uploaded once per host and content, and the agent's pi directory is
 * written under the run's private directory there (0700, files 0600). pi
 * reaches the run through the connection's reverse tunnel, on the same
 * `ws://127.0.0.1:<port>` as a local agent.
 */
import { Effect, Layer } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { AgentLauncher, type LaunchedAgent, type LaunchSpec } from "@ramure/core/AgentLauncher"
import { AgentStartError } from "@ramure/core/Errors"
import type { RemoteHost } from "@ramure/core/Machine"
import * as PiAgents from "./PiAgents.js"

const here = path.dirname(fileURLToPath(import.meta.url))

const bundleName = "ramure-pi-extension.cjs"

/** The built single-file ramure pi extension, if it exists (`npm run build` makes it). */
export const extensionBundlePath = (): string | undefined => {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const installed = path.join(dir, "node_modules", "@ramure", "pi-extension", "dist", bundleName)
    if (nodeFs.existsSync(installed)) return nodeFs.realpathSync(installed)
    if (path.dirname(dir) === dir) break
  }
  const workspace = path.resolve(here, "../../pi-extension/dist", bundleName)
  return nodeFs.existsSync(workspace) ? workspace : undefined
}

const launchRemote = (remote: RemoteHost, spec: LaunchSpec, options: PiAgents.Options) =>
  Effect.gen(function* () {
    const fail = (reason: string) => new AgentStartError({ agent: spec.agentId, reason: `on host ${remote.name}: ${reason}` })
    const bundle = extensionBundlePath()
    if (bundle === undefined) {
      return yield* new AgentStartError({
        agent: spec.agentId,
        reason: "the ramure pi extension bundle is not built (npm run build)"
      })
    }
    const extension = yield* remote.upload(bundle).pipe(Effect.mapError((error) => fail(error.message)))
    const model = spec.model ?? options.model ?? (process.env.RAMURE_MODEL || undefined)
    const agentDir = path.posix.join(remote.stateDirectory, ".pi", spec.agentId)
    const modelsJson = typeof options.modelsJson === "function" ? options.modelsJson(spec.agentId) : options.modelsJson
    yield* Effect.all([
      remote.writePrivateFile(path.posix.join(agentDir, "settings.json"), JSON.stringify(PiAgents.piSettings(model), null, 2)),
      ...(modelsJson === undefined ? [] : [remote.writePrivateFile(path.posix.join(agentDir, "models.json"), JSON.stringify(modelsJson, null, 2))])
    ], { concurrency: "unbounded", discard: true }).pipe(Effect.mapError((error) => fail(`cannot prepare its pi directory: ${error.message}`)))

    const env = PiAgents.piEnvironment(options, model, agentDir, spec, { agentId: spec.agentId })
    const [command, ...prefix] = remote.piCommand
    const spawned = yield* spec.machine.spawn({
      name: spec.sessionName,
      command,
      args: [...prefix, ...PiAgents.piArguments(extension, model, spec.systemPrompt)],
      env
    }).pipe(Effect.mapError((error) => fail(error.message)))
    return { ...spawned, model } satisfies LaunchedAgent
  }).pipe(Effect.withSpan("RemotePiAgents.launch", { attributes: { agent: spec.agentId, host: remote.name } }))

/**
 * An `AgentLauncher` of pi agents on any machine: remote ones here, the
 * others through `PiAgents.layer(options)`.
 */
export const layer = (
  options: PiAgents.Options = {}
): Layer.Layer<AgentLauncher, never, PiAgents.Requirements> =>
  Layer.effect(
    AgentLauncher,
    Effect.map(AgentLauncher, (local) =>
      AgentLauncher.of({
        ...local,
        launch: (spec) => (spec.machine.remote === undefined ? local.launch(spec) : launchRemote(spec.machine.remote, spec, options))
      }))
  ).pipe(Layer.provide(PiAgents.layer(options)))
