/**
 * The warm pool of `PiAgents`: generic pis started ahead of need, each
 * waiting on `/pool/<member>` until an `Assign` turns it into one agent.
 *
 * @internal
 */
import { Deferred, Duration, Effect, Exit, Scope } from "effect"
import type { LaunchedAgent, LaunchSpec } from "@ramure/core/AgentLauncher"
import { AgentStartError } from "@ramure/core/Errors"
import type { Machine, MachineProvider, Spawned, SpawnSpec } from "@ramure/core/Machine"
import * as Protocol from "@ramure/protocol/Protocol"
import { ChildProcesses } from "@ramure/core/ChildProcesses"
import type { RunEvent } from "@ramure/core/RunEvent"
import { RunInfo, shortId } from "@ramure/core/RunInfo"
import { RunLimits } from "@ramure/core/RunLimits"
import { RunLog } from "@ramure/core/RunLog"
import { makeSecret, RunRoutes } from "@ramure/core/RunRoutes"
import * as WarmPool from "@ramure/core/WarmPool"
import type { Connection } from "@ramure/protocol/Connection"

export interface PoolOptions {
  /** How many started pis to keep ready for each warm model. */
  readonly size: number
  /** Refill once ready + starting pis drop below this (default: `size`). */
  readonly minIdle?: number
  /** How many pis the pool starts at once in the background (default 1). */
  readonly concurrency?: number
  /**
   * How long the pool waits before it starts a pi in the background (default
   * 1 s): a pi starting takes a core for a second or two, and the agent that
   * just took a pi should get its first request out before that.
   */
  readonly refillDelay?: Duration.DurationInput
  /** Models (`provider/id`) to keep warm (default: the launcher's model); agents of other models start cold. */
  readonly models?: ReadonlyArray<string>
  /** How long a pooled pi may take to start (default 60 s). */
  readonly startTimeout?: Duration.DurationInput
}

/** One started pi, waiting for its agent. */
export interface Member {
  readonly id: string
  readonly spawned: Spawned
  readonly connection: Connection
  /** Its private pi agent directory. */
  readonly agentDir: string
  /** Completed when its program exits or its connection drops. */
  readonly gone: Deferred.Deferred<void>
  /** Close `/pool/<member>`: once assigned, the member's credential opens nothing. */
  readonly closeRoute: Effect.Effect<void>
}

export interface MemberProgram {
  /** The agent directory prepared for the member (settings pin `model`). */
  readonly agentDir: string
  readonly spec: Omit<SpawnSpec, "name">
}

export interface Dependencies {
  readonly provider: MachineProvider["Type"]
  /** The pi command line, environment and agent directory of a member, which connects with `secret`. */
  readonly program: (
    memberId: string,
    model: string,
    machine: Machine,
    secret: string
  ) => Effect.Effect<MemberProgram, AgentStartError>
  /** Point the agent's pi directory name at the member's (for people reading the run's files). */
  readonly linkAgentDir: (member: Member, agentId: string) => Effect.Effect<void>
  /**
   * Put the agent's own secret in the member's address file (see
   * `RunAddress`), which the pi reads before it connects as the agent.
   */
  readonly writeAddress: (member: Member, secret: string) => Effect.Effect<void, Error>
}

/** Where a member's connection stands: waiting for its `PoolHello`, ready, or gone. */
const serveMember = (ready: Deferred.Deferred<Connection>, gone: Deferred.Deferred<void>) => (connection: Connection) =>
  connection.forEach((frame) => {
    const decoded = Protocol.decode(frame)
    if (decoded._tag === "Right" && decoded.right._tag === "PoolHello") {
      if (decoded.right.protocol !== Protocol.version) {
        return Effect.zipRight(
          connection.send(Protocol.encode({
            _tag: "ProtocolError",
            code: "version",
            message: `protocol ${decoded.right.protocol} is not supported (expected ${Protocol.version})`
          })),
          connection.close(Protocol.CloseCode.protocolVersion, "protocol version")
        )
      }
      return Deferred.succeed(ready, connection)
    }
    const message = decoded._tag === "Left" ? decoded.left.message : `${decoded.right._tag} is not a pool message`
    const code = decoded._tag === "Left" ? decoded.left.code : "unknown_message"
    return connection.send(Protocol.encode({ _tag: "ProtocolError", code, message }))
  }).pipe(Effect.ensuring(Deferred.succeed(gone, undefined)))

