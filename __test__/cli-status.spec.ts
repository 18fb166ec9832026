/**
 * `procslot status` answers as init scripts and health checks ask (LSB exit codes), and `procslot stop`
 * stops a daemon by the manager's rules.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { openProcess } from '../binding.js'
import { deadline, isRoot } from './helpers.ts'
import { alive, fuseTest, managerProcess, mounted, sandbox } from './manager-helpers.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))

function procslot(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

fuseTest('procslot status exits 0 running, 1 dead with a PID file, 3 not running, 4 unknown; --json says the same', async (t) => {
  const box = sandbox(t)
  const manager = box.sleep()
  const { pid } = await manager.spawn('up', box.mnt('up'))
  const running = await procslot('status', box.pidDir, 'up')
  t.is(running.code, 0, running.stderr)
  t.regex(running.stdout, new RegExp(`up: running \\(PID ${pid}`))
  const json = JSON.parse((await procslot('status', box.pidDir, 'up', '--json')).stdout)
  t.like(json, { targetId: 'up', status: 'running', code: 0, judgement: 'running', pid, mountPath: box.mnt('up') })

  // Dead with its PID file left: the daemon dies while no manager runs.
  const down = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath: box.mnt('down'), targetId: 'down' })
  t.is(down.code, 0, down.error)
  const h = openProcess(down.pid!)!
  process.kill(down.pid!, 'SIGKILL')
  t.true(await deadline(h.waitExit(10_000), 15_000, 'the daemon to die'))
  const dead = await procslot('status', box.pidDir, 'down', '--json')
  t.is(dead.code, 1)
  t.like(JSON.parse(dead.stdout), { status: 'dead', judgement: 'stale', pid: down.pid })

  t.is((await procslot('status', box.pidDir, 'never')).code, 3)
  t.is((await procslot('status', join(box.dir, 'no-such-dir'), 'x')).code, 3)

  writeFileSync(join(box.pidDir, 'garbage.pid'), 'hello\n')
  t.is((await procslot('status', box.pidDir, 'garbage')).code, 4)
  // pid_max is one more than the largest PID: never a process's, so the file is invalid, not dead.
  const pidMax = readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()
  writeFileSync(join(box.pidDir, 'limit.pid'), `${pidMax}\n`)
  const limit = await procslot('status', box.pidDir, 'limit', '--json')
  t.is(limit.code, 4)
  t.like(JSON.parse(limit.stdout), { status: 'unknown', judgement: 'invalid' })
  if (isRoot) {
    writeFileSync(join(box.pidDir, 'theirs.pid'), `${pid}\n`)
    chownSync(join(box.pidDir, 'theirs.pid'), 65534, 65534)
    const theirs = await procslot('status', box.pidDir, 'theirs', '--json')
    t.is(theirs.code, 4)
    t.like(JSON.parse(theirs.stdout), { status: 'unknown', judgement: 'untrusted' })
  }
  t.is((await procslot('status', box.pidDir)).code, 4, 'a request it cannot answer is unknown')
  t.is((await procslot('status', box.pidDir, '../x')).code, 4)
  t.true(existsSync(join(box.pidDir, 'down.pid')), 'status changes nothing')
})

fuseTest('procslot stop stops a bindfs daemon a manager spawned in another process, and leaves no stale mount', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const spawned = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath: mnt, targetId: 't1' })
  t.is(spawned.code, 0, spawned.error)
  t.true(mounted(mnt))
  const stop = await procslot('stop', box.pidDir, 't1', '--force')
  t.is(stop.code, 0, stop.stderr)
  t.regex(stop.stdout, new RegExp(`t1: stopped \\(PID ${spawned.pid}, SIGKILL\\)`))
  t.false(alive(spawned.pid!))
  t.false(mounted(mnt), 'SIGKILL left a stale mount; stop unmounted it')
  t.false(existsSync(join(box.pidDir, 't1.pid')))
  const again = await procslot('stop', box.pidDir, 't1')
  t.is(again.code, 0)
  t.regex(again.stdout, /t1: not running/)
  t.is((await procslot('status', box.pidDir, 't1')).code, 3)
  for (const bad of ['-1', '1e3', '2147483648', 'soon']) {
    const refused = await procslot('stop', box.pidDir, 't1', `--timeout=${bad}`)
    t.is(refused.code, 2, bad)
    t.is(refused.stderr, `procslot: stop: --timeout must be an integer from 0 to 2147483647, got ${JSON.stringify(bad)}\n`)
  }
})

test('procslot stop and status on a path that is no directory exit 2 saying so, not with the step that tripped on it', async (t) => {
  for (const cmd of ['stop', 'status'] as const) {
    const out = await procslot(cmd, '/dev/null', 'x')
    t.is(out.code, cmd === 'stop' ? 2 : 4, `${cmd}: ${out.stderr}`)
    t.regex(out.stderr + out.stdout, /not a directory/)
    t.notRegex(out.stderr + out.stdout, /File exists|create the PID directory/)
  }
})
