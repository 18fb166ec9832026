/**
 * `procslot start <pidDir> <targetId> [--ready mount:PATH|alive] [--timeout ms] [--settle ms] -- COMMAND [ARGS...]`:
 * starts a daemon as a manager's `spawn` does — its identity recorded before it runs, its own process
 * group, its output appended to `<pidDir>/<targetId>.log`, readiness waited for on the event itself, then
 * its PID file — and exits once it is ready: the third of start / status / stop, as
 * `start-stop-daemon --start` is used in init scripts. Exit 0 ready (or already running, said so), 1 it
 * did not become ready (its process group was killed: nothing is left running or on disk), 2 a refused
 * request.
 * @internal
 */
import { resolve } from 'node:path'

import { SpawnError } from '../errors'
import { FuseProcessManager } from '../manager'
import { SILENT } from '../manager/options'
import { CliFailure, fail, optionalIntegerArg, parse } from './common'
import { pidDirAndTarget, targetIdArg } from './target'

/** `procslot start` (its usage is its line in the dispatcher's table). */
export async function run(argv: string[]): Promise<number> {
  // COMMAND and its arguments follow `--` (its own options are never procslot's).
  const sep = argv.indexOf('--')
  const { values, positionals } = parse('start', sep === -1 ? argv : argv.slice(0, sep), {
    ready: { type: 'string' },
    timeout: { type: 'string' },
    settle: { type: 'string' },
  })
  const [dir, targetId] = pidDirAndTarget('start', positionals, true)
  const command = [...positionals.slice(2), ...(sep === -1 ? [] : argv.slice(sep + 1))]
  if (command.length === 0) fail('start: no command given: procslot start <pidDir> <targetId> [options] -- COMMAND [ARGS...]')
  const timeoutMs = optionalIntegerArg('start', '--timeout', values.timeout, 1, 0x7fffffff) ?? 10_000
  // How long `--ready alive` wants the daemon up; undefined: the manager's own default (250 ms).
  const settleMs = optionalIntegerArg('start', '--settle', values.settle, 0, 0x7fffffff)
  const ready = String(values.ready ?? 'alive')
  let mountPath: string | null = null
  if (ready.startsWith('mount:') && ready.length > 'mount:'.length) mountPath = resolve(ready.slice('mount:'.length))
  else if (ready !== 'alive') fail(`start: --ready must be mount:PATH or alive, got ${JSON.stringify(ready)}`)
  targetIdArg(targetId)
  let manager: FuseProcessManager
  try {
    manager = new FuseProcessManager({
      pidDir: dir,
      command: command[0]!,
      args: () => command.slice(1),
      ready: mountPath === null ? 'alive' : 'mount',
      startTimeoutMs: timeoutMs,
      settleMs,
      logger: SILENT,
    })
  } catch (err) {
    return fail((err as Error).message)
  }
  try {
    const info = await manager.spawn(targetId, mountPath)
    process.stdout.write(`${targetId}: ${info.loadedFromDisk ? 'already running' : 'started'} (PID ${info.pid})\n`)
    return 0
  } catch (err) {
    if (!(err instanceof SpawnError)) return fail((err as Error).message)
    const [first] = err.message.split('\n')
    throw new CliFailure(first!, 1, err.logTail ? `--- end of its log (${err.logFile}) ---\n${err.logTail}\n` : '')
  } finally {
    manager.close()
  }
}
