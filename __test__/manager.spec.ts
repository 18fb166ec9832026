import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { FuseProcessManager, InvalidTargetIdError, PidFileError, SpawnError, type Logger } from '../index.js'
import { NativePidFileStore, openProcess } from '../binding.js'
import { deadline, inCI, isRoot } from './helpers.ts'
import {
  alive,
  daemonsWith,
  fuseReady,
  fuseTest,
  hasBindfs,
  hasFuse,
  logEndsWith,
  managerProcess,
  mounted,
  processesWith,
  sandbox,
  victim,
} from './manager-helpers.ts'

test('FUSE is available in CI (bindfs, /dev/fuse, root)', (t) => {
  if (!inCI && !fuseReady) {
    t.pass('not in CI: FUSE tests are skipped on this machine')
    return
  }
  t.true(hasBindfs, 'bindfs is installed (apt-get install bindfs)')
  t.true(hasFuse, '/dev/fuse exists')
  t.true(isRoot, 'the tests run as root')
})

fuseTest('spawn resolves once the bindfs mount is ready and writes a PID file holding the daemon’s PID', async (t) => {
  const box = sandbox(t)
  const manager = box.bindfs()
  const spawned: unknown[] = []
  manager.on('spawn', (info) => spawned.push(info))
  const mountPath = box.mnt('t1')
  const info = await manager.spawn('t1', mountPath)
  t.true(mounted(mountPath))
  t.is(readFileSync(join(mountPath, 'hello.txt'), 'utf8'), 'hello through FUSE\n')
  t.is(readFileSync(join(box.pidDir, 't1.pid'), 'utf8'), `${info.pid}\n`)
  t.true(processesWith(mountPath).includes(info.pid))
  t.like(info, { targetId: 't1', mountPath, status: 'running', alive: true, loadedFromDisk: false })
  t.is(info.pidFile, join(box.pidDir, 't1.pid'))
  t.true(info.pidFileExists)
  t.deepEqual(spawned, [info])
  t.true(existsSync(join(box.pidDir, 't1.log')), 'output goes to a log file')
  const again = await manager.spawn('t1', mountPath)
  t.is(again.pid, info.pid, 'a running target is returned, not spawned again')
  t.is(manager.getStats().allPidsEverSpawned, 1)
})

fuseTest('kill stops the daemon with SIGTERM, unmounts, and removes its PID file', async (t) => {
  const box = sandbox(t)
  const manager = box.bindfs({ killTimeoutMs: 30_000 })
  const mountPath = box.mnt('t1')
  const { pid } = await manager.spawn('t1', mountPath)
  const kills: unknown[] = []
  manager.on('kill', (e) => kills.push(e))
  const started = Date.now()
  t.true(await manager.kill('t1'))
  // Resolved on the exit itself: far sooner than the 30 s deadline that would mean "waited it out".
  t.true(Date.now() - started < 10_000)
  t.false(alive(pid))
  t.false(mounted(mountPath))
  t.false(existsSync(join(box.pidDir, 't1.pid')))
  t.false(manager.isRunning('t1'))
  t.deepEqual(kills, [{ targetId: 't1', pid, signal: 'SIGTERM' }])
  t.true(await manager.kill('t1'), 'an unknown target resolves true')
})

fuseTest('a daemon killed behind the manager’s back emits exit with its mount and PID file already gone; it stays as exited until cleanupDeadProcesses', async (t) => {
  const box = sandbox(t)
  const manager = box.bindfs()
  const mountPath = box.mnt('t1')
  const { pid } = await manager.spawn('t1', mountPath)
  const exit = once(manager, 'exit')
  process.kill(pid, 'SIGKILL')
  const [event] = await deadline(exit, 20_000, 'the exit event')
  t.deepEqual(event, { targetId: 't1', pid, code: null, signal: 'SIGKILL' })
  t.false(mounted(mountPath), 'the mount the dead daemon left was unmounted at once')
  t.false(existsSync(join(box.pidDir, 't1.pid')))
  t.false(existsSync(join(box.pidDir, '.t1.record')))
  t.false(manager.isRunning('t1'))
  t.is(manager.getProcessInfo('t1')?.status, 'exited')
  t.is(manager.cleanupDeadProcesses(), 1)
  t.is(manager.getProcessInfo('t1'), null)
  // The mount point is usable again: a new daemon mounts there.
  await manager.spawn('t1', mountPath)
  t.is(readFileSync(join(mountPath, 'hello.txt'), 'utf8'), 'hello through FUSE\n')
})

