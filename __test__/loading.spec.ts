// What `require('procslot')` loads (issue 11: a program that only wants its slot pays for the slot code
// and the native binding, nothing else), and that everything loaded later is the same object whoever
// reads it first. Each case runs in a fresh Node.js process, where the module cache starts empty.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

import { tempDir } from './helpers.ts'

const root = join(import.meta.dirname, '..')
const index = join(root, 'index.js')

/** Runs `body` in a fresh process (`p` is the package) and returns what it printed as JSON. */
function fresh<T>(body: string, env: NodeJS.ProcessEnv = process.env): T {
  const script = `
    const before = new Set(Object.keys(require.cache))
    const builtins = new Set(process.moduleLoadList)
    const p = require(${JSON.stringify(index)})
    const loaded = () => Object.keys(require.cache).filter((f) => !before.has(f)).map((f) => require('node:path').relative(${JSON.stringify(root)}, f))
    const builtinsLoaded = () => process.moduleLoadList.filter((m) => !builtins.has(m) && m.startsWith('NativeModule '))
    ${body}
  `
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env })) as T
}

test('require + getProcessId loads the entry, lib/native.js (the binding loader and the process ID helpers) and the binary: no generated loader, load errors, SlotTable, errors, checks or node:os', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const out = fresh<{ id: number; files: string[]; builtins: string[] }>(
    `const id = p.getProcessId(${JSON.stringify(file)}); console.log(JSON.stringify({ id, files: loaded(), builtins: builtinsLoaded() }))`,
  )
  t.is(out.id, 0)
  const binary = out.files.filter((f) => f.endsWith('.node'))
  t.is(binary.length, 1, 'one binary: this platform\'s')
  t.deepEqual(out.files.filter((f) => !f.endsWith('.node')).sort(), ['index.js', 'lib/native.js'])
  t.deepEqual(out.builtins, [], 'no built-in module beyond what Node.js loads at startup (node:os, node:child_process)')
})

test('each lazily loaded name loads its module on first read, and is the class the module exports', (t) => {
  const out = fresh<Record<string, { files: string[]; same: boolean }>>(`
    const direct = {
      SlotFileError: ['./lib/errors.js', 'SlotFileError'],
      SlotTable: ['./lib/slots.js', 'SlotTable'],
      FuseProcessManager: ['./lib/manager/index.js', 'FuseProcessManager'],
      PidFileStore: ['./lib/pidfile.js', 'PidFileStore'],
      newMultiProcessClient: ['./lib/client.js', 'newMultiProcessClient'],
      defaultConfig: ['./lib/config.js', 'defaultConfig'],
      EtcdSlotTable: ['./lib/etcd/index.js', 'EtcdSlotTable'],
    }
    const out = {}
    for (const [name, [file, key]] of Object.entries(direct)) {
      const seen = new Set(Object.keys(require.cache))
      const value = p[name]
      const files = Object.keys(require.cache).filter((f) => !seen.has(f)).map((f) => require('node:path').relative(${JSON.stringify(root)}, f))
      out[name] = { files, same: value === require(require('node:path').join(${JSON.stringify(root)}, file))[key] }
    }
    console.log(JSON.stringify(out))
  `)
  for (const [name, { files, same }] of Object.entries(out)) t.true(same, `${name} is the module's own export`)
  t.deepEqual(out.SlotFileError!.files, [join('lib', 'errors.js')])
  t.deepEqual(out.SlotTable!.files.sort(), [join('lib', 'slots.js'), join('lib', 'validate.js')].sort())
  t.true(out.FuseProcessManager!.files.includes(join('lib', 'manager', 'index.js')))
  t.true(out.PidFileStore!.files.includes(join('lib', 'pidfile.js')) || out.FuseProcessManager!.files.includes(join('lib', 'pidfile.js')))
  t.true(out.EtcdSlotTable!.files.includes(join('lib', 'etcd', 'index.js')))
})

test('every name the entry exports has a value, and reading them all (as an ESM import does) loads no built-in module', (t) => {
  const out = fresh<{ names: string[]; undefinedNames: string[]; builtins: string[] }>(`
    const names = Object.keys(p).filter((k) => k !== '__esModule')
    const undefinedNames = names.filter((k) => p[k] === undefined)
    console.log(JSON.stringify({ names, undefinedNames, builtins: builtinsLoaded() }))
  `)
  t.true(out.names.length >= 24, out.names.join(', '))
  t.deepEqual(out.undefinedNames, [])
  // node:child_process, node:os, the etcd3 client: each with its first use (a spawn, a table on etcd).
  t.deepEqual(out.builtins, [], 'no built-in module beyond what Node.js loads at startup')
})

test('an error made by the slot code, before any error class was read, is an instance of the exported classes', (t) => {
  const out = fresh<{ argument: boolean[]; made: boolean[] }>(`
    const err = (() => { try { p.SlotTable.open('') } catch (e) { return e } })()
    const argument = [err instanceof TypeError, err.code === 'ERR_INVALID_ARG_VALUE']
    let refused
    try { p.SlotTable.open('/proc/self/status') } catch (e) { refused = e }
    const made = [refused instanceof p.SlotFileError, refused instanceof p.ProcslotError, typeof refused.code === 'string']
    console.log(JSON.stringify({ argument, made }))
  `)
  t.deepEqual(out, { argument: [true, true], made: [true, true, true] })
})

test('a manager does not load node:child_process (streams, net, dgram) until it spawns', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const out = fresh<{ builtins: string[] }>(`
    const manager = new p.FuseProcessManager({ pidDir: ${JSON.stringify(join(dir, 'pids'))}, command: 'true' })
    const atConstruction = builtinsLoaded()
    manager[Symbol.dispose]()
    console.log(JSON.stringify({ builtins: atConstruction }))
  `)
  t.false(out.builtins.some((m) => /child_process|\bnet\b|dgram/.test(m)), out.builtins.join(', '))
})

test('a client on a slot file loads no etcd code (it loads only for an etcd config)', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const out = fresh<{ id: number; files: string[]; builtins: string[] }>(`
    const client = p.newMultiProcessClient(${JSON.stringify(join(dir, 'data'))}, { concurrency: { slotsFile: ${JSON.stringify(join(dir, 'slots'))} } })
    const id = client.processId
    client.close()
    console.log(JSON.stringify({ id, files: loaded(), builtins: builtinsLoaded() }))
  `)
  t.is(out.id, 0)
  t.deepEqual(out.files.filter((f) => f.includes('etcd')), [], out.files.join(', '))
  t.false(out.builtins.some((m) => m.includes('perf_hooks')), out.builtins.join(', '))
})

test('a NAPI_RS_* override takes the generated loader, which loads the same binary', (t) => {
  const local = fresh<{ files: string[] }>(`p.getProcessId(''); console.log(JSON.stringify({ files: loaded() }))`)
  const binary = join(root, local.files.find((f) => f.endsWith('.node'))!)
  const out = fresh<{ files: string[]; id: number }>(
    `console.log(JSON.stringify({ files: loaded(), id: p.getProcessId('') }))`,
    { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: binary },
  )
  t.true(out.files.includes('binding.js'), out.files.join(', '))
  t.is(out.id, -1)
})
