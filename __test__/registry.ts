// A real npm registry for the package test and the release benchmark: Verdaccio (fixtures/registry.cjs) on a
// loopback port, storage in a temporary directory, and the release's own publish flow into it.
//
// Nothing here can reach the public registry: every npm command gets the local registry on its command line,
// in its environment and in a temporary userconfig (with a made-up token), and the registry has no uplink.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { deadline } from './helpers.ts'

export const repo = dirname(dirname(fileURLToPath(import.meta.url)))
export const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { name: string; version: string }
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
/** This machine's platform, as napi-rs names it (`linux-x64-gnu`). */
export const PLATFORM = `${process.platform}-${process.arch}${process.platform === 'linux' ? (isMusl ? '-musl' : '-gnu') : ''}`
const TRIPLE = TRIPLES[PLATFORM]
/** The package of this platform's binary. */
export const PLATFORM_PKG = `${pkg.name}-${PLATFORM}`
/** The binary `npm run build` makes here. */
export const BINARY = join(repo, `procslot.${PLATFORM}.node`)
/** The native launcher (the `procslot` program) `npm run build` makes here (npm/launcher.cjs). */
export const LAUNCHER = join(repo, `procslot.${PLATFORM}.launcher`)
/** Whether a binary for this platform is built (CI: linux x64 glibc; the release workflow: every target). */
export const built = TRIPLE !== undefined && existsSync(BINARY)

/** A directory outside the repo (the default TMPDIR of a checkout may be inside it: node_modules lookups climb). */
function outsideRepo(): string {
  const base = realpathSync(tmpdir())
  const inside = !relative(realpathSync(repo), base).startsWith('..')
  return inside ? realpathSync('/tmp') : base
}

export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `cmd` to its end (10 minutes at most); never rejects: the exit code is in the result. */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** {@link run}, rejecting unless it exits 0; resolves to its stdout. */
export async function ok(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, cwd, env)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** A tarball as `npm pack --json` describes it. */
export interface Packed {
  readonly filename: string
  /** Bytes of the .tgz. */
  readonly size: number
  readonly unpackedSize: number
  readonly files: string[]
}

export interface Registry {
  readonly url: string
  readonly dir: string
  /** The environment every npm command runs with: this registry only, no cargo on the PATH. */
  readonly env: NodeJS.ProcessEnv
  /** Stops the registry and removes its directory. */
  stop(): Promise<void>
}

/** Starts Verdaccio in a new temporary directory outside the repo and waits for the line with its URL. */
export async function startRegistry(): Promise<Registry> {
  const dir = await mkdtemp(join(outsideRepo(), 'procslot-registry-'))
  const child: ChildProcess = spawn(process.execPath, [REGISTRY, dir], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit')
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await deadline(exited, 30_000, 'the registry to exit')
    rmSync(dir, { recursive: true, force: true })
  }
  const lines = createInterface({ input: child.stdout! })
  let url: string
  try {
    url = await deadline(
      new Promise<string>((resolve, reject) => {
        lines.on('line', (line) => line.startsWith('registry ') && resolve(line.slice('registry '.length)))
        child.once('exit', (code) => reject(new Error(`the registry exited (${code}) before listening: ${stderr}`)))
      }),
      60_000,
      'Verdaccio to listen',
    )
  } catch (err) {
    await stop()
    throw err
  }
  const npmrc = join(dir, 'npmrc')
  writeFileSync(npmrc, `registry=${url}\n//${new URL(url).host}/:_authToken=fake-token-for-a-throwaway-registry\n`)
  // Only our own npm settings: none of the npm_config_* that `npm test` exports, no CI tokens.
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
  return { url, dir, env, stop }
}

/**
 * The release, as the workflow runs it after its build jobs: the packed main package with the built binary
 * and launcher in `artifacts/`, then `npm run artifacts` and `npm publish` (its `prepublishOnly`, `napi prepublish`,
 * publishes the platform package and writes `optionalDependencies`). Only the target built here is
 * configured (`napi prepublish` needs the binary of every configured target). Resolves to the main tarball
 * and the platform tarball.
 */
export async function publish(reg: Registry): Promise<{ main: Packed; platform: Packed }> {
  if (!built) throw new Error(`no binary for ${PLATFORM} is built here (${BINARY})`)
  const stage = join(reg.dir, 'stage')
  const packs = join(reg.dir, 'packed')
  mkdirSync(join(stage, 'artifacts'), { recursive: true })
  mkdirSync(packs)
  const pack = async (dir: string): Promise<Packed> => {
    const [info] = JSON.parse(await ok('npm', ['pack', '--json', '--pack-destination', packs], dir, reg.env)) as [
      { filename: string; size: number; unpackedSize: number; files: { path: string }[] },
    ]
    return { ...info, files: info.files.map((f) => f.path).sort() }
  }
  const main = await pack(repo)
  // What npm packed, laid out as it would unpack it.
  for (const file of main.files) cpSync(join(repo, file), join(stage, file))

  const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'))
  if (manifest.publishConfig?.registry) throw new Error('publishConfig.registry would override --registry')
  manifest.napi.targets = [TRIPLE]
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2))
  cpSync(join(repo, 'npm', PLATFORM), join(stage, 'npm', PLATFORM), { recursive: true })
  cpSync(join(repo, 'npm', 'launcher.cjs'), join(stage, 'npm', 'launcher.cjs'))
  cpSync(BINARY, join(stage, 'artifacts', `procslot.${PLATFORM}.node`))
  cpSync(LAUNCHER, join(stage, 'artifacts', `procslot.${PLATFORM}.launcher`))
  // The release's scripts run `napi` from the repo's devDependencies.
  symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'))

  await ok('npm', ['run', 'artifacts'], stage, reg.env)
  const platform = await pack(join(stage, 'npm', PLATFORM))
  await ok('npm', ['publish', '--registry', reg.url], stage, reg.env)
  return { main, platform }
}

/**
 * A fresh project outside the repo with `spec` (default: this version of procslot) installed from the
 * registry, `npmArgs` added to `npm install`. It is made in `parent` (default: the registry's directory,
 * removed with the registry).
 */
export async function consumer(
  reg: Registry,
  npmArgs: string[] = [],
  spec = `${pkg.name}@${pkg.version}`,
  parent = reg.dir,
): Promise<string> {
  const project = await mkdtemp(join(parent, 'project-'))
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  await ok('npm', ['install', spec, '--registry', reg.url, ...npmArgs], project, reg.env)
  return project
}
