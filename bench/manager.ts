/**
 * The FUSE process manager's benchmarks: loading 10,000 PID files at construction, spawn to ready (a
 * bindfs mount, and `ready: 'alive'`), kill of a SIGTERM-obeying process, isRunning on a tracked
 * target, deaths reported, idle watching, and 10,000 live daemons adopted and watched — each against a
 * baseline in the same run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { openProcess, watchedCount } from '../binding.js'
import { FuseProcessManager } from '../index.js'
import { compare, compareAsync, stats, type AsyncBench, type Case, type Comparison } from './harness.ts'

/** A row of the report (see harness.ts). */
export type ManagerCase = Case

const FILES = 10_000

/** The tests' fixture that starts adoptable daemons by the thousand, with their PID files. */
const SLEEPERS = fileURLToPath(new URL('../__test__/fixtures/sleepers.py', import.meta.url))

/**
 * The baseline of a kill: a plain `ChildProcess` (`sleep`) started before each sample, then `signal` and its
 * `exit` event.
 */
function childKilled(name: string, signal: NodeJS.Signals): AsyncBench {
  let child: ChildProcess | undefined
  return {
    name,
    before: async () => {
      child = spawn('sleep', ['3600'], { stdio: 'ignore' })
      await once(child, 'spawn')
    },
    fn: async () => {
      const exited = once(child!, 'exit')
      child!.kill(signal)
      await exited
    },
  }
}

async function gc(): Promise<void> {
  ;(globalThis as { gc?: () => void }).gc?.()
  await tick()
}

function isMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path)
}

/** Resolves once `pid` has made `path` a mount point (the mount table's change waited for, not polled). */
async function mountedAt(pid: number, path: string): Promise<void> {
  const out = await openProcess(pid)!.waitMount(path, 10_000)
  if (out.outcome !== 'mounted') throw new Error(`bindfs did not mount ${path}: ${out.outcome}`)
}

function hasBindfs(): boolean {
  return spawnSync('bindfs', ['--version']).status === 0 && process.getuid?.() === 0
}

