/**
 * The manager as a supervisor: deaths noticed with no call (one watcher thread over pidfds), cleaned up
 * at once, restarted by policy with backoff, given up after a limit; and a watching manager lets its
 * process exit.
 */
import test from 'ava'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { openProcess } from '../binding.js'
import { deadline } from './helpers.ts'
import { ManagerProcess, alive, daemonsWith, fuseTest, managerProcess, mounted, mountsUnder, sandbox } from './manager-helpers.ts'

const SUPERVISE = fileURLToPath(new URL('./fixtures/supervise.cjs', import.meta.url))

function run(args: object): Promise<{ code: number | null; lines: Array<Record<string, unknown>> }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SUPERVISE, JSON.stringify(args)], { timeout: 30_000 }, (err, stdout) => {
      const lines = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, lines })
    })
  })
}

fuseTest('an adopted bindfs daemon SIGKILLed with no call from anyone: exit arrives, its mount and PID file are gone', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const first = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath: mnt, targetId: 't1' })
  t.is(first.code, 0, first.error)
  const manager = box.bindfs()
  t.is(manager.loaded, 1)
  const exit = once(manager, 'exit')
  process.kill(first.pid!, 'SIGKILL')
  const [event] = await deadline(exit, 20_000, 'the exit event')
  t.like(event, { targetId: 't1', pid: first.pid })
  t.false(mounted(mnt), 'the stale mount was unmounted')
  t.false(existsSync(join(box.pidDir, 't1.pid')), 'the PID file was removed')
  t.is(manager.getProcessInfo('t1')?.status, 'exited', 'it stays in memory as exited')
  t.is(manager.cleanupDeadProcesses(), 1)
})

fuseTest("restart: 'on-failure': a bindfs daemon SIGKILLed three times comes back three times at its mount path, with growing delays", async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const manager = box.bindfs({ restart: 'on-failure', restartDelayMs: 50 })
  let { pid } = await manager.spawn('t1', mnt)
  const delays: number[] = []
  for (let round = 1; round <= 3; round++) {
    const restarted = once(manager, 'restart')
    process.kill(pid, 'SIGKILL')
    const [e] = (await deadline(restarted, 20_000, `restart ${round}`)) as [{ targetId: string; attempt: number; delayMs: number; pid: number }]
    t.like(e, { targetId: 't1', attempt: round })
    delays.push(e.delayMs)
    t.not(e.pid, pid)
    t.false(alive(pid))
    pid = e.pid
    t.is(readFileSync(join(box.pidDir, 't1.pid'), 'utf8'), `${pid}\n`, 'a new PID file')
    t.deepEqual(readdirSync(mnt), ['hello.txt'], 'the mount answers')
    t.deepEqual(mountsUnder(box.dir), [mnt], 'one mount, no stale one under it')
  }
  t.deepEqual(delays, [50, 100, 200])
  t.true(manager.isRunning('t1'))
})

fuseTest('a daemon that dies at once on every restart ends in failed after maxRestarts, with nothing left running, mounted or on disk', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const flag = join(box.dir, 'first-run-done')
  // The first run stays up (bindfs in the foreground); every later one exits at once with an error.
  const manager = box.bindfs({
    restart: 'always',
    restartDelayMs: 10,
    maxRestarts: 3,
    command: 'sh',
    args: ({ mountPath }) => ['-c', `if [ -e ${flag} ]; then echo broken >&2; exit 1; fi; : > ${flag}; exec bindfs -f ${box.src} ${mountPath}`],
  })
  const { pid } = await manager.spawn('t1', mnt)
  const failed = once(manager, 'failed')
  process.kill(pid, 'SIGKILL')
  const [e] = await deadline(failed, 30_000, 'failed')
  t.deepEqual(e, { targetId: 't1', restarts: 3 })
  t.false(mounted(mnt))
  t.deepEqual(readdirSync(box.pidDir).filter((f) => f.endsWith('.pid') || f.endsWith('.record')), [])
  t.false(manager.isRunning('t1'))
  t.true(existsSync(flag))
})

fuseTest('kill during a pending restart: nothing comes back (the manager’s process then ends by itself)', async (t) => {
  const box = sandbox(t)
  const r = await run({ scenario: 'kill-pending', pidDir: box.pidDir, marker: box.marker, mountPath: box.mnt('t') })
  t.is(r.code, 0, JSON.stringify(r.lines))
  t.like(r.lines.at(-1), { killed: true })
  t.false(r.lines.some((l) => 'restarted' in l), 'no restart happened')
  t.deepEqual(daemonsWith(box.marker), [])
  t.false(existsSync(join(box.pidDir, 't.pid')))
})

fuseTest('a manager watching daemons with nothing else to do lets its process exit; the daemon lives on', async (t) => {
  const box = sandbox(t)
  const r = await run({ scenario: 'idle', pidDir: box.pidDir, marker: box.marker, mountPath: box.mnt('t') })
  t.is(r.code, 0)
  const pid = r.lines[0]!.pid as number
  t.true(alive(pid))
  const adopter = box.sleep()
  t.is(adopter.getProcessInfo('t')?.pid, pid)
})

fuseTest('a daemon another manager process kills is not restarted by a manager that watched it', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t')
  const manager = box.sleep({ restart: 'always', restartDelayMs: 10 })
  const { pid } = await manager.spawn('t', mnt)
  const other = await ManagerProcess.start({ pidDir: box.pidDir, daemon: 'sleep', marker: box.marker })
  t.teardown(() => other.stop())
  const exit = once(manager, 'exit')
  t.true((await other.call('kill', 't')) as boolean)
  await deadline(exit, 20_000, 'the exit event')
  // The other manager removed the PID file with the daemon: this one sees it was stopped on purpose.
  t.false(manager.isRunning('t'))
  t.deepEqual(daemonsWith(box.marker), [])
  t.is(openProcess(pid), null)
})

