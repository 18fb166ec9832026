/**
 * `procslot exec [--file F] [--slots N] [--preferred N] [--wait ms] -- COMMAND [ARGS...]`: takes a slot,
 * then becomes COMMAND (same PID, `execve`), which inherits the slot's lock — the slot is held exactly
 * for COMMAND's life, whatever language it is written in. COMMAND finds `PROCSLOT_ID`, `PROCSLOT_COUNT`
 * and `PROCSLOT_FILE` in its environment.
 *
 * Exit codes when it does not become COMMAND: 75 (`EX_TEMPFAIL`) no slot freed within `--wait`; 127 no
 * such command; 126 not executable; 2 a refused request (bad arguments, a refused file).
 * @internal
 */
import { fail, integerArg, oneLine } from './cli-util'
import { DEFAULT_SLOTS_FILE, MAX_SLOTS, native, type NativeExecFailure } from './native'

/** `EX_TEMPFAIL` of sysexits.h: try again later. */
export const EXIT_NO_SLOT = 75

interface ExecArgs {
  file: string
  slots: number | undefined
  preferred: number | undefined
  waitMs: number
  command: string[]
}

const integer = (flag: string, value: string | undefined, min: number, max: number): number =>
  integerArg('exec', flag, value, min, max)

/** Reads the options up to `--` (or up to the first argument that is not an option: the command). */
export function parseExec(argv: string[]): ExecArgs {
  const args: ExecArgs = { file: DEFAULT_SLOTS_FILE, slots: undefined, preferred: undefined, waitMs: 0, command: [] }
  let i = 0
  for (; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      i++
      break
    }
    if (!arg.startsWith('-')) break
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const value = (): string | undefined => (eq === -1 ? argv[++i] : arg.slice(eq + 1))
    switch (flag) {
      case '--file': {
        const f = value()
        if (f === undefined || f === '' || f.includes('\0')) fail('exec: --file needs a path')
        args.file = f!
        break
      }
      case '--slots':
        args.slots = integer('--slots', value(), 1, MAX_SLOTS)
        break
      case '--preferred':
        args.preferred = integer('--preferred', value(), 0, 0xffffffff)
        break
      case '--wait':
        args.waitMs = integer('--wait', value(), 0, 0x7fffffff)
        break
      default:
        fail(`exec: unknown option ${JSON.stringify(arg)}; the command goes after --`)
    }
  }
  args.command = argv.slice(i)
  if (args.command.length === 0) fail('exec: no command given: procslot exec [options] -- COMMAND [ARGS...]')
  return args
}

/** `procslot exec` (its usage is its line in the dispatcher's table). */
export function run(argv: string[]): number {
  const a = parseExec(argv)
  let failure: NativeExecFailure
  try {
    failure = native.execWithSlot(
      a.file,
      {
        slots: a.slots,
        mode: 0o600,
        allowForeignOwner: false,
        privateDir: a.file === DEFAULT_SLOTS_FILE,
      },
      a.preferred,
      a.waitMs,
      a.command[0]!,
      a.command.slice(1),
    )
  } catch (err) {
    return fail(oneLine((err as Error).message))
  }
  if (failure.kind === 'no-slot') {
    process.stderr.write(
      `procslot: exec: all ${failure.slots} slots of ${failure.path} stayed held for ${Math.round(failure.waitedMs)} ms` +
        ` (--wait ${a.waitMs}); not running ${a.command[0]}\n`,
    )
    return EXIT_NO_SLOT
  }
  process.stderr.write(`procslot: exec: cannot run ${a.command[0]}: ${failure.reason} (${failure.code})\n`)
  return failure.code === 'ENOENT' ? 127 : 126
}
