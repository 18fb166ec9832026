/**
 * `procslot start`, the third of start / status / stop: a daemon started from a shell by the manager's
 * rules, found by status, stopped by stop, as an init script or a systemd unit uses them.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { alive, daemonsWith, fuseTest, mounted, sandbox } from './manager-helpers.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))

function procslot(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

test('procslot start, status and stop: a daemon started, found running, started again (already running), stopped', async (t) => {
  const box = sandbox(t)
  const start = await procslot('start', box.pidDir, 'svc', '--', 'sleep', '600', box.marker)
  t.is(start.code, 0, start.stderr)
  const pid = Number(/^svc: started \(PID (\d+)\)\n$/.exec(start.stdout)?.[1])
  t.true(alive(pid))
  t.is(readFileSync(join(box.pidDir, 'svc.pid'), 'utf8'), `${pid}\n`)
  t.true(existsSync(join(box.pidDir, '.svc.record')), 'its identity recorded beside the PID file')

  const again = await procslot('start', box.pidDir, 'svc', '--', 'sleep', '600', box.marker)
  t.is(again.code, 0, again.stderr)
  t.is(again.stdout, `svc: already running (PID ${pid})\n`)
  t.deepEqual(daemonsWith(box.marker), [pid], 'one daemon')

  t.is((await procslot('status', box.pidDir, 'svc')).code, 0)
  const stop = await procslot('stop', box.pidDir, 'svc')
  t.is(stop.code, 0, stop.stderr)
  t.false(alive(pid))
  t.is((await procslot('status', box.pidDir, 'svc')).code, 3)
  t.deepEqual(readdirSync(box.pidDir).filter((f) => f.endsWith('.pid') || f.endsWith('.record')), [])
})

test('procslot start of a command that exits at once exits 1 with its log, and leaves nothing running or on disk', async (t) => {
  const box = sandbox(t)
  // --settle far longer than the shell lives even on a busy machine (with the default 250 ms a shell slow
  // to start could outlive it, and start would say "started"); its exit ends the wait, not the time. It
  // lives 300 ms, past the default, so that the test also shows --settle is what start waits for.
  const out = await procslot('start', box.pidDir, 'bad', '--settle', '60000', '--', 'sh', '-c', `sleep 0.3; echo cannot start ${box.marker}; exit 3`)
  t.is(out.code, 1)
  t.regex(out.stderr, /^procslot: target bad: sh \(PID \d+\) exited before it settled/)
  t.regex(out.stderr, new RegExp(`cannot start ${box.marker}`), 'the end of its log')
  t.deepEqual(daemonsWith(box.marker), [])
  t.deepEqual(readdirSync(box.pidDir).filter((f) => f.endsWith('.pid') || f.endsWith('.record')), [])
  t.is((await procslot('status', box.pidDir, 'bad')).code, 3)
})

test('procslot start refuses a bad request with exit 2 and one line', async (t) => {
  const box = sandbox(t)
  for (const [args, reason] of [
    [['start', box.pidDir, 'x'], /no command given/],
    [['start', box.pidDir], /a PID directory and a target ID expected/],
    [['start', box.pidDir, '../x', '--', 'true'], /invalid target ID/],
    [['start', box.pidDir, 'x', '--ready', 'soon', '--', 'true'], /--ready must be mount:PATH or alive/],
    [['start', box.pidDir, 'x', '--timeout', '1e3', '--', 'true'], /--timeout must be an integer/],
    [['start', box.pidDir, 'x', '--settle', '2.5', '--', 'true'], /--settle must be an integer/],
  ] as const) {
    const out = await procslot(...args)
    t.is(out.code, 2, args.join(' '))
    t.regex(out.stderr, /^procslot: [^\n]+\n$/)
    t.regex(out.stderr, reason)
  }
  t.false(existsSync(join(box.pidDir, 'x.pid')))
})

fuseTest('procslot start --ready mount:PATH starts a FUSE daemon and exits once its mount is there; stop unmounts it', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('fs')
  const out = await procslot('start', box.pidDir, 'fs', '--ready', `mount:${mnt}`, '--', 'bindfs', '-f', box.src, mnt)
  t.is(out.code, 0, out.stderr)
  t.true(mounted(mnt), 'mounted when start returns')
  t.deepEqual(readdirSync(mnt), ['hello.txt'])
  const status = JSON.parse((await procslot('status', box.pidDir, 'fs', '--json')).stdout)
  t.like(status, { status: 'running', mountPath: mnt })
  t.is((await procslot('stop', box.pidDir, 'fs')).code, 0)
  t.false(mounted(mnt))
})
