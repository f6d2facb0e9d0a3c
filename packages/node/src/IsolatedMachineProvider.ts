/**
 * Worktree and sandboxed machines on top of the run's machine provider:
 * `Machine.make({ name, worktree, sandbox })` (or `Agent.make(name, {
 * worktree, sandbox })`) gets a machine of the provider underneath (local or
 * tmux) whose working directory is a worktree of a repository (see
 * `Worktree`) and/or whose programs and commands run in a bubblewrap sandbox
 * (see `Sandbox`). Other machines pass through unchanged.
 *
 * Building the layer saves and removes the worktrees of runs that died
 * (SIGKILL) without releasing them.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect, Layer } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { type Machine, MachineError, type MachineOptions, MachineProvider } from "@ramure/core/Machine"
import { Run } from "@ramure/core/Run"
import { RunInfo, shortId, workDirectory } from "@ramure/core/RunInfo"
import type { RunEvent } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import * as Sandbox from "./BubblewrapSandbox.js"
import * as Worktree from "./GitWorktree.js"

type WorktreeEvent = Extract<RunEvent, { readonly _tag: "WorktreeCollected" | "WorktreeReleased" }>

/** Machine kinds whose programs run on this host: the only ones a worktree or a sandbox can be made of. */
const hostKinds = new Set(["local", "tmux"])

/** Wrap the run's `MachineProvider` (local or tmux) with worktree and sandbox machines. */
export const layer: Layer.Layer<MachineProvider, never, MachineProvider | Run | RunLog | RunInfo | CommandExecutor.CommandExecutor> =
  Layer.effect(
    MachineProvider,
    Effect.gen(function* () {
      const inner = yield* MachineProvider
      const run = yield* Run
      const runLog = yield* RunLog
      const { executionId, home } = yield* RunInfo
      const executor = yield* CommandExecutor.CommandExecutor
      const log = (event: WorktreeEvent) => runLog.log({ process: "" }, event)

      for (const item of yield* Worktree.collectOrphans(home)) {
        const { released } = item
        yield* log({ _tag: "WorktreeCollected", executionId: item.executionId, machine: item.machine, repo: item.repo, released })
        yield* Effect.logWarning(
          `ramure: run ${shortId(item.executionId)} died without releasing the worktree of ${item.machine} (${item.repo}): ` +
            (released._tag === "Saved"
              ? `saved to branch ${released.branch} (${released.commit.slice(0, 12)}) and removed`
              : `could not save it (${released.message}); its files are still in ${released.path}`)
        )
      }
      const sandboxReady = yield* Effect.cached(Sandbox.check.pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor)))
      const runPort = Number(new URL(run.url).port)

      const isolated = Effect.fn("IsolatedMachineProvider.make")(function* (options: MachineOptions) {
        const fail = (message: string) => new MachineError({ machine: options.name, operation: "make", message })
        if (!hostKinds.has(inner.kind) || options.host !== undefined) {
          return yield* Effect.fail(fail(`worktree and sandboxed machines run on this host (local or tmux machines), not on ${options.host ?? inner.kind}`))
        }
        if (options.worktree !== undefined && options.cwd !== undefined) {
          return yield* Effect.fail(fail("a worktree machine's working directory is its worktree: give cwd or worktree, not both"))
        }
        const sandbox = options.sandbox === true ? {} : options.sandbox === false ? undefined : options.sandbox
        if (sandbox !== undefined) yield* sandboxReady.pipe(Effect.mapError((error) => fail(error.message)))

        const worktree = options.worktree === undefined ? undefined : yield* Worktree.make(options.worktree, {
          machine: options.name,
          executionId,
          home,
          path: path.join(workDirectory(home, executionId), options.name),
          ...(options.adopt === true ? { adopt: true } : {}),
          onRelease: (released) =>
            released._tag === "Saved"
              ? log({ _tag: "WorktreeReleased", machine: options.name, released })
              : Effect.zipRight(
                log({ _tag: "WorktreeReleased", machine: options.name, released }),
                Effect.logWarning(`ramure: could not save the work of ${options.name} to ${released.branch}: ${released.message}; its files are still in ${released.path}`)
              )
        })
        const { sandbox: _sandbox, worktree: _worktree, ...plain } = options
        let machine: Machine = yield* inner.make(worktree === undefined ? plain : { ...plain, cwd: worktree.path })
        if (worktree !== undefined) {
          machine = {
            ...machine,
            worktree,
            describe: { ...machine.describe, worktree: { repo: worktree.repo, branch: worktree.branch, base: worktree.base } }
          }
        }
        if (sandbox === undefined) return machine
        const stateDirectory = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const parent = path.join(home, "sandbox")
            nodeFs.mkdirSync(parent, { recursive: true, mode: 0o700 })
            return nodeFs.mkdtempSync(path.join(parent, `${shortId(executionId)}-`))
          }),
          (dir) => Effect.sync(() => nodeFs.rmSync(dir, { recursive: true, force: true }))
        )
        return yield* Sandbox.wrap(machine, sandbox, {
          stateDirectory,
          runPort,
          readOnly: worktree === undefined ? [] : yield* Worktree.objectDirectories(worktree)
        })
      })

      return MachineProvider.of({
        kind: inner.kind,
        make: (options) =>
          options.worktree === undefined && (options.sandbox === undefined || options.sandbox === false)
            ? inner.make(options)
            : isolated(options).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor))
      })
    })
  )