export async function managerCases(dir: string, progress: (m: string) => void): Promise<ManagerCase[]> {
  const out: ManagerCase[] = []
  const sleepers: ChildProcess[] = []
  try {
    // 5. Construction over 10,000 PID files naming live processes (all adopted), vs reading them with fs.
    progress(`5/15 new FuseProcessManager over ${FILES} PID files vs an fs read loop`)
    const pidDir = join(dir, 'pids-10k')
    mkdirSync(pidDir, { recursive: true })
    for (let i = 0; i < 4; i++) {
      const s = spawn('sleep', ['3600'], { stdio: 'ignore' })
      await once(s, 'spawn')
      sleepers.push(s)
    }
    for (let i = 0; i < FILES; i++) writeFileSync(join(pidDir, `target-${i}.pid`), `${sleepers[i % 4]!.pid}\n`)
    let loaded = 0
    let last: FuseProcessManager | undefined
    const c5 = await compareAsync(
      {
        name: `new FuseProcessManager (${FILES} PID files)`,
        fn: async () => {
          last = new FuseProcessManager({ pidDir, command: 'true' })
          loaded = last.loaded
        },
        after: async () => {
          last?.close()
          await gc()
        },
      },
      {
        name: 'readdirSync + readFileSync + parseInt each',
        fn: async () => {
          let sum = 0
          for (const name of readdirSync(pidDir)) {
            if (name.endsWith('.pid')) sum += Number.parseInt(readFileSync(join(pidDir, name), 'utf8'), 10)
          }
          return sum
        },
      },
      { samples: 15, maxTimeMs: 15_000 },
    )
    if (loaded !== FILES) throw new Error(`loaded ${loaded} of ${FILES} PID files`)
    out.push({ name: c5.ours.name, comparison: c5, aim: 'median ≤ 100 ms', met: c5.ours.median <= 100e6 })

    const baselineSpawn = {
      name: "child_process.spawn('true') to exit",
      fn: async () => {
        const c = spawn('true', { stdio: 'ignore' })
        await once(c, 'exit')
      },
    }

    // 6. spawn to ready: a bindfs mount.
    if (hasBindfs()) {
      progress('6/15 spawn to ready, bindfs mount')
      const src = join(dir, 'src')
      mkdirSync(src, { recursive: true })
      const m = new FuseProcessManager({ pidDir: join(dir, 'pids-bindfs'), command: 'bindfs', args: ({ mountPath }) => ['-f', src, mountPath] })
      const mnt = join(dir, 'mnt')
      const c6 = await compareAsync(
        { name: "spawn(), ready: 'mount' (bindfs)", fn: () => m.spawn('b', mnt), after: async () => void (await m.kill('b')) },
        baselineSpawn,
        { samples: 20 },
      )
      out.push({ name: c6.ours.name, comparison: c6, aim: null, met: null })

      // 6b. kill() of a bindfs daemon vs the bare work: SIGTERM to a bindfs the benchmark started itself,
      // its exit, its mount gone (bindfs unmounts on SIGTERM).
      progress('6b/15 kill() of a bindfs daemon vs SIGTERM + exit + mount gone')
      const bare = join(dir, 'mnt-bare')
      mkdirSync(bare, { recursive: true })
      let child: ChildProcess | undefined
      const c6b = await compareAsync(
        { name: 'kill() of a bindfs daemon (until its group and mount are gone)', before: async () => void (await m.spawn('b', mnt)), fn: () => m.kill('b') },
        {
          name: 'SIGTERM to a bindfs + its exit + mount gone',
          before: async () => {
            child = spawn('bindfs', ['-f', src, bare], { stdio: 'ignore' })
            await once(child, 'spawn')
            await mountedAt(child.pid!, bare)
          },
          fn: async () => {
            const exited = once(child!, 'exit')
            child!.kill('SIGTERM')
            await exited
            if (isMounted(bare)) throw new Error(`${bare} is still mounted`)
          },
        },
        { samples: 40, maxTimeMs: 30_000 },
      )
      out.push({ name: c6b.ours.name, comparison: c6b, aim: '≤ 1.5× the bare work', met: c6b.ratio <= 1.5 })
    } else {
      progress('6/15 skipped: bindfs (and root) needed')
    }

    // 7. spawn to ready with ready: 'alive' (the settle time, 250 ms by default, is most of it).
    progress("7/15 spawn to ready, ready: 'alive'")
    const alive = new FuseProcessManager({ pidDir: join(dir, 'pids-alive'), command: 'sleep', args: () => ['3600'], ready: 'alive' })
    const c7 = await compareAsync(
      { name: "spawn(), ready: 'alive' (settleMs 250)", fn: () => alive.spawn('a', join(dir, 'mnt-a')), after: async () => void (await alive.kill('a', { force: true })) },
      baselineSpawn,
      { samples: 10 },
    )
    out.push({ name: c7.ours.name, comparison: c7, aim: null, met: null })

    // 8. kill of a SIGTERM-obeying process vs child.kill() + its exit event.
    progress('8/15 kill() of a SIGTERM-obeying process vs child.kill() + exit')
    const quick = new FuseProcessManager({ pidDir: join(dir, 'pids-kill'), command: 'sleep', args: () => ['3600'], ready: 'alive', settleMs: 0 })
    const c8 = await compareAsync(
      { name: 'kill() (SIGTERM, sleep)', before: async () => void (await quick.spawn('k', join(dir, 'mnt-k'))), fn: () => quick.kill('k') },
      childKilled("child.kill('SIGTERM') + 'exit'", 'SIGTERM'),
      { samples: 40 },
    )
    out.push({ name: c8.ours.name, comparison: c8, aim: 'median ≤ 20 ms', met: c8.ours.median <= 20e6 })

    // 9. isRunning on a tracked target vs process.kill(pid, 0).
    progress('9/15 isRunning() on a tracked target vs process.kill(pid, 0)')
    const { pid } = await quick.spawn('r', join(dir, 'mnt-r'))
    const c9 = compare(
      { name: 'isRunning(target), tracked (PID file checked)', fn: () => quick.isRunning('r'), batch: 100 },
      { name: 'process.kill(pid, 0)', fn: () => process.kill(pid, 0), batch: 100 },
      { maxSamples: 2000, maxTimeMs: 1500 },
    )
    await quick.kill('r', { force: true })
    out.push({ name: c9.ours.name, comparison: c9, aim: 'median ≤ 2 µs', met: c9.ours.median <= 2000 })

    // 10. A watched daemon's death: SIGKILL to the manager's exit event, vs Node's own 'exit' of a child.
    progress("10/15 SIGKILL to the 'exit' event (watched daemon) vs SIGKILL to a ChildProcess 'exit'")
    const watched = new FuseProcessManager({ pidDir: join(dir, 'pids-exit'), command: 'sleep', args: () => ['3600'], ready: 'alive', settleMs: 0 })
    let victim = 0
    const c10 = await compareAsync(
      {
        name: "SIGKILL -> 'exit' event (watched)",
        before: async () => void (victim = (await watched.spawn('e', join(dir, 'mnt-e'))).pid),
        fn: async () => {
          const exited = once(watched, 'exit')
          process.kill(victim, 'SIGKILL')
          await exited
        },
        after: async () => void watched.cleanupDeadProcesses(),
      },
      childKilled("SIGKILL -> ChildProcess 'exit'", 'SIGKILL'),
      { samples: 100, maxTimeMs: 30_000 },
    )
    watched.close()
    out.push({ name: c10.ours.name, comparison: c10, aim: 'max ≤ 100 ms', met: c10.ours.max <= 100e6 })

    // 11. SIGKILL of a bindfs daemon to its restarted mount answering, vs killing and spawning by hand.
    if (hasBindfs()) {
      progress('11/15 SIGKILL to a restarted bindfs mount answering vs kill() + spawn() by hand')
      const src = join(dir, 'src')
      mkdirSync(src, { recursive: true })
      writeFileSync(join(src, 'f'), 'x')
      const bindfs = (name: string, restart: 'no' | 'always') =>
        new FuseProcessManager({
          pidDir: join(dir, `pids-${name}`),
          command: 'bindfs',
          args: ({ mountPath }) => ['-f', src, mountPath],
          restart,
          restartDelayMs: 0,
          maxRestarts: 1_000_000,
        })
      const sup = bindfs('restart', 'always')
      const byHand = bindfs('by-hand', 'no')
      const [m1, m2] = [join(dir, 'mnt-restart'), join(dir, 'mnt-by-hand')]
      let current = (await sup.spawn('r', m1)).pid
      await byHand.spawn('h', m2)
      const c11 = await compareAsync(
        {
          name: 'SIGKILL -> restarted bindfs mount answering (restart: always)',
          fn: async () => {
            const restarted = once(sup, 'restart') as Promise<[{ pid: number }]>
            process.kill(current, 'SIGKILL')
            current = (await restarted)[0].pid
            readdirSync(m1)
          },
        },
        {
          name: 'kill({ force }) + spawn() by hand, mount answering',
          fn: async () => {
            await byHand.kill('h', { force: true })
            await byHand.spawn('h', m2)
            readdirSync(m2)
          },
        },
        { samples: 20, maxTimeMs: 30_000 },
      )
      await sup.cleanupAll({ force: true })
      await byHand.cleanupAll({ force: true })
      out.push({ name: c11.ours.name, comparison: c11, aim: null, met: null })
    } else {
      progress('11/15 skipped: bindfs (and root) needed')
    }

    // 12. Watching 1,000 idle daemons: threads, memory, and CPU per idle second, vs the same process
    // with the daemons running and no manager.
    progress('12/15 watching 1000 idle daemons: CPU per idle second, threads, memory')
    const idleDir = join(dir, 'pids-idle')
    mkdirSync(idleDir, { recursive: true })
    const idle: ChildProcess[] = []
    for (let i = 0; i < 1000; i++) {
      const c = spawn('sleep', ['3600'], { stdio: 'ignore' })
      idle.push(c)
    }
    await Promise.all(idle.map((c) => once(c, 'spawn')))
    sleepers.push(...idle)
    idle.forEach((c, i) => writeFileSync(join(idleDir, `idle-${i}.pid`), `${c.pid}
`))
    const threads = () => readdirSync('/proc/self/task').length
    const watcherThreads = () =>
      readdirSync('/proc/self/task').filter((task) => readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'procslot-watch').length
    const rss = () => process.memoryUsage().rss
    const cpuPerSecond = async (): Promise<number> => {
      const before = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      await new Promise((r) => setTimeout(r, 1000)) // measuring an idle second, not synchronizing
      const used = process.cpuUsage(before)
      const elapsed = Number(process.hrtime.bigint() - t0)
      return ((used.user + used.system) * 1000 * 1e9) / elapsed // ns of CPU per second
    }
    const base: number[] = []
    for (let i = 0; i < 3; i++) base.push(await cpuPerSecond())
    const [threads0, rss0] = [threads(), rss()]
    const watcher = new FuseProcessManager({ pidDir: idleDir, command: 'true' })
    await tick()
    await tick()
    const [threads1, rss1] = [threads(), rss()]
    const ours: number[] = []
    for (let i = 0; i < 3; i++) ours.push(await cpuPerSecond())
    const name = `watching 1000 idle daemons: CPU ns per idle second (${watcherThreads()} watcher thread in the process, +${threads1 - threads0} threads, +${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB RSS)`
    const c12: Comparison = {
      ours: stats(name, 1, ours),
      baseline: stats('the same process, no manager', 1, base),
      ratio: 0,
    }
    watcher.close()
    out.push({
      name,
      comparison: { ...c12, ratio: c12.ours.median / Math.max(1, c12.baseline.median) },
      aim: 'no measurable CPU while idle',
      met: c12.ours.median - c12.baseline.median < 1e6, // under 0.1 % of a core
    })

    // 13-15. 10,000 live daemons, each its own process and PID file: adopted and watched.
    if (spawnSync('python3', ['--version']).status === 0) {
      out.push(...(await tenThousand(dir, pidDir, progress)))
    } else {
      progress('13/15 skipped: python3 needed to start 10,000 daemons')
    }
  } finally {
    for (const s of sleepers) s.kill('SIGKILL')
  }
  return out
}

