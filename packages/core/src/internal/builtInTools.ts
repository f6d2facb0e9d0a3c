/**
 * The names of the tools ramure gives agents itself along `connect` edges.
 *
 * @internal
 */
export const names: ReadonlySet<string> = new Set(["message", "send_file", "download_file"])