fuseTest('a process that ignores SIGTERM is SIGKILLed after timeoutMs', async (t) => {
  const box = sandbox(t)
  const manager = new FuseProcessManager({
    pidDir: box.pidDir,
    command: 'sh',
    args: () => ['-c', 'trap "" TERM; echo trapped; exec sleep 600'],
    ready: 'alive',
    settleMs: 100,
  })
  t.teardown(() => manager.cleanupAll({ force: true }))
  // Staying up for settleMs does not mean the shell has set its trap yet: wait until it says so.
  const trapped = logEndsWith(join(box.pidDir, 'stubborn.log'), 'trapped\n')
  const { pid } = await manager.spawn('stubborn', box.mnt('stubborn'))
  await deadline(trapped, 20_000, 'the shell to ignore SIGTERM')
  const kills: Array<{ signal: string | null }> = []
  manager.on('kill', (e) => kills.push(e))
  const started = Date.now()
  t.true(await manager.kill('stubborn', { timeoutMs: 300 }))
  t.true(Date.now() - started >= 300, 'SIGTERM was given its time')
  t.false(alive(pid))
  t.is(kills[0]?.signal, 'SIGKILL')
})

fuseTest('kill with force sends SIGKILL at once', async (t) => {
  const box = sandbox(t)
  const manager = box.node(['stay'], { killTimeoutMs: 60_000 })
  const { pid } = await manager.spawn('t1', box.mnt('t1'))
  const kill = once(manager, 'kill')
  t.true(await manager.kill('t1', { force: true }))
  t.like((await kill)[0], { pid, signal: 'SIGKILL' })
  t.false(alive(pid))
})

fuseTest('a daemon that writes megabytes to stdout keeps running (its output goes to the log file)', async (t) => {
  const box = sandbox(t)
  const manager = box.node(['chatty', '8'])
  const logFile = join(box.pidDir, 'chatty.log')
  const done = logEndsWith(logFile, 'done\n')
  const { pid } = await manager.spawn('chatty', box.mnt('chatty'))
  await deadline(done, 30_000, 'the daemon to write 8 MiB')
  t.true(statSync(logFile).size >= 8 * 1024 * 1024)
  t.true(manager.isRunning('chatty'))
  t.true(alive(pid))
})

fuseTest('a daemon that exits at once rejects spawn with a SpawnError carrying the log’s tail, leaving nothing behind', async (t) => {
  const box = sandbox(t)
  // A long settle time: spawn must reject on the exit itself, however slowly node starts on a busy machine.
  const manager = box.node(['fail'], { settleMs: 60_000 })
  const err = await t.throwsAsync(manager.spawn('broken', box.mnt('broken')), { instanceOf: SpawnError })
  t.is(err?.code, 'ESPAWN')
  t.is(err?.reason, 'exited')
  t.is(err?.exitCode, 3)
  t.regex(err?.logTail ?? '', /cannot reach the backend/)
  t.regex(err?.message ?? '', /broken/)
  t.false(manager.isRunning('broken'))
  t.false(existsSync(join(box.pidDir, 'broken.pid')))
  t.is(manager.listAllProcesses().length, 0)
})

