// Run by npm after `npm install procslot` (postinstall): puts the native launcher — the `procslot` program
// of this platform's package, procslot-<platform> — in place of bin/procslot, as esbuild does with its
// own binary. npm links the `procslot` command to that file, so from then on `procslot exec` takes its
// slot and becomes COMMAND without starting Node.js (the other subcommands start Node.js as before).
//
// It changes nothing, and the JavaScript command stays (everything works, `exec` included, only slower
// to start), unless all of this holds: the package is installed as a dependency (inside node_modules —
// never in a checkout of the repository, whose bin/procslot is a source file), by npm (other package
// managers may make shims that run the file with node), the platform's package is installed and has the
// launcher, and the launcher runs on this machine. It never fails the install.
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

function platformPackage(pkg) {
  // npm installs only the package of this platform among the optional ones: the one that resolves.
  for (const name of Object.keys(pkg.optionalDependencies || {})) {
    try {
      return path.dirname(require.resolve(`${name}/package.json`))
    } catch {}
  }
  return null
}

function install() {
  const root = path.join(__dirname, '..')
  if (!fs.realpathSync(root).split(path.sep).includes('node_modules')) return 'not installed as a dependency'
  if (!(process.env.npm_config_user_agent || '').startsWith('npm/')) return 'not installed by npm'
  const dir = platformPackage(require('../package.json'))
  const launcher = dir && path.join(dir, 'procslot')
  if (!launcher || !fs.existsSync(launcher)) return 'no launcher for this platform'
  const out = execFileSync(launcher, ['--launcher'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
  if (!out.startsWith('procslot launcher ')) return 'the launcher did not answer'
  const bin = path.join(__dirname, 'procslot')
  const tmp = `${bin}.${process.pid}.tmp`
  fs.copyFileSync(launcher, tmp)
  fs.chmodSync(tmp, 0o755)
  fs.renameSync(tmp, bin)
  return 'installed'
}

let outcome
try {
  outcome = install()
} catch (err) {
  outcome = `left the JavaScript command: ${err && err.message}`
}
if (process.env.PROCSLOT_INSTALL_DEBUG) console.error(`procslot: launcher: ${outcome}`)
