/**
 * ramure's own git commands: run with the user's configuration but none of
 * the `GIT_*` variables that would redirect them, with hooks off (ramure's
 * bookkeeping never runs a repository's hooks), and in the C locale.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect, Schema } from "effect"
import type { ExecResult } from "@ramure/core/Machine"
import { runCommand } from "../LocalMachine.js"

/** git could not run, or a command that had to succeed did not. */
export class GitFailed extends Schema.TaggedError<GitFailed>()("GitFailed", {
  args: Schema.Array(Schema.String),
  exitCode: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

export interface GitOptions {
  readonly cwd?: string
  readonly env?: Readonly<Record<string, string>>
  readonly input?: string
}

/** Variables that choose which configuration git trusts stay; every other `GIT_*` would redirect ramure's commands. */
const keptGitVariables = new Set(["GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM", "GIT_EXEC_PATH"])

const environment = (extra: Readonly<Record<string, string>> | undefined): Record<string, string> => ({
  ...Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] =>
      entry[1] !== undefined && (!entry[0].startsWith("GIT_") || keptGitVariables.has(entry[0]))
    )
  ),
  LC_ALL: "C",
  GIT_TERMINAL_PROMPT: "0",
  ...extra
})

/** Run `git args`; fails only when git cannot be started. */
export const run = (
  args: ReadonlyArray<string>,
  options: GitOptions = {}
): Effect.Effect<ExecResult, GitFailed, CommandExecutor.CommandExecutor> => {
  let command = Command.make("git", "-c", "core.hooksPath=/dev/null", "-c", "gc.auto=0", ...args).pipe(
    Command.env(environment(options.env), { extendEnv: false })
  )
  if (options.cwd !== undefined) command = Command.workingDirectory(command, options.cwd)
  return runCommand(command, { input: options.input }).pipe(
    Effect.mapError((error) =>
      new GitFailed({
        args,
        message: error._tag === "SystemError" && error.reason === "NotFound"
          ? "git is not installed (apt-get install git)"
          : error.message
      })
    )
  )
}

/** Run `git args` and return its standard output; a non-zero exit is a `GitFailed` with git's message. */
export const check = (args: ReadonlyArray<string>, options: GitOptions = {}) =>
  Effect.flatMap(run(args, options), (result) =>
    result.exitCode === 0
      ? Effect.succeed(result.stdout)
      : Effect.fail(
        new GitFailed({
          args,
          exitCode: result.exitCode,
          message: (result.stderr.trim() || result.stdout.trim() || `git ${args[0]} exited with ${result.exitCode}`)
            .replace(/^(fatal|error): /gm, "")
        })
      ))

/** `check`, trimmed: for commands that print one value. */
export const value = (args: ReadonlyArray<string>, options: GitOptions = {}) =>
  Effect.map(check(args, options), (out) => out.trim())

/** Does the command succeed (exit 0)? For questions such as `merge-base --is-ancestor`. */
export const succeeds = (args: ReadonlyArray<string>, options: GitOptions = {}) =>
  Effect.map(run(args, options), (result) => result.exitCode === 0)

/** An object id (sha-1 or sha-256). */
export const isObjectId = (text: string): boolean => /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(text)
