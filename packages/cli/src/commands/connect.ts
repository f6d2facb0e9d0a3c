/** `ramure connect` (attach to an agent's tmux session) and `ramure ssh` (a shell on its machine). */
import { Command as Cli, Options } from "@effect/cli"
import * as Command from "@effect/platform/Command"
import { shellQuote, sshArgs } from "@ramure/ssh/SshMachineProvider"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import { HostError } from "../Errors.js"
import * as Runs from "../Runs.js"
import * as Tmux from "../Tmux.js"
import { agent, runId } from "./shared.js"

/** Run a command on this terminal (stdin and stdout inherited); its exit code and what it printed on stderr. */
const interactive = (command: Command.Command) =>
  Effect.scoped(
    Effect.gen(function* () {
      const child = yield* Command.start(
        command.pipe(Command.stdin("inherit"), Command.stdout("inherit"), Command.stderr("pipe"))
      )
      const [stderr, code] = yield* Effect.all([Stream.mkString(Stream.decodeText(child.stderr)), child.exitCode], {
        concurrency: 2
      })
      return { code: Number(code), stderr: stderr.trim() }
    })
  ).pipe(Effect.mapError((error) => new HostError({ reason: error.message })))

/** What a shell in an agent's sandbox keeps of this terminal's environment. */
const sandboxedEnvironment = (): Record<string, string> =>
  Object.fromEntries(
    ["PATH", "HOME", "TERM", "COLORTERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL"].flatMap((key) =>
      process.env[key] ? [[key, process.env[key]!]] : []
    )
  )

const readOnly = Options.boolean("read-only").pipe(
  Options.withAlias("r"),
  Options.withDescription("Attach read-only (tmux attach-session -r).")
)

export const connect = Cli.make("connect", { id: runId, agent, readOnly }, (options) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, options.id)
    yield* Runs.requireLive(home, run)
    const target = yield* Effect.flatMap(Runs.pickAgent(run, yield* Runs.status(home, run), options.agent), (agent) =>
      Runs.requireActive(run, agent))
    if (target.session === undefined) {
      return yield* new HostError({
        reason: `agent ${target.id} has no tmux session (it runs on a ${target.machine?.kind ?? "?"} machine); try ramure tail or ramure ssh`
      })
    }
    const ssh = target.machine?.ssh
    const attach = ssh !== undefined
      // On another host: the same tmux command there, through the run's ssh connection.
      ? Command.make("ssh", ...sshArgs(ssh, [
        "tmux", "-L", shellQuote(ssh.tmuxSocket), "attach-session", ...(options.readOnly ? ["-r"] : []), "-t", shellQuote(`=${target.session}`)
      ].join(" "), { tty: true }))
      : Command.make(
        "tmux", "-L", Tmux.socket(), "attach-session", ...(options.readOnly ? ["-r"] : []), "-t", `=${target.session}`
      ).pipe(Command.env({ TMUX: "" })) // attaching from inside tmux is what the user asked for
    const { code, stderr } = yield* interactive(attach)
    if (code !== 0) return yield* new HostError({ reason: `tmux attach to ${target.session} failed: ${stderr || `exit code ${code}`}` })
  })
).pipe(
  Cli.withDescription("Attach this terminal to an agent's tmux session (tmux -L ramure attach-session); detach with the tmux prefix then d.")
)

export const ssh = Cli.make("ssh", { id: runId, agent }, (options) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, options.id)
    const target = yield* Runs.pickAgent(run, yield* Runs.status(home, run), options.agent)
    const machine = target.machine
    if (machine === undefined) return yield* new HostError({ reason: `agent ${target.id} has no machine` })
    if (machine.ssh !== undefined) {
      yield* Runs.requireLive(home, run)
      const shell = `cd -- ${shellQuote(machine.cwd)} && RAMURE_EXECUTION_ID=${shellQuote(run.id)} RAMURE_AGENT=${shellQuote(target.id)} exec "\${SHELL:-sh}"`
      const { code, stderr } = yield* interactive(Command.make("ssh", ...sshArgs(machine.ssh, shell, { tty: true })))
      if (stderr.length > 0) process.stderr.write(`${stderr}\n`)
      if (code !== 0) process.exitCode = code
      return
    }
    if (machine.kind !== "local" && machine.kind !== "tmux") {
      return yield* new HostError({ reason: `ssh to ${machine.kind} machines is not supported yet (agent ${target.id})` })
    }
    if (!fs.existsSync(machine.cwd)) {
      return yield* new HostError({ reason: `the working directory of ${target.id} is gone: ${machine.cwd}` })
    }
    const shell = process.env.SHELL || "bash"
    const identity = { RAMURE_EXECUTION_ID: run.id, RAMURE_AGENT: target.id }
    const sandbox = machine.sandbox
    const { code, stderr } = yield* interactive(
      sandbox === undefined
        ? Command.make(shell).pipe(Command.workingDirectory(machine.cwd), Command.env(identity))
        // A shell in a sandbox like the agent's: its view of the files, and none of this terminal's environment but the basics.
        : Command.make(sandbox.command[0]!, ...sandbox.command.slice(1), "--", shell).pipe(
          Command.env({ ...sandboxedEnvironment(), ...identity }, { extendEnv: false })
        )
    )
    if (stderr.length > 0) process.stderr.write(`${stderr}\n`)
    if (code !== 0) process.exitCode = code
  })
).pipe(Cli.withDescription("Open a shell ($SHELL, else bash) on an agent's machine, in its working directory (over ssh for machines on other hosts, in a sandbox like the agent's for sandboxed machines)."))
