/**
 * What the extension needs from the way it was loaded, and from pi's own
 * installation.
 *
 * Built, the extension is compiled by its loader (`loader.ts`), which
 * publishes a `Host`: Node's own `import()` (code compiled with a V8 code
 * cache cannot use `import()` itself) and a way to save that cache. From
 * source, pi loads it through jiti, whose `import()` would load a second copy
 * of a module: a CommonJS helper that Node loads itself stands in.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

export interface Host {
  /** Node's `import()`: a module pi has loaded comes from Node's cache, not as a copy. */
  readonly nativeImport: (specifier: string) => Promise<unknown>
  /** Write the V8 code cache of the compiled extension, once the paths of a start have run; never fails. */
  readonly saveCodeCache: () => void
}

export const hostKey = Symbol.for("ramure/pi-extension/host")

const fromSource: Host = {
  nativeImport: (specifier) => {
    const directory = process.env.PI_CODING_AGENT_DIR
    if (!directory) return Promise.reject(new Error("PI_CODING_AGENT_DIR is not set"))
    const helper = path.join(directory, "ramure-native-import.cjs")
    if (!fs.existsSync(helper)) fs.writeFileSync(helper, "module.exports = (specifier) => import(specifier)\n", { mode: 0o600 })
    return (createRequire(helper)(helper) as (specifier: string) => Promise<unknown>)(specifier)
  },
  saveCodeCache: () => {}
}

/** The loader's host when the built extension runs, else the source fallback. */
export const host = (): Host => ((globalThis as any)[hostKey] as Host | undefined) ?? fromSource

/** pi's `dist` directory, from its entry point (`process.argv[1]`, `…/pi-coding-agent/dist/cli.js`). */
export const piDistDirectory = (): string | undefined => {
  const entry = process.argv[1]
  if (entry === undefined) return undefined
  try {
    return path.dirname(fs.realpathSync(entry))
  } catch {
    return undefined
  }
}

/** A package installed next to pi (`@mariozechner/pi-ai`, …), found upwards from pi's directory. */
export const packageNextToPi = (name: string): string | undefined => {
  const start = piDistDirectory()
  if (start === undefined) return undefined
  for (let dir = start; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", ...name.split("/"))
    if (fs.existsSync(candidate)) return candidate
  }
  return undefined
}

/** Import a file of pi's installation with Node's own loader (the instance pi itself uses). */
export const importFile = (file: string): Promise<unknown> => host().nativeImport(pathToFileURL(file).href)