fuseTest('the stale events of the construction-time load come after the constructor returns: a listener attached right after new sees them', async (t) => {
  const box = sandbox(t)
  const first = box.sleep()
  const { pid } = await first.spawn('gone', box.mnt('gone'))
  first.close()
  const h = openProcess(pid)!
  process.kill(pid, 'SIGKILL')
  t.true(await deadline(h.waitExit(10_000), 15_000, 'the daemon to die'))
  const manager = box.sleep()
  t.is(manager.cleaned, 1, 'counted at once')
  const [e] = await deadline(once(manager, 'stale'), 5_000, 'the stale event')
  t.like(e, { targetId: 'gone', pid })
})

test("manager.ref() keeps a script alive until its daemon's exit event; unref'd (the default) it ends at once, and its daemon lives on", async (t) => {
  const box = sandbox(t)
  const index = join(import.meta.dirname, '..', 'index.js')
  const script = (ref: boolean) => `
    const { once } = require('node:events')
    const { FuseProcessManager } = require(${JSON.stringify(index)})
    // A PID directory of its own: a ref'd manager is kept alive by every daemon it watches, adopted ones too.
    const m = new FuseProcessManager({ pidDir: ${JSON.stringify(box.pidDir)} + ${JSON.stringify(ref ? '-kept' : '-free')}, command: 'sleep', args: () => ['600', ${JSON.stringify(box.marker)}], ready: 'alive', settleMs: 20 })
    ${ref ? 'm.ref()' : ''}
    m.spawn(${JSON.stringify(ref ? 'kept' : 'free')}, null).then(async ({ pid }) => {
      console.log(JSON.stringify({ pid }))
      const [e] = await once(m, 'exit')
      console.log(JSON.stringify({ exit: e.pid }))
    })`
  // Unref'd: nothing keeps the script running once its daemon is up.
  const free = await new Promise<{ code: number | null; lines: string[] }>((resolve) =>
    execFile(process.execPath, ['-e', script(false)], { timeout: 30_000 }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, lines: stdout.trim().split('\n') }),
    ),
  )
  t.is(free.code, 0)
  t.is(free.lines.length, 1, 'it ended before any exit event')
  const freePid = (JSON.parse(free.lines[0]!) as { pid: number }).pid
  t.true(alive(freePid), 'the daemon outlives its manager')

  // Ref'd: the script waits for the exit event of the daemon we kill, then ends by itself.
  const child = execFile(process.execPath, ['-e', script(true)], { timeout: 30_000 })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  const pidLine = await deadline(
    new Promise<string>((resolve) => child.stdout!.on('data', () => out.includes('\n') && resolve(out.split('\n')[0]!))),
    20_000,
    'the daemon to start',
  )
  const { pid } = JSON.parse(pidLine) as { pid: number }
  process.kill(pid, 'SIGKILL')
  const [code] = (await deadline(once(child, 'exit'), 20_000, 'the script to end')) as [number | null]
  t.is(code, 0)
  t.deepEqual(JSON.parse(out.trim().split('\n')[1]!), { exit: pid })
})

test('a pending spawn or kill keeps a script alive until it settles, also when the daemon exits at once: unref’d managers, two at once on one directory, one held by nobody, gc() while pending (12 rounds)', async (t) => {
  const box = sandbox(t)
  const index = join(import.meta.dirname, '..', 'index.js')
  // Nothing else keeps the script running: an await spawn() that lets the event loop run dry ends the
  // script with exit code 0 half-way, and the rejection is never seen. The daemon lives 100 ms, inside a
  // long settle time, so that its exit (reported by a native wait, then by Node.js) is what spawn awaits.
  // Each round spawns through a manager the script keeps and, at the same time on the same directory,
  // through one nothing references, with a garbage collection while both are pending.
  const script = `
    const { FuseProcessManager } = require(${JSON.stringify(index)})
    const options = { pidDir: ${JSON.stringify(box.pidDir)}, command: 'sh', args: () => ['-c', 'sleep 0.1; exit 3', ${JSON.stringify(box.marker)}], ready: 'alive', settleMs: 60000 }
    const m = new FuseProcessManager(options)
    const outcome = (p) => p.then(() => 'spawned', (err) => err.reason + ' ' + err.exitCode)
    ;(async () => {
      for (let i = 0; i < 12; i++) {
        const both = [outcome(m.spawn('kept' + i, null)), outcome(new FuseProcessManager(options).spawn('free' + i, null))]
        global.gc()
        console.log((await Promise.all(both)).join(', '))
      }
      const k = new FuseProcessManager({ ...options, command: 'sleep', args: () => ['600', ${JSON.stringify(box.marker)}], settleMs: 20 })
      await k.spawn('live', null)
      const killed = k.kill('live')
      global.gc()
      console.log('killed ' + (await killed))
    })()`
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve) =>
    execFile(process.execPath, ['--expose-gc', '-e', script], { timeout: 60_000 }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout }),
    ),
  )
  t.is(out.code, 0)
  t.is(out.stdout, 'exited 3, exited 3\n'.repeat(12) + 'killed true\n')
  t.deepEqual(daemonsWith(box.marker), [])
})
