/**
 * Several managers on one PID directory, and managers killed in the middle of a spawn: the PID directory
 * is the truth, so they never disagree, and a manager that dies leaves nothing the next one cannot see.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { FuseProcessManager } from '../index.js'
import { openProcess } from '../binding.js'
import { deadline } from './helpers.ts'
import { ManagerProcess, alive, daemonsWith, fuseTest, mountsUnder, pool, sandbox } from './manager-helpers.ts'

function pidFile(pidDir: string, targetId: string): number | null {
  try {
    return Number(readFileSync(join(pidDir, `${targetId}.pid`), 'utf8'))
  } catch {
    return null
  }
}

fuseTest('two managers in two processes: one kills and respawns the target, the other sees, returns and kills the new daemon', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t')
  const a = box.sleep()
  const p1 = (await a.spawn('t', mnt)).pid
  const b = await ManagerProcess.start({ pidDir: box.pidDir, daemon: 'sleep', marker: box.marker })
  t.teardown(() => b.stop())
  t.true((await b.call('kill', 't')) as boolean)
  const p2 = (await b.call('spawn', 't', mnt)) as number
  t.false(alive(p1))
  t.not(p2, p1)
  t.true(a.isRunning('t'), 'A sees the daemon B started')
  t.is(a.getProcessInfo('t')?.pid, p2)
  t.is((await a.spawn('t', mnt)).pid, p2, 'A.spawn returns it instead of starting another')
  t.deepEqual(daemonsWith(box.marker), [p2])
  t.true(await a.kill('t'))
  t.false(alive(p2), 'A.kill killed the daemon B started')
  t.deepEqual(daemonsWith(box.marker), [])
  t.false(existsSync(join(box.pidDir, 't.pid')))
  t.false((await b.call('isRunning', 't')) as boolean)
})

fuseTest('100 rounds of two manager processes racing spawn and kill on one target: never two live daemons, never one without its PID file', async (t) => {
  const box = sandbox(t)
  const mnt = box.mnt('t')
  const [a, b] = await Promise.all([
    ManagerProcess.start({ pidDir: box.pidDir, daemon: 'sleep', marker: box.marker }),
    ManagerProcess.start({ pidDir: box.pidDir, daemon: 'sleep', marker: box.marker }),
  ])
  t.teardown(() => Promise.all([a.stop(), b.stop()]))
  let most = 0
  // Looks at the process table at random moments of each round, while the managers race.
  const look = () => {
    most = Math.max(most, daemonsWith(box.marker).length)
  }
  const ops = ['spawn', 'kill'] as const
  for (let round = 0; round < 100; round++) {
    const opA = ops[Math.floor(Math.random() * 2)]!
    const opB = ops[Math.floor(Math.random() * 2)]!
    const looks = [0, 1, 2].map(() => setTimeout(look, Math.random() * 40))
    const [ra, rb] = await Promise.allSettled([a.call(opA, 't', mnt), b.call(opB, 't', mnt)])
    looks.forEach(clearTimeout)
    t.is(ra.status, 'fulfilled', `round ${round}: A ${opA}: ${String((ra as PromiseRejectedResult).reason)}`)
    t.is(rb.status, 'fulfilled', `round ${round}: B ${opB}: ${String((rb as PromiseRejectedResult).reason)}`)
    const live = daemonsWith(box.marker)
    t.true(live.length <= 1, `round ${round}: ${live.length} live daemons`)
    t.is(pidFile(box.pidDir, 't'), live[0] ?? null, `round ${round}: the PID file names the live daemon, or there is none`)
    if (opA === 'spawn' && opB === 'spawn') t.is(live.length, 1)
  }
  t.true(most <= 1, `at most one daemon at any look (${most})`)
})

/**
 * The settle time of the `sleep` daemons killed mid-spawn: long enough that a good share of the kills
 * lands between the record and the PID file.
 */
const SETTLE_MS = 300

/** How long a spawn takes in a manager process here and now (a busy machine is slower): one, timed. */
async function spawnTime(box: ReturnType<typeof sandbox>, daemon: 'sleep' | 'bindfs'): Promise<number> {
  const m = await ManagerProcess.start({ pidDir: box.pidDir, daemon, marker: box.marker, src: box.src, settleMs: SETTLE_MS })
  const started = performance.now()
  await m.call('spawn', 'calibration', box.mnt('calibration'))
  const ms = performance.now() - started
  await m.call('kill', 'calibration')
  await m.stop()
  return ms
}

/**
 * Runs `rounds` manager processes, each SIGKILLed at a random moment of a spawn of its own target
 * (`<prefix><i>`), `concurrency` at a time; resolves when all are dead.
 */