fuseTest('a daemon that never mounts is killed after startTimeoutMs and spawn rejects', async (t) => {
  const box = sandbox(t)
  const manager = new FuseProcessManager({ pidDir: box.pidDir, command: 'sleep', args: () => ['600'], startTimeoutMs: 300 })
  const err = await t.throwsAsync(manager.spawn('slow', box.mnt('slow')), { instanceOf: SpawnError })
  t.is(err?.reason, 'timeout')
  t.deepEqual(processesWith(box.dir), [])
  t.false(existsSync(join(box.pidDir, 'slow.pid')))
  t.is(manager.listAllProcesses().length, 0)
})

fuseTest('an unknown command rejects with a SpawnError', async (t) => {
  const box = sandbox(t)
  const manager = new FuseProcessManager({ pidDir: box.pidDir, command: join(box.dir, 'no-such-daemon') })
  const err = await t.throwsAsync(manager.spawn('t1', box.mnt('t1')), { instanceOf: SpawnError })
  t.is(err?.reason, 'spawn')
})

fuseTest('two concurrent spawns of one target start one process', async (t) => {
  const box = sandbox(t)
  const manager = box.bindfs()
  const mountPath = box.mnt('t1')
  const [a, b] = await Promise.all([manager.spawn('t1', mountPath), manager.spawn('t1', mountPath)])
  t.is(a.pid, b.pid)
  t.deepEqual(processesWith(mountPath), [a.pid])
  t.is(manager.getStats().allPidsEverSpawned, 1)
})

fuseTest('two manager processes spawning one target at once start one process', async (t) => {
  const box = sandbox(t)
  const mountPath = box.mnt('shared')
  const args = { pidDir: box.pidDir, src: box.src, mountPath, targetId: 'shared' }
  const [a, b] = await Promise.all([managerProcess(args), managerProcess(args)])
  t.is(a.code, 0, a.error)
  t.is(b.code, 0, b.error)
  t.is(a.pid, b.pid)
  t.deepEqual(processesWith(mountPath), [a.pid!])
  // The managers are gone; the daemon outlived them. Adopt it so the sandbox's teardown kills it.
  t.true(box.bindfs().isRunning('shared'))
})

fuseTest('a restarted manager adopts what the old one spawned, can kill it, and deletes stale PID files', async (t) => {
  const box = sandbox(t)
  const mountPath = box.mnt('t1')
  const first = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath, targetId: 't1' })
  t.is(first.code, 0, first.error)
  t.true(alive(first.pid!), 'the daemon outlives the manager that spawned it')
  t.true(mounted(mountPath))
  writeFileSync(join(box.pidDir, 'dead.pid'), `${spawnSync('true').pid}\n`) // exited and reaped
  const manager = box.bindfs()
  t.is(manager.loaded, 1)
  t.is(manager.cleaned, 1)
  t.false(existsSync(join(box.pidDir, 'dead.pid')))
  const info = manager.getProcessInfo('t1')
  t.like(info, { pid: first.pid, loadedFromDisk: true, alive: true, mountPath, pidFileExists: true })
  t.deepEqual([...manager.processes.keys()], ['t1'])
  t.true(await manager.kill('t1'))
  t.false(alive(first.pid!))
  t.false(mounted(mountPath), 'bindfs unmounts on SIGTERM')
  t.false(existsSync(join(box.pidDir, 't1.pid')))
})

fuseTest('after a restart, what dead daemons left mounted is unmounted: one that died with no manager, one SIGKILLed by kill', async (t) => {
  const box = sandbox(t)
  const [mnt1, mnt2] = [box.mnt('t1'), box.mnt('t2')]
  const first = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath: mnt1, targetId: 't1' })
  const second = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath: mnt2, targetId: 't2' })
  t.is(first.code, 0, first.error)
  t.is(second.code, 0, second.error)
  t.true(existsSync(join(box.pidDir, '.t2.record')), 'the spawner records the mount path beside the PID file')
  // t2's daemon dies while no manager runs, leaving its mount stale.
  const dying = openProcess(second.pid!)!
  process.kill(second.pid!, 'SIGKILL')
  t.true(await deadline(dying.waitExit(20_000), 20_000, 't2 to die'))
  t.true(mounted(mnt2), 'a SIGKILLed FUSE daemon leaves its mount behind')

  const manager = box.bindfs()
  t.is(manager.loaded, 1)
  t.is(manager.cleaned, 1)
  t.false(mounted(mnt2), 'the stale mount went with the stale PID file')
  t.false(existsSync(join(box.pidDir, 't2.pid')))
  t.false(existsSync(join(box.pidDir, '.t2.record')))

  t.is(manager.getProcessInfo('t1')?.mountPath, mnt1)
  t.true(await manager.kill('t1', { force: true }))
  t.false(alive(first.pid!))
  t.false(mounted(mnt1), 'SIGKILL leaves a stale mount; kill unmounts it')
  t.deepEqual(readdirSync(box.pidDir).filter((name) => name.startsWith('.t') || name.endsWith('.pid')), [])
})

