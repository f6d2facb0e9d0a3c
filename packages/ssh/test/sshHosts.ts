/**
 * "Remote" hosts for tests: each a network namespace with its own sshd,
 * reachable from here only over a veth pair. Namespaces separate the network
 * alone (files and processes are shared), so tests prove remoteness by going
 * through ssh, and each host gets its own tmux socket and root directory.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect, Schedule, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type * as SshMachineProvider from "../src/SshMachineProvider.js"

const sshd = "/usr/sbin/sshd"

const succeeds = (command: string, args: ReadonlyArray<string>): boolean => {
  try {
    execFileSync(command, args, { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** Why these tests cannot run here, or `undefined` when they can (root, iproute2, OpenSSH). */
export const unavailable = (): string | undefined => {
  if (process.getuid?.() !== 0) return "they need root to create network namespaces (CI runs them as root)"
  if (!fs.existsSync(sshd)) return `they need ${sshd} (apt-get install openssh-server)`
  if (!succeeds("sh", ["-c", "command -v ssh && command -v ssh-keygen"])) {
    return "they need the OpenSSH client (apt-get install openssh-client)"
  }
  if (!succeeds("ip", ["netns", "list"])) return "they need `ip netns` (apt-get install iproute2) and a kernel that allows it"
  return undefined
}

export interface TestHost {
  readonly name: string
  readonly address: string
  /** An alias in `TestHosts.sshConfig`. */
  readonly alias: string
  readonly namespace: string
  readonly root: string
  readonly tmuxSocket: string
}

export interface TestHosts {
  readonly directory: string
  readonly sshConfig: string
  readonly hosts: ReadonlyArray<TestHost>
  /** Provider options for each host: the first with explicit options, the others through the config alias. */
  readonly options: (pi: readonly [string, ...Array<string>]) => Array<SshMachineProvider.HostOptions>
  /** Run a shell command on a host over a fresh ssh connection (not the run's); its stdout. */
  readonly remote: (host: TestHost, command: string) => string
}

const run = (command: string, ...args: Array<string>) => execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"] })

/** A free 198.18.x.0/30 (RFC 2544 test range) for a veth pair. */
const freeSubnet = (): number => {
  const used = run("ip", "-o", "-4", "addr").toString()
  for (let attempt = 0; attempt < 256; attempt++) {
    const octet = crypto.randomInt(0, 256)
    if (!used.includes(`198.18.${octet}.`)) return octet
  }
  throw new Error("no free 198.18.x.0/30 subnet")
}

const startHost = (directory: string, name: string, index: number, authorizedKeys: string) =>
  Effect.gen(function* () {
    const tag = `${crypto.randomBytes(2).toString("hex")}${index}`
    const namespace = `ramure-t${tag}`
    const tmuxSocket = `ramure-test-${tag}`
    const outside = `rmr${tag}h`
    const inside = `rmr${tag}n`
    const octet = freeSubnet()
    const address = `198.18.${octet}.2`
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", namespace)
        run("ip", "addr", "add", `198.18.${octet}.1/30`, "dev", outside)
        run("ip", "link", "set", outside, "up")
        run("ip", "netns", "exec", namespace, "ip", "addr", "add", `${address}/30`, "dev", inside)
        run("ip", "netns", "exec", namespace, "ip", "link", "set", inside, "up")
        run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
      }),
      () =>
        Effect.sync(() => {
          // Whatever still runs in the namespace (a tmux server a failed test left) goes with it.
          const pids = (() => {
            try {
              return run("ip", "netns", "pids", namespace).toString().split("\n").filter((pid) => pid.length > 0)
            } catch {
              return []
            }
          })()
          for (const pid of pids) succeeds("kill", ["-9", pid])
          succeeds("ip", ["netns", "del", namespace])
          succeeds("ip", ["link", "del", outside])
          fs.rmSync(path.join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid!()}`, tmuxSocket), { force: true })
        })
    )
    const hostKey = path.join(directory, `host-${name}`)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
    const home = path.join(directory, `home-${name}`)
    fs.mkdirSync(home, { mode: 0o700 })
    const config = path.join(directory, `sshd-${name}.conf`)
    const log = path.join(directory, `sshd-${name}.log`)
    fs.writeFileSync(config, [
      `ListenAddress ${address}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(directory, `sshd-${name}.pid`)}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "UsePAM no",
      "AllowTcpForwarding yes",
      // Its own home: this host's shell start-up files stay out of the test (and it looks more remote).
      `SetEnv HOME=${home}`,
      ""
    ].join("\n"))
    fs.mkdirSync("/run/sshd", { recursive: true })
    yield* Command.make("ip", "netns", "exec", namespace, sshd, "-D", "-f", config, "-E", log).pipe(Command.start, Effect.orDie)
    yield* Effect.sync(() => fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("Server listening")).pipe(
      Effect.repeat({ schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")), until: (up) => up })
    )
    const root = path.join(directory, `root-${name}`)
    return {
      name,
      address,
      alias: `ramure-test-${name}`,
      namespace,
      root,
      tmuxSocket,
      hostKey: `${address} ${fs.readFileSync(`${hostKey}.pub`, "utf8").trim()}`
    }
  })

/** `count` hosts named a, b, c, …, torn down (sshd, namespace, files) when the scope closes. */
export const make = (
  count: number
): Effect.Effect<TestHosts, never, Scope.Scope | CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const directory = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-ssh-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const clientKey = path.join(directory, "client")
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", clientKey)
    const authorizedKeys = path.join(directory, "authorized_keys")
    fs.copyFileSync(`${clientKey}.pub`, authorizedKeys)
    const started = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i)),
      (name, index) => startHost(directory, name, index, authorizedKeys),
      { concurrency: "unbounded" }
    )
    const knownHosts = path.join(directory, "known_hosts")
    fs.writeFileSync(knownHosts, started.map((host) => `${host.hostKey}\n`).join(""))
    const sshConfig = path.join(directory, "ssh_config")
    fs.writeFileSync(sshConfig, started.map((host) => [
      `Host ${host.alias}`,
      `  HostName ${host.address}`,
      "  User root",
      `  IdentityFile ${clientKey}`,
      "  IdentitiesOnly yes",
      `  UserKnownHostsFile ${knownHosts}`,
      "  StrictHostKeyChecking yes",
      "  BatchMode yes",
      ""
    ].join("\n")).join(""))
    const hosts: Array<TestHost> = started.map(({ hostKey: _hostKey, ...host }) => host)
    return {
      directory,
      sshConfig,
      hosts,
      options: (pi) =>
        hosts.map((host, index) =>
          index === 0
            ? {
              name: host.name,
              destination: host.address,
              user: "root",
              identityFile: clientKey,
              options: [`UserKnownHostsFile=${knownHosts}`, "StrictHostKeyChecking=yes"],
              root: host.root,
              pi,
              tmuxSocket: host.tmuxSocket
            }
            : { name: host.name, destination: host.alias, configFile: sshConfig, root: host.root, pi, tmuxSocket: host.tmuxSocket }
        ),
      remote: (host, command) => run("ssh", "-F", sshConfig, host.alias, command).toString()
    } satisfies TestHosts
  })
