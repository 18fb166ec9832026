// The native launcher (the `procslot` program: crates/procslot-core/src/bin/procslot-launcher.rs) beside
// the addon. Built for a target into `procslot.<platform>.launcher` at the repository's root, as napi
// builds `procslot.<platform>.node`; moved into its platform package as `npm/<platform>/procslot` when
// the release collects its artifacts (`npm run artifacts`). bin/install.cjs puts it in place at install.
//
//   node npm/launcher.cjs build [--target TRIPLE[.GLIBC]] [--zig] [--debug]
//   node npm/launcher.cjs artifacts [DIR]        (default: artifacts; and the repository's root)
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

/** napi-rs's platform name of a Rust target triple (the names of npm/<platform>/). */
function platformOf(triple) {
  const [arch, , os, abi] = triple.split('.')[0].split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch]
  if (!cpu) throw new Error(`no platform for the target ${triple}`)
  if (os === 'darwin') return `darwin-${cpu}`
  return `linux-${cpu}-${abi}`
}

function hostTriple() {
  return /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1]
}

function build(args) {
  const at = args.indexOf('--target')
  const target = at === -1 ? null : args[at + 1]
  const debug = args.includes('--debug')
  const cargo = args.includes('--zig') ? ['zigbuild'] : ['build']
  const command = [...cargo, '-p', 'procslot-core', '--bin', 'procslot-launcher', ...(debug ? [] : ['--release'])]
  if (target) command.push('--target', target)
  execFileSync('cargo', command, { cwd: root, stdio: 'inherit' })
  const triple = target ? target.split('.')[0] : hostTriple()
  const built = path.join(root, 'target', ...(target ? [triple] : []), debug ? 'debug' : 'release', 'procslot-launcher')
  const out = path.join(root, `procslot.${platformOf(triple)}.launcher`)
  fs.copyFileSync(built, out)
  fs.chmodSync(out, 0o755)
}

function artifacts(dir) {
  for (const from of [dir, root]) {
    if (!fs.existsSync(from)) continue
    for (const name of fs.readdirSync(from)) {
      const m = /^procslot\.(.+)\.launcher$/.exec(name)
      if (!m || !fs.existsSync(path.join(root, 'npm', m[1]))) continue
      const to = path.join(root, 'npm', m[1], 'procslot')
      fs.copyFileSync(path.join(from, name), to)
      fs.chmodSync(to, 0o755)
      console.log(`launcher: ${path.join(from, name)} -> ${path.relative(root, to)}`)
    }
  }
}

module.exports = { platformOf }

if (require.main === module) {
  const [command, ...args] = process.argv.slice(2)
  if (command === 'build') build(args)
  else if (command === 'artifacts') artifacts(path.resolve(args[0] || path.join(root, 'artifacts')))
  else {
    console.error('usage: node npm/launcher.cjs build [--target TRIPLE] [--zig] [--debug] | artifacts [DIR]')
    process.exitCode = 2
  }
}
