/**
 * Sandboxed machines: a machine of this host whose programs (`spawn`) and
 * commands (`exec`) run inside a bubblewrap (`bwrap`) sandbox.
 *
 * Inside, the working directory is writable; the system (`/usr`, `/etc`
 * without its secrets), node, and what each program declares it needs (pi,
 * its extension, its pi directory) are visible at their own paths, read-only
 * unless declared writable; everything else of the host — the home
 * directory, other runs' directories, the rest of `~/.ramure`, the host's
 * `/tmp` — is invisible. The sandbox has its own `/tmp`, `/proc` and process
 * namespace (releasing a program kills everything it started), no
 * capabilities, and no way to make user namespaces. Its environment is only
 * what ramure gives it (never the orchestrator's), passed through a 0600 file
 * that the sandbox deletes once read. Network: the host's (`"host"`, the
 * default: 127.0.0.1 servers such as the run's and a local model are
 * reachable), or none at all but the run's port and `forwardPorts`
 * (`"none"`).
 *
 * `readFile`/`writeFile` run outside, confined to the working directory as on
 * every machine. `describe.sandbox.command` lets `ramure ssh` open a shell
 * that sees what the machine's programs see.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect } from "effect"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runCollect, runCommand } from "./LocalMachine.js"
import * as Forward from "./internal/sandboxForward.js"
import type { ExecOptions, Machine, SpawnSpec } from "@ramure/core/Machine"
import { MachineError } from "@ramure/core/Machine"
import type { SandboxOptions } from "@ramure/core/Sandbox"

/** Where a sandboxed program's environment file appears inside the sandbox. */
const environmentDirectory = "/run/ramure/env"

/** Directories of the system every sandbox sees read-only (or as the symlinks they are, on merged-/usr systems). */
const systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

/** Files of /etc that hold secrets: hidden (emptied) in every sandbox. */
const etcSecrets = ["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers"]
const etcSecretDirectories = ["/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d"]

const exists = (file: string): boolean => {
  try {
    nodeFs.lstatSync(file)
    return true
  } catch {
    return false
  }
}

/** The system part of every sandbox's arguments (computed once: it depends on this host only). */
const systemArguments = (): Array<string> => {
  const args: Array<string> = []
  for (const dir of systemDirectories) {
    if (!exists(dir)) continue
    const stat = nodeFs.lstatSync(dir)
    if (stat.isSymbolicLink()) args.push("--symlink", nodeFs.readlinkSync(dir), dir)
    else args.push("--ro-bind", dir, dir)
  }
  args.push("--ro-bind", "/etc", "/etc")
  for (const file of etcSecrets) if (exists(file)) args.push("--ro-bind", "/dev/null", file)
  for (const dir of etcSecretDirectories) if (exists(dir)) args.push("--tmpfs", dir)
  // Where /etc/resolv.conf points on systemd-resolved hosts.
  if (exists("/run/systemd/resolve")) args.push("--ro-bind", "/run/systemd/resolve", "/run/systemd/resolve")
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
  return args
}

const isWithin = (root: string, candidate: string): boolean =>
  candidate === root || candidate.startsWith(root.endsWith("/") ? root : `${root}/`)

/** node's installation, when it is not part of the system directories (nvm, a tarball, …). */
const nodeInstallation = (): Array<string> => {
  const real = nodeFs.realpathSync(process.execPath)
  if (systemDirectories.some((dir) => isWithin(dir, real))) return []
  return [path.dirname(path.dirname(real))]
}

export interface Mounts {
  readonly readOnly: ReadonlyArray<string>
  readonly readWrite: ReadonlyArray<string>
  /** `[host path, path inside]` pairs, writable. */
  readonly binds?: ReadonlyArray<readonly [string, string]>
}

/**
 * bwrap's arguments (up to the program) for a sandbox that sees `mounts`
 * besides the system, with `chdir` as its working directory. Paths appear
 * at their own path; parents are mounted before their children, and a path
 * both read-only and writable is writable.
 */
