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
import { Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { AgentLauncher, type LaunchedAgent, type LaunchSpec } from "@ramure/core/AgentLauncher"
import { AgentStartError } from "@ramure/core/Errors"
import type { RemoteHost } from "@ramure/core/Machine"
import * as RunAddress from "@ramure/protocol/RunAddress"
import * as PiExtension from "./internal/piExtension.js"
import * as PiAgents from "./PiAgents.js"

/**
 * The built single-file ramure pi extension (`npm run build` makes it), if it
 * is up to date with its sources.
 */
export const extensionBundlePath = (): string | undefined => {
  const bundle = PiExtension.bundleForUpload()
  return "path" in bundle ? bundle.path : undefined
}

const launchRemote = (remote: RemoteHost, spec: LaunchSpec, options: PiAgents.Options) =>
  Effect.gen(function* () {
    const fail = (reason: string) => new AgentStartError({ agent: spec.agentId, reason: `on host ${remote.name}: ${reason}` })
    const bundle = PiExtension.bundleForUpload()
    if ("error" in bundle) return yield* new AgentStartError({ agent: spec.agentId, reason: bundle.error })
    const extension = yield* remote.upload(bundle.path).pipe(Effect.mapError((error) => fail(error.message)))
    const model = spec.model ?? PiAgents.modelOf(options)
    const agentDir = path.posix.join(remote.stateDirectory, ".pi", spec.agentId)
    const modelsJson = typeof options.modelsJson === "function" ? options.modelsJson(spec.agentId) : options.modelsJson
    const env = PiAgents.piEnvironment(options, model, agentDir, spec, { agentId: spec.agentId }, {
      address: path.posix.join(agentDir, RunAddress.fileName),
      // The upload's private directory (0700) on that host.
      codeCache: path.posix.dirname(extension)
    })
    yield* Effect.all([
      remote.writePrivateFile(path.posix.join(agentDir, "settings.json"), JSON.stringify(PiAgents.piSettings(model), null, 2)),
      remote.writePrivateFile(path.posix.join(agentDir, RunAddress.fileName), RunAddress.render(PiAgents.addressOf(env))),
      ...(modelsJson === undefined ? [] : [remote.writePrivateFile(path.posix.join(agentDir, "models.json"), JSON.stringify(modelsJson, null, 2))])
    ], { concurrency: "unbounded", discard: true }).pipe(Effect.mapError((error) => fail(`cannot prepare its pi directory: ${error.message}`)))

    const [command, ...prefix] = remote.piCommand
    const spawned = yield* spec.machine.spawn({
      name: spec.sessionName,
      command,
      args: [
        ...prefix,
        ...PiAgents.piArguments(extension, model, spec.systemPrompt, {
          directory: PiAgents.sessionDirectory(agentDir, path.posix.join),
          continueSession: spec.resume === true
        })
      ],
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
        launch: (spec) => (spec.machine.remote === undefined ? local.launch(spec) : launchRemote(spec.machine.remote, spec, options)),
        // A remote agent of a resumed run is started again from its session (its host keeps it).
        adopt: (spec) =>
          spec.machine.remote === undefined && local.adopt !== undefined ? local.adopt(spec) : Effect.succeed(Option.none())
      }))
  ).pipe(Layer.provide(PiAgents.layer(options)))
