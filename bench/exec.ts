/**
 * `procslot exec`: what taking a slot and execve add to a process start, through the native launcher and
 * through the JavaScript command — each against the bare command in the same run.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { compare, type Case } from './harness.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))
/** The native launcher `npm run build` makes (npm/launcher.cjs). */
export const LAUNCHER = fileURLToPath(
  new URL(`../procslot.${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}.launcher`, import.meta.url),
)

/** The exec cases, in the report's order; the slot file goes in `dir`. */
export function execCases(dir: string, progress: (m: string) => void): Case[] {
  // 7. procslot exec -- true vs true alone: what taking a slot and execve add to a process start. The
  // native launcher (an npm install puts it in place of bin/procslot), as `npm run build` makes it here.
  progress('7/15 procslot exec -- true (native launcher) vs true alone (50 each)')
  const execFile = join(dir, 'exec-slots')
  const c7 = compare(
    {
      name: 'procslot exec -- true (native launcher)',
      fn: () => {
        const r = spawnSync(LAUNCHER, ['exec', '--file', execFile, '--slots', '4', '--', 'true'])
        if (r.status !== 0) throw new Error(`procslot exec failed: ${r.stderr}`)
      },
    },
    { name: 'true', fn: () => spawnSync('true') },
    { warmupMs: 0, minWarmupSamples: 3, maxSamples: 50, minSamples: 50, maxTimeMs: 0 },
  )
  const native = { name: c7.ours.name, comparison: c7, aim: '≤ 5 ms over the command', met: c7.ours.median - c7.baseline.median <= 5e6 }

  // 7b. The same through the JavaScript command (install scripts off): Node.js starts first.
  progress('7b/15 procslot exec -- true through node lib/cli/index.js (20)')
  const c7b = compare(
    {
      name: 'procslot exec -- true (JavaScript command, no launcher)',
      fn: () => {
        const r = spawnSync(process.execPath, [CLI, 'exec', '--file', execFile, '--slots', '4', '--', 'true'])
        if (r.status !== 0) throw new Error(`procslot exec failed: ${r.stderr}`)
      },
    },
    { name: 'true', fn: () => spawnSync('true') },
    { warmupMs: 0, minWarmupSamples: 2, maxSamples: 20, minSamples: 20, maxTimeMs: 0 },
  )
  return [native, { name: c7b.ours.name, comparison: c7b, aim: null, met: null }]
}
