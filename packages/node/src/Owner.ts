/**
 * Who owns what ramure starts. Every tmux session, process group and
 * directory a run starts carries its owner: the run's execution id, its home,
 * and its orchestrator's identity — pid *and* process start time, so that a
 * recycled pid is never mistaken for a live run. Cleanup removes something only
 * when its owner's orchestrator is provably gone, whatever home it belongs to.
 *
 * Synchronous and free of imports from the rest of ramure: the last-resort
 * paths (a signal handler about to exit, the start of a run) use it.
 *
 * @internal
 */
import * as nodeFs from "node:fs"

export interface Owner {
  readonly executionId: string
  readonly home: string
  /** The orchestrator's process id. */
  readonly pid: number
  /** Its start time (`/proc/<pid>/stat` field 22, clock ticks since boot); "" where /proc is missing. */
  readonly started: string
}

/** The environment variable that marks every program a run starts (tmux panes and local process groups). */
export const ownerVariable = "RAMURE_OWNER"

const hasProc = nodeFs.existsSync("/proc/self/stat")

/** Fields of `/proc/<pid>/stat` after the command name: index 0 is field 3 (state). */
const statFields = (pid: number): Array<string> | undefined => {
  try {
    const stat = nodeFs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** When process `pid` started (field 22), or undefined if it is gone (or a zombie). */
export const startTimeOf = (pid: number): string | undefined => {
  const fields = statFields(pid)
  if (fields === undefined || fields[0] === "Z") return undefined
  return fields[19]
}

/** The process group of `pid` (field 5), if it is running. */
export const groupOf = (pid: number): number | undefined => {
  const fields = statFields(pid)
  return fields === undefined || fields[0] === "Z" ? undefined : Number(fields[2])
}

/** Does a process `pid` exist (EPERM: it does, but is not ours)? Zombies count. */
export const signalAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Is the process `pid` that started at `started` still running? Without /proc
 * (or without a recorded start time) the pid alone decides, which errs on the
 * side of "alive": cleanup then leaves things be.
 */
export const processAlive = (pid: number, started: string | undefined): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  if (!hasProc) return signalAlive(pid)
  const now = startTimeOf(pid)
  if (now === undefined) return false
  return started === undefined || started === "" || now === started
}

/** The owner of what this process starts for the run `executionId` of `home`. */
/** When this process started: it does not change, and every machine of a run asks (read once, not once per agent). */
let ownStart: string | undefined

export const current = (executionId: string, home: string): Owner => ({
  executionId,
  home,
  pid: process.pid,
  started: (ownStart ??= startTimeOf(process.pid) ?? "")
})

/** Is the owner's orchestrator still running (whatever its home)? */
export const ownerAlive = (owner: Owner): boolean => processAlive(owner.pid, owner.started)

/** One line, no spaces at the ends: `<pid>:<started>:<execution id>:<home>` (the home last, it may hold anything). */
export const encode = (owner: Owner): string => `${owner.pid}:${owner.started}:${owner.executionId}:${owner.home}`

/** The owner a label names, or a reason why it names none. */
export const decode = (text: string): Owner | { readonly invalid: string } => {
  const match = /^(\d+):(\d*):([0-9A-Za-z-]+):(\/.*)$/s.exec(text.trim())
  if (match === null) return { invalid: `not an owner label: ${JSON.stringify(text.slice(0, 200))}` }
  return { pid: Number(match[1]), started: match[2]!, executionId: match[3]!, home: match[4]! }
}

export const isOwner = (value: Owner | { readonly invalid: string }): value is Owner => !("invalid" in value)

/** A running process that carries an owner marker in its environment. */
export interface MarkedProcess {
  readonly pid: number
  readonly group: number
  readonly owner: Owner
}

/**
 * Every running process of this user that carries a ramure owner marker
 * (`RAMURE_OWNER=` in `/proc/<pid>/environ`). Empty without /proc.
 */
export const markedProcesses = (): Array<MarkedProcess> => {
  if (!hasProc) return []
  const needle = `${ownerVariable}=`
  const found: Array<MarkedProcess> = []
  let entries: Array<string>
  try {
    entries = nodeFs.readdirSync("/proc")
  } catch {
    return []
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    let environ: string
    try {
      environ = nodeFs.readFileSync(`/proc/${entry}/environ`, "utf8")
    } catch {
      continue
    }
    const inside = environ.indexOf(`\0${needle}`)
    const at = environ.startsWith(needle) ? 0 : inside === -1 ? -1 : inside + 1
    if (at === -1) continue
    const end = environ.indexOf("\0", at)
    const owner = decode(environ.slice(at + needle.length, end === -1 ? undefined : end))
    const group = groupOf(Number(entry))
    if (isOwner(owner) && group !== undefined) found.push({ pid: Number(entry), group, owner })
  }
  return found
}
