import test from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { SlotTable } from '../index.js'
import { commandLine, HOLDER, Holder, inCI, isRoot, stopAll, tempDir } from './helpers.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))
const rootOnly = isRoot ? test : inCI ? test : test.skip

type Run = { code: number | null; stdout: string; stderr: string }

/** Runs `procslot` with `args` to its end. */
function procslot(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

type Row = { slot: number; state: string; pid: number; alive: boolean; startTime: string | null; command: string | null; visible: boolean }
type Listing = { file: string; size: number; held: number; slots: Row[] }

/** A slot file of exactly `slots` free slots. */
function slotFile(t: { teardown: (fn: () => void) => void }, slots: number): { dir: string; file: string } {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  writeFileSync(file, Buffer.alloc(8 * slots), { mode: 0o600 })
  return { dir, file }
}

test('procslot slots --json lists holders with PID, start time and command line, dead and free slots', async (t) => {
  const { file } = slotFile(t, 4)
  const before = Date.now()
  const holders = await Promise.all([Holder.start(file), Holder.start(file), Holder.start(file)])
  t.teardown(() => stopAll(holders))
  const [a, dead, c] = holders as [Holder, Holder, Holder]
  t.is((await a.ask('acquire 0')).slot, 0)
  t.is((await dead.ask('acquire 1')).slot, 1)
  t.is((await c.ask('acquire 2')).slot, 2)
  await dead.kill()
  const after = Date.now()

  const bytes = readFileSync(file)
  const { code, stdout, stderr } = await procslot('slots', file, '--json')
  t.is(code, 0, stderr)
  t.is(stderr, '')
  const listing = JSON.parse(stdout) as Listing
  t.is(listing.file, file)
  t.is(listing.size, 4)
  t.is(listing.held, 2)
  t.deepEqual(
    listing.slots.map((s) => [s.slot, s.state, s.pid, s.alive]),
    [
      [0, 'held', a.pid, true],
      [1, 'dead', dead.pid, false],
      [2, 'held', c.pid, true],
      [3, 'free', 0, false],
    ],
  )
  for (const [slot, holder] of [[0, a], [2, c]] as const) {
    const row = listing.slots[slot]!
    t.true(row.visible)
    t.is(row.command, commandLine(process.execPath, HOLDER, file))
    // Start times come in clock ticks since a boot time in whole seconds: allow a second either side.
    const started = Date.parse(row.startTime!)
    t.true(started >= before - 1500 && started <= after + 1500, `holder ${holder.pid} started at ${row.startTime}`)
  }
  t.like(listing.slots[1], { startTime: null, command: null })
  t.like(listing.slots[3], { startTime: null, command: null })
  t.deepEqual(readFileSync(file), bytes, 'listing changed nothing in the file: no slot taken, nothing reclaimed')
})

test('procslot slots prints a table: free slots as free, long command lines shortened', async (t) => {
  const { file } = slotFile(t, 3)
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('acquire 1')).slot, 1)

  const { code, stdout, stderr } = await procslot('slots', file)
  t.is(code, 0, stderr)
  const lines = stdout.trimEnd().split('\n')
  t.is(lines[0], `slot file ${file}: 3 slots, 1 held`)
  t.regex(lines[1]!, /^slot +pid +alive +started +command$/)
  t.regex(lines[3]!, /^0 +- +free$/)
  const held = new RegExp(`^1 +${holder.pid} +yes +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +(.+)$`).exec(lines[4]!)
  t.truthy(held, lines[4])
  const command = held![1]!
  t.true(command.length <= 60, command)
  t.true(command.endsWith('…'), 'the command line is longer than 60 characters here')
  t.true(commandLine(process.execPath, HOLDER, file).startsWith(command.slice(0, -1)))
  t.regex(lines[5]!, /^2 +- +free$/)
  t.is(lines.length, 6)
})