fuseTest('a live mount at a dead daemon’s recorded path belongs to someone else and is left alone', async (t) => {
  const box = sandbox(t)
  const mountPath = box.mnt('t1')
  // A PID file and mount path as a spawner would leave them, naming a process that is now gone...
  const gone = spawnSync('true').pid!
  mkdirSync(box.pidDir, { recursive: true })
  writeFileSync(join(box.pidDir, '.t1.record'), mountPath)
  writeFileSync(join(box.pidDir, 't1.pid'), `${gone}\n`)
  // ...while another bindfs, not the manager's, serves that path.
  mkdirSync(mountPath, { recursive: true })
  const other = spawn('bindfs', ['-f', box.src, mountPath], { stdio: 'ignore' })
  t.teardown(() => other.kill('SIGKILL'))
  const serving = openProcess(other.pid!)!
  t.is((await deadline(serving.waitMount(mountPath, 20_000), 20_000, 'the other bindfs to mount')).outcome, 'mounted')
  const manager = box.bindfs()
  t.is(manager.cleaned, 1)
  t.true(mounted(mountPath))
  t.is(readFileSync(join(mountPath, 'hello.txt'), 'utf8'), 'hello through FUSE\n')
  t.false(existsSync(join(box.pidDir, '.t1.record')))
})

fuseTest('isRunning finds a live process through its PID file and loads it', async (t) => {
  const box = sandbox(t)
  const v = await victim(t)
  const manager = box.node(['stay'])
  t.false(manager.isRunning('adopted'))
  writeFileSync(join(box.pidDir, 'adopted.pid'), `${v.pid}\n`)
  t.true(manager.isRunning('adopted'))
  t.like(manager.getProcessInfo('adopted'), { pid: v.pid, loadedFromDisk: true })
  t.is(manager.listAllProcesses().length, 1)
  t.deepEqual(await v.signals(), [])
})

fuseTest('stats count PID files and name the directory; process info carries pidFile and pidFileExists', async (t) => {
  const box = sandbox(t)
  const manager = box.node(['stay'])
  await manager.spawn('a', box.mnt('a'))
  const b = await manager.spawn('b', box.mnt('b'))
  const stats = manager.getStats()
  t.like(stats, { totalTracked: 2, alive: 2, dead: 0, allPidsEverSpawned: 2, pidFilesOnDisk: 2, pidDirectory: box.pidDir })
  t.deepEqual(
    stats.processes.map((p) => [p.targetId, p.pidFile, p.pidFileExists, p.alive]),
    [
      ['a', join(box.pidDir, 'a.pid'), true, true],
      ['b', join(box.pidDir, 'b.pid'), true, true],
    ],
  )
  t.true(stats.processes[0]!.uptimeSeconds >= 0)
  t.deepEqual(
    { pidFile: b.pidFile, pidFileExists: b.pidFileExists },
    { pidFile: join(box.pidDir, 'b.pid'), pidFileExists: true },
  )
})