export const bwrapArguments = (
  mounts: Mounts,
  options: { readonly chdir: string; readonly network: "host" | "none"; readonly home: string; readonly newSession?: boolean }
): Array<string> => {
  const writable = new Set(mounts.readWrite.map((p) => path.resolve(p)))
  const all = [...new Set([...mounts.readOnly.map((p) => path.resolve(p)), ...writable])]
  const ordered = all.sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b))
  const home = path.resolve(options.home)
  const hideHome = home !== "/" && !systemDirectories.some((dir) => isWithin(dir, home))
  return [
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--cap-drop", "ALL",
    "--die-with-parent",
    ...(options.network === "host" ? ["--share-net"] : []),
    ...(options.newSession ? ["--new-session"] : []),
    ...systemArguments(),
    // An empty, private home: the real one is invisible.
    ...(hideHome ? ["--tmpfs", home] : []),
    ...ordered.flatMap((p) => [writable.has(p) ? "--bind" : "--ro-bind", p, p]),
    ...(mounts.binds ?? []).flatMap(([from, to]) => ["--bind", from, to]),
    "--chdir", options.chdir
  ]
}

/** The environment of sandboxed programs: what they need to work, nothing of the orchestrator's secrets. */
const baseEnvironment = (home: string): Record<string, string> => {
  const keep = ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME"]
  return {
    PATH: process.env.PATH || "/usr/local/bin:/usr/bin:/bin",
    HOME: home,
    TMPDIR: "/tmp",
    SHELL: "/bin/bash",
    ...Object.fromEntries(keep.flatMap((key) => (process.env[key] ? [[key, process.env[key]!]] : [])))
  }
}

const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

/**
 * Runs first inside the sandbox: replaces the environment with the file's
 * (keeping the terminal's TERM/COLORTERM that tmux gives the pane), deletes
 * the file, then runs the program.
 */
const launcher =
  `file=$1; shift; exec /usr/bin/env -i TERM="\${TERM:-dumb}" \${COLORTERM:+COLORTERM="$COLORTERM"} ` +
  `/bin/sh -c '. "$0" && rm -f -- "$0" && exec "$@"' "$file" "$@"`

const bubblewrapMissing = (machine: string, operation: string) =>
  new MachineError({ machine, operation, message: "bubblewrap is not installed (apt-get install bubblewrap)" })

/**
 * Check that bubblewrap can make a sandbox on this host (it is installed,
 * and user namespaces are allowed); the reason when it cannot.
 */
export const check: Effect.Effect<void, MachineError, CommandExecutor.CommandExecutor> = runCollect(
  Command.make("bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--ro-bind", "/", "/", "true")
).pipe(
  Effect.mapError((error) =>
    error._tag === "SystemError" && error.reason === "NotFound"
      ? bubblewrapMissing("sandbox", "make")
      : new MachineError({ machine: "sandbox", operation: "make", message: error.message })
  ),
  Effect.flatMap((result) =>
    result.exitCode === 0
      ? Effect.void
      : Effect.fail(new MachineError({ machine: "sandbox", operation: "make", message: `bubblewrap cannot make a sandbox here: ${result.stderr.trim()}` }))
  )
)

export interface WrapContext {
  /** A private (0700) directory for environment files and forwarding sockets. */
  readonly stateDirectory: string
  /** The run's own port on 127.0.0.1 (always reachable, also with `network: "none"`). */
  readonly runPort: number
  /** Paths the machine's programs must read besides the working directory (a worktree's objects). */
  readonly readOnly?: ReadonlyArray<string>
}

/**
 * `machine` with its programs and commands in a sandbox. The machine must be
 * on this host; `check` first.
 */
