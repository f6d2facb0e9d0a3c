/**
 * The entry of the built extension (`dist/ramure-pi-extension.cjs`), the
 * file pi loads with `-e`. It carries the bundled extension as text and
 * compiles it itself, with a V8 code cache: pi loads a CommonJS file with
 * Node's own loader (its jiti loader transforms only TypeScript and ES
 * modules), and a cache cuts the extension's load to a third.
 *
 * The cache lives in `RAMURE_CODE_CACHE` (a private directory the launcher
 * names; no cache without it), one file per bundle, Node version and
 * architecture. V8 checks that a cache matches the source and its own
 * version and flags, and rejects it otherwise; a missing or rejected cache
 * is written once the extension has connected (`Host.saveCodeCache`), so it
 * holds the functions a start runs.
 */
import * as fs from "node:fs"
import Module, { createRequire } from "node:module"
import * as path from "node:path"
import * as vm from "node:vm"
import { variables } from "@ramure/protocol/AgentEnvironment"
import { type Host, hostKey } from "./host.js"

const readCache = (file: string | undefined): Buffer | undefined => {
  if (file === undefined) return undefined
  try {
    return fs.readFileSync(file)
  } catch {
    return undefined
  }
}

const writeAtomically = (file: string, data: Buffer) => {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const temporary = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temporary, data, { mode: 0o600 })
  fs.renameSync(temporary, file)
}

/**
 * Compile and run the bundled extension (`source`, CommonJS; `digest` names
 * it) as if it were the file `filename`; returns its exports.
 */
export const load = (source: string, digest: string, filename: string): unknown => {
  const directory = process.env[variables.codeCache]
  const cacheFile = directory ? path.join(directory, `pi-extension-${digest}-${process.version}-${process.arch}.v8`) : undefined
  const cachedData = readCache(cacheFile)
  const script = new vm.Script(Module.wrap(source), { filename, ...(cachedData === undefined ? {} : { cachedData }) })
  let cacheWanted = cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)
  const host: Host = {
    nativeImport: (specifier) => import(specifier),
    saveCodeCache: () => {
      if (!cacheWanted || cacheFile === undefined) return
      cacheWanted = false
      try {
        writeAtomically(cacheFile, script.createCachedData())
        // Caches of other builds (or Node versions) are not used again.
        for (const name of fs.readdirSync(path.dirname(cacheFile))) {
          if (/^pi-extension-.*\.v8$/.test(name) && name !== path.basename(cacheFile)) fs.rmSync(path.join(path.dirname(cacheFile), name), { force: true })
        }
      } catch {
        // Only a speed-up: the next start compiles without it.
      }
    }
  }
  ;(globalThis as any)[hostKey] = host
  const module = { exports: {} as unknown }
  const wrapper = script.runInThisContext() as (...args: Array<unknown>) => void
  wrapper.call(module.exports, module.exports, createRequire(filename), module, filename, path.dirname(filename))
  return module.exports
}