fuseTest('PID files holding 0, 1, -1, garbage, huge numbers or a reused PID are never signalled', async (t) => {
  const box = sandbox(t)
  const v = await victim(t)
  mkdirSync(box.pidDir, { recursive: true })
  const contents: Record<string, string> = {
    zero: '0\n',
    one: '1\n',
    minus: '-1\n',
    garbage: 'not a pid\n',
    huge: '99999999999999999999\n',
    reused: `${v.pid}\n`,
  }
  for (const [id, text] of Object.entries(contents)) writeFileSync(join(box.pidDir, `${id}.pid`), text)
  // The victim is alive and named by `reused.pid`, but it started after that file was written (an hour
  // ago): the PID was reused by another process.
  const anHourAgo = new Date(Date.now() - 3_600_000)
  utimesSync(join(box.pidDir, 'reused.pid'), anHourAgo, anHourAgo)
  const manager = box.node(['stay'])
  t.is(manager.loaded, 0)
  t.is(manager.cleaned, 6)
  t.deepEqual(readdirSync(box.pidDir).filter((f) => f.endsWith('.pid')), [])
  // And through kill, with the files back in place.
  for (const [id, text] of Object.entries(contents)) writeFileSync(join(box.pidDir, `${id}.pid`), text)
  utimesSync(join(box.pidDir, 'reused.pid'), anHourAgo, anHourAgo)
  const stale: string[] = []
  manager.on('stale', (e) => stale.push(e.targetId))
  for (const id of Object.keys(contents)) {
    t.false(manager.isRunning(id), id)
    t.true(await manager.kill(id, { force: true }), id)
  }
  t.deepEqual(stale.sort(), Object.keys(contents).sort())
  t.deepEqual(await v.signals(), [], 'the victim received nothing')
  t.true(alive(v.pid))
})

fuseTest('target IDs like ../x, a/b and the empty string are rejected with InvalidTargetIdError', async (t) => {
  const box = sandbox(t)
  const manager = box.node(['stay'])
  for (const bad of ['../x', 'a/b', '', '..', '.x', 'a\0b']) {
    await t.throwsAsync(manager.spawn(bad, box.mnt('x')), { instanceOf: InvalidTargetIdError, code: 'EINVALIDTARGET' })
    await t.throwsAsync(manager.kill(bad), { instanceOf: InvalidTargetIdError })
    t.throws(() => manager.isRunning(bad), { instanceOf: InvalidTargetIdError })
    t.throws(() => manager.getProcessInfo(bad), { instanceOf: InvalidTargetIdError })
  }
  t.false(existsSync(box.mnt('x')))
  t.deepEqual(readdirSync(box.pidDir).filter((f) => !f.startsWith('.')), [])
})

fuseTest('a PID file owned by another user is untrusted: reported, never adopted, signalled or deleted', async (t) => {
  const box = sandbox(t)
  const v = await victim(t)
  mkdirSync(box.pidDir, { recursive: true })
  const path = join(box.pidDir, 'theirs.pid')
  writeFileSync(path, `${v.pid}\n`)
  chownSync(path, 65534, 65534)
  const manager = box.node(['stay'])
  t.deepEqual(manager.untrusted.map((u) => u.targetId), ['theirs'])
  t.is(manager.loaded, 0)
  t.false(manager.isRunning('theirs'))
  t.false(await manager.kill('theirs'))
  t.is(manager.cleanupDeadProcesses(), 0)
  t.true(existsSync(path))
  t.deepEqual(await v.signals(), [])
})

