import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { deadline } from './helpers.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(ROOT, 'lib', 'cli', 'index.js')

/** Runs the demo to its end (SIGKILLed if it outlives `ms`). */
async function runDemo(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const child = spawn(process.execPath, [CLI, 'demo'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
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

test('npm run demo and the procslot bin run the same demo', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> }
  // The bin is the JavaScript command (an npm install puts the native launcher in its place, which
  // hands every subcommand but exec to lib/cli/index.js): both run lib/cli/index.js.
  t.is(pkg.bin.procslot, 'bin/procslot')
  t.regex(readFileSync(join(ROOT, 'bin', 'procslot'), 'utf8'), /require\('\.\.\/lib\/cli\/index\.js'\)\.runCommandLine\(\)/)
  t.regex(pkg.scripts.demo!, /&& node lib\/cli\/index\.js demo$/)
})

test("procslot demo serves from 4 slots, gives a SIGKILLed worker's slot to its replacement, and cleans up", async (t) => {
  const { code, signal, output } = await runDemo(60_000)
  t.is(signal, null)
  t.is(code, 0, output)

  const freed = /SIGKILL worker #\d+ \(pid (\d+)\), the holder of slot 1\b/.exec(output)
  t.truthy(freed, 'the demo kills the holder of slot 1')
  const took = /replacement worker #\d+ pid (\d+) took slot 1, the slot freed by pid (\d+)/.exec(output)
  t.truthy(took, 'the replacement reports taking the freed slot')
  t.is(took?.[2], freed?.[1], 'the freed slot is the one the killed worker held')
  t.not(took?.[1], took?.[2])
  t.regex(output, /the replacement answered request \d+ of \d+ with processId 1\b/)

  const tables = output.match(/^ +slot +pid +alive +worker +started +command$/gm) ?? []
  t.is(tables.length, 4, 'the slot table is printed after each step that changes it')
  t.regex(output, new RegExp(`^ +1 +${freed?.[1]} +no \\(free\\) +#\\d+ \\(SIGKILLed\\)`, 'm'), 'the killed holder is shown dead')
  t.regex(output, /^ +3 +- +free +-$/m, 'the table at the end is all free')

  const file = /^slot file: (.+)$/m.exec(output)?.[1]
  t.truthy(file)
  t.false(existsSync(dirname(file!)), 'the temporary directory is removed')
})
