/**
 * A connection's allowance of frames the run cannot act on (malformed,
 * unknown, out of turn): a burst of them is answered one by one, but a
 * connection that keeps sending them faster than `perSecond` once `burst` is
 * spent is closed. A flood of garbage then costs the run a bounded amount of
 * work and cannot hold up its other connections.
 *
 * @internal
 */
export interface BadFrames {
  /** Count one bad frame; false once the allowance is spent (close the connection). */
  readonly strike: () => boolean
}

export const make = (options: { readonly burst?: number; readonly perSecond?: number } = {}): BadFrames => {
  const burst = options.burst ?? 100
  const perSecond = options.perSecond ?? 10
  let allowance = burst
  let last = Date.now()
  return {
    strike: () => {
      const now = Date.now()
      allowance = Math.min(burst, allowance + ((now - last) / 1000) * perSecond)
      last = now
      allowance -= 1
      return allowance >= 0
    }
  }
}
