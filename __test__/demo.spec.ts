import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

import { deadline } from './helpers.ts'

const DEMO = fileURLToPath(new URL('../examples/prefork-demo.js', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Runs the demo to its end (SIGKILLed if it outlives `ms`). */
async function runDemo(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const child = spawn(process.execPath, [DEMO], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  )
  try {
    return { ...(await deadline(exited, ms, 'the demo to exit')), output }
  } catch (err) {
    child.kill('SIGKILL')
    throw new Error(`${(err as Error).message}; output so far:\n${output}`)
  }
}

test("the prefork demo serves from 4 slots, gives a SIGKILLed worker's slot to its replacement, and cleans up", async (t) => {
  const { code, signal, output } = await runDemo(60_000)
  t.is(signal, null)
  t.is(code, 0, output)

  const freed = /SIGKILL worker #\d+ \(pid (\d+)\), the holder of slot 1\b/.exec(output)
  t.truthy(freed, 'the demo kills the holder of slot 1')
  const took = /replacement worker #\d+ pid (\d+) took slot 1, the slot freed by pid (\d+)/.exec(output)
  t.truthy(took, 'the replacement reports taking the freed slot')
  t.is(took?.[2], freed?.[1], 'the freed slot is the one the killed worker held')
  t.not(took?.[1], took?.[2])
  t.regex(output, /the replacement answered request \d+ of \d+/)

  const file = /^slot file: (.+)$/m.exec(output)?.[1]
  t.truthy(file)
  t.false(existsSync(dirname(file!)), 'the temporary directory is removed')
})
