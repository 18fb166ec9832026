/**
 * A FUSE daemon that hangs (stopped, deadlocked) makes every `stat` of its mount hang; one that dies
 * leaves a mount the attribute cache still answers for a while. The manager never stats a mount path on
 * the JavaScript thread, and decides staleness by the identity of the mount its daemon made.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { SpawnError } from '../index.js'
import { openProcess } from '../binding.js'
import { deadline } from './helpers.ts'
import { alive, fuseTest, logEndsWith, mounted, processesWith, sandbox } from './manager-helpers.ts'

/**
 * A 5 ms interval on this thread: counts its ticks, and the longest gap between two (a call blocking the
 * thread shows as a long gap). `next()` resolves on the next tick.
 */
function ticker() {
  let ticks = 0
  let last = performance.now()
  let longest = 0
  let waiters: Array<() => void> = []
  const timer = setInterval(() => {
    ticks++
    const now = performance.now()
    longest = Math.max(longest, now - last)
    last = now
    const w = waiters
    waiters = []
    w.forEach((f) => f())
  }, 5)
  return {
    ticks: () => ticks,
    longestGapMs: () => longest,
    next: () => new Promise<void>((r) => waiters.push(r)),
    stop: () => (clearInterval(timer), ticks),
  }
}

fuseTest('a SIGSTOPped bindfs daemon blocks nothing: spawn on its mount path rejects in time, stats and cleanup return, the event loop keeps ticking, kill works', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const manager = box.bindfs({ startTimeoutMs: 3_000, killTimeoutMs: 10_000 })
  const { pid } = await manager.spawn('t1', mnt)
  process.kill(pid, 'SIGSTOP')
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT')
    } catch {}
  })
  const clock = ticker()
  const started = Date.now()
  const err = await t.throwsAsync(manager.spawn('t2', mnt), { instanceOf: SpawnError })
  t.true(['mounted', 'timeout'].includes(err!.reason), err!.reason)
  t.true(Date.now() - started < 3_000 + 2_000, 'rejected within startTimeoutMs')
  t.true(manager.isRunning('t1'), 'a stopped daemon is alive')
  t.is((await manager.spawn('t1', mnt)).pid, pid, 'the same target returns its (stopped) daemon')
  const before = clock.ticks()
  const stats = manager.getStats()
  t.like(stats, { totalTracked: 1, alive: 1 })
  t.is(stats.processes[0]!.mountPath, mnt)
  t.is(manager.listAllProcesses().length, 1)
  t.is(manager.cleanupDeadProcesses(), 0)
  // Each returned at once; then the interval still ticks on.
  await deadline(clock.next(), 5_000, 'the interval to tick')
  t.true(clock.ticks() > before, 'the interval ticked after the synchronous calls')
  const killed = Date.now()
  t.true(await manager.kill('t1'), 'SIGTERM and SIGCONT end it')
  t.true(Date.now() - killed < 10_000, 'without waiting for the SIGKILL deadline')
  t.false(alive(pid))
  t.false(mounted(mnt))
  t.true(clock.stop() > 0)
  // Generous: a busy machine delays timers, but a stat of the hung mount would never have returned.
  t.true(clock.longestGapMs() < 2_000, `longest gap between ticks: ${clock.longestGapMs().toFixed(0)} ms`)
})

fuseTest('kill({ force: true }) of a bindfs daemon leaves no stale mount, 20 rounds, and a respawn right after works', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const manager = box.bindfs()
  for (let round = 0; round < 20; round++) {
    const { pid } = await manager.spawn('t1', mnt)
    t.true(await manager.kill('t1', { force: true }))
    t.false(alive(pid), `round ${round}`)
    t.false(mounted(mnt), `round ${round}: no stale mount`)
  }
  await manager.spawn('t1', mnt)
  t.is(readFileSync(join(mnt, 'hello.txt'), 'utf8'), 'hello through FUSE\n')
})

fuseTest('a bindfs daemon SIGKILLed behind the manager’s back and killed or cleaned up at once leaves no stale mount, 20 rounds each', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t1')
  const manager = box.bindfs()
  for (let round = 0; round < 40; round++) {
    const { pid } = await manager.spawn('t1', mnt)
    const h = openProcess(pid)!
    process.kill(pid, 'SIGKILL')
    t.true(await deadline(h.waitExit(10_000), 15_000, 'the daemon to die'))
    // Within a few milliseconds of the death: the attribute cache would still answer a stat.
    const at = Date.now()
    if (round % 2 === 0) t.true(await manager.kill('t1'))
    else t.is(manager.cleanupDeadProcesses(), 1)
    t.true(Date.now() - at < 1_000)
    t.false(mounted(mnt), `round ${round}: no stale mount`)
  }
  await manager.spawn('t1', mnt)
  t.is(readFileSync(join(mnt, 'hello.txt'), 'utf8'), 'hello through FUSE\n')
})

fuseTest('kill resolves only once the whole process group is gone: members that ignore SIGTERM get SIGKILL at the deadline', async (t) => {
  const box = sandbox(t)
  const { FuseProcessManager } = await import('../index.js')
  // The leader exits on SIGTERM; its child ignores it and says who it is.
  const manager = new FuseProcessManager({
    pidDir: box.pidDir,
    command: 'sh',
    args: () => ['-c', `(trap '' TERM; exec sh -c 'echo member $$; exec sleep 600 ${box.marker}') & wait`],
    ready: 'alive',
    settleMs: 50,
  })
  t.teardown(() => manager.cleanupAll({ force: true }))
  const said = logEndsWith(join(box.pidDir, 'grp.log'), '\n')
  const { pid } = await manager.spawn('grp', box.mnt('grp'))
  await deadline(said, 20_000, 'the member to start')
  const member = Number(/member (\d+)/.exec(readFileSync(join(box.pidDir, 'grp.log'), 'utf8'))![1])
  t.true(alive(member))
  const kills: Array<{ signal: string | null }> = []
  manager.on('kill', (e) => kills.push(e))
  const started = Date.now()
  t.true(await manager.kill('grp', { timeoutMs: 300 }))
  t.true(Date.now() - started >= 300, 'the member was given its time')
  t.false(alive(pid))
  t.false(alive(member), 'the member that ignored SIGTERM is gone too')
  t.deepEqual(processesWith(box.marker), [])
  t.is(kills[0]?.signal, 'SIGKILL')
})
