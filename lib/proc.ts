/**
 * What `/proc` says about a process (Linux): its start time and command line, for the command line's
 * listings. Everything returns `null` when the entry is missing or unreadable — another PID namespace, a
 * process gone, a platform without `/proc`.
 * @internal
 */
import { readFileSync } from 'node:fs'

/**
 * Clock ticks per second of `/proc/<pid>/stat` times. The kernel exports them in USER_HZ, which is 100 on
 * every Linux architecture Node runs on (`getconf CLK_TCK`); reading it would need a native call.
 */
const TICKS_PER_SECOND = 100

let bootTime: number | null | undefined

/** The boot time in seconds since the epoch (`btime` of `/proc/stat`), or `null`. */
function btime(): number | null {
  if (bootTime === undefined) {
    try {
      const match = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))
      bootTime = match ? Number(match[1]) : null
    } catch {
      bootTime = null
    }
  }
  return bootTime
}

/**
 * A process's start: field 22 of `/proc/<pid>/stat` (clock ticks since boot), with the low 32 bits as a
 * slot's start tag, and the wall-clock time it stands for.
 */
export function processStart(pid: number): { ticks: bigint; tag: number; date: Date | null } | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // The command name (field 2) is in parentheses and may contain anything, ')' and spaces included.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const raw = fields[19] // field 22 overall: fields 3.. start at index 0
  if (raw === undefined || !/^\d+$/.test(raw)) return null
  const ticks = BigInt(raw)
  const boot = btime()
  const date = boot === null ? null : new Date(boot * 1000 + Number((ticks * 1000n) / BigInt(TICKS_PER_SECOND)))
  return { ticks, tag: Number(ticks & 0xffffffffn), date }
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