/**
 * 13: construction over 10,000 PID files of 10,000 live daemons, until every one is watched, against the
 * 10,000-PID-file load of case 5 (files naming 4 processes: nothing to watch after it). 14: a SIGKILL to
 * its `exit` event with 10,000 watched, against Node's own `exit` of a child. 15: descriptors per watched
 * daemon.
 */
async function tenThousand(dir: string, loadDir: string, progress: (m: string) => void): Promise<ManagerCase[]> {
  progress(`13/15 starting ${FILES} daemons (sleep) with their PID files`)
  const out: ManagerCase[] = []
  const pidDir = join(dir, 'pids-10k-live')
  mkdirSync(pidDir, { recursive: true })
  const starter = spawn('python3', [SLEEPERS, String(FILES), pidDir], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, SLEEPERS_MARKER: '3600' },
  })
  try {
    const [line] = (await once(createInterface({ input: starter.stdout! }), 'line')) as [string]
    const pids = (JSON.parse(line) as { pids: number[] }).pids
    progress(`13/15 new FuseProcessManager over ${FILES} live daemons, until all are watched`)
    const fds = () => readdirSync('/proc/self/fd').length
    const fds0 = fds()
    let m: FuseProcessManager | undefined
    const c13 = await compareAsync(
      {
        name: `new FuseProcessManager (${FILES} live daemons), until all are watched`,
        fn: async () => {
          m = new FuseProcessManager({ pidDir, command: 'true' })
          while (watchedCount() < FILES) await tick() // the watches begin on the next turn of the loop
        },
        after: async () => {
          m?.close()
          await gc()
        },
      },
      {
        name: `new FuseProcessManager (${FILES} PID files naming 4 processes, as in the load case)`,
        fn: async () => new FuseProcessManager({ pidDir: loadDir, command: 'true' }).close(),
        after: gc,
      },
      { samples: 7, maxTimeMs: 30_000 },
    )
    out.push({ name: c13.ours.name, comparison: c13, aim: null, met: null })

    progress(`14/15 SIGKILL to the 'exit' event with ${FILES} daemons watched`)
    const watching = new FuseProcessManager({ pidDir, command: 'true' })
    while (watchedCount() < FILES) await tick()
    const perDaemon = (fds() - fds0) / FILES
    let next = 0
    const c14 = await compareAsync(
      {
        name: `SIGKILL -> 'exit' event (${FILES} watched)`,
        fn: async () => {
          const exited = once(watching, 'exit')
          process.kill(pids[next++]!, 'SIGKILL')
          await exited
        },
      },
      childKilled("SIGKILL -> ChildProcess 'exit'", 'SIGKILL'),
      { samples: 100, maxTimeMs: 30_000 },
    )
    out.push({ name: c14.ours.name, comparison: c14, aim: 'max ≤ 100 ms', met: c14.ours.max <= 100e6 })

    progress('15/15 descriptors per watched daemon')
    const name = `descriptors per watched daemon: ${perDaemon.toFixed(3)} (${FILES} watched, ${watching.getStats().unwatched} without a pidfd; the columns count descriptors, not ns)`
    const c15 = stats(name, 1, [perDaemon])
    out.push({
      name,
      comparison: { ours: c15, baseline: stats('one pidfd per daemon', 1, [1]), ratio: perDaemon },
      aim: '≤ 1',
      met: perDaemon <= 1.01,
    })
    watching.close()
  } finally {
    starter.stdin!.end()
  }
  return out
}
