import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { SlotTable } from '../index.js'
import { Holder, deadline, tempDir } from './helpers.ts'

const CLI = fileURLToPath(new URL('../lib/cli/index.js', import.meta.url))
const EXAMPLES = fileURLToPath(new URL('../examples/exec/', import.meta.url))
const NODE_PROGRAM = fileURLToPath(new URL('./fixtures/exec-node.cjs', import.meta.url))
const linuxOnly = process.platform === 'linux' ? test : test.skip

/** A directory with a `procslot` command on it (the CLI under test), for PATH. */
function binDir(dir: string): string {
  const bin = join(dir, 'bin')
  mkdirSync(bin, { recursive: true })
  writeFileSync(join(bin, 'procslot'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
  chmodSync(join(bin, 'procslot'), 0o755)
  return bin
}

function word(file: string, slot: number): number {
  return readFileSync(file).readUInt32LE(slot * 8)
}

/** Runs a command to its end, asynchronously (the racing processes need the event loop). */
function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.once('error', reject)
    // 'close', not 'exit': the output may still be in the pipes when the process has exited.
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

linuxOnly('16 execs racing on 8 slots with --wait all run, at most 8 at once, never two on one ID', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const log = join(dir, 'log')
  const script =
    `echo "start $PROCSLOT_ID $(date +%s%N)" >> ${log}; ` +
    `test "$PROCSLOT_COUNT" = 8; ` +
    `sleep 0.2; echo "end $PROCSLOT_ID $(date +%s%N)" >> ${log}`
  const runs = await deadline(
    Promise.all(
      Array.from({ length: 16 }, () =>
        run([process.execPath, CLI, 'exec', '--file', file, '--slots', '8', '--wait', '60000', '--', 'sh', '-c', script]),
      ),
    ),
    120_000,
    'the 16 execs',
  )
  for (const r of runs) t.is(r.code, 0, r.stderr)
  const events = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([kind, id, ns]) => ({ kind: kind!, id: Number(id), at: BigInt(ns!) }))
  t.is(events.length, 32)
  // Per ID, the intervals never overlap; overall, at most 8 run at once.
  const open = new Map<number, bigint>()
  let running = 0
  let most = 0
  for (const e of events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.kind === 'end' ? -1 : 1))) {
    if (e.kind === 'start') {
      t.false(open.has(e.id), `ID ${e.id} held twice at once`)
      open.set(e.id, e.at)
      most = Math.max(most, ++running)
    } else {
      open.delete(e.id)
      running--
    }
  }
  t.true(most <= 8, `${most} at once`)
  t.true(events.every((e) => e.id >= 0 && e.id < 8))
})

linuxOnly("the exec'd program holds the slot: its word names it, procslot slots shows its command, SIGKILL frees it at once", async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const child = spawn(process.execPath, [CLI, 'exec', '--file', file, '--slots', '1', '--', 'sh', '-c', 'echo "ready $PROCSLOT_ID"; exec sleep 300'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const line = await deadline(
    new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve)),
    20_000,
    'the program to start',
  )
  t.is(line, 'ready 0')
  t.is(word(file, 0), child.pid!, 'same PID as the procslot process it replaced')
  const listing = JSON.parse(spawnSync(process.execPath, [CLI, 'slots', '--json', file], { encoding: 'utf8' }).stdout) as {
    slots: { pid: number; alive: boolean; command: string | null }[]
  }
  t.like(listing.slots[0], { pid: child.pid, alive: true, command: 'sleep 300' })
  const table = SlotTable.open(file)
  t.teardown(() => table.close())
  t.throws(() => table.acquire(), { code: 'ESLOTSFULL' })
  child.kill('SIGKILL')
  await deadline(exited, 20_000, 'the program to die')
  t.is(table.acquire(), 0, 'free the moment the program is gone')
})

linuxOnly('a Node.js program under procslot exec gets the inherited ID from getProcessId and holds no second slot', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 3 }).close()
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('id')).id, 0)
  const child = spawn(process.execPath, [CLI, 'exec', '--file', file, '--preferred', '2', '--', process.execPath, NODE_PROGRAM], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const line = await deadline(
    new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve)),
    20_000,
    'the program to report',
  )
  const report = JSON.parse(line) as { pid: number; id: number; env: number; mine: { slot: number; alive: boolean; self: boolean }[] }
  t.is(report.pid, child.pid!)
  t.is(report.env, 2)
  t.is(report.id, 2, 'getProcessId finds the inherited slot')
  t.deepEqual(report.mine, [{ slot: 2, alive: true, self: true }], 'one slot names it, and it is its own')
  child.stdin!.end()
  t.is((await new Promise((resolve) => child.once('exit', resolve))) as number, 0)
  t.is(word(file, 1), 0, 'slot 1 was never taken')
})

linuxOnly('no slot within --wait: exit 75 with a one-line reason; a missing command: exit 127', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  SlotTable.open(file, { slots: 1 }).close()
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('id')).id, 0)
  const started = performance.now()
  const full = await run([process.execPath, CLI, 'exec', '--file', file, '--wait', '300', '--', 'true'])
  t.is(full.code, 75)
  t.true(performance.now() - started >= 300)
  t.regex(full.stderr, /^procslot: exec: all 1 slots of .* stayed held for \d+ ms \(--wait 300\); not running true\n$/)
  await holder.ask('release')
  const missing = await run([process.execPath, CLI, 'exec', '--file', file, '--', join(dir, 'no-such-program')])
  t.is(missing.code, 127)
  t.regex(missing.stderr, /cannot run .*no-such-program: No such file or directory \(ENOENT\)\n$/)
  t.is(word(file, 0), 0, 'the slot was given back')
  const bad = await run([process.execPath, CLI, 'exec', '--slots', 'x', '--', 'true'])
  t.is(bad.code, 2)
  const none = await run([process.execPath, CLI, 'exec', '--file', file])
  t.is(none.code, 2)
})

linuxOnly('the examples: xargs -P over a shell worker, a Python worker, a shell loop', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const env = { ...process.env, PATH: `${binDir(dir)}:${process.env.PATH}` }
  const xargs = await run(
    ['sh', '-c', `seq 1 8 | xargs -P 4 -n1 procslot exec --file ${file} --slots 4 --wait 60000 -- ${join(EXAMPLES, 'worker.sh')}`],
    env,
  )
  t.is(xargs.code, 0, xargs.stderr)
  const lines = xargs.stdout.trim().split('\n')
  t.is(lines.length, 8, xargs.stdout + xargs.stderr)
  for (const l of lines) t.regex(l, /^item \d: worker [0-3] of 4 \(pid \d+\), port 800[0-3], slot file /)

  const py = await run(['procslot', 'exec', '--file', file, '--', 'python3', join(EXAMPLES, 'worker.py')], env)
  t.is(py.code, 0, py.stderr)
  t.like(JSON.parse(py.stdout), { slot: 0, count: 4, shard: '0/4', file })

  const loop = await run(['sh', '-c', `for i in 1 2 3; do procslot exec --file ${file} -- sh -c 'echo $PROCSLOT_ID'; done`], env)
  t.is(loop.code, 0, loop.stderr)
  t.deepEqual(loop.stdout.trim().split('\n'), ['0', '0', '0'], 'each run gives the slot back when it ends')
})
