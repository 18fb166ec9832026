/**
 * The process ID helpers: this process's slot in a slot file as a plain number (`getProcessId`,
 * `releaseProcessId`) and the default file. This is all a program that only wants its ID loads (with the
 * native binding); the typed client, `SlotTable`, is in `slots.ts`.
 */
import { isAbsolute, join } from 'node:path'

import { native } from './native.js'
import type * as Validate from './validate.js'

/**
 * The argument checks, loaded on first use: every module a program loads costs it a few hundred
 * microseconds, and `getProcessId(file)` needs none (it never throws: a path that is not a non-empty
 * string without NUL bytes fails in the binding or the core, and gives `-1` as any other failure does).
 */
const check = (): typeof Validate => require('./validate.js') as typeof Validate

/**
 * `os.tmpdir()` on the platforms procslot runs on (POSIX), without loading `node:os` — a module of its own
 * that `require('procslot')` would otherwise compile for this one path. `__test__/slots.spec.ts` checks it
 * against `os.tmpdir()` with each of the variables set and unset.
 */
function tmpdir(): string {
  const env = process.env
  const path = env.TMPDIR || env.TMP || env.TEMP || '/tmp'
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

/**
 * The slot file used when none is named: `worker-slots` in the per-user directory
 * `procslot-<euid>` of `os.tmpdir()` (`<euid>` the effective user ID). The directory is created with mode
 * 0700 when first used, and refused (`EUNSAFE`) if it is not this user's or others can write to it, so
 * each user has a table of their own and no one else can plant the file.
 *
 * Temporary-file cleaners may delete old files in `os.tmpdir()`: a long-lived fleet should name a file
 * under `/run/<app>/` or on a volume (see the README); a holder whose file was removed or replaced learns
 * it through `SlotTable.replaced` and a process warning.
 */
export const DEFAULT_SLOTS_FILE: string = join(tmpdir(), `procslot-${process.geteuid?.() ?? 0}`, 'worker-slots')

/** The most slots a file may hold (a 1 MiB file). */
export const MAX_SLOTS = 131072

/** Options of {@link getProcessId}. */
export interface GetProcessIdOptions {
  /** The fleet size, for a new file (as `SlotTableOptions.slots`). @default `os.availableParallelism()` */
  readonly slots?: number
  /** As `SlotTableOptions.timeoutMs`: past it, `-1`. @default 5000 */
  readonly timeoutMs?: number
}

/**
 * This process's IDs by slot-file path as given, so that a repeated {@link getProcessId} costs a map
 * look-up. A relative path is remembered with the working directory it was resolved in, `memoCwd`
 * (`process.cwd()` is a cached string in Node.js, no system call): when the directory changes, the
 * memo is dropped. Cleared by every release and close in this process.
 */
const memo = new Map<string, number>()
let memoCwd: string | null = null

function forget(): void {
  memo.clear()
  memoCwd = null
}

/** @internal Forgets the memoized IDs (a slot was released or taken elsewhere in this process). */
export const forgetProcessIds: () => void = forget

const warned = new Set<string>()

/**
 * Emits the once-per-file process warning for a slot file whose path now names another file or nothing.
 * @internal
 */
export function warnReplaced(path: string): void {
  if (warned.has(path)) return
  warned.add(path)
  process.emitWarning(
    `slot file ${path} was removed or replaced while this process held it open: processes that open the ` +
      'path now use another table, so IDs handed out here may be handed out again there. Keep a long-lived ' +
      "fleet's slot file out of reach of temporary-file cleaners (e.g. under /run/<app>/).",
    { type: 'ProcslotWarning', code: 'PROCSLOT_SLOT_FILE_REPLACED' },
  )
}

/**
 * The slot (0-based process ID) of this process in a slot file, claiming the lowest slot with no live
 * holder if it holds none. Repeated calls return the same number. The slot is held until
 * {@link releaseProcessId} or the end of the process, however it ends.
 *
 * A new file gets exactly `options.slots` slots (the fleet size), or `os.availableParallelism()` when no
 * count is given. Never throws: returns `-1` when every slot is held by a live process, when another
 * process holds the file's growth lock past `options.timeoutMs`, and on any error (an unusable path, a
 * refused file, bad options — use `SlotTable.open` to learn why).
 *
 * @param slotsFile - the slot file; a relative path is resolved against the working directory
 * @default slotsFile {@link DEFAULT_SLOTS_FILE}
 */
export function getProcessId(slotsFile: string = DEFAULT_SLOTS_FILE, options?: GetProcessIdOptions): number {
  if (memoCwd !== null && memoCwd !== process.cwd()) forget()
  const cached = memo.get(slotsFile)
  if (cached !== undefined) return cached
  let id: number
  try {
    const slots = options?.slots === undefined ? undefined : check().checkInteger('slots', options.slots, 1, MAX_SLOTS)
    const timeoutMs = options?.timeoutMs === undefined ? undefined : check().checkMs('timeoutMs', options.timeoutMs)
    id = native.getProcessId(slotsFile, slots, timeoutMs, slotsFile === DEFAULT_SLOTS_FILE)
  } catch {
    return -1
  }
  if (id >= 0) {
    if (!isAbsolute(slotsFile)) memoCwd = process.cwd()
    memo.set(slotsFile, id)
  }
  return id
}

/**
 * Frees this process's slot in a slot file (only if the slot's word still names this process) and forgets
 * it. Idempotent; never throws.
 *
 * @param slotsFile - the slot file
 * @returns `true` if a slot was freed
 */
export function releaseProcessId(slotsFile: string = DEFAULT_SLOTS_FILE): boolean {
  forget()
  try {
    return native.releaseProcessId(slotsFile)
  } catch {
    return false
  }
}