export const make = (options: PoolOptions, warmModels: ReadonlyArray<string>, deps: Dependencies) =>
  Effect.gen(function* () {
    const runLog = yield* RunLog
    const limits = yield* RunLimits
    const routes = yield* RunRoutes
    const children = yield* ChildProcesses
    const { executionId } = yield* RunInfo
    let counter = 0
    const startTimeout = options.startTimeout ?? "60 seconds"
    const log = (event: RunEvent) => runLog.log({ process: "" }, event)

    const start = (model: string): Effect.Effect<Member, AgentStartError, Scope.Scope> =>
      Effect.gen(function* () {
        // A pooled pi counts as a live agent from its start, and as a starting one until it is ready.
        yield* limits.holdLiveSlot(pool.evictIdle(model))
        return yield* limits.withStartPermit(Effect.gen(function* () {
          const id = `_pool-${++counter}`
          const fail = (reason: string, output?: string) =>
            new AgentStartError({ agent: id, reason, ...(output === undefined ? {} : { output }) })
          const machine = yield* deps.provider.make({ name: ".pool" }).pipe(Effect.mapError((error) => fail(error.message)))
          const secret = makeSecret()
          const program = yield* deps.program(id, model, machine, secret)
          const ready = yield* Deferred.make<Connection>()
          const gone = yield* Deferred.make<void>()
          const route = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(route, Exit.void))
          yield* routes.register(Protocol.poolPath(id), { secret, serve: serveMember(ready, gone) }).pipe(Scope.extend(route))
          const spawned = yield* machine.spawn({ ...program.spec, name: `ramure-${shortId(executionId)}-${id}` }).pipe(
            Effect.mapError((error) => fail(error.message))
          )
          yield* spawned.exited.pipe(Effect.zipRight(Deferred.succeed(gone, undefined)), Effect.forkScoped)
          if (spawned.pid !== undefined) yield* children.track(spawned.pid)
          const exitedEarly = spawned.exited.pipe(
            Effect.flatMap(({ exitCode }) =>
              Effect.flatMap(spawned.outputTail, (output) => fail(`its program exited with code ${exitCode ?? "unknown"}`, output))
            )
          )
          const connection = yield* Deferred.await(ready).pipe(
            Effect.timeoutFail({
              duration: startTimeout,
              onTimeout: () => fail(`it did not connect within ${Duration.format(startTimeout)}`)
            }),
            Effect.raceFirst(exitedEarly)
          )
          yield* log({ _tag: "PoolMemberReady", member: id, model, ...(spawned.pid === undefined ? {} : { pid: spawned.pid }) })
          return {
            id,
            spawned,
            connection,
            agentDir: program.agentDir,
            gone,
            closeRoute: Scope.close(route, Exit.void)
          } satisfies Member
        }))
      })

    const pool: WarmPool.WarmPool<Member, AgentStartError> = yield* WarmPool.make({
      keys: warmModels,
      size: options.size,
      ...(options.minIdle === undefined ? {} : { minIdle: options.minIdle }),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      backgroundDelay: options.refillDelay ?? "1 second",
      start,
      died: (member) => Deferred.await(member.gone),
      onDied: (member) => log({ _tag: "PoolMemberDied", member: member.id }),
      isAlive: (member) => Effect.map(Deferred.isDone(member.gone), (gone) => !gone && member.connection.isOpen()),
      onStartFailure: (model, cause) => log({ _tag: "PoolStartFailed", model, error: String(cause) })
    })

    /** Take a ready pi for `model` and make it the agent of `spec`. */
    const launch = (model: string, spec: LaunchSpec): Effect.Effect<LaunchedAgent, AgentStartError, Scope.Scope> =>
      Effect.gen(function* () {
        const member = yield* pool.take(model).pipe(
          Effect.mapError((error) =>
            new AgentStartError({
              agent: spec.agentId,
              reason: `its pi (started for the pool as ${error.agent}) failed: ${error.reason}`,
              ...(error.output === undefined ? {} : { output: error.output })
            })
          )
        )
        yield* deps.writeAddress(member, spec.secret).pipe(
          Effect.mapError((error) =>
            new AgentStartError({ agent: spec.agentId, reason: `cannot write its pi's run address: ${error.message}` })
          )
        )
        yield* member.connection.send(Protocol.encode({
          _tag: "Assign",
          agentId: spec.agentId,
          secret: spec.secret,
          cwd: spec.machine.cwd,
          ...(spec.systemPrompt === undefined ? {} : { systemPrompt: spec.systemPrompt })
        }))
        // The pi's environment still holds its member credential: from now on it opens nothing.
        yield* member.closeRoute
        // While the pi takes on its identity and connects (`session` then has the new name):
        if (member.spawned.rename !== undefined) {
          yield* member.spawned.rename(spec.sessionName).pipe(
            Effect.mapError((error) => new AgentStartError({ agent: spec.agentId, reason: error.message }))
          )
        }
        yield* deps.linkAgentDir(member, spec.agentId)
        yield* runLog.log({ process: "", agent: spec.agentId }, { _tag: "PoolMemberAssigned", member: member.id })
        return member.spawned satisfies LaunchedAgent
      })

    return { launch, evictIdle: pool.evictIdle(), stats: pool.stats }
  })
