/**
 * `procslot pids <dir> [--json]`: the PID files of a directory — target, PID, alive, the core's judgement
 * (running, stale, reused, invalid, untrusted) and the recorded mount path — without changing anything.
 * @internal
 */
import { resolve } from 'node:path'

import type { NativeVerdict } from '../native'
import { PidFileStore } from '../pidfile'
import { processCommand } from '../proc'
import { fail, formatTable, formatTime, JSON_OPTION, parse, printResult, shorten } from './common'
import { findPidDir } from './target'

/** One PID file as `procslot pids` shows it (and prints it with `--json`). */
export interface PidRow {
  /** The target ID (the file name without `.pid`). */
  readonly targetId: string
  /** The PID it names; `null` when invalid or untrusted. */
  readonly pid: number | null
  /**
   * The core's judgement of the file. `running`: its process is alive and is the one the file was
   * written for. `stale`: the process is dead. `reused`: its PID now belongs to another process (another
   * start time than recorded at spawn, or started after the file was written). `invalid`: not a PID.
   * `untrusted`: another owner, writable by others, or a link — a manager leaves it alone.
   */
  readonly state: NativeVerdict['judgement']
  /** Whether the process it names is alive (and is that process). */
  readonly alive: boolean
  /** Why it is stale, reused, invalid or untrusted. */
  readonly reason: string | null
  /** When the process started (ISO 8601), when running. */
  readonly startTime: string | null
  /** The process's command line, when running. */
  readonly command: string | null
  /** The mount path its spawner recorded beside it, if any. */
  readonly mountPath: string | null
  /**
   * The owner's user ID when the file belongs to another user and was read anyway (run as root, a
   * listing reads other users' files instead of refusing them); `null` otherwise. A manager run by this
   * user would not touch such a file.
   */
  readonly foreignOwner: number | null
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

function row(v: NativeVerdict, foreignOwner: number | null): PidRow {
  const running = v.judgement === 'running'
  return {
    targetId: v.targetId,
    pid: v.pid ?? null,
    state: v.judgement,
    alive: running,
    reason: v.reason ?? null,
    startTime: running && v.startTimeMs != null ? new Date(v.startTimeMs).toISOString() : null,
    command: running && v.pid != null ? processCommand(v.pid) : null,
    mountPath: v.record?.mountPath ?? null,
    foreignOwner,
    path: v.path,
    written: new Date(v.mtimeMs).toISOString(),
  }
}

/**
 * Reads a PID directory for display. Changes nothing; never creates the directory.
 * @throws {CliFailure} (exit 2) when the directory is missing or refused
 */
export function listPids(dir: string): PidListing {
  const path = resolve(dir)
  const pidDir = findPidDir(path)
  if (pidDir.found === 'unreadable') fail(`cannot read PID directory ${path}: ${pidDir.reason}`)
  if (pidDir.found !== 'directory') fail(pidDir.reason)
  const files: PidRow[] = []
  try {
    const store = new PidFileStore(path)
    for (const f of store.list()) {
      const d = store.native.judgeForDisplay(f.targetId)
      if (d) files.push(row(d.verdict, d.foreignOwner ?? null))
    }
  } catch (err) {
    return fail((err as Error).message)
  }
  return { dir: path, files }
}

const COLUMNS = ['target', 'pid', 'alive', 'state', 'started', 'mount', 'command / reason'] as const

/** The text form of a listing: a summary line, then the table. */
export function formatPids(listing: PidListing): string {
  const running = listing.files.filter((f) => f.state === 'running').length
  const summary = `PID directory ${listing.dir}: ${listing.files.length} PID files, ${running} running\n`
  if (listing.files.length === 0) return summary
  const rows = listing.files.map((f) => [
    f.targetId,
    f.pid === null ? '-' : String(f.pid),
    f.alive ? 'yes' : 'no',
    f.foreignOwner === null ? f.state : `${f.state} (uid ${f.foreignOwner})`,
    f.startTime ? formatTime(new Date(f.startTime)) : '-',
    f.mountPath ?? '-',
    shorten(f.state === 'running' ? (f.command ?? '?') : (f.reason ?? ''), 60),
  ])
  return summary + formatTable(COLUMNS, rows)
}

/** `procslot pids <dir> [--json]` (its line in the dispatcher's table says so). */
export function run(argv: string[]): number {
  const { values, positionals } = parse('pids', argv, JSON_OPTION)
  if (positionals.length !== 1) fail(`pids: one PID directory expected, got ${positionals.length}`)
  printResult(values.json, listPids(positionals[0]!), formatPids)
  return 0
}
