// `npm install procslot` as a user gets it. A real npm registry (Verdaccio, on a loopback port, storage in a
// temporary directory) receives the package through the release's own flow: `npm run artifacts` puts the
// built binary into its platform package, `npm publish` runs `prepublishOnly` (`napi prepublish -t npm`),
// which publishes the platform package and writes `optionalDependencies`, then publishes the main package.
// Fresh projects outside the repo, with no cargo on the PATH, install it from there (see ./registry.ts:
// nothing reaches the public registry).
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, openSync, readFileSync, readSync, readdirSync, realpathSync, writeFileSync, closeSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'

import { SlotTable } from '../index.js'
import { deadline } from './helpers.ts'
import {
  BINARY,
  PLATFORM,
  PLATFORM_PKG,
  built,
  consumer,
  ok,
  pkg,
  publish,
  repo,
  run,
  startRegistry,
  type Registry,
} from './registry.ts'

const platformTest = built || process.env.CI ? test : test.skip

let registry: Registry | undefined
/** What `npm pack` of the repo lists (the main package's files). */
let packed: string[] = []

test.before(async () => {
  if (!built) return
  registry = await startRegistry()
  packed = (await publish(registry)).main.files
})

test.after.always(async () => {
  await registry?.stop()
})

platformTest('the main package ships the built JavaScript, its types, README and LICENSE; no sources, no binary', (t) => {
  t.true(built, `this check publishes the binary built here, ${BINARY}`)
  for (const file of ['package.json', 'README.md', 'LICENSE', 'index.js', 'index.d.ts', 'binding.js', 'lib/cli/index.js', 'bin/procslot', 'bin/install.cjs']) {
    t.true(packed.includes(file), `${file} is packed: ${packed.join(' ')}`)
  }
  t.deepEqual(
    packed.filter((f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.node') || !/^(lib\/|bin\/|[^/]+$)/.test(f)),
    [],
  )
})

platformTest('npm install procslot from a registry brings the platform binary through optionalDependencies', async (t) => {
  t.true(built, `no binary built here: ${BINARY}`)
  const reg = registry!
  t.not((await run('sh', ['-c', 'command -v cargo'], reg.dir, reg.env)).code, 0, 'no cargo on the PATH')
  const project = await consumer(reg)
  const installed = JSON.parse(readFileSync(join(project, 'node_modules', pkg.name, 'package.json'), 'utf8'))
  t.deepEqual(installed.optionalDependencies, { [PLATFORM_PKG]: pkg.version }, 'written by napi prepublish')
  const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8'))
  t.like(lock.packages[`node_modules/${PLATFORM_PKG}`], {
    version: pkg.version,
    optional: true,
    os: [process.platform],
    cpu: [process.arch],
  })
  t.true(lock.packages[`node_modules/${PLATFORM_PKG}`].resolved.startsWith(reg.url))
  const binary = readdirSync(join(project, 'node_modules', PLATFORM_PKG)).sort()
  // The addon, and the native launcher (the `procslot` program: bin/install.cjs puts it in place).
  t.deepEqual(binary, ['LICENSE', 'README.md', 'package.json', 'procslot', `procslot.${PLATFORM}.node`])
  t.false(readdirSync(join(project, 'node_modules', pkg.name)).some((f) => f.endsWith('.node')))

  const slots = join(project, 'slots')
  // What a program that only wants its slot loads, as installed: the entry, lib/native.js (the binding
  // loader and the process ID helpers) and the platform package's binary; no built-in module beyond what Node.js loads at
  // startup. In particular not Node's ESM resolver, which an "exports" map in package.json would make a
  // CommonJS `require` load (about 1.5 ms of the 3 ms aim in issue 11).
  const only = `
    const builtins = new Set(process.moduleLoadList)
    const id = require('procslot').getProcessId(${JSON.stringify(slots)})
    const files = Object.keys(require.cache).map((f) => require('node:path').relative(${JSON.stringify(join(project, 'node_modules'))}, f))
    const loaded = process.moduleLoadList.filter((m) => !builtins.has(m) && m.startsWith('NativeModule '))
    require('procslot').releaseProcessId(${JSON.stringify(slots)})
    console.log(JSON.stringify({ id, files: files.sort(), loaded }))
  `
  t.deepEqual(JSON.parse(await ok(process.execPath, ['-e', only], project, reg.env)), {
    id: 0,
    files: [
      `${PLATFORM_PKG}/procslot.${PLATFORM}.node`,
      'procslot/index.js',
      'procslot/lib/native.js',
    ],
    loaded: [],
  })

  const cjs = `
    const { getProcessId, SlotTable, SlotFileError, FuseProcessManager } = require('procslot')
    const table = SlotTable.open(${JSON.stringify(slots)}, { slots: 4 })
    const id = getProcessId(${JSON.stringify(slots)})
    console.log(JSON.stringify({ id, size: table.size, error: typeof SlotFileError, manager: typeof FuseProcessManager }))
  `
  t.deepEqual(JSON.parse(await ok(process.execPath, ['-e', cjs], project, reg.env)), {
    id: 0,
    size: 4,
    error: 'function',
    manager: 'function',
  })

  const esm = `
    import { getProcessId, SlotsExhaustedError, FuseProcessManager, newMultiProcessClient } from 'procslot'
    const all = await import('procslot')
    console.log(JSON.stringify({
      id: getProcessId(${JSON.stringify(slots)}),
      names: ['SlotTable', 'PidFileStore', 'defaultConfig'].every((n) => typeof all[n] === 'function'),
      types: [SlotsExhaustedError, FuseProcessManager, newMultiProcessClient].map((v) => typeof v),
    }))
  `
  t.deepEqual(JSON.parse(await ok(process.execPath, ['--input-type=module', '-e', esm], project, reg.env)), {
    id: 0,
    names: true,
    types: ['function', 'function', 'function'],
  })

  writeFileSync(join(project, 'consumer.ts'), CONSUMER_TS)
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022', 'esnext.disposable'],
        // A Node library's types lean on Node's (EventEmitter, signals): a consumer has @types/node.
        typeRoots: [join(repo, 'node_modules/@types')],
        types: ['node'],
        noEmit: true,
      },
      files: ['consumer.ts'],
    }),
  )
  const tsc = await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', project], project, reg.env)
  t.is(tsc.code, 0, tsc.stdout)

  t.is((await ok('npx', ['--no', '--', 'procslot', '--version'], project, reg.env)).trim(), pkg.version)
  const listing = JSON.parse(await ok('npx', ['--no', '--', 'procslot', 'slots', '--json', slots], project, reg.env))
  t.like(listing, { file: slots, size: 4, held: 0 })

  // Windows, as the import sees it: refused by name, before any loader runs.
  const windows = `Object.defineProperty(process, 'platform', { value: 'win32' })
    try { require('procslot') } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }`
  const refused = JSON.parse(await ok(process.execPath, ['-e', windows], project, reg.env))
  t.like(refused, { name: 'ProcslotError', code: 'ERR_PROCSLOT_UNSUPPORTED_PLATFORM' })
  t.regex(refused.message, new RegExp(`unsupported platform win32-${process.arch}\\b.*${PLATFORM}`))

  // A binary that is installed but does not load (a glibc too old, a damaged file): the loader's reason.
  writeFileSync(join(project, 'node_modules', PLATFORM_PKG, `procslot.${PLATFORM}.node`), 'not an ELF file')
  const broken = await run(process.execPath, ['-e', "require('procslot')"], project, reg.env)
  t.not(broken.code, 0)
  t.regex(broken.stderr, new RegExp(`binary for ${PLATFORM} \\(package ${PLATFORM_PKG}\\) is installed but could not be loaded: .+`))
})

