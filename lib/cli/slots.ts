/**
 * `procslot slots [file] [--json]`: the slot table of a file — slot, holder PID, alive, start time and
 * command line — without taking a slot and without creating the file.
 * @internal
 */
import { lstatSync, readdirSync, readlinkSync } from 'node:fs'
import { resolve } from 'node:path'

import { processCommand, processStart } from '../proc'
import { DEFAULT_SLOTS_FILE } from '../native'
import { SlotTable } from '../slots'
import { fail, formatTable, formatTime, JSON_OPTION, parse, printResult, shorten } from './common'

/** One slot as `procslot slots` shows it (and prints it with `--json`). */
export interface SlotRow {
  /** The slot's index. */
  readonly slot: number
  /** `free`: no holder; `held`: a live holder; `dead`: the word names a process that no longer holds it. */
  readonly state: 'free' | 'held' | 'dead'
  /** The holder's PID as its word records it; `0` when free. */
  readonly pid: number
  /** Whether the holder is alive (holds the slot's lock). */
  readonly alive: boolean
  /** The live holder's start time (ISO 8601), or `null`: free, dead, or not visible from here. */
  readonly startTime: string | null
  /** The live holder's command line, or `null`: free, dead, or not visible from here. */
  readonly command: string | null
  /** Whether `/proc` shows the holder (`false` for a holder in another PID namespace). */
  readonly visible: boolean
}

/** The slot table, as `procslot slots --json` prints it. */
export interface SlotListing {
  /** The slot file's absolute path. */
  readonly file: string
  /** How many slots it has. */
  readonly size: number
  /** How many are held by live processes. */
  readonly held: number
  /**
   * Processes that still have a removed or replaced copy of this file open (Linux; those visible from
   * here): the path was deleted or another file was moved over it while they held slots, so their IDs
   * may be handed out again from the file the path names now.
   */
  readonly replacedHolders: number[]
  readonly slots: SlotRow[]
}

/**
 * PIDs of the processes (visible here) that have `path` open after it was removed or replaced: their
 * descriptor links read `<path> (deleted)`.
 */
export function replacedHolders(path: string): number[] {
  if (process.platform !== 'linux') return []
  const target = `${path} (deleted)`
  const pids: number[] = []
  let procs: string[]
  try {
    procs = readdirSync('/proc')
  } catch {
    return []
  }
  for (const name of procs) {
    if (!/^[0-9]+$/.test(name)) continue
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${name}/fd`)
    } catch {
      continue // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === target) {
          pids.push(Number(name))
          break
        }
      } catch {}
    }
  }
  return pids.sort((a, b) => a - b)
}

/**
 * Reads a slot file's table for display. Takes no slot; never creates the file; never changes a byte.
 *
 * @throws {CliFailure} (exit 2) when the file is missing or refused
 */
export function listSlots(file: string): SlotListing {
  const path = resolve(file)
  const orphans = replacedHolders(path)
  const orphaned =
    orphans.length === 0
      ? ''
      : `; process${orphans.length === 1 ? '' : 'es'} ${orphans.join(', ')} still hold${orphans.length === 1 ? 's' : ''} ` +
        'slots in a removed or replaced copy of it'
  let empty: boolean
  try {
    const st = lstatSync(path)
    empty = st.isFile() && st.size === 0
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return fail(
      code === 'ENOENT' ? `no slot file at ${path}${orphaned}` : `cannot inspect slot file ${path}: ${(err as Error).message}`,
    )
  }
  // An empty file would be given slots by SlotTable.open: show it as it is instead. (Between the lstat
  // and the open the file could vanish and be created anew: then the table shown is that new one.)
  // Anything but a regular file (a device, a link) goes on to be refused with the API's reason.
  if (empty) return { file: path, size: 0, held: 0, replacedHolders: orphans, slots: [] }
  let table: SlotTable
  try {
    table = SlotTable.open(path)
  } catch (err) {
    return fail((err as Error).message)
  }
  try {
    const slots = table.snapshot().map((s): SlotRow => {
      if (s.pid === 0) return { slot: s.slot, state: 'free', pid: 0, alive: false, startTime: null, command: null, visible: false }
      if (!s.alive) return { slot: s.slot, state: 'dead', pid: s.pid, alive: false, startTime: null, command: null, visible: false }
      // The /proc entry of that PID is the holder's only if its start tag agrees; otherwise the holder runs
      // in another PID namespace (a container sharing the file) and this PID is someone else here.
      const start = processStart(s.pid)
      const visible = start !== null && (s.startTag === 0 || start.tag === s.startTag)
      return {
        slot: s.slot,
        state: 'held',
        pid: s.pid,
        alive: true,
        startTime: visible && start.date ? start.date.toISOString() : null,
        command: visible ? processCommand(s.pid) : null,
        visible,
      }
    })
    return {
      file: table.path,
      size: slots.length,
      held: slots.filter((s) => s.alive).length,
      replacedHolders: orphans,
      slots,
    }
  } finally {
    table.close()
  }
}

/** The rows of a listing as table cells: slot, pid, alive, started, command. */
export function slotCells(listing: SlotListing, commandWidth = 60): string[][] {
  return listing.slots.map((s) => {
    switch (s.state) {
      case 'free':
        return [String(s.slot), '-', 'free', '', '']
      case 'dead':
        return [String(s.slot), String(s.pid), 'no (free)', '-', '-']
      default:
        return [
          String(s.slot),
          String(s.pid),
          'yes',
          s.startTime ? formatTime(new Date(s.startTime)) : '?',
          s.command === null ? '?' : shorten(s.command, commandWidth),
        ]
    }
  })
}

/** The header of {@link slotCells}. */
export const SLOT_COLUMNS = ['slot', 'pid', 'alive', 'started', 'command'] as const

/** The text form of a listing: a summary line, then the table. */
export function formatSlots(listing: SlotListing): string {
  const orphans = listing.replacedHolders
  const summary =
    `slot file ${listing.file}: ${listing.size} slots, ${listing.held} held\n` +
    (orphans.length === 0
      ? ''
      : `warning: this file was removed or replaced while process${orphans.length === 1 ? '' : 'es'} ` +
        `${orphans.join(', ')} held slots in the old one: their IDs may be handed out again here\n`)
  return listing.size === 0 ? summary : summary + formatTable(SLOT_COLUMNS, slotCells(listing))
}

/** `procslot slots [file] [--json]` (its line in the dispatcher's table says so). */
export function run(argv: string[]): number {
  const { values, positionals } = parse('slots', argv, JSON_OPTION)
  if (positionals.length > 1) fail(`slots: one file at most, got ${positionals.length}`)
  printResult(values.json, listSlots(positionals[0] ?? DEFAULT_SLOTS_FILE), formatSlots)
  return 0
}
