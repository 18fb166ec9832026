/**
 * The FUSE process manager's benchmarks: loading 10,000 PID files at construction, spawn to ready (a
 * bindfs mount, and `ready: 'alive'`), kill of a SIGTERM-obeying process, and isRunning on a tracked
 * target — each against a plain-Node baseline in the same run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'

import { FuseProcessManager } from '../index.js'
import { compare, compareAsync, type Comparison } from './harness.ts'

export interface ManagerCase {
  readonly name: string
  readonly comparison: Comparison
  readonly aim: string | null
  readonly met: boolean | null
}

const FILES = 10_000

async function gc(): Promise<void> {
  ;(globalThis as { gc?: () => void }).gc?.()
  await tick()
}

function hasBindfs(): boolean {
  return spawnSync('bindfs', ['--version']).status === 0 && process.getuid?.() === 0
}

export async function managerCases(dir: string, progress: (m: string) => void): Promise<ManagerCase[]> {
  const out: ManagerCase[] = []
  const sleepers: ChildProcess[] = []
  try {
    // 5. Construction over 10,000 PID files naming live processes (all adopted), vs reading them with fs.
    progress(`5/9 new FuseProcessManager over ${FILES} PID files vs an fs read loop`)
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
      progress('6/9 spawn to ready, bindfs mount')
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
    } else {
      progress('6/9 skipped: bindfs (and root) needed')
    }

    // 7. spawn to ready with ready: 'alive' (the settle time, 250 ms by default, is most of it).
    progress("7/9 spawn to ready, ready: 'alive'")
    const alive = new FuseProcessManager({ pidDir: join(dir, 'pids-alive'), command: 'sleep', args: () => ['3600'], ready: 'alive' })
    const c7 = await compareAsync(
      { name: "spawn(), ready: 'alive' (settleMs 250)", fn: () => alive.spawn('a', join(dir, 'mnt-a')), after: async () => void (await alive.kill('a', { force: true })) },
      baselineSpawn,
      { samples: 10 },
    )
    out.push({ name: c7.ours.name, comparison: c7, aim: null, met: null })

    // 8. kill of a SIGTERM-obeying process vs child.kill() + its exit event.
    progress('8/9 kill() of a SIGTERM-obeying process vs child.kill() + exit')
    const quick = new FuseProcessManager({ pidDir: join(dir, 'pids-kill'), command: 'sleep', args: () => ['3600'], ready: 'alive', settleMs: 0 })
    let child: ChildProcess | undefined
    const c8 = await compareAsync(
      { name: 'kill() (SIGTERM, sleep)', before: async () => void (await quick.spawn('k', join(dir, 'mnt-k'))), fn: () => quick.kill('k') },
      {
        name: "child.kill('SIGTERM') + 'exit'",
        before: async () => {
          child = spawn('sleep', ['3600'], { stdio: 'ignore' })
          await once(child, 'spawn')
        },
        fn: async () => {
          const exited = once(child!, 'exit')
          child!.kill('SIGTERM')
          await exited
        },
      },
      { samples: 40 },
    )
    out.push({ name: c8.ours.name, comparison: c8, aim: 'median ≤ 20 ms', met: c8.ours.median <= 20e6 })

    // 9. isRunning on a tracked target vs process.kill(pid, 0).
    progress('9/9 isRunning() on a tracked target vs process.kill(pid, 0)')
    const { pid } = await quick.spawn('r', join(dir, 'mnt-r'))
    const c9 = compare(
      { name: 'isRunning(target), tracked (PID file checked)', fn: () => quick.isRunning('r'), batch: 100 },
      { name: 'process.kill(pid, 0)', fn: () => process.kill(pid, 0), batch: 100 },
      { maxSamples: 2000, maxTimeMs: 1500 },
    )
    await quick.kill('r', { force: true })
    out.push({ name: c9.ours.name, comparison: c9, aim: 'median ≤ 2 µs', met: c9.ours.median <= 2000 })
  } finally {
    for (const s of sleepers) s.kill('SIGKILL')
  }
  return out
}
