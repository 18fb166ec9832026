/**
 * The slot file: getProcessId once cached (vs the empty napi call, and with a relative path), the whole
 * life of a table, a snapshot of 1024 slots, and acquire() past 1023 dead or 1023 live holders — each
 * against a baseline in the same run.
 */
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'

import { SlotTable, getProcessId, releaseProcessId } from '../index.js'
import * as binding from '../binding.js'
import { compare, type Bench, type Case } from './harness.ts'

const SLOT_BYTES = 8
const BIG = 1024

function isDead(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/**
 * PIDs of processes that are gone: children that ran `true` and were reaped. Falls back to PIDs above the
 * kernel's `pid_max`, which no process can have.
 */
function deadPids(): number[] {
  const pids = new Set<number>()
  for (let i = 0; i < 4; i++) {
    const pid = spawnSync('true').pid
    if (pid !== undefined && pid > 0) pids.add(pid)
  }
  const dead = [...pids].filter(isDead)
  if (dead.length > 0) return dead
  let pidMax = 99_999 // macOS's limit
  try {
    pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim())
  } catch {}
  return [pidMax + 1, pidMax + 2, pidMax + 3].filter(isDead)
}

/** A slot word naming a dead holder: its PID, and a made-up (non-zero) start tag. */
function deadWord(pid: number): Buffer {
  const word = Buffer.alloc(SLOT_BYTES)
  word.writeUInt32LE(pid, 0)
  word.writeUInt32LE(Math.imul(pid, 2654435761) >>> 0 || 1, 4)
  return word
}

function writeWord(file: string, slot: number, word: Buffer): void {
  // Only while no table of this file is open here: on macOS (process-owned fcntl locks) closing any
  // descriptor of the file would drop this process's locks on it.
  const fd = openSync(file, 'r+')
  try {
    writeSync(fd, word, 0, SLOT_BYTES, slot * SLOT_BYTES)
  } finally {
    closeSync(fd)
  }
}

/**
 * A helper process that holds the slots of `file` other than `free` as live holders do: one open of the
 * file per slot (so every lock is a separate open file description, as with separate processes), an
 * exclusive OFD lock on each slot's 8 bytes, and each word naming the helper's PID and start tag.
 * Resolves once they are all held; `stop()` ends it (and every lease with it).
 */
async function liveHolders(file: string, slots: number, free: number): Promise<{ stop: () => void }> {
  const script = `
import fcntl, os, struct, sys
path, n, free = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open('/proc/self/stat') as f:
    tag = int(f.read().rsplit(')', 1)[1].split()[19]) & 0xffffffff
word = struct.pack('<II', os.getpid(), tag)
F_OFD_SETLK = getattr(fcntl, 'F_OFD_SETLK', 37)
fds = []
for i in range(n):
    if i == free:
        continue
    fd = os.open(path, os.O_RDWR)
    fcntl.fcntl(fd, F_OFD_SETLK, struct.pack('hhqqi', fcntl.F_WRLCK, os.SEEK_SET, i * 8, 8, 0))
    os.pwrite(fd, word, i * 8)
    fds.append(fd)
print('held', flush=True)
sys.stdin.read()
`
  const child = spawn('python3', ['-c', script, file, String(slots), String(free)], { stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', () => resolve())
    child.once('exit', (code) => reject(new Error(`the live-holder helper exited with ${code}`)))
  })
  return { stop: () => child.kill('SIGKILL') }
}

/**
 * acquire() on a fresh table of `file` in each sample: the table is opened before, released and closed
 * after (untimed); `after(slot)` then checks or undoes what the sample took.
 */
function freshAcquire(name: string, file: string, after: (slot: number) => void = () => {}): Bench {
  let table: SlotTable | undefined
  let slot = -1
  return {
    name,
    before: () => {
      table = SlotTable.open(file)
    },
    fn: () => (slot = table!.acquire()),
    after: () => {
      table!.release()
      table!.close()
      after(slot)
    },
  }
}

