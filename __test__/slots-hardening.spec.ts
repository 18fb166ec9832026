import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { SlotFileError, SlotTable, getProcessId } from '../index.js'
import { Holder, JsonLines, deadline, isRoot, stopAll, tempDir } from './helpers.ts'

const KEEPER = fileURLToPath(new URL('./fixtures/keeper.cjs', import.meta.url))
const linuxOnly = process.platform === 'linux' ? test : test.skip

function word(file: string, slot: number): number {
  return readFileSync(file).readUInt32LE(slot * 8)
}

async function keeper(t: { teardown: (fn: () => unknown) => void }, file: string): Promise<JsonLines> {
  const k = new JsonLines(KEEPER, [file])
  t.teardown(() => k.kill())
  await k.next('the keeper to start')
  return k
}

test('a slot taken through a table nothing refers to survives garbage collection', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 4 }).close()
  const first = await keeper(t, file)
  t.like(await first.ask('unref-table'), { slot: 0 })
  t.like(await first.ask('gc'), { collected: true })
  t.is(word(file, 0), first.child.pid!, 'the word still names the holder after gc()')
  // Other processes take slots meanwhile: none gets slot 0 while the first lives.
  const others: Holder[] = []
  t.teardown(() => stopAll(others))
  for (let i = 0; i < 3; i++) {
    const h = await Holder.start(file)
    others.push(h)
    t.not((await h.ask('id')).id, 0)
    await first.ask('gc')
  }
  const last = await Holder.start(file)
  others.push(last)
  t.is((await last.ask('id')).id, -1, 'the table is full: the collected table still holds slot 0')
  t.is(word(file, 0), first.child.pid!)
  // The end of the process gives it back.
  await first.stop()
  t.is((await last.ask('id')).id, 0)
})

test('a client never closed keeps its slot through garbage collection', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 2 }).close()
  const first = await keeper(t, file)
  t.like(await first.ask(`unref-client ${join(dir, 'data')}`), { slot: 0 })
  await first.ask('gc')
  const other = await Holder.start(file)
  t.teardown(() => other.stop())
  t.is((await other.ask('id')).id, 1)
  await first.ask('gc')
  const third = await Holder.start(file)
  t.teardown(() => third.stop())
  t.is((await third.ask('id')).id, -1, 'slot 0 is still held by the uncollected lease')
  t.is(word(file, 0), first.child.pid!)
})

test('{ slots: n } gives a new file exactly n slots, whatever the core count', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  for (const n of [1, 3]) {
    const table = SlotTable.open(join(dir, `t${n}`), { slots: n })
    t.is(table.size, n)
    table.close()
    t.is(statSync(join(dir, `t${n}`)).size, 8 * n)
  }
  t.is(getProcessId(join(dir, 'id1'), { slots: 1 }), 0)
  t.is(statSync(join(dir, 'id1')).size, 8, 'getProcessId({ slots: 1 }) makes a singleton')
  const single = SlotTable.open(join(dir, 'single'), { slots: 1 })
  t.is(single.acquire(), 0)
  single.close()
})

/** Holds the growth lock of `file` (an exclusive POSIX lock on byte 2^40) from another process. */
async function holdGrowthLock(t: { teardown: (fn: () => unknown) => void }, file: string): Promise<void> {
  const py = spawn('python3', [
    '-c',
    'import fcntl, os, sys\n' +
      'fd = os.open(sys.argv[1], os.O_RDWR)\n' +
      'fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1 << 40, os.SEEK_SET)\n' +
      'print("locked", flush=True)\n' +
      'sys.stdin.read()\n',
    file,
  ])
  t.teardown(() => py.kill('SIGKILL'))
  await deadline(
    new Promise<void>((resolve, reject) => {
      py.stdout.once('data', () => resolve())
      py.once('exit', (code) => reject(new Error(`python3 exited ${code}`)))
    }),
    20_000,
    'python3 to take the growth lock',
  )
}

linuxOnly('a growth lock held by another process times out with ETIMEDOUT; getProcessId gives -1', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  writeFileSync(file, Buffer.alloc(0))
  await holdGrowthLock(t, file)
  const started = Date.now()
  t.throws(() => SlotTable.open(file, { slots: 4, timeoutMs: 300 }), { instanceOf: SlotFileError, code: 'ETIMEDOUT' })
  const took = Date.now() - started
  t.true(took >= 290 && took < 5_000, `${took} ms`)
  t.is(getProcessId(file, { slots: 4, timeoutMs: 200 }), -1)
  t.is(statSync(file).size, 0, 'nothing was written')
})

for (const [what, keep] of [
  ['to nothing', 0],
  ['to half', 4096],
] as const) {
  linuxOnly(`a file truncated ${what} under a holder gives ESHRUNK; release, close and exit stay clean`, async (t) => {
    const { dir, cleanup } = tempDir()
    t.teardown(cleanup)
    const file = join(dir, 'slots')
    SlotTable.open(file, { slots: 1024 }).close()
    const k = await keeper(t, file)
    t.like(await k.ask('table - 1000'), { slot: 1000 }, 'a slot in the second page')
    truncateSync(file, keep)
    t.like(await k.ask('snapshot'), { code: 'ESHRUNK' })
    t.like(await k.ask('size'), { code: 'ESHRUNK' })
    t.like(await k.ask('release'), { released: true })
    t.like(await k.ask('table'), { code: 'ESHRUNK' })
    t.like(await k.ask('close'), { closed: true })
    // Taken again and held at exit: the normal exit must not touch the lost page either.
    const k2 = await keeper(t, file)
    SlotTable.open(file, { slots: 1024 }).close()
    t.like(await k2.ask('table - 1000'), { slot: 1000 })
    truncateSync(file, keep)
    t.deepEqual(await k2.stop(), { code: 0, signal: null })
    t.deepEqual(await k.stop(), { code: 0, signal: null })
  })
}

