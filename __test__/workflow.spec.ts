// The release workflow cannot run here; this checks what can go wrong without running it: it parses, it builds
// and tests exactly the targets of package.json `napi.targets`, and it publishes only from a version tag,
// after every test job, with provenance. (.ci/run also lints it with actionlint where that is installed.)
import test from 'ava'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  napi: { targets: string[] }
  scripts: Record<string, string>
}
const targets = [...pkg.napi.targets].sort()

interface Step {
  uses?: string
  run?: string
  with?: Record<string, unknown>
  env?: Record<string, string>
}
interface Job {
  needs?: string | string[]
  if?: string
  permissions?: Record<string, string>
  strategy?: { matrix: Record<string, unknown> }
  steps: Step[]
}
const workflow = parse(readFileSync(join(repo, '.github/workflows/release.yml'), 'utf8')) as {
  on: Record<string, unknown>
  jobs: Record<string, Job>
}
const { build, 'test-linux': testLinux, 'test-macos': testMacos, publish } = workflow.jobs

test('the build matrix is package.json napi.targets, each target once', (t) => {
  const settings = build!.strategy!.matrix.settings as { target: string; build: string }[]
  t.deepEqual(settings.map((s) => s.target).sort(), targets)
  for (const { target, build: step } of settings) {
    // `npm run <script>` is read as that script of package.json (the builds .ci/run tests).
    const script = /^npm run (\S+)$/.exec(step)?.[1]
    const command = script === undefined ? step : pkg.scripts[script]
    t.truthy(command, `${step}: package.json has the script`)
    // The glibc 2.17 floor (SPEC §6): every linux-gnu build pins it with the .2.17 suffix.
    const pinned = target.endsWith('-linux-gnu') ? `${target}.2.17` : target
    t.true(command!.includes(`--target ${pinned} `), `${target} is built for ${pinned}: ${command}`)
    // And the native launcher (the `procslot` program) beside the addon, for the same target.
    t.regex(command!, new RegExp(`npm/launcher\\.cjs build( --zig)? --target ${pinned.replaceAll('.', '\\.')}( |$)`), `${target} builds the launcher`)
  }
  t.is(settings.find((s) => s.target === 'x86_64-unknown-linux-gnu')!.build, 'npm run build:glibc-2.17')
  t.is(settings.find((s) => s.target === 'aarch64-unknown-linux-gnu')!.build, 'npm run build:glibc-2.17:arm64')
})

test('every target is tested on its own platform', (t) => {
  const linux = testLinux!.strategy!.matrix.target as string[]
  const macos = (testMacos!.strategy!.matrix.settings as { target: string }[]).map((s) => s.target)
  t.deepEqual([...linux, ...macos].sort(), targets)
  for (const job of [testLinux!, testMacos!]) t.is(job.needs, 'build')
  t.true(testLinux!.steps.some((s) => s.run?.includes('npx ava')))
  t.true(testMacos!.steps.some((s) => s.run === 'npx ava'))
})

test('publishing runs only on a version tag, after every test job, with npm provenance', (t) => {
  t.deepEqual((workflow.on.push as { tags: string[] }).tags, ['v*'])
  t.is(publish!.if, "startsWith(github.ref, 'refs/tags/v')")
  t.deepEqual([publish!.needs].flat().sort(), ['test-linux', 'test-macos'])
  t.is(publish!.permissions?.['id-token'], 'write')
  const step = publish!.steps.find((s) => s.run?.startsWith('npm publish'))
  t.truthy(step, 'npm publish runs prepublishOnly (napi prepublish), which publishes the platform packages')
  t.is(step!.env?.NPM_CONFIG_PROVENANCE, 'true')
  t.true(publish!.steps.some((s) => s.run === 'npm run artifacts'))
  t.is(pkg.scripts.prepublishOnly, 'napi prepublish -t npm --no-gh-release')
})

test('every action is pinned to a major version', (t) => {
  const uses = Object.values(workflow.jobs).flatMap((job) => job.steps.flatMap((s) => (s.uses ? [s.uses] : [])))
  t.true(uses.length > 0)
  for (const action of uses) t.regex(action, /^[\w-]+\/[\w-]+@(v\d+|stable)$/)
})