test('procslot slots exits 2 with one line for a missing file, and does not create it', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const missing = join(dir, 'no-such-slots')
  const { code, stdout, stderr } = await procslot('slots', missing)
  t.is(code, 2)
  t.is(stdout, '')
  t.is(stderr, `procslot: no slot file at ${missing}\n`)
  t.false(existsSync(missing))

  const deeper = await procslot('slots', join(dir, 'nope', 'slots'), '--json')
  t.is(deeper.code, 2)
  t.is(deeper.stdout, '')
  t.false(existsSync(join(dir, 'nope')))
})

test('procslot slots exits 2 with one line naming the path for a refused file, changing nothing', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const odd = join(dir, 'odd')
  writeFileSync(odd, Buffer.alloc(12), { mode: 0o600 })
  const link = join(dir, 'link')
  symlinkSync(odd, link)
  const directory = join(dir, 'directory')
  mkdirSync(directory)
  for (const [path, reason] of [
    [odd, /not a multiple of 8/],
    [link, /symbolic link/],
    [directory, /not a regular file/],
    // A device reads as an empty file to lstat: refused all the same, as the API refuses it.
    ['/dev/zero', /not a regular file/],
  ] as const) {
    const { code, stdout, stderr } = await procslot('slots', path)
    t.is(code, 2, path)
    t.is(stdout, '')
    t.regex(stderr, /^procslot: [^\n]+\n$/, 'one line')
    t.true(stderr.includes(path), stderr)
    t.regex(stderr, reason)
  }
  t.is(readFileSync(odd).length, 12)
})

test('an empty slot file is shown as it is, not grown', async (t) => {
  const { file } = slotFile(t, 0)
  const { code, stdout } = await procslot('slots', file, '--json')
  t.is(code, 0)
  t.deepEqual(JSON.parse(stdout), { file, size: 0, held: 0, replacedHolders: [], slots: [] })
  t.is(readFileSync(file).length, 0)
})

test('usage on --help and without arguments; exit 2 for an unknown command, flag or extra argument', async (t) => {
  for (const args of [[], ['--help'], ['-h'], ['help']]) {
    const { code, stdout } = await procslot(...args)
    t.is(code, 0)
    t.regex(stdout, /^usage: procslot <command>/)
    t.regex(stdout, /procslot slots \[file\] \[--json\]/)
    t.regex(stdout, /procslot demo/)
  }
  const help = await procslot('slots', '--help')
  t.is(help.code, 0)
  t.regex(help.stdout, /^usage: procslot slots \[file\] \[--json\]/)

  for (const args of [['frobnicate'], ['slots', '--jsn'], ['slots', 'a', 'b'], ['demo', 'extra']]) {
    const { code, stdout, stderr } = await procslot(...args)
    t.is(code, 2, args.join(' '))
    t.is(stdout, '')
    t.regex(stderr, /^procslot: [^\n]+\n$/)
  }
})

rootOnly('a holder in another PID namespace shows its PID there, and ? for what /proc here cannot tell', async (t) => {
  t.true(isRoot, 'unshare --pid needs root; CI runs as root')
  const { file } = slotFile(t, 2)
  const holder = await Holder.start(file, { prefix: ['unshare', '--pid', '--fork', '--mount-proc'] })
  t.teardown(() => holder.kill())
  t.is((await holder.ask('acquire')).slot, 0)
  t.not(holder.pid, holder.hostPid)

  const { code, stdout } = await procslot('slots', file, '--json')
  t.is(code, 0)
  const row = (JSON.parse(stdout) as Listing).slots[0]!
  t.like(row, { state: 'held', pid: holder.pid, alive: true, visible: false, startTime: null, command: null })
  const text = await procslot('slots', file)
  t.regex(text.stdout, new RegExp(`^0 +${holder.pid} +yes +\\? +\\?$`, 'm'))
})

test('the CLI takes no slot: a table opened while it lists stays whole', async (t) => {
  const { file } = slotFile(t, 2)
  const table = SlotTable.open(file)
  t.is(table.acquire(), 0)
  const { code, stdout } = await procslot('slots', file, '--json')
  t.is(code, 0)
  const listing = JSON.parse(stdout) as Listing
  t.deepEqual(
    listing.slots.map((s) => s.state),
    ['held', 'free'],
  )
  t.is(listing.slots[0]!.pid, process.pid)
  table.close()
})
