// `npm install procslot` as a user gets it. A real npm registry (Verdaccio, on a loopback port, storage in a
// temporary directory) receives the package through the release's own flow: `npm run artifacts` puts the
// built binary into its platform package, `npm publish` runs `prepublishOnly` (`napi prepublish -t npm`),
// which publishes the platform package and writes `optionalDependencies`, then publishes the main package.
// Fresh projects outside the repo, with no cargo on the PATH, install it from there.
//
// Nothing here can reach the public registry: every npm command gets the local registry on its command line,
// in its environment and in a temporary userconfig (with a made-up token), and the registry has no uplink.
import test from 'ava'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { deadline } from './helpers.ts'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { name: string; version: string }
const REGISTRY = fileURLToPath(new URL('./fixtures/registry.cjs', import.meta.url))
/** napi-rs's platform names of the targets in package.json `napi.targets` (npm/<platform>/). */
const TRIPLES: Record<string, string> = {
  'linux-x64-gnu': 'x86_64-unknown-linux-gnu',
  'linux-arm64-gnu': 'aarch64-unknown-linux-gnu',
  'linux-x64-musl': 'x86_64-unknown-linux-musl',
  'linux-arm64-musl': 'aarch64-unknown-linux-musl',
  'darwin-x64': 'x86_64-apple-darwin',
  'darwin-arm64': 'aarch64-apple-darwin',
}
const report = process.platform === 'linux' ? (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }) : {}
const isMusl = process.platform === 'linux' && !report.header?.glibcVersionRuntime
const PLATFORM = `${process.platform}-${process.arch}${process.platform === 'linux' ? (isMusl ? '-musl' : '-gnu') : ''}`
const TRIPLE = TRIPLES[PLATFORM]
const PLATFORM_PKG = `${pkg.name}-${PLATFORM}`
const BINARY = join(repo, `procslot.${PLATFORM}.node`)
// The binary built here (CI: linux x64 glibc; the release workflow: each target on its own platform).
const built = TRIPLE !== undefined && existsSync(BINARY)
const platformTest = built || process.env.CI ? test : test.skip

/** A directory outside the repo (the default TMPDIR of a checkout may be inside it: node_modules lookups climb). */
function outsideRepo(): string {
  const base = realpathSync(tmpdir())
  const inside = !relative(realpathSync(repo), base).startsWith('..')
  return inside ? realpathSync('/tmp') : base
}

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `cmd` to its end (10 minutes at most); never rejects: the exit code is in the result. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

async function ok(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, cwd, env)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

interface Registry {
  readonly url: string
  readonly dir: string
  /** The environment every npm command of the test runs with: this registry only, no cargo. */
  readonly env: NodeJS.ProcessEnv
  readonly child: ChildProcess
}

let registry: Registry | undefined
/** What `npm pack` of the repo lists (the main package's files). */
let packed: string[] = []

/** Starts Verdaccio (fixtures/registry.cjs) and waits for the line with its URL. */
async function startRegistry(dir: string): Promise<Registry> {
  const child = spawn(process.execPath, [REGISTRY, dir], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const lines = createInterface({ input: child.stdout! })
  const url = await deadline(
    new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => line.startsWith('registry ') && resolve(line.slice('registry '.length)))
      child.once('exit', (code) => reject(new Error(`the registry exited (${code}) before listening: ${stderr}`)))
    }),
    60_000,
    'Verdaccio to listen',
  )
  const host = new URL(url).host
  const npmrc = join(dir, 'npmrc')
  writeFileSync(npmrc, `registry=${url}\n//${host}/:_authToken=fake-token-for-a-throwaway-registry\n`)
  // Only the test's own npm settings: none of the npm_config_* that `npm test` exports, no CI tokens.
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(npm_|NPM_|NODE_AUTH_TOKEN|GITHUB_)/.test(k)) env[k] = v
  }
  Object.assign(env, {
    npm_config_registry: url,
    npm_config_userconfig: npmrc,
    npm_config_cache: join(dir, 'npm-cache'),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    // No cargo anywhere on the PATH: a consumer gets the prebuilt binary, never a build.
    PATH: (process.env.PATH ?? '')
      .split(delimiter)
      .filter((entry) => entry && !existsSync(join(entry, 'cargo')))
      .join(delimiter),
  })
  return { url, dir, env, child }
}