async function killMidSpawn(
  box: ReturnType<typeof sandbox>,
  daemon: 'sleep' | 'bindfs',
  prefix: string,
  rounds: number,
  concurrency: number,
  spawnMs: number,
): Promise<{ finished: number; recordOnly: number; nothing: number }> {
  // Where the kills landed (looked at right after each death, before another manager may tidy up):
  // after the PID file, between the record and the PID file, before the record.
  const phases = { finished: 0, recordOnly: 0, nothing: 0 }
  await pool(rounds, concurrency, async (i) => {
    const m = await ManagerProcess.start({
      pidDir: box.pidDir,
      daemon,
      marker: box.marker,
      src: box.src,
      dieAfterMs: Math.floor(Math.random() * spawnMs),
      settleMs: SETTLE_MS,
    })
    m.send('spawn', `${prefix}${i}`, box.mnt(`${prefix}${i}`))
    const { signal } = await deadline(m.lines.exited, 20_000, 'the manager to be SIGKILLed')
    if (signal !== 'SIGKILL') throw new Error(`manager ${i} ended by ${signal}`)
    if (existsSync(join(box.pidDir, `${prefix}${i}.pid`))) phases.finished++
    else if (existsSync(join(box.pidDir, `.${prefix}${i}.record`))) phases.recordOnly++
    else phases.nothing++
  })
  return phases
}

/** After the kills: what is left runs only if a PID file names it; the rest (gates never opened) ends alone. */
async function onlyRecordedDaemonsRemain(box: ReturnType<typeof sandbox>, prefix: string, rounds: number) {
  const recorded = new Set<number>()
  for (let i = 0; i < rounds; i++) {
    const pid = pidFile(box.pidDir, `${prefix}${i}`)
    if (pid !== null) recorded.add(pid)
  }
  const extra = daemonsWith(box.marker).filter((pid) => !recorded.has(pid))
  return extra
}

fuseTest('100 managers SIGKILLed at random points of a spawn (ready: alive): a new manager leaves no orphan, and every next spawn works', async (t) => {
  const box = sandbox(t)
  const ms = await spawnTime(box, 'sleep')
  t.log(`a spawn takes ${ms.toFixed(0)} ms; where the kills landed:`, await killMidSpawn(box, 'sleep', 's', 100, 6, ms * 4))
  const extra = await onlyRecordedDaemonsRemain(box, 's', 100)
  const manager = box.sleep()
  // Every target again: an unfinished spawn is undone first (under the target's lock), then one starts.
  const pids = new Map<string, number>()
  await pool(100, 10, async (i) => {
    pids.set(`s${i}`, (await manager.spawn(`s${i}`, box.mnt(`s${i}`))).pid)
  })
  // A process no PID file named is either undone by the new manager or a gate that was never opened,
  // which ends by itself: waited for on its exit.
  for (const pid of extra) {
    const h = openProcess(pid)
    if (h !== null && ![...pids.values()].includes(pid)) {
      t.true(await deadline(h.waitExit(10_000), 15_000, `PID ${pid} to end`), `PID ${pid} ended`)
    }
  }
  t.deepEqual(daemonsWith(box.marker).sort(), [...pids.values()].sort(), 'one daemon per target, each named by its PID file')
  for (const [id, pid] of pids) t.is(pidFile(box.pidDir, id), pid)
  await manager.cleanupAll()
  t.deepEqual(daemonsWith(box.marker), [])
})

fuseTest('20 bindfs managers SIGKILLed at random points of a spawn: a new manager leaves no orphan, no stale mount, and every next spawn mounts', async (t) => {
  const box = sandbox(t)
  const ms = await spawnTime(box, 'bindfs')
  t.log(`a spawn takes ${ms.toFixed(0)} ms; where the kills landed:`, await killMidSpawn(box, 'bindfs', 'b', 20, 4, ms * 3))
  const manager = box.bindfs()
  const pids: number[] = []
  await pool(20, 4, async (i) => {
    const info = await manager.spawn(`b${i}`, box.mnt(`b${i}`))
    pids.push(info.pid)
    t.is(readFileSync(join(box.mnt(`b${i}`), 'hello.txt'), 'utf8'), 'hello through FUSE\n')
  })
  t.is(mountsUnder(box.dir).length, 20, 'one mount per target, no leftovers')
  const bindfs = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(box.src)
  await manager.cleanupAll()
  t.deepEqual(mountsUnder(box.dir), [])
  for (const pid of pids) t.false(alive(pid))
  t.false(pids.some((pid) => alive(pid) && bindfs(pid)))
})

fuseTest('a manager SIGKILLed right after a spawn leaves a daemon the next manager adopts', async (t) => {
  const box = sandbox(t)
  const m = await ManagerProcess.start({ pidDir: box.pidDir, daemon: 'sleep', marker: box.marker, dieAfterMs: 10_000 })
  const pid = (await m.call('spawn', 'x', box.mnt('x'))) as number
  await m.lines.kill()
  const manager = new FuseProcessManager({ pidDir: box.pidDir, command: 'sleep', args: () => ['600', box.marker], ready: 'alive', settleMs: 20 })
  t.teardown(() => manager.cleanupAll({ force: true }))
  t.is(manager.loaded, 1)
  t.is(manager.getProcessInfo('x')?.pid, pid)
})