export const wrap = (
  machine: Machine,
  options: SandboxOptions,
  context: WrapContext
): Effect.Effect<Machine, MachineError, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const fail = (operation: string, message: string) => new MachineError({ machine: machine.id, operation, message })
    const network = options.network ?? "host"
    const extras = [...(options.readOnly ?? []), ...(options.readWrite ?? [])]
    const missing = extras.filter((p) => !path.isAbsolute(p) || !exists(p))
    if (missing.length > 0) return yield* Effect.fail(fail("make", `sandbox paths must be absolute and exist: ${missing.join(", ")}`))
    const ports = [...new Set([context.runPort, ...(options.forwardPorts ?? [])])]
    const badPort = ports.find((port) => !Number.isInteger(port) || port <= 0 || port > 65535)
    if (badPort !== undefined) return yield* Effect.fail(fail("make", `not a port: ${badPort}`))
    const home = os.homedir()
    const executor = yield* CommandExecutor.CommandExecutor
    const machineMounts = {
      readOnly: [...nodeInstallation(), ...(context.readOnly ?? []), ...(options.readOnly ?? [])],
      readWrite: [machine.cwd, ...(options.readWrite ?? [])]
    }
    const argumentsFor = (mounts: Mounts, chdir: string, newSession: boolean) =>
      bwrapArguments(mounts, { chdir, network, home, newSession })
    const environment = baseEnvironment(home)

    const exec = Effect.fn("SandboxedMachine.exec", { attributes: { machine: machine.id } })(function* (
      command: string,
      execOptions?: ExecOptions
    ) {
      const args = argumentsFor(machineMounts, machine.cwd, true)
      return yield* runCommand(
        Command.make("bwrap", ...args, "--", "/bin/bash", "-c", command).pipe(
          Command.env({ ...environment, ...execOptions?.env }, { extendEnv: false })
        ),
        { timeout: execOptions?.timeout }
      ).pipe(
        Effect.mapError((error) =>
          error._tag === "SystemError" && error.reason === "NotFound" ? bubblewrapMissing(machine.id, "exec") : fail("exec", error.message)
        ),
        Effect.provideService(CommandExecutor.CommandExecutor, executor)
      )
    })

    const spawn = Effect.fn("SandboxedMachine.spawn", { attributes: { machine: machine.id } })(function* (spec: SpawnSpec) {
      const invalid = Object.keys(spec.env).filter((key) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
      if (invalid.length > 0) return yield* Effect.fail(fail("spawn", `invalid environment variable names: ${invalid.join(", ")}`))
      const cwd = spec.cwd === undefined ? machine.cwd : path.resolve(machine.cwd, spec.cwd)
      const envDirectory = yield* Effect.acquireRelease(
        Effect.try({
          try: () => {
            nodeFs.mkdirSync(context.stateDirectory, { recursive: true, mode: 0o700 })
            const dir = nodeFs.mkdtempSync(path.join(context.stateDirectory, "env-"))
            const vars = Object.entries({ ...environment, ...spec.env }).map(([key, value]) => `export ${key}=${shellQuote(value)}\n`)
            nodeFs.writeFileSync(path.join(dir, "vars"), vars.join(""), { mode: 0o600 })
            return dir
          },
          catch: (error) => fail("spawn", `cannot write the environment file: ${String(error)}`)
        }),
        (dir) => Effect.sync(() => nodeFs.rmSync(dir, { recursive: true, force: true }))
      )
      const forward = network === "none"
        ? yield* Forward.serve(context.stateDirectory, ports).pipe(Effect.mapError((error) => fail("spawn", `cannot forward ports: ${error.message}`)))
        : undefined
      const mounts: Mounts = {
        readOnly: [...machineMounts.readOnly, ...(spec.needs?.read ?? [])],
        readWrite: [...machineMounts.readWrite, ...(spec.needs?.write ?? [])],
        binds: [[envDirectory, environmentDirectory], ...(forward === undefined ? [] : [[forward.directory, Forward.insideDirectory] as const])]
      }
      const program = forward === undefined
        ? [spec.command, ...spec.args]
        : [process.execPath, "-e", Forward.insideProgram, JSON.stringify(ports), spec.command, ...spec.args]
      return yield* machine.spawn({
        name: spec.name,
        command: "bwrap",
        args: [...argumentsFor(mounts, cwd, false), "--", "/bin/sh", "-c", launcher, "sh", `${environmentDirectory}/vars`, ...program],
        env: {},
        ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
        ...(spec.keepStdinOpen === undefined ? {} : { keepStdinOpen: spec.keepStdinOpen })
      })
    })

    return {
      ...machine,
      exec,
      spawn,
      describe: { ...machine.describe, sandbox: { network, command: ["bwrap", ...argumentsFor(machineMounts, machine.cwd, false)] } }
    } satisfies Machine
  }).pipe(Effect.withSpan("Sandbox.wrap", { attributes: { machine: machine.id } }))
