/**
 * Load the model provider's code ahead of the first request. pi imports a
 * provider's module (and its SDK) lazily, on the first request to a model of
 * that API — tens of milliseconds a pre-started pi need not spend after it
 * is handed an agent.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { importFile, packageNextToPi } from "./host.js"

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

/** Import the provider module for `api`, if known; never fails. */
export const preloadProvider = async (api: string | undefined): Promise<void> => {
  try {
    // Node sets up `fetch` (undici) on its first use: a request that needs no network.
    await fetch("data:,ramure").then((response) => response.text())
    const file = api === undefined ? undefined : moduleOf[api]
    const directory = packageNextToPi("@mariozechner/pi-ai")
    if (file === undefined || directory === undefined) return
    const target = path.join(directory, "dist", "providers", file)
    if (fs.existsSync(target)) await importFile(target)
  } catch {
    // Only a head start: pi loads the module itself when it needs it.
  }
}