/**
 * The release, as the workflow runs it after its build jobs: the packed main package with the built binary
 * in `artifacts/`, then `npm run artifacts` and `npm publish`. Only the target built here is configured
 * (`napi prepublish` needs the binary of every configured target).
 */
async function publish(reg: Registry): Promise<void> {
  const stage = join(reg.dir, 'stage')
  mkdirSync(join(stage, 'artifacts'), { recursive: true })
  const tarball = join(reg.dir, 'packed')
  mkdirSync(tarball)
  const [info] = JSON.parse(await ok('npm', ['pack', '--json', '--pack-destination', tarball], repo, reg.env)) as [
    { filename: string; files: { path: string }[] },
  ]
  packed = info.files.map((f) => f.path).sort()
  await ok('tar', ['-xzf', join(tarball, info.filename), '-C', stage, '--strip-components=1'], stage, reg.env)

  const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'))
  if (manifest.publishConfig?.registry) throw new Error('publishConfig.registry would override --registry')
  manifest.napi.targets = [TRIPLE]
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2))
  cpSync(join(repo, 'npm', PLATFORM), join(stage, 'npm', PLATFORM), { recursive: true })
  cpSync(BINARY, join(stage, 'artifacts', `procslot.${PLATFORM}.node`))
  // The release's scripts run `napi` from the repo's devDependencies.
  symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'))

  await ok('npm', ['run', 'artifacts'], stage, reg.env)
  await ok('npm', ['publish', '--registry', reg.url], stage, reg.env)
}

test.before(async () => {
  if (!built) return
  const dir = await mkdtemp(join(outsideRepo(), 'procslot-registry-'))
  registry = await startRegistry(dir)
  await publish(registry)
})

test.after.always(async () => {
  if (!registry) return
  const exited = once(registry.child, 'exit')
  registry.child.kill('SIGTERM')
  await deadline(exited, 30_000, 'the registry to exit')
  rmSync(registry.dir, { recursive: true, force: true })
})

/** A fresh project outside the repo with `procslot` installed from the registry (`npm install` args added). */
async function consumer(reg: Registry, ...npmArgs: string[]): Promise<string> {
  const project = join(reg.dir, `project${npmArgs.join('').replace(/\W/g, '-')}`)
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  await ok('npm', ['install', `${pkg.name}@${pkg.version}`, '--registry', reg.url, ...npmArgs], project, reg.env)
  return project
}

platformTest('the main package ships the built JavaScript, its types, README and LICENSE; no sources, no binary', (t) => {
  t.true(built, `this check publishes the binary built here, ${BINARY}`)
  for (const file of ['package.json', 'README.md', 'LICENSE', 'index.js', 'index.d.ts', 'binding.js', 'lib/cli.js']) {
    t.true(packed.includes(file), `${file} is packed: ${packed.join(' ')}`)
  }
  t.deepEqual(
    packed.filter((f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.node') || !/^(lib\/|[^/]+$)/.test(f)),
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
  t.deepEqual(binary, ['LICENSE', 'README.md', 'package.json', `procslot.${PLATFORM}.node`])
  t.false(readdirSync(join(project, 'node_modules', pkg.name)).some((f) => f.endsWith('.node')))

  const slots = join(project, 'slots')
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
})

platformTest('installed without optional dependencies, procslot names the platform and the package to install', async (t) => {
  t.true(built, `no binary built here: ${BINARY}`)
  const reg = registry!
  const project = await consumer(reg, '--omit=optional')
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
