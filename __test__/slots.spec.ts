import test from 'ava'
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import { DEFAULT_SLOTS_FILE, SlotFileError, SlotTable, SlotsExhaustedError, getProcessId, releaseProcessId } from '../index.js'
import { Holder, inCI, isRoot, stopAll, tempDir } from './helpers.ts'

const rootOnly = isRoot ? test : inCI ? test : test.skip
/** `taskset` (util-linux) sets the CPUs a process may run on. */
const linuxOnly = process.platform === 'linux' ? test : test.skip

function word(file: string, slot: number): { pid: number; tag: number } {
  const bytes = readFileSync(file)
  return { pid: bytes.readUInt32LE(slot * 8), tag: bytes.readUInt32LE(slot * 8 + 4) }
}

/**
 * The low 32 bits of `pid`'s start time, as the kernel records it: read from its main thread's entry
 * (`/proc/<pid>/task/<pid>/stat`, the same start time), which qemu-user passes through, where it answers a
 * process's read of its own `/proc/<pid>/stat` itself, with a start time of its own (the emulated arm64 run).
 */
function startTag(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(BigInt(fields[19]!) & 0xffffffffn)
}

test('the first process gets 0 and keeps it; release then acquire gives it back', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  t.is(getProcessId(file), 0)
  t.is(getProcessId(file), 0)
  t.is(readFileSync(file).length, availableParallelism() * 8)
  t.deepEqual(word(file, 0), { pid: process.pid, tag: startTag(process.pid) })
  t.true(releaseProcessId(file))
  t.is(word(file, 0).pid, 0)
  t.false(releaseProcessId(file), 'a double release is harmless')
  t.is(getProcessId(file), 0)
  t.true(releaseProcessId(file))
})

test('getProcessId and a SlotTable of the same file share one slot', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const id = getProcessId(file)
  const table = SlotTable.open(file)
  t.is(table.held, id)
  t.is(table.acquire({ preferred: 3 }), id, 'a process never holds two slots of one file')
  table.close()
  t.is(getProcessId(file), id)
  t.true(releaseProcessId(file))
})

