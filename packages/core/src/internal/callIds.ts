/**
 * The tool calls an agent has made, as far as the run must remember them to
 * run each one once. An agent re-sends the calls it has no result for when it
 * reconnects, right after its log is replayed, so a duplicate comes soon after
 * the original: the ids of calls in flight are kept, and those of the last
 * `keepFinished` finished calls — not every id ever seen.
 *
 * @internal
 */
export interface CallIds {
  /** True the first time `callId` is seen (then it is in flight); false for a duplicate. */
  readonly claim: (callId: string) => boolean
  /** The call has been answered. */
  readonly finish: (callId: string) => void
}

export const make = (keepFinished = 1024): CallIds => {
  const inFlight = new Set<string>()
  /** Finished ids, oldest first; `finished` and `order` hold the same ids. */
  const finished = new Set<string>()
  const order: Array<string> = []
  let head = 0
  return {
    claim: (callId) => {
      if (inFlight.has(callId) || finished.has(callId)) return false
      inFlight.add(callId)
      return true
    },
    finish: (callId) => {
      if (!inFlight.delete(callId)) return
      finished.add(callId)
      order.push(callId)
      if (order.length - head > keepFinished) finished.delete(order[head++]!)
      // Reclaim the array's dead front now and then, not on every call.
      if (head > keepFinished) order.splice(0, head), (head = 0)
    }
  }
}