for (const how of ['rm', 'mv'] as const) {
  test(`a held file that is ${how === 'rm' ? 'removed' : 'replaced by mv'} is reported: replaced, one warning`, async (t) => {
    const { dir, cleanup } = tempDir()
    t.teardown(cleanup)
    const file = join(dir, 'slots')
    const k = await keeper(t, file)
    t.like(await k.ask('table 2'), { slot: 0 })
    t.like(await k.ask('replaced'), { replaced: false })
    if (how === 'rm') rmSync(file)
    else {
      writeFileSync(join(dir, 'new'), Buffer.alloc(16))
      renameSync(join(dir, 'new'), file)
    }
    t.like(await k.ask('replaced'), { replaced: true })
    t.like(await k.next('the warning'), { warning: 'ProcslotWarning', code: 'PROCSLOT_SLOT_FILE_REPLACED' })
    t.like(await k.ask('replaced'), { replaced: true })
    t.like(await k.ask('snapshot'), { slots: 2 })
    // Once per file: the next line is the answer to this command, not a second warning.
    t.like(await k.ask('replaced'), { cmd: 'replaced', replaced: true })
    const cli = spawnSync(process.execPath, [join(import.meta.dirname, '../lib/cli/index.js'), 'slots', '--json', file], {
      encoding: 'utf8',
    })
    if (how === 'mv') {
      const listing = JSON.parse(cli.stdout) as { replacedHolders: number[] }
      t.deepEqual(listing.replacedHolders, [k.child.pid!], 'procslot slots names the holder of the old file')
    } else {
      t.is(cli.status, 2)
      t.regex(cli.stderr, new RegExp(`process ${k.child.pid} still holds slots in a removed or replaced copy`))
    }
  })
}

test('a slot that waitForSlot takes at its first try from a replaced file is warned about, as acquire warns', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const k = await keeper(t, file)
  t.like(await k.ask('table 2'), { slot: 0 })
  t.like(await k.ask('release'), { released: true })
  writeFileSync(join(dir, 'new'), Buffer.alloc(16))
  renameSync(join(dir, 'new'), file)
  // The core looks at the path again only when a table that has been open for a second claims a slot
  // (RECHECK_AFTER): the table is aged past it, and nothing else is waited for.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  // The answer comes after a promise, the warning on the next tick: in either order.
  const lines = [await k.ask('wait'), await k.next('the answer and the warning')]
  t.like(lines.find((l) => l.cmd === 'wait'), { slot: 0 }, JSON.stringify(lines))
  t.like(lines.find((l) => l.cmd === undefined), { warning: 'ProcslotWarning', code: 'PROCSLOT_SLOT_FILE_REPLACED' })
  t.like(await k.ask('replaced'), { cmd: 'replaced', replaced: true }, 'once per file')
})

test('a file with a second hard link is refused with EHARDLINK, without a byte changed', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const bytes = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
  writeFileSync(file, bytes)
  linkSync(file, join(dir, 'alias'))
  t.throws(() => SlotTable.open(file), { instanceOf: SlotFileError, code: 'EHARDLINK' })
  t.is(getProcessId(file), -1)
  t.deepEqual(readFileSync(file), bytes)
})

test('mode takes permission bits only: set-user-ID, set-group-ID and sticky are a RangeError', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  for (const mode of [0o4777, 0o2600, 0o1600, 0o10000, -1]) {
    t.throws(() => SlotTable.open(join(dir, 'x'), { mode }), { instanceOf: RangeError })
  }
  SlotTable.open(join(dir, 'x'), { mode: 0o777 }).close()
  t.is(statSync(join(dir, 'x')).mode & 0o7777, 0o777)
})

const INDEX = fileURLToPath(new URL('../index.js', import.meta.url))

/** Runs `getProcessId()` on the default file in a node process with `TMPDIR=tmp`, maybe as another user. */
function defaultId(tmp: string, asNobody = false): { id: number; file: string; code: string | null } {
  const script =
    `const p = require(${JSON.stringify(INDEX)}); let code = null; ` +
    'try { p.SlotTable.open().close() } catch (e) { code = e.code } ' +
    'console.log(JSON.stringify({ id: p.getProcessId(), file: p.DEFAULT_SLOTS_FILE, code }))'
  const argv = asNobody
    ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script]
    : [process.execPath, '-e', script]
  const out = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } })
  if (out.status !== 0) throw new Error(`exit ${out.status}: ${out.stderr}`)
  return JSON.parse(out.stdout) as { id: number; file: string; code: string | null }
}

const rootOnly = isRoot ? test : test.skip

rootOnly('the default file is per user: a second user gets an ID of their own, in a 0700 directory', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  chmodSync(tmp, 0o1777) // a shared temporary directory, as /tmp
  chmodSync(dir, 0o755)
  const mine = defaultId(tmp)
  t.is(mine.file, join(tmp, `procslot-${process.geteuid!()}`, 'worker-slots'))
  t.is(mine.id, 0)
  t.is(statSync(join(tmp, `procslot-${process.geteuid!()}`)).mode & 0o777, 0o700)
  const theirs = defaultId(tmp, true)
  t.is(theirs.file, join(tmp, 'procslot-65534', 'worker-slots'))
  t.is(theirs.id, 0, 'not -1: their own file')
  t.is(statSync(theirs.file).uid, 65534)
})

test('a default directory that others can write to is refused with EUNSAFE', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const own = join(dir, `procslot-${process.geteuid!()}`)
  mkdirSync(own, { mode: 0o700 })
  chmodSync(own, 0o777)
  const r = defaultId(dir)
  t.is(r.id, -1)
  t.is(r.code, 'EUNSAFE')
})
