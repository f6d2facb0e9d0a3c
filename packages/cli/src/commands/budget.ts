/** `ramure budget`: raise a live agent's or process's budget. */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Either, Option } from "effect"
import * as BudgetRaise from "../BudgetRaise.js"
import * as ControlClient from "../ControlClient.js"
import { UsageError } from "../Errors.js"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"

const words = Args.text({ name: "[id] <agent|process> +<amount>" }).pipe(Args.repeated)

export const budget = Command.make("budget", { words }, ({ words }) =>
  Effect.gen(function* () {
    if (words.length < 2 || words.length > 3) {
      return yield* new UsageError({ reason: "usage: ramure budget [id] <agent|process> +<amount> (e.g. ramure budget reviewer +0.50usd)" })
    }
    const [id, target, amount] = words.length === 3 ? [words[0], words[1]!, words[2]!] : [undefined, words[0]!, words[1]!]
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, Option.fromNullable(id))
    const client = yield* ControlClient.connect(yield* Runs.requireLive(home, run))
    const status = yield* client.status
    const live = status.budgets.filter((b) => b.until === undefined)
    const found = live.find((b) => b.agent === target) ?? live.find((b) => b.agent === undefined && b.process === target)
    if (found === undefined) {
      const names = live.map((b) => b.agent ?? b.process)
      return yield* new UsageError({
        reason: `no live budget of "${target}" (${names.length === 0 ? "the run has none" : `budgets: ${names.join(", ")}`})`
      })
    }
    const by = yield* Either.match(BudgetRaise.parse(amount, found), {
      onLeft: (reason) => Effect.fail(new UsageError({ reason })),
      onRight: Effect.succeed
    })
    const limits = yield* client.budget(target, by)
    yield* Console.log(`raised the budget of ${Format.inline(found.agent === undefined ? `process ${found.process}` : `agent ${found.agent}`)}: now ${Format.budgetAmounts(limits)}`)
  }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Raise the budget of a live agent or process: ramure budget [id] <agent|process> +<amount> — +0.50usd (or '+$0.50'), +20turns, +5000tokens, " +
      "+5000input, +5000output, +30s, +5m; a bare +0.50 raises the limit it ran out of (or its only one). Its paused agents go on."
  )
)
