/**
 * How this program was started, for `ramure resume`: node's own arguments,
 * the script's, the working directory and the environment — without the
 * values of variables that look like secrets.
 *
 * @internal
 */
import type { Invocation } from "@ramure/core/RunEvent"

/** Names whose values are never written: provider keys, tokens, passwords and the like. */
const SECRET = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|COOKIE|AUTH|SESSION|PRIVATE)/i

/** Variables a resumed run sets itself. */
const OWN = new Set(["RAMURE_RESUME"])

export const current = (): Invocation => {
  const env: Record<string, string> = {}
  const redacted: Array<string> = []
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || OWN.has(name)) continue
    if (SECRET.test(name)) redacted.push(name)
    else env[name] = value
  }
  return {
    execPath: process.execPath,
    execArgv: [...process.execArgv],
    argv: process.argv.slice(1),
    cwd: process.cwd(),
    env,
    redacted: redacted.sort()
  }
}
