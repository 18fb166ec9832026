/**
 * What `/proc` says about a process (Linux): its start time and command line, for the command line's
 * listings. Everything returns `null` when the entry is missing or unreadable — another PID namespace, a
 * process gone, a platform without `/proc`.
 * @internal
 */
import { readFileSync } from 'node:fs'

import { native } from './native'

/**
 * A process's start, from the Rust core's reading of `/proc/<pid>/stat`: its raw start time (clock ticks
 * since boot), the start tag a slot word keeps of it (the core's rule), and the wall-clock time it stands for.
 */
export function processStart(pid: number): { ticks: bigint; tag: number; date: Date | null } | null {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0xffffffff) return null
  let id: ReturnType<typeof native.processIdentity>
  try {
    id = native.processIdentity(pid)
  } catch {
    return null // /proc unreadable here
  }
  if (id === null) return null
  return { ticks: BigInt(id.startTicks), tag: id.startTag, date: new Date(id.startTimeMs) }
}

/** A process's command line (`/proc/<pid>/cmdline`, arguments joined by spaces), or `null`. */
export function processCommand(pid: number): string | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    const args = raw.split('\0')
    if (args[args.length - 1] === '') args.pop()
    // A kernel thread or a zombie has an empty command line.
    return args.length === 0 ? null : args.join(' ')
  } catch {
    return null
  }
}