/** The slot file's cases, in the report's order; the files go in `dir`. */
export async function slotCases(dir: string, progress: (m: string) => void): Promise<Case[]> {
  const idFile = join(dir, 'process-id')
  const cycleFile = join(dir, 'cold-cycle')
  const snapFile = join(dir, 'snapshot-1024')
  const deadFile = join(dir, 'dead-1023')
  const freeFile = join(dir, 'free-1024')
  const out: Case[] = []
  try {
    // 1. getProcessId(file) once cached: a look-up in the facade, vs the empty napi call.
    progress('1/15 getProcessId (cached) vs binding.noop()')
    if (getProcessId(idFile) < 0) throw new Error(`getProcessId(${idFile}) failed`)
    const c1 = compare(
      { name: 'getProcessId(file), cached', fn: () => getProcessId(idFile), batch: 1000 },
      { name: 'binding.noop()', fn: () => binding.noop(), batch: 1000 },
      { maxSamples: 2000, maxTimeMs: 1500 },
    )
    out.push({ name: c1.ours.name, comparison: c1, aim: '≤ 2× baseline', met: c1.ratio <= 2 })

    // 2. The whole life of a table on an existing file. Nothing else has the file open in this process,
    // so every open is a fresh native open and every close drops it.
    progress('2/15 cold cycle vs fs.openSync + fs.closeSync')
    SlotTable.open(cycleFile).close()
    const c2 = compare(
      {
        name: 'open + acquire + release + close',
        fn: () => {
          const table = SlotTable.open(cycleFile)
          table.acquire()
          table.release()
          table.close()
        },
      },
      { name: "fs.openSync(file, 'r+') + fs.closeSync", fn: () => closeSync(openSync(cycleFile, 'r+')) },
      { maxSamples: 5000, maxTimeMs: 2000 },
    )
    out.push({ name: 'cold cycle (fresh table)', comparison: c2, aim: 'median ≤ 10 µs', met: c2.ours.median <= 10_000 })

    // 3. A snapshot of 1024 slots (every slot's word and lock probed) vs reading the same 8 KiB file.
    progress(`3/15 snapshot() of ${BIG} slots vs fs.readFileSync`)
    const snapTable = SlotTable.open(snapFile, { slots: BIG })
    try {
      if (snapTable.snapshot().length !== BIG) throw new Error(`${snapFile} should have ${BIG} slots`)
      const c3 = compare(
        { name: `snapshot() of ${BIG} slots`, fn: () => snapTable.snapshot() },
        { name: `fs.readFileSync (${(BIG * SLOT_BYTES) / 1024} KiB)`, fn: () => readFileSync(snapFile) },
        { maxSamples: 2000, maxTimeMs: 2000 },
      )
      out.push({ name: c3.ours.name, comparison: c3, aim: null, met: null })
    } finally {
      snapTable.close()
    }

    // 4. acquire() on a fresh table whose slots 0..1022 name dead holders, none of them locked.
    // Baseline: the same acquire() on a fresh 1024-slot table whose slots are all free (zero words), with
    // the same untimed open before and release + close after: what the dead holders add to an acquire.
    progress(`4/15 acquire() past ${BIG - 1} dead holders vs acquire() on a free table`)
    const pids = deadPids()
    if (pids.length === 0) throw new Error('found no dead PID to fill the table with')
    const words = Array.from({ length: BIG - 1 }, (_, i) => deadWord(pids[i % pids.length]!))
    SlotTable.open(deadFile, { slots: BIG }).close()
    SlotTable.open(freeFile, { slots: BIG }).close()
    const fill = Buffer.alloc(BIG * SLOT_BYTES)
    words.forEach((w, i) => w.copy(fill, i * SLOT_BYTES))
    writeFileSync(deadFile, fill)
    const check = SlotTable.open(deadFile)
    const dead = check.snapshot().filter((s) => s.pid !== 0 && !s.alive).length
    check.close()
    if (dead !== BIG - 1) throw new Error(`${deadFile}: ${dead} dead holders, expected ${BIG - 1}`)

    // The baseline of cases 4 and 5: acquire() on a table whose slots are all free.
    const freeTableAcquire = freshAcquire(`acquire(), ${BIG} free slots`, freeFile)
    const c4 = compare(
      freshAcquire(`acquire(), ${BIG - 1} dead holders`, deadFile, (slot) => {
        if (slot < BIG - 1) writeWord(deadFile, slot, words[slot]!)
      }),
      freeTableAcquire,
      { maxSamples: 3000, maxTimeMs: 2000 },
    )
    const after = SlotTable.open(deadFile)
    const stillDead = after.snapshot().filter((s) => s.pid !== 0 && !s.alive).length
    after.close()
    if (stillDead !== BIG - 1) throw new Error(`${deadFile}: ${stillDead} dead holders after the run, expected ${BIG - 1}`)
    out.push({ name: `acquire(), ${BIG - 1} dead holders`, comparison: c4, aim: 'median ≤ 1 ms', met: c4.ours.median <= 1_000_000 })

    // 5. acquire() of the one free slot (the last) of a table whose 1023 other slots are held by live
    // holders (1023 OFD locks, words naming a live PID), vs acquire() on a table of free slots.
    progress(`5/15 acquire(), ${BIG - 1} live holders vs acquire() on a free table`)
    const liveFile = join(dir, 'live-1023')
    SlotTable.open(liveFile, { slots: BIG }).close()
    const holders = await liveHolders(liveFile, BIG, BIG - 1)
    try {
      const c5 = compare(
        freshAcquire(`acquire(), ${BIG - 1} live holders`, liveFile, (slot) => {
          if (slot !== BIG - 1) throw new Error(`took slot ${slot}, expected the free one, ${BIG - 1}`)
        }),
        freeTableAcquire,
        { maxSamples: 3000, maxTimeMs: 2000 },
      )
      out.push({ name: `acquire(), ${BIG - 1} live holders`, comparison: c5, aim: 'median ≤ 20 µs', met: c5.ours.median <= 20_000 })
    } finally {
      holders.stop()
    }

    // 6. getProcessId with a relative path, cached, vs the same with an absolute path.
    progress('6/15 getProcessId(relative), cached vs getProcessId(absolute), cached')
    const rel = relative(process.cwd(), idFile)
    if (getProcessId(rel) !== getProcessId(idFile)) throw new Error('relative and absolute paths disagree')
    const c6 = compare(
      { name: 'getProcessId(relative path), cached', fn: () => getProcessId(rel), batch: 1000 },
      { name: 'getProcessId(absolute path), cached', fn: () => getProcessId(idFile), batch: 1000 },
      { maxSamples: 2000, maxTimeMs: 1500 },
    )
    out.push({ name: c6.ours.name, comparison: c6, aim: '≤ 2× baseline', met: c6.ratio <= 2 })
    return out
  } finally {
    releaseProcessId(idFile)
  }
}
