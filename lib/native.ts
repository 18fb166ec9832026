/**
 * What `require('procslot')` loads for a program that only wants its ID: the native binding, loaded once,
 * first, and the process ID helpers on it (`getProcessId`, `releaseProcessId`, the default file). They
 * share one module because each module a fresh process loads costs it about a quarter of a millisecond
 * (issue 11: ≤ 3 ms for `require` + `getProcessId`); everything else — `SlotTable` (`slots.ts`), the
 * manager, the clients, the errors — loads on first use.
 *
 * The binding takes a short path: this machine's binary, next to the sources (a checkout) or from its
 * platform package, required directly. Everything else — the `NAPI_RS_*` overrides, WASI, a binary that is
 * there but does not load — goes through the loader napi-rs generates (`binding.js`), which stays the
 * authority and whose error chain is what gets reported (see `load-error.ts`). The generated loader alone
 * takes about as long to load as the binary (over a millisecond), which a program that only wants its
 * slot would pay for.
 * @internal
 */
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'

import type * as Binding from '../binding.js'
import type * as LoadError from './load-error.js'
import type * as Validate from './validate.js'

export type * from '../binding.js'

/** The failure path: loaded only when the binding does not load. */
const loadError = (): typeof LoadError => require('./load-error.js') as typeof LoadError

/**
 * `linux-x64-gnu` and the like: the napi-rs name of this machine's platform. glibc or musl is decided as
 * the generated loader decides it: does `/usr/bin/ldd` mention musl; without that file, the process
 * report (a few milliseconds).
 */
function platformName(): string {
  const name = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return name
  try {
    return `${name}-${readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu'}`
  } catch {}
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `${name}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

/**
 * This machine's platform name when the short path applies: `undefined` when a `NAPI_RS_*` variable asks
 * the generated loader for something else (a library path, WASI, a version check).
 */
function shortPathPlatform(): string | undefined {
  const env = process.env
  if (env.NAPI_RS_NATIVE_LIBRARY_PATH || env.NAPI_RS_FORCE_WASI || env.NAPI_RS_WASI_FLAVOR || env.NAPI_RS_ENFORCE_VERSION_CHECK) {
    return undefined
  }
  return platformName()
}

function load(): typeof Binding {
  if (process.platform === 'win32') throw loadError().unsupportedPlatform(`${process.platform}-${process.arch}`)
  const platform = shortPathPlatform()
  if (platform !== undefined) {
    // The binary `npm run build` puts next to the sources, else the platform package: the generated
    // loader's own first two candidates (looked for with a stat, not a failed require, which costs a
    // thrown error). Any failure is left to it, to try again and report.
    const local = join(__dirname, '..', `procslot.${platform}.node`)
    try {
      return require(existsSync(local) ? local : `procslot-${platform}/procslot.${platform}.node`) as typeof Binding
    } catch {}
  }
  try {
    return require('../binding.js') as typeof Binding
  } catch (err) {
    throw loadError().missingBinary(platformName(), err)
  }
}

/** The native binding: the `#[napi]` functions and classes of `src/`. */
export const native: typeof Binding = load()

// The process ID helpers.

/**
 * The argument checks, loaded on first use: every module a program loads costs it a quarter of a
 * millisecond or so, and `getProcessId(file)` needs none (it never throws: a path that is not a non-empty
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

/**
 * Whether the directory of the slot file `path` is private to this user: it is for the default file, whose
 * directory is created with mode 0700 and refused (`EUNSAFE`) unless it is this user's alone. The one place
 * the facade decides it (the binding's `privateDir`); `procslot exec`'s native launcher decides it the same
 * way in the core.
 * @internal
 */
export function inPrivateDir(path: string): boolean {
  return path === DEFAULT_SLOTS_FILE
}

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

const warnedFuse = new Set<string>()

/**
 * Emits the once-per-file process warning for a slot file on FUSE: the kernel keeps a FUSE file's locks
 * per mount, so only processes that reach it through this same mount are kept apart.
 * @internal
 */
export function warnFuse(path: string): void {
  if (warnedFuse.has(path)) return
  warnedFuse.add(path)
  process.emitWarning(
    `slot file ${path} is on a FUSE filesystem: the kernel keeps its locks per mount, so only processes that ` +
      'open it through this same mount are kept apart (not processes that reach the same file another way — ' +
      'the files under a bindfs view, another host of a network filesystem mounted through FUSE). Keep a ' +
      "fleet's slot file on a local disk, tmpfs, or NFS with its lock manager; see the README.",
    { type: 'ProcslotWarning', code: 'PROCSLOT_SLOT_FILE_ON_FUSE' },
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
    id = native.getProcessId(slotsFile, slots, timeoutMs, inPrivateDir(slotsFile))
  } catch {
    return -1
  }
  if (id >= 0) {
    if (!isAbsolute(slotsFile)) memoCwd = process.cwd()
    memo.set(slotsFile, id)
    if (native.slotFileOnFuse(slotsFile)) warnFuse(resolve(slotsFile))
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

