/**
 * `procslot exec [--file F] [--slots N] [--preferred N [--exact]] [--wait ms] -- COMMAND [ARGS...]`: takes a
 * slot, then becomes COMMAND (same PID, `execve`), which inherits the slot's lock — the slot is held exactly
 * for COMMAND's life, whatever language it is written in. COMMAND finds `PROCSLOT_ID`, `PROCSLOT_COUNT`
 * and `PROCSLOT_FILE` in its environment.
 *
 * The native launcher (the `procslot` command an npm install puts in place) runs this without starting
 * Node.js; this module is the same command reached through `lib/cli/index.js` (install scripts off, or the
 * launcher unable to run here): the arguments, their checks and messages, and the exit codes — 75
 * (`EX_TEMPFAIL`) no slot freed within `--wait`, 127 no such command, 126 not executable, 2 a refused
 * request — are the core's, the same in both (`crates/procslot-core/src/exec/cli.rs`).
 * @internal
 */
import { native } from '../native'

/** `procslot exec` (its usage is its line in the dispatcher's table). */
export function run(argv: string[]): number {
  return native.execMain(argv)
}
