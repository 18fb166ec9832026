#!/usr/bin/env node
// The path the native launcher runs for every subcommand but exec (`node <package>/lib/cli.js`, fixed in
// crates/procslot-core/src/bin/procslot-launcher.rs) and the one its message tells people to run. The
// command itself is lib/cli/ (lib/cli/index.ts); this file, written by hand like bin/procslot, only keeps
// that path working, and goes once the launcher runs lib/cli/index.js.
'use strict'
module.exports = require('./cli/index.js')
if (require.main === module) module.exports.runCommandLine()
