/**
 * Logging what can come in floods (refused connections, frames the run
 * cannot act on) at most once per interval: the entry that is written counts
 * the ones that were not, and `flush` writes the count still owed.
 */
export interface LogThrottle<A> {
  /** Log `event` now, or count it for the next entry. */
  readonly offer: (event: A) => void
  /** Log the latest event not logged yet, with how many others it stands for. */
  readonly flush: () => void
}

/** `log(event, suppressed)` writes one entry; `suppressed` counts events not logged since the previous one. */
export const make = <A>(log: (event: A, suppressed: number) => void, intervalMs = 1000): LogThrottle<A> => {
  let lastLogged = Number.NEGATIVE_INFINITY
  let suppressed = 0
  let latest: A | undefined
  return {
    offer: (event) => {
      const now = Date.now()
      if (now - lastLogged < intervalMs) {
        suppressed++
        latest = event
        return
      }
      lastLogged = now
      log(event, suppressed)
      suppressed = 0
      latest = undefined
    },
    flush: () => {
      if (latest !== undefined && suppressed > 0) log(latest, suppressed - 1)
      suppressed = 0
      latest = undefined
    }
  }
}