fuseTest('secrets in the environment never reach the log; envKeys names what was given', async (t) => {
  const box = sandbox(t)
  const lines: string[] = []
  const record = (fields: object, message: string) => lines.push(`${message} ${JSON.stringify(fields)}`)
  const logger: Logger = { debug: record, info: record, warn: record, error: record }
  const manager = box.node(['stay'], { logger })
  const info = await manager.spawn('t1', box.mnt('t1'), {
    AWS_SECRET_ACCESS_KEY: 'hunter2-a',
    API_TOKEN: 'hunter2-b',
    db_password: 'hunter2-c',
    GitCredential: 'hunter2-d',
    REGION: 'eu-west-1',
  })
  t.deepEqual([...info.envKeys].sort(), ['API_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'GitCredential', 'REGION', 'db_password'])
  const all = lines.join('\n')
  t.notRegex(all, /hunter2/)
  t.regex(all, /eu-west-1/)
  t.regex(all, /\[redacted\]/)
})

fuseTest('the manager never kills its daemons when it is dropped: they outlive it', async (t) => {
  const box = sandbox(t)
  const mountPath = box.mnt('t1')
  const report = await managerProcess({ pidDir: box.pidDir, src: box.src, mountPath, targetId: 't1' })
  t.is(report.code, 0)
  t.true(alive(report.pid!))
  t.true(mounted(mountPath))
  t.true(box.bindfs().isRunning('t1'))
})

fuseTest('a target held busy by another open of its lock rejects spawn with a SpawnError (locked) after startTimeoutMs', async (t) => {
  const box = sandbox(t)
  const manager = box.node(['stay'], { startTimeoutMs: 200 })
  // Another open of the PID directory's lock file holds the target, as another manager process would.
  const held = NativePidFileStore.open(box.pidDir).tryLock('busy')
  t.truthy(held)
  const err = await t.throwsAsync(manager.spawn('busy', box.mnt('busy')), { instanceOf: SpawnError })
  t.is(err?.reason, 'locked')
  t.is(err?.code, 'ESPAWN')
  held!.release()
  // Once it is free, the target can be spawned (by a manager with a deadline a busy machine can meet).
  const info = await box.node(['stay']).spawn('busy', box.mnt('busy'))
  t.true(manager.isRunning('busy'))
  t.is(info.targetId, 'busy')
})

fuseTest('as uid 65534 in a sticky world-writable directory: a planted log symlink and lock file change nothing, and the manager refuses the directory', async (t) => {
  t.true(isRoot, 'another user needs root (CI runs as root)')
  const box = sandbox(t)
  chmodSync(box.dir, 0o711) // the other user may pass through, as through /tmp's parents
  const shared = join(box.dir, 'shared')
  mkdirSync(shared)
  chmodSync(shared, 0o1777)
  const outside = join(box.dir, 'outside.txt')
  writeFileSync(outside, 'precious\n')
  const plant = `ln -s ${outside} ${shared}/t.log && : > ${shared}/.procslot.lock && ln -s ${outside} ${shared}/t.pid`
  execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', plant])
  const err = t.throws(() => new FuseProcessManager({ pidDir: shared, command: 'sleep' }), { instanceOf: PidFileError, code: 'EUNSAFE' })
  t.regex(err!.message, /writable by other users .*sticky/)
  t.throws(() => new FuseProcessManager({ pidDir: box.pidDir, logDir: shared, command: 'sleep' }), {
    instanceOf: PidFileError,
    code: 'EUNSAFE',
  })
  t.is(readFileSync(outside, 'utf8'), 'precious\n')
  t.is(lstatSync(join(shared, 't.log')).isSymbolicLink(), true)
  t.is(statSync(join(shared, '.procslot.lock')).uid, 65534)
  t.is(statSync(join(shared, '.procslot.lock')).size, 0)
})

fuseTest('log files are opened without following links, must be this user’s, and are created with mode 0600; a foreign lock file is refused', async (t) => {
  t.true(isRoot, 'another user needs root (CI runs as root)')
  const box = sandbox(t)
  const manager = box.sleep()
  const outside = join(box.dir, 'outside.txt')
  writeFileSync(outside, 'precious\n')
  symlinkSync(outside, join(box.pidDir, 'linked.log'))
  const linked = await t.throwsAsync(manager.spawn('linked', box.mnt('linked')), { instanceOf: SpawnError })
  t.is(linked!.reason, 'log')
  t.regex(linked!.message, /symbolic link/)
  writeFileSync(join(box.pidDir, 'theirs.log'), '')
  chownSync(join(box.pidDir, 'theirs.log'), 65534, 65534)
  const theirs = await t.throwsAsync(manager.spawn('theirs', box.mnt('theirs')), { instanceOf: SpawnError })
  t.is(theirs!.reason, 'log')
  t.is(readFileSync(outside, 'utf8'), 'precious\n')
  t.deepEqual(daemonsWith(box.marker), [], 'nothing was started')
  await manager.spawn('mine', box.mnt('mine'))
  t.is(statSync(join(box.pidDir, 'mine.log')).mode & 0o777, 0o600)
  chownSync(join(box.pidDir, '.procslot.lock'), 65534, 65534)
  await t.throwsAsync(manager.spawn('other', box.mnt('other')), { instanceOf: PidFileError, code: 'EUNSAFE' })
  chownSync(join(box.pidDir, '.procslot.lock'), 0, 0)
})

fuseTest('spawn of a running target at another mount path rejects with mount-path-differs', async (t) => {
  const box = sandbox(t)
  const manager = box.sleep()
  const { pid } = await manager.spawn('t', box.mnt('a'))
  const err = await t.throwsAsync(manager.spawn('t', box.mnt('b')), { instanceOf: SpawnError })
  t.is(err!.reason, 'mount-path-differs')
  t.regex(err!.message, new RegExp(`PID ${pid}`))
  // Another manager (it knows the path from the spawn record) says the same.
  const other = box.sleep()
  await t.throwsAsync(other.spawn('t', box.mnt('b')), { instanceOf: SpawnError, message: /mount-path|not at/ })
  t.is((await other.spawn('t', box.mnt('a'))).pid, pid)
})

fuseTest('close() frees the manager’s handles and leaves its daemons running; it is idempotent and later calls reject', async (t) => {
  const box = sandbox(t)
  const manager = box.sleep()
  const { pid } = await manager.spawn('t', box.mnt('t'))
  const fds = () => readdirSync('/proc/self/fd').length
  const before = fds()
  manager.close()
  manager[Symbol.dispose]()
  t.true(fds() < before, 'its pidfd was closed')
  t.true(alive(pid), 'the daemon runs on')
  await t.throwsAsync(manager.spawn('t', box.mnt('t')), { code: 'ECLOSED' })
  await t.throwsAsync(manager.kill('t'), { code: 'ECLOSED' })
  const next = box.sleep()
  t.is(next.getProcessInfo('t')?.pid, pid, 'the next manager finds it')
})

fuseTest('load sweeps temporary files of interrupted writes and spawn records whose process is gone', async (t) => {
  const box = sandbox(t)
  mkdirSync(box.pidDir, { recursive: true })
  const gone = spawnSync('true').pid!
  const tmpFile = join(box.pidDir, `.t.pid.${gone}.3.tmp`)
  writeFileSync(tmpFile, '123')
  writeFileSync(join(box.pidDir, '.r.record'), `pid ${gone}\nstart 1\npath ${box.mnt('r')}\n`)
  const manager = box.sleep()
  t.false(existsSync(tmpFile))
  // The record is undone under its target's lock, before any later call on that target.
  t.true(await manager.kill('r'))
  t.false(existsSync(join(box.pidDir, '.r.record')))
})

fuseTest("ready: 'mount' means the daemon handles SIGTERM too: a bindfs signalled the moment spawn resolves unmounts and exits by itself, 10 rounds", async (t) => {
  const box = sandbox(t)
  const manager = box.bindfs()
  for (let round = 0; round < 10; round++) {
    const mnt = box.mnt(`r${round}`)
    const { pid } = await manager.spawn(`r${round}`, mnt)
    const exit = once(manager, 'exit')
    process.kill(pid, 'SIGTERM')
    const [e] = (await deadline(exit, 20_000, `the exit of round ${round}`)) as [{ code: number | null; signal: string | null }]
    // libfuse's handler unmounts and exits 0; without it, SIGTERM kills bindfs and leaves a dead mount.
    t.like(e, { code: 0, signal: null }, `round ${round}`)
    t.false(mounted(mnt))
  }
})
