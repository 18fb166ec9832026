/**
 * `procslot status <pidDir> <targetId> [--json]`: is the target's daemon running? Answered by the core's
 * judgement of its PID file, with the exit codes of `start-stop-daemon --status` (LSB): 0 running, 1 dead
 * with a PID file left, 3 not running, 4 unknown (unreadable, untrusted, invalid). Changes nothing.
 * @internal
 */
import { resolve } from 'node:path'

import type { NativeVerdict } from '../native'
import { PidFileStore, checkTargetId } from '../pidfile'
import { processCommand } from '../proc'
import { CliFailure, JSON_OPTION, oneLine, parse, printResult } from './common'
import { findPidDir, pidDirAndTarget } from './target'

/** What `procslot status --json` prints. */
export interface TargetStatus {
  readonly dir: string
  readonly targetId: string
  /** `running` (0), `dead` (1: a PID file naming a dead or reused PID), `stopped` (3), `unknown` (4). */
  readonly status: 'running' | 'dead' | 'stopped' | 'unknown'
  /** The exit code: 0, 1, 3 or 4. */
  readonly code: 0 | 1 | 3 | 4
  /** The core's judgement of the PID file; `null` when there is none. */
  readonly judgement: NativeVerdict['judgement'] | null
  readonly pid: number | null
  readonly reason: string | null
  readonly mountPath: string | null
  /** When the daemon started (ISO 8601), when running. */
  readonly startTime: string | null
  readonly command: string | null
}

const CODES = { running: 0, dead: 1, stopped: 3, unknown: 4 } as const

/** The status of a target, read-only: never creates the directory. */
export function targetStatus(dir: string, targetId: string): TargetStatus {
  const path = resolve(dir)
  const base = { dir: path, targetId, judgement: null, pid: null, mountPath: null, startTime: null, command: null }
  const make = (status: TargetStatus['status'], rest: Partial<TargetStatus> = {}): TargetStatus => ({
    ...base,
    reason: null,
    ...rest,
    status,
    code: CODES[status],
  })
  try {
    checkTargetId(targetId)
  } catch (err) {
    return make('unknown', { reason: (err as Error).message })
  }
  const pidDir = findPidDir(path)
  if (pidDir.found === 'missing') return make('stopped', { reason: pidDir.reason })
  if (pidDir.found === 'not a directory') return make('unknown', { reason: pidDir.reason })
  if (pidDir.found === 'unreadable') return make('unknown', { reason: oneLine(pidDir.reason) })
  let v: NativeVerdict | null
  try {
    v = new PidFileStore(path).native.judge(targetId)
  } catch (err) {
    return make('unknown', { reason: oneLine((err as Error).message) })
  }
  if (v === null) return make('stopped', { reason: 'no PID file' })
  const found = { judgement: v.judgement, pid: v.pid ?? null, reason: v.reason ?? null, mountPath: v.record?.mountPath ?? null }
  switch (v.judgement) {
    case 'running':
      return make('running', {
        ...found,
        startTime: v.startTimeMs != null ? new Date(v.startTimeMs).toISOString() : null,
        command: processCommand(v.pid!),
      })
    case 'stale':
    case 'reused':
      return make('dead', found)
    default:
      return make('unknown', found)
  }
}

/** One line for people. */
export function formatStatus(s: TargetStatus): string {
  const what =
    s.status === 'running'
      ? `running (PID ${s.pid}${s.mountPath ? `, ${s.mountPath}` : ''})`
      : s.status === 'dead'
        ? `dead, PID file left (${s.reason})`
        : s.status === 'stopped'
          ? 'not running'
          : `unknown (${s.reason})`
  return `${s.targetId}: ${what}\n`
}

/** `procslot status` (its usage is its line in the dispatcher's table). */
export function run(argv: string[]): number {
  let json: string | boolean | undefined
  let dir: string
  let targetId: string
  try {
    const { values, positionals } = parse('status', argv, JSON_OPTION)
    json = values.json
    ;[dir, targetId] = pidDirAndTarget('status', positionals)
  } catch (err) {
    // LSB keeps 2 for "dead with a lock file": a request that cannot be answered is "unknown".
    throw err instanceof CliFailure ? new CliFailure(err.message, 4) : err
  }
  const s = targetStatus(dir, targetId)
  printResult(json, s, formatStatus)
  return s.code
}
