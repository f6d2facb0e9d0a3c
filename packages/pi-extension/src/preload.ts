/**
 * Load the model provider's code ahead of the first request. pi imports a
 * provider's module (and its SDK) lazily, on the first request to a model of
 * that API — tens of milliseconds a pre-started pi need not spend after it
 * is handed an agent.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const moduleOf: Readonly<Record<string, string>> = {
  "anthropic-messages": "anthropic.js",
  "openai-completions": "openai-completions.js",
  "openai-responses": "openai-responses.js",
  "azure-openai-responses": "azure-openai-responses.js",
  "openai-codex-responses": "openai-codex-responses.js",
  "mistral-conversations": "mistral.js",
  "google-generative-ai": "google.js",
  "google-vertex": "google-vertex.js"
}

/** pi-ai's directory, found from pi's own entry point (`process.argv[1]`, `…/pi-coding-agent/dist/cli.js`). */
const piAiDirectory = (): string | undefined => {
  const entry = process.argv[1]
  if (entry === undefined) return undefined
  for (let dir = path.dirname(fs.realpathSync(entry)); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", "@mariozechner", "pi-ai")
    if (fs.existsSync(candidate)) return candidate
  }
  return undefined
}

/**
 * Node's own `import()`, so the module lands in the cache under the URL pi
 * imports it by: pi loads this extension through jiti, whose `import()`
 * would load a copy. A CommonJS file that Node itself loads has the real
 * one; it is written to the agent's private pi directory.
 */
const nativeImport = (specifier: string): Promise<unknown> => {
  const directory = process.env.PI_CODING_AGENT_DIR
  if (!directory) return Promise.resolve(undefined)
  const helper = path.join(directory, "ramure-native-import.cjs")
  if (!fs.existsSync(helper)) fs.writeFileSync(helper, "module.exports = (specifier) => import(specifier)\n", { mode: 0o600 })
  return (createRequire(helper)(helper) as (specifier: string) => Promise<unknown>)(specifier)
}

/** Import the provider module for `api`, if known; never fails. */
export const preloadProvider = async (api: string | undefined): Promise<void> => {
  try {
    // Node sets up `fetch` (undici) on its first use: a request that needs no network.
    await fetch("data:,ramure").then((response) => response.text())
    const file = api === undefined ? undefined : moduleOf[api]
    const directory = piAiDirectory()
    if (file === undefined || directory === undefined) return
    const target = path.join(directory, "dist", "providers", file)
    if (fs.existsSync(target)) await nativeImport(pathToFileURL(target).href)
  } catch {
    // Only a head start: pi loads the module itself when it needs it.
  }
}
