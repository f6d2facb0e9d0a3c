/**
 * Text that came from a run, shown on a terminal. Agent names, messages,
 * model output, tool arguments and results, errors: any of them may hold
 * escape sequences (an OSC 52 clipboard write, a screen clear, a new window
 * title), C1 controls, or bidirectional overrides that reorder what is
 * shown. Here every such character is made visible instead: C0 controls and
 * DEL as their control pictures (`␛`, `␇`, `␍`, `␡`), the others as
 * `\uXXXX`. Newlines and tabs are left to the layout (`Format.oneLine`).
 */
import { Console, Effect } from "effect"

/**
 * What a terminal acts on, or what reorders or hides text, except newline
 * and tab: C0 controls, DEL, C1 controls, bidirectional marks, embeddings,
 * overrides and isolates, line and paragraph separators, invisible
 * operators and annotations. (Zero-width joiners stay: scripts and emoji
 * need them.)
 */
const unsafe = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g

const show = (char: string): string => {
  const code = char.charCodeAt(0)
  if (code < 0x20) return String.fromCharCode(0x2400 + code)
  if (code === 0x7f) return "␡"
  return `\\u${code.toString(16).padStart(4, "0")}`
}

/** `text` with every character a terminal would act on made visible (newlines and tabs kept). */
export const visible = (text: string): string => text.replace(unsafe, show)

/**
 * `value` as JSON that a terminal shows as it is and that parses back to the
 * same value: JSON escapes C0 controls itself; C1 controls and invisible
 * format characters become `\uXXXX` escapes too.
 */
export const json = (value: unknown, indent?: number): string => visible(JSON.stringify(value, null, indent))

const visibleArgs = (args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
  args.map((arg) => (typeof arg === "string" ? visible(arg) : arg))

/** A console that makes what it prints visible (see `visible`). */
export const visibleConsole = (console: Console.Console): Console.Console => ({
  ...console,
  log: (...args) => console.log(...visibleArgs(args)),
  error: (...args) => console.error(...visibleArgs(args)),
  warn: (...args) => console.warn(...visibleArgs(args)),
  info: (...args) => console.info(...visibleArgs(args)),
  unsafe: {
    ...console.unsafe,
    log: (...args) => console.unsafe.log(...visibleArgs(args)),
    error: (...args) => console.unsafe.error(...visibleArgs(args)),
    warn: (...args) => console.unsafe.warn(...visibleArgs(args)),
    info: (...args) => console.unsafe.info(...visibleArgs(args))
  }
})

/** Run a command's handler with `visibleConsole`: whatever it prints reaches the terminal harmless. */
export const safely = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (console) => Effect.withConsole(effect, visibleConsole(console)))
