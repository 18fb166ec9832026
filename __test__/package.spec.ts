// As a consumer would: pack the package and the linux-x64-gnu platform package, install both tarballs
// into a fresh project outside the repo with no cargo on the PATH, then require, import and type-check.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { tempDir } from './helpers.ts'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const linuxX64Gnu = process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')
const platformTest = linuxX64Gnu ? test : process.env.CI ? test : test.skip

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
}

platformTest('the packed package installs and works from require, import and TypeScript without cargo', (t) => {
  t.true(linuxX64Gnu, 'this check builds the linux-x64-gnu package; CI runs it on linux x64 glibc')
  const { dir, cleanup } = tempDir('procslot-consumer-')
  t.teardown(cleanup)
  const tarballs = join(dir, 'tarballs')
  const platformPkg = join(dir, 'linux-x64-gnu')
  const project = join(dir, 'project')
  for (const d of [tarballs, platformPkg, project]) mkdirSync(d)

  // The platform package as `napi prepublish` lays it out: its package.json plus the built binary.
  copyFileSync(join(repo, 'npm/linux-x64-gnu/package.json'), join(platformPkg, 'package.json'))
  copyFileSync(join(repo, 'procslot.linux-x64-gnu.node'), join(platformPkg, 'procslot.linux-x64-gnu.node'))
  run('npm', ['pack', '--silent', '--pack-destination', tarballs], repo)
  run('npm', ['pack', '--silent', '--pack-destination', tarballs], platformPkg)
  const packed = readdirSync(tarballs).sort()
  t.deepEqual(packed, ['procslot-0.1.0.tgz', 'procslot-linux-x64-gnu-0.1.0.tgz'])

  // No cargo anywhere on the PATH: the consumer gets the prebuilt binary, never a build.
  const PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((entry) => entry && !existsSync(join(entry, 'cargo')))
    .join(delimiter)
  const env = { ...process.env, PATH, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' }
  t.throws(() => run('sh', ['-c', 'command -v cargo'], project, env))

  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  run('npm', ['install', ...packed.map((f) => join(tarballs, f))], project, env)
  const installed = readdirSync(join(project, 'node_modules/procslot')).sort()
  t.false(installed.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), `no sources shipped: ${installed}`)
  t.false(installed.some((f) => f.endsWith('.node')), 'the binary comes from the platform package')

  const slots = join(dir, 'slots')
  const cjs = `
    const { getProcessId, SlotTable, SlotFileError } = require('procslot')
    const id = getProcessId(${JSON.stringify(slots)})
    const table = SlotTable.open(${JSON.stringify(slots)})
    console.log(JSON.stringify({ id, held: table.held, error: typeof SlotFileError }))
  `
  t.deepEqual(JSON.parse(run(process.execPath, ['-e', cjs], project, env)), { id: 0, held: 0, error: 'function' })

  const esm = `
    import { getProcessId, SlotsExhaustedError } from 'procslot'
    const all = await import('procslot')
    console.log(JSON.stringify({ id: getProcessId(${JSON.stringify(slots)}), keys: Object.keys(all).includes('SlotTable'), error: typeof SlotsExhaustedError }))
  `
  t.deepEqual(JSON.parse(run(process.execPath, ['--input-type=module', '-e', esm], project, env)), {
    id: 0,
    keys: true,
    error: 'function',
  })

  writeFileSync(
    join(project, 'consumer.ts'),
    `import { getProcessId, releaseProcessId, SlotTable, SlotFileError, SlotsExhaustedError, DEFAULT_SLOTS_FILE, type SlotInfo } from 'procslot'
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
import { FuseProcessManager, PidFileStore, InvalidTargetIdError, SpawnError, type ProcessInfo } from 'procslot'
async function supervise(): Promise<void> {
  const manager = new FuseProcessManager({ pidDir: '/tmp/pids', command: 'bindfs', args: ({ mountPath }) => ['-f', '/src', mountPath] })
  manager.on('exit', (e) => report(e.targetId, e.pid, e.signal))
  try {
    const info: ProcessInfo = await manager.spawn('t1', '/mnt/t1', { REGION: 'x' })
    report(info.pid, info.loadedFromDisk, manager.getStats().pidFilesOnDisk)
  } catch (err) {
    if (err instanceof SpawnError) report(err.reason, err.logTail)
    if (err instanceof InvalidTargetIdError) report(err.code)
  }
  const killed: boolean = await manager.kill('t1', { force: true })
  const pid: number | null = new PidFileStore('/tmp/pids').read('t1')
  report(killed, pid)
  // @ts-expect-error ready is 'mount' or 'alive'
  new FuseProcessManager({ pidDir: '/tmp/pids', command: 'x', ready: 'soon' })
}
report(supervise)
`,
  )
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
  t.notThrows(() => run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', project], project, env))
})
