import test from 'ava'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { deadline, tempDir } from './helpers.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))

type Run = { code: number | null; stdout: string; stderr: string }

function procslot(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

/** A live process (`sleep`) for PID files to name, killed with the test; its PID. */
async function sleeper(t: { teardown: (fn: () => void) => void }): Promise<number> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  await deadline(once(child, 'spawn'), 20_000, 'sleep to start')
  return child.pid!
}

type Row = { targetId: string; pid: number | null; state: string; alive: boolean; reason: string | null; command: string | null; startTime: string | null }

test('procslot pids --json tells running, stale, reused, invalid and untrusted PID files apart, changing nothing', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const pid = await sleeper(t)
  const deadPid = spawnSync('true').pid // exited and reaped
  const files: Record<string, string> = {
    live: `${pid}\n`,
    reused: `${pid}\n`,
    dead: `${deadPid}\n`,
    garbage: 'hello\n',
    open: `${pid}\n`,
  }
  for (const [id, text] of Object.entries(files)) writeFileSync(join(dir, `${id}.pid`), text)
  const anHourAgo = new Date(Date.now() - 3_600_000)
  utimesSync(join(dir, 'reused.pid'), anHourAgo, anHourAgo)
  chmodSync(join(dir, 'open.pid'), 0o666)

  const run = await procslot('pids', dir, '--json')
  t.is(run.code, 0, run.stderr)
  const listing = JSON.parse(run.stdout) as { dir: string; files: Row[] }
  t.is(listing.dir, dir)
  const by = Object.fromEntries(listing.files.map((f) => [f.targetId, f]))
  t.deepEqual(Object.keys(by), ['dead', 'garbage', 'live', 'open', 'reused'])
  t.like(by.live, { pid, state: 'running', alive: true, reason: null })
  t.regex(by.live!.command ?? '', /^sleep 600/)
  t.true(Math.abs(Date.parse(by.live!.startTime!) - Date.now()) < 3_600_000)
  t.like(by.reused, { pid, state: 'reused', alive: false })
  t.regex(by.reused!.reason ?? '', /reused/)
  t.like(by.dead, { pid: deadPid, state: 'stale', alive: false })
  t.like(by.garbage, { pid: null, state: 'invalid' })
  t.like(by.open, { pid: null, state: 'untrusted' })
  for (const [id, text] of Object.entries(files)) t.is(readFileSync(join(dir, `${id}.pid`), 'utf8'), text, 'unchanged')

  const table = await procslot('pids', dir)
  t.is(table.code, 0)
  t.regex(table.stdout, /5 PID files, 1 running/)
  t.regex(table.stdout, /^live +\d+ +yes +running/m)
  t.regex(table.stdout, /^garbage +- +no +invalid/m)
})

test('procslot pids exits 2 with one line for a missing or unsafe directory, and creates nothing', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const missing = join(dir, 'nope')
  const run = await procslot('pids', missing)
  t.is(run.code, 2)
  t.is(run.stderr, `procslot: no PID directory at ${missing}\n`)
  t.false(existsSync(missing))
  const open = join(dir, 'open')
  mkdirSync(open)
  chmodSync(open, 0o777)
  const unsafe = await procslot('pids', open)
  t.is(unsafe.code, 2)
  t.regex(unsafe.stderr, /^procslot: .*world-writable without the sticky bit.*\n$/)
  t.is(unsafe.stderr.split('\n').length, 2, 'one line')
  t.is((await procslot('pids')).code, 2, 'the directory is required')
})

const rootOnly = process.getuid?.() === 0 ? test : test.skip

rootOnly('as root, procslot pids reads another user’s PID files and marks them, and shows recorded mount paths', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const pid = await sleeper(t)
  writeFileSync(join(dir, 'theirs.pid'), `${pid}\n`)
  chownSync(join(dir, 'theirs.pid'), 65534, 65534)
  // Theirs too, but not trusted by their owner's rules either: writable by others, a symbolic link.
  writeFileSync(join(dir, 'open.pid'), `${pid}\n`)
  chownSync(join(dir, 'open.pid'), 65534, 65534)
  chmodSync(join(dir, 'open.pid'), 0o666)
  symlinkSync('theirs.pid', join(dir, 'link.pid'))
  lchownSync(join(dir, 'link.pid'), 65534, 65534)
  writeFileSync(join(dir, 'mine.pid'), `${pid}\n`)
  writeFileSync(join(dir, '.mine.record'), `pid ${pid}\nstart ${startTicks(pid)}\npath /mnt/mine\n`)
  const run = await procslot('pids', dir, '--json')
  t.is(run.code, 0, run.stderr)
  const by = Object.fromEntries((JSON.parse(run.stdout) as { files: Array<Row & { foreignOwner: number | null; mountPath: string | null }> }).files.map((f) => [f.targetId, f]))
  t.like(by.theirs, { pid, state: 'running', foreignOwner: 65534 })
  t.like(by.open, { pid: null, state: 'untrusted', foreignOwner: null })
  t.like(by.link, { pid: null, state: 'untrusted', foreignOwner: null })
  t.like(by.mine, { pid, state: 'running', foreignOwner: null, mountPath: '/mnt/mine' })
  const table = await procslot('pids', dir)
  t.regex(table.stdout, /^theirs +\d+ +yes +running \(uid 65534\)/m)
  t.regex(table.stdout, /^mine +\d+ +yes +running +\S+ \S+ +\/mnt\/mine/m)
})

function startTicks(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!
}
