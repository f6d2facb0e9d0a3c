/**
 * Test helpers for file access: directories outside a machine, with a secret
 * that must never leak and a victim that must never change, and a real
 * process that keeps swapping what a name is.
 */
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const SECRET = "SECRET-outside-the-machine"
export const VICTIM = "victim-outside-the-machine"

/** A fresh directory outside every machine: `secret.txt` and `victim.txt`; removed with the scope. */
export const outsideDirectory = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "ramure-outside-")))
    fs.writeFileSync(path.join(dir, "secret.txt"), SECRET)
    fs.writeFileSync(path.join(dir, "victim.txt"), VICTIM)
    return dir
  }),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** `outsideDirectory` is as it was made: nothing added, nothing changed. */
export const untouched = (dir: string) => ({
  entries: fs.readdirSync(dir).sort(),
  secret: fs.readFileSync(path.join(dir, "secret.txt"), "utf8"),
  victim: fs.readFileSync(path.join(dir, "victim.txt"), "utf8")
})
export const asMade = { entries: ["secret.txt", "victim.txt"], secret: SECRET, victim: VICTIM }

export const mkfifo = (file: string) => execFileSync("mkfifo", [file])

/** What a swapped name becomes in turn: a symbolic link, a hard link (to an existing file) or a regular file. */
export type NameState = { readonly symlink: string } | { readonly hardlink: string } | { readonly file: string }

const swapperScript = `
const fs = require("node:fs")
const [name, json] = process.argv.slice(1)
const states = JSON.parse(json)
const next = name + ".next"
let swaps = 0
for (;;) {
  for (const state of states) {
    try {
      fs.rmSync(next, { force: true })
      if (state.symlink !== undefined) fs.symlinkSync(state.symlink, next)
      else if (state.hardlink !== undefined) fs.linkSync(state.hardlink, next)
      else fs.writeFileSync(next, state.file)
      fs.renameSync(next, name)
    } catch {}
    if (++swaps === states.length) process.stdout.write("swapping\\n")
  }
}`

/**
 * A real process that atomically replaces `name` by each state in turn, in a
 * tight loop, from when this succeeds until the scope closes.
 */
export const swapper = (name: string, states: ReadonlyArray<NameState>) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess, Error>((resume) => {
      const child = spawn(process.execPath, ["-e", swapperScript, name, JSON.stringify(states)], { stdio: ["ignore", "pipe", "inherit"] })
      child.stdout!.once("data", () => resume(Effect.succeed(child)))
      child.once("exit", (code) => resume(Effect.fail(new Error(`the swapper exited (${code})`))))
    }),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
  )
