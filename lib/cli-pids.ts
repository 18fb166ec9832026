/**
 * `procslot pids <dir> [--json]`: the PID files of a directory — target, PID, alive, and whether each is
 * stale (dead process, reused PID), invalid or untrusted — without changing anything.
 * @internal
 */
import { statSync } from 'node:fs'
import { resolve } from 'node:path'

import { fail, formatTable, formatTime, oneLine, parse, printJson, shorten } from './cli-util'
import { processIdentity, startedAfter } from './native'
import { PidFileStore, type PidFileInfo } from './pidfile'
import { processCommand } from './proc'

/** One PID file as `procslot pids` shows it (and prints it with `--json`). */
export interface PidRow {
  /** The target ID (the file name without `.pid`). */
  readonly targetId: string
  /** The PID it names; `null` when invalid or untrusted. */
  readonly pid: number | null
  /**
   * `running`: its process is alive and started before the file was written. `stale`: the process is
   * dead, or the PID was reused by a process that started later. `invalid`: not a PID. `untrusted`:
   * another owner, writable by others, or a link — a manager leaves it alone.
   */
  readonly state: 'running' | 'stale' | 'invalid' | 'untrusted'
  /** Whether the process it names is alive (and is that process). */
  readonly alive: boolean
  /** Why it is stale, invalid or untrusted. */
  readonly reason: string | null
  /** When the process started (ISO 8601), when running. */
  readonly startTime: string | null
  /** The process's command line, when running. */
  readonly command: string | null
  /** The PID file. */
  readonly path: string
  /** When the file was last written (ISO 8601). */
  readonly written: string
}

/** The PID files of a directory, as `procslot pids --json` prints them. */
export interface PidListing {
  readonly dir: string
  readonly files: PidRow[]
}

function judge(e: PidFileInfo): PidRow {
  const base = { targetId: e.targetId, pid: e.pid, path: e.path, written: e.mtime.toISOString() }
  const none = { alive: false, startTime: null, command: null }
  if (e.status !== 'valid' || e.pid === null) return { ...base, ...none, state: e.status === 'untrusted' ? 'untrusted' : 'invalid', reason: e.reason }
  const id = processIdentity(e.pid)
  if (id === null || id.zombie) return { ...base, ...none, state: 'stale', reason: `PID ${e.pid} is not running` }
  if (startedAfter(id.startTimeMs, e.mtime.getTime())) {
    return { ...base, ...none, state: 'stale', reason: `PID ${e.pid} was reused: its process started after the file was written` }
  }
  return {
    ...base,
    state: 'running',
    alive: true,
    reason: null,
    startTime: new Date(id.startTimeMs).toISOString(),
    command: processCommand(e.pid),
  }
}

/**
 * Reads a PID directory for display. Changes nothing; never creates the directory.
 * @throws {CliFailure} (exit 2) when the directory is missing or refused
 */
export function listPids(dir: string): PidListing {
  const path = resolve(dir)
  try {
    if (!statSync(path).isDirectory()) fail(`not a directory: ${path}`)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === undefined) throw err
    fail(code === 'ENOENT' ? `no PID directory at ${path}` : `cannot read PID directory ${path}: ${(err as Error).message}`)
  }
  let files: PidFileInfo[]
  try {
    files = new PidFileStore(path).list()
  } catch (err) {
    return fail(oneLine((err as Error).message))
  }
  return { dir: path, files: files.map(judge) }
}

const COLUMNS = ['target', 'pid', 'alive', 'state', 'started', 'command / reason'] as const

/** The text form of a listing: a summary line, then the table. */
export function formatPids(listing: PidListing): string {
  const running = listing.files.filter((f) => f.state === 'running').length
  const summary = `PID directory ${listing.dir}: ${listing.files.length} PID files, ${running} running\n`
  if (listing.files.length === 0) return summary
  const rows = listing.files.map((f) => [
    f.targetId,
    f.pid === null ? '-' : String(f.pid),
    f.alive ? 'yes' : 'no',
    f.state,
    f.startTime ? formatTime(new Date(f.startTime)) : '-',
    shorten(f.state === 'running' ? (f.command ?? '?') : (f.reason ?? ''), 60),
  ])
  return summary + formatTable(COLUMNS, rows)
}

/** `procslot pids <dir> [--json]` (its line in the dispatcher's table says so). */
export function run(argv: string[]): number {
  const { values, positionals } = parse('pids', argv, { json: { type: 'boolean' } })
  if (positionals.length !== 1) fail(`pids: one PID directory expected, got ${positionals.length}`)
  const listing = listPids(positionals[0]!)
  if (values.json) printJson(listing)
  else process.stdout.write(formatPids(listing))
  return 0
}