platformTest('installed without optional dependencies, procslot names the platform and the package to install', async (t) => {
  t.true(built, `no binary built here: ${BINARY}`)
  const reg = registry!
  const project = await consumer(reg, ['--omit=optional'])
  t.false(existsSync(join(project, 'node_modules', PLATFORM_PKG)))

  const load = await run(process.execPath, ['-e', "require('procslot')"], project, reg.env)
  t.not(load.code, 0)
  t.regex(load.stderr, new RegExp(`no prebuilt binary for ${PLATFORM}: .*npm install ${PLATFORM_PKG}`))
  const code = `import('procslot').catch((e) => console.log(JSON.stringify({ code: e.code, platform: e.platform, package: e.package })))`
  t.deepEqual(JSON.parse(await ok(process.execPath, ['-e', code], project, reg.env)), {
    code: 'ERR_PROCSLOT_NO_BINARY',
    platform: PLATFORM,
    package: PLATFORM_PKG,
  })

  const help = await run('npx', ['--no', '--', 'procslot', '--help'], project, reg.env)
  t.is(help.code, 0, help.stderr)
  t.regex(help.stdout, /^usage: procslot <command>/)
  t.is((await ok('npx', ['--no', '--', 'procslot', '--version'], project, reg.env)).trim(), pkg.version)
  const slots = await run('npx', ['--no', '--', 'procslot', 'slots'], project, reg.env)
  t.is(slots.code, 1)
  t.is(slots.stderr.trim().split('\n').length, 1, 'one line, no stack')
  t.regex(slots.stderr, new RegExp(`npm install ${PLATFORM_PKG}$`, 'm'))
})