test('worker threads share their process slot: one PID, one slot', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const id = getProcessId(file)
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { getProcessId, SlotTable } = require(workerData.index)
    const table = SlotTable.open(workerData.file)
    parentPort.postMessage({ id: getProcessId(workerData.file), held: table.held, acquired: table.acquire() })
  `
  const worker = new Worker(code, { eval: true, workerData: { file, index: join(import.meta.dirname, '..', 'index.js') } })
  const exited = once(worker, 'exit') // listen before the worker can exit
  const [reply] = (await once(worker, 'message')) as [{ id: number; held: number; acquired: number }]
  await exited
  t.deepEqual(reply, { id, held: id, acquired: id })
  t.is(getProcessId(file), id, 'the worker thread ending does not free the process slot')
  t.is(word(file, id).pid, process.pid)
  t.true(releaseProcessId(file))
})

test('DEFAULT_SLOTS_FILE lives in a per-user directory of the temporary directory', (t) => {
  t.is(DEFAULT_SLOTS_FILE, join(tmpdir(), `procslot-${process.geteuid!()}`, 'worker-slots'))
})

test('DEFAULT_SLOTS_FILE follows os.tmpdir() whatever TMPDIR, TMP and TEMP say (it is computed without node:os)', (t) => {
  const index = join(import.meta.dirname, '..', 'index.js')
  const script = `const p = require(${JSON.stringify(index)}); console.log(JSON.stringify([p.DEFAULT_SLOTS_FILE, require('node:path').join(require('node:os').tmpdir(), 'procslot-' + process.geteuid(), 'worker-slots')]))`
  const { TMPDIR: _a, TMP: _b, TEMP: _c, ...base } = process.env
  const cases: Record<string, string>[] = [
    {},
    { TMPDIR: '/var/tmp/x/' },
    { TMPDIR: '', TMP: '/srv/tmp' },
    { TEMP: '/srv/temp//' },
    { TMP: '/a', TEMP: '/b' },
    { TMPDIR: '/' },
  ]
  for (const vars of cases) {
    const [ours, node] = JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...base, ...vars }, encoding: 'utf8' })) as [string, string]
    t.is(ours, node, JSON.stringify(vars))
  }
})

linuxOnly('a new file gets os.availableParallelism() slots: on one CPU, one slot', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const index = join(import.meta.dirname, '..', 'index.js')
  const file = join(dir, 'slots')
  const script = `const p = require(${JSON.stringify(index)}); console.log(require('node:os').availableParallelism(), p.getProcessId(${JSON.stringify(file)}))`
  t.is(execFileSync('taskset', ['-c', '0', process.execPath, '-e', script], { encoding: 'utf8' }).trim(), '1 0')
  t.is(readFileSync(file).length, 8)
})

test('32 racing processes on 32 slots get 32 distinct IDs; 34 leave exactly 2 with -1', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 32 }).close()
  const holders: Holder[] = []
  t.teardown(() => stopAll(holders))
  // Every holder that started is stopped, even when another was not ready in time.
  const started = await Promise.allSettled(Array.from({ length: 34 }, () => Holder.start(file)))
  for (const r of started) if (r.status === 'fulfilled') holders.push(r.value)
  for (const r of started) if (r.status === 'rejected') throw r.reason
  for (const h of holders) h.send('id') // all at once: they race for the slots
  const ids = await Promise.all(holders.map(async (h) => (await h.next('id')).id as number))
  const granted = ids.filter((id) => id >= 0)
  t.is(ids.filter((id) => id === -1).length, 2)
  t.is(new Set(granted).size, 32)
  t.deepEqual([...granted].sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i))

  const table = SlotTable.open(file)
  t.throws(() => table.acquire(), { instanceOf: SlotsExhaustedError, code: 'ESLOTSFULL' })
  t.is(table.snapshot().filter((s) => s.alive).length, 32)
  table.close()
})

test("a SIGKILLed holder's slot is claimable at once", async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 4 }).close()
  const a = await Holder.start(file)
  const b = await Holder.start(file)
  t.teardown(() => stopAll([a, b]))
  t.is((await a.ask('id')).id, 0)
  t.is((await b.ask('id')).id, 1)
  await a.kill()
  t.is(word(file, 0).pid, a.pid, 'the dead holder still has its word')
  const c = await Holder.start(file)
  t.teardown(() => c.stop())
  t.is((await c.ask('id')).id, 0, 'the first process after the death gets the slot, no waiting')
  t.deepEqual(word(file, 0), { pid: c.pid, tag: startTag(c.pid) })
})

test('a word naming a live process whose lock is not held (a reused PID) is claimable', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 2 }).close()
  // A live process with its real start tag: by PID it looks alive, but it never took the lease.
  const bystander = await Holder.start(file)
  t.teardown(() => bystander.stop())
  const bytes = readFileSync(file)
  bytes.writeUInt32LE(bystander.pid, 0)
  bytes.writeUInt32LE(startTag(bystander.pid), 4)
  writeFileSync(file, bytes)
  const table = SlotTable.open(file)
  t.false(table.snapshot()[0]!.alive, 'no lock behind the word')
  t.is(table.acquire(), 0)
  table.close()
})

rootOnly('holders in separate PID namespaces sharing a file get distinct slots, even as equal PIDs', async (t) => {
  t.true(isRoot, 'PID namespaces need root (CI runs as root)')
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 4 }).close()
  const prefix = ['unshare', '--pid', '--fork', '--mount-proc']
  const a = await Holder.start(file, { prefix })
  const b = await Holder.start(file, { prefix })
  t.teardown(() => stopAll([a, b]))
  t.is(a.pid, 1, 'PID 1 in its own namespace')
  t.is(b.pid, 1)
  const ids = [(await a.ask('id')).id, (await b.ask('id')).id]
  t.deepEqual(ids, [0, 1])
  t.is(word(file, 0).pid, 1)
  t.is(word(file, 1).pid, 1)
  // Kill the namespace's init (the holder): the namespace dies with it, and its slot comes back.
  await a.kill()
  const c = await Holder.start(file, { prefix })
  t.teardown(() => c.stop())
  t.is(c.pid, 1)
  t.is((await c.ask('id')).id, 0)
})

rootOnly('a dead holder whose PID is reused by a live process: the slot comes back', async (t) => {
  t.true(isRoot, 'PID namespaces need root (CI runs as root)')
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 2 }).close()
  // In a fresh PID namespace: a holder takes slot 0 and is SIGKILLed; ns_last_pid is wound back so that a
  // sleeper gets the dead holder's PID; then a new holder must get slot 0 although the word's PID is live.
  const script = `
    set -e
    exec 3>&1
    coproc H { exec "${process.execPath}" "${join(import.meta.dirname, 'fixtures/holder.cjs')}" "${file}"; }
    read -r line <&"\${H[0]}"; echo "$line"
    echo id >&"\${H[1]}"; read -r line <&"\${H[0]}"; echo "$line"
    dead=$H_PID
    kill -9 "$dead"; wait "$dead" || true
    echo $((dead - 1)) > /proc/sys/kernel/ns_last_pid
    sleep 30 & echo "{\\"sleeper\\":$!}"
    echo id | "${process.execPath}" "${join(import.meta.dirname, 'fixtures/holder.cjs')}" "${file}"
    kill %1 2>/dev/null || true
  `
  const out = execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'bash', '-c', script], {
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'ignore'], // bash reports the SIGKILL on stderr: expected
  })
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>)
  const dead = lines[0]!.pid!
  t.is(lines[1]!.id, 0)
  t.is(lines[2]!.sleeper, dead, 'the sleeper reuses the dead holder PID')
  t.is(lines[4]!.id, 0, 'the slot whose word names a live, reused PID is claimed')
})

const refused: Array<[string, (path: string) => void, string]> = [
  ['a symbolic link', (p) => (writeFileSync(p + '.target', Buffer.alloc(16)), symlinkSync(p + '.target', p)), 'ESYMLINK'],
  ['a directory', (p) => mkdirSync(p), 'ENOTREG'],
  ['a FIFO', (p) => execFileSync('mkfifo', [p]), 'ENOTREG'],
  ['a size that is not a multiple of 8', (p) => writeFileSync(p, Buffer.alloc(13, 7)), 'EBADSIZE'],
  ['a file over 1 MiB', (p) => writeFileSync(p, Buffer.alloc((1 << 20) + 8, 1)), 'ETOOLARGE'],
]

for (const [what, make, code] of refused) {
  test(`${what} is refused with ${code}, without a byte changed`, (t) => {
    const { dir, cleanup } = tempDir()
    t.teardown(cleanup)
    const file = join(dir, 'slots')
    make(file)
    const read = () => (lstatSync(file).isFile() ? readFileSync(file) : null)
    const before = { stat: lstatSync(file), bytes: read() }
    t.is(getProcessId(file), -1)
    const err = t.throws(() => SlotTable.open(file), { instanceOf: SlotFileError, code })
    t.is(err?.path, file)
    t.true(err?.message.includes(file))
    const after = lstatSync(file)
    t.is(after.size, before.stat.size)
    t.is(after.mtimeMs, before.stat.mtimeMs)
    t.is(after.mode, before.stat.mode)
    t.deepEqual(read(), before.bytes)
  })
}

rootOnly("another user's file is refused unless allowed", (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  writeFileSync(file, Buffer.alloc(16))
  chownSync(file, 65534, 65534)
  t.is(getProcessId(file), -1)
  t.throws(() => SlotTable.open(file), { instanceOf: SlotFileError, code: 'EFOREIGN' })
  t.deepEqual(readFileSync(file), Buffer.alloc(16))
  const table = SlotTable.open(file, { allowForeignOwner: true })
  t.is(table.size, 2)
  table.close()
})

test('a missing parent directory gives -1 and ENOENT', (t) => {
  const file = join(tmpdir(), 'procslot-no-such-dir', 'deeper', 'slots')
  t.is(getProcessId(file), -1)
  t.throws(() => SlotTable.open(file), { instanceOf: SlotFileError, code: 'ENOENT' })
})

rootOnly('a read-only directory gives -1 and EACCES', (t) => {
  // Root may write anywhere, so the check runs as an unprivileged user.
  const parent = mkdtempSync(join(tmpdir(), 'procslot-ro-'))
  t.teardown(() => execFileSync('rm', ['-rf', parent]))
  chmodSync(parent, 0o755)
  const dir = join(parent, 'ro')
  mkdirSync(dir, { mode: 0o555 })
  const script = `
    const { getProcessId, SlotTable } = require(${JSON.stringify(join(import.meta.dirname, '..', 'index.js'))})
    const file = ${JSON.stringify(join(dir, 'slots'))}
    let code = null
    try { SlotTable.open(file) } catch (e) { code = e.code }
    console.log(JSON.stringify({ id: getProcessId(file), code }))
  `
  const out = execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' })
  t.deepEqual(JSON.parse(out), { id: -1, code: 'EACCES' })
})

test('growing a table keeps its holders; snapshot marks self, alive and PIDs; reclaim counts', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 2 }).close()
  const a = await Holder.start(file)
  const b = await Holder.start(file)
  t.teardown(() => stopAll([a, b]))
  t.is((await a.ask('id')).id, 0)
  t.is((await b.ask('id')).id, 1)

  const table = SlotTable.open(file, { slots: 6 })
  t.teardown(() => table.close())
  t.is(table.size, 6)
  t.is(readFileSync(file).length, 48)
  t.is(SlotTable.open(file, { slots: 3 }).size, 6, 'never shrinks')
  t.is(table.acquire({ preferred: 4 }), 4)
  t.deepEqual(
    table.snapshot().map(({ slot, pid, alive, self }) => ({ slot, pid, alive, self })),
    [
      { slot: 0, pid: a.pid, alive: true, self: false },
      { slot: 1, pid: b.pid, alive: true, self: false },
      { slot: 2, pid: 0, alive: false, self: false },
      { slot: 3, pid: 0, alive: false, self: false },
      { slot: 4, pid: process.pid, alive: true, self: true },
      { slot: 5, pid: 0, alive: false, self: false },
    ],
  )
  t.is(table.snapshot()[0]!.startTag, startTag(a.pid))

  await a.kill()
  const snap = table.snapshot()
  t.like(snap[0], { pid: a.pid, alive: false })
  t.is(table.reclaim(), 1)
  t.like(table.snapshot()[0], { pid: 0, alive: false })
  t.is(table.reclaim(), 0)
  t.is(table.held, 4)
  t.true(table.release(4))
  t.false(table.release(4))
  t.is(table.held, -1)
})

test('a preferred slot that is held or out of range falls back to the lowest free one', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const holder = await Holder.start(file, { slots: 4 })
  t.teardown(() => holder.stop())
  t.like(await holder.ask('acquire 2'), { slot: 2 })
  const table = SlotTable.open(file)
  t.is(table.acquire({ preferred: 2 }), 0)
  t.true(table.release())
  t.is(table.acquire({ preferred: 99 }), 0)
  table.close()
})

test('bad arguments are TypeErrors and RangeErrors; a closed table says ECLOSED', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  t.throws(() => SlotTable.open(file, { slots: 0 }), { instanceOf: RangeError })
  t.throws(() => SlotTable.open(file, { slots: 1.5 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => SlotTable.open(file, { slots: 131073 }), { instanceOf: RangeError })
  t.throws(() => SlotTable.open(''), { instanceOf: TypeError })
  t.is(getProcessId(''), -1)
  t.is(getProcessId('a\0b'), -1)
  const table = SlotTable.open(file, { slots: 2 })
  t.throws(() => table.acquire({ preferred: -1 }), { instanceOf: RangeError })
  table.close()
  table.close()
  t.true(table.closed)
  t.throws(() => table.acquire(), { instanceOf: SlotFileError, code: 'ECLOSED' })
})

test('closing the last table of a file frees its slot; `using` closes it', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  {
    using table = SlotTable.open(file, { slots: 2 })
    t.is(table.acquire(), 0)
    t.is(word(file, 0).pid, process.pid)
  }
  t.is(word(file, 0).pid, 0)
})

test('a new file is created with mode 0600 unless told otherwise', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  SlotTable.open(join(dir, 'a')).close()
  SlotTable.open(join(dir, 'b'), { mode: 0o644 }).close()
  t.is(lstatSync(join(dir, 'a')).mode & 0o777, 0o600)
  t.is(lstatSync(join(dir, 'b')).mode & 0o777, 0o644)
})
