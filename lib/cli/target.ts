/**
 * What the commands on a PID directory (`pids`, `status`, `start`, `stop`) share: the `<pidDir> <targetId>`
 * arguments, the target-ID rule and how the directory is looked up.
 * @internal
 */
import { statSync } from 'node:fs'
import { resolve } from 'node:path'

import { checkTargetId } from '../pidfile'
import { fail } from './common'

/**
 * The `<pidDir> <targetId>` arguments of `start`, `status` and `stop`: the directory made absolute and the
 * target ID (not checked: see {@link targetIdArg}). Fewer than two positionals — or, unless `more` (the
 * words of `start`'s command may follow), more than two — end the command with exit code 2.
 */
export function pidDirAndTarget(command: string, positionals: readonly string[], more = false): [dir: string, targetId: string] {
  if (positionals.length < 2 || (!more && positionals.length !== 2)) {
    fail(`${command}: a PID directory and a target ID expected, got ${positionals.length} arguments`)
  }
  return [resolve(positionals[0]!), positionals[1]!]
}

/** Ends the command with exit code 2 and the rule's reason when `targetId` is not a valid target ID. */
export function targetIdArg(targetId: string): void {
  try {
    checkTargetId(targetId)
  } catch (err) {
    fail((err as Error).message)
  }
}

/**
 * What a PID directory argument names, found without changing anything (see {@link findPidDir}); `reason`
 * is `no PID directory at <path>`, `not a directory: <path>`, or the message of the error `stat` met.
 */
export type PidDir =
  | { readonly found: 'directory' }
  | { readonly found: 'missing' | 'not a directory' | 'unreadable'; readonly reason: string }

/**
 * Looks a PID directory up for `pids`, `status` and `stop`, which only read it and never create it: a
 * directory; missing (nothing at the path); something else; or unreadable (`stat` failed otherwise).
 * Each command says what that means for it (an error, "not running", "unknown").
 */
export function findPidDir(path: string): PidDir {
  try {
    if (statSync(path).isDirectory()) return { found: 'directory' }
    return { found: 'not a directory', reason: `not a directory: ${path}` }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { found: 'missing', reason: `no PID directory at ${path}` }
    return { found: 'unreadable', reason: (err as Error).message }
  }
}