// What a TypeScript consumer writes checked with `tsc --strict --module nodenext` against the installed types.
const CONSUMER_TS = `import { getProcessId, releaseProcessId, SlotTable, SlotFileError, SlotsExhaustedError, DEFAULT_SLOTS_FILE, type SlotInfo } from 'procslot'
declare function report(...values: unknown[]): void
const id: number = getProcessId(DEFAULT_SLOTS_FILE)
const freed: boolean = releaseProcessId()
const table: SlotTable = SlotTable.open('/tmp/slots', { slots: 8, mode: 0o600 })
const slot: number = table.acquire({ preferred: 2 })
const snapshot: SlotInfo[] = table.snapshot()
const alive: boolean = snapshot[0].alive && snapshot[0].self
try { table.acquire() } catch (err) {
  if (err instanceof SlotsExhaustedError) { const code: 'ESLOTSFULL' = err.code; report(code, err.slots) }
  if (err instanceof SlotFileError) report(err.code, err.path)
}
// @ts-expect-error slots is a number
SlotTable.open('/tmp/slots', { slots: '8' })
report(id, freed, slot, alive)
import { FuseProcessManager, PidFileStore, InvalidTargetIdError, SpawnError, newMultiProcessClient, MultiProcessClient, type ProcessInfo } from 'procslot'
async function supervise(): Promise<void> {
  const manager: FuseProcessManager = new FuseProcessManager({ pidDir: '/tmp/pids', command: 'bindfs', args: ({ mountPath }) => ['-f', '/src', mountPath] })
  manager.on('exit', (e) => report(e.targetId, e.pid, e.signal))
  try {
    const info: ProcessInfo = await manager.spawn('t1', '/mnt/t1', { REGION: 'x' })
    report(info.pid, info.loadedFromDisk, manager.getStats().pidFilesOnDisk)
  } catch (err) {
    if (err instanceof SpawnError) report(err.reason, err.logTail)
    if (err instanceof InvalidTargetIdError) report(err.code)
  }
  const killed: boolean = await manager.kill('t1', { force: true })
  const store: PidFileStore = new PidFileStore('/tmp/pids')
  const pid: number | null = store.read('t1')
  report(killed, pid)
  // @ts-expect-error ready is 'mount' or 'alive'
  new FuseProcessManager({ pidDir: '/tmp/pids', command: 'x', ready: 'soon' })
  class Quiet extends FuseProcessManager {}
  report(new Quiet({ pidDir: '/tmp/pids', command: 'x' }) instanceof FuseProcessManager)
}
const client = newMultiProcessClient('/tmp/data')
const typed: MultiProcessClient = client
report(supervise, typed)
`

/** Whether `file` is a native executable (ELF on Linux, Mach-O on macOS), not a script. */
function isNative(file: string): boolean {
  const fd = openSync(file, 'r')
  const head = Buffer.alloc(4)
  readSync(fd, head, 0, 4, 0)
  closeSync(fd)
  return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) || head.readUInt32LE(0) === 0xfeedfacf
}

platformTest('npm install puts the native launcher in place: procslot exec starts no Node.js (same PID, PROCSLOT_ID, the lock inherited, exit 75)', async (t) => {
  const reg = registry!
  const project = await consumer(reg)
  const bin = join(project, 'node_modules', '.bin', 'procslot')
  t.true(isNative(realpathSync(bin)), `${bin} -> ${realpathSync(bin)} is the native launcher`)
  t.regex((await ok(bin, ['--launcher'], project, reg.env)).trim(), /^procslot launcher /)
  // The other subcommands are the JavaScript command's, through Node.js.
  t.is((await ok(bin, ['--version'], project, reg.env)).trim(), pkg.version)
  t.regex(await ok(bin, ['--help'], project, reg.env), /^usage: procslot <command>/)

  const file = join(project, 'slots')
  const child = spawn(bin, ['exec', '--file', file, '--slots', '1', '--', 'sh', '-c', 'echo "$$ $PROCSLOT_ID $PROCSLOT_COUNT $PROCSLOT_FILE"; read x'], {
    cwd: project,
    env: reg.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  t.teardown(() => void child.kill('SIGKILL'))
  const [line] = (await deadline(once(createInterface({ input: child.stdout! }), 'line'), 20_000, 'the command')) as [string]
  t.is(line, `${child.pid} 0 1 ${file}`, 'the command runs as the very process started, with its slot')
  const table = SlotTable.open(file)
  t.teardown(() => table.close())
  t.like(table.snapshot()[0], { pid: child.pid, alive: true }, 'its lock is held by the command')
  const full = await run(bin, ['exec', '--file', file, '--', 'true'], project, reg.env)
  t.is(full.code, 75, full.stderr)
  t.regex(full.stderr, /^procslot: exec: all 1 slots of .* stayed held for \d+ ms \(--wait 0\); not running true\n$/)
  child.stdin!.end('\n')
  await deadline(once(child, 'exit'), 20_000, 'the command to exit')
  t.is(table.acquire(), 0, 'the slot went with the command')
})

platformTest('installed with --ignore-scripts, procslot stays the JavaScript command and exec still works', async (t) => {
  const reg = registry!
  const project = await consumer(reg, ['--ignore-scripts'])
  const bin = join(project, 'node_modules', '.bin', 'procslot')
  t.false(isNative(realpathSync(bin)))
  const out = await ok(bin, ['exec', '--file', join(project, 'slots'), '--slots', '2', '--', 'sh', '-c', 'echo $PROCSLOT_ID'], project, reg.env)
  t.is(out.trim(), '0')
})
