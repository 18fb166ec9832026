#!/usr/bin/env node
/**
 * The `procslot` command: a table of subcommands, each in its own module, loaded only when it runs — so
 * `procslot --help` and `procslot --version` work even where the native binding cannot load. Adding a
 * subcommand is one line in {@link commands}. Exit codes: 0 done, 1 a command's own failure (the demo), 2 a
 * refused request (bad arguments, a missing or refused file) with a one-line reason on stderr.
 * @internal
 */
import { CliFailure, printFailure, type Command } from './common'

/** Subcommand name → its usage line, summary and module (loaded when it runs). */
const commands: Record<string, Command> = {
  slots: {
    usage: 'slots [file] [--json]',
    summary: "show a slot file's table: slot, pid, alive, start time, command (default: DEFAULT_SLOTS_FILE)",
    load: () => import('./slots'),
  },
  pids: {
    usage: 'pids <dir> [--json]',
    summary: 'show the PID files of a directory: target, pid, alive, running/stale/reused/invalid/untrusted, mount',
    load: () => import('./pids'),
  },
  status: {
    usage: 'status <pidDir> <targetId> [--json]',
    summary: "a daemon's status, exit 0 running, 1 dead with a PID file, 3 not running, 4 unknown (LSB)",
    load: () => import('./status'),
  },
  start: {
    usage: 'start <pidDir> <targetId> [--ready mount:PATH|alive] [--timeout ms] [--settle ms] -- COMMAND [ARGS...]',
    summary:
      'start a daemon as a manager does (spawn record, process group, log, readiness, PID file); exit 0 once ready ' +
      'or already running, 1 when it did not become ready (nothing left running)',
    load: () => import('./start'),
  },
  stop: {
    usage: 'stop <pidDir> <targetId> [--timeout ms] [--force]',
    summary: 'stop a daemon (its process group, SIGTERM then SIGKILL), unmount what it leaves, remove its PID file',
    load: () => import('./stop'),
  },
  demo: {
    usage: 'demo',
    summary: 'run the prefork demo: cluster workers take slots, a SIGKILLed one is replaced on its slot',
    load: () => import('./demo'),
  },
  exec: {
    usage: 'exec [--file F] [--slots N] [--preferred N [--exact]] [--wait ms] -- COMMAND [ARGS...]',
    summary:
      'take a slot and become COMMAND (same PID), which holds it for its life; PROCSLOT_ID, PROCSLOT_COUNT, ' +
      'PROCSLOT_FILE in its environment; exit 75 (EX_TEMPFAIL) when no slot frees within --wait (default 0 ms)',
    load: () => import('./exec'),
  },
}

function usage(): string {
  const width = Math.max(...Object.values(commands).map((c) => c.usage.length))
  return [
    'usage: procslot <command> [options]',
    '',
    'commands:',
    ...Object.values(commands).map((c) => `  procslot ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    '--json prints a listing as JSON; --help shows this text; --version prints the version.',
    '',
  ].join('\n')
}

const isHelp = (arg: string): boolean => arg === '--help' || arg === '-h'

/** The package's version, from its package.json (beside `lib/` in the package and in the repo). */
function version(): string {
  return (require('../../package.json') as { version: string }).version
}

/** The error of lib/load-error.ts: no native binding for this machine (its message names the fix). */
function isBindingFailure(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'ERR_PROCSLOT_NO_BINARY' || code === 'ERR_PROCSLOT_UNSUPPORTED_PLATFORM'
}

/** Runs `procslot` with `argv` (the arguments after the program name); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || isHelp(name) || name === 'help') {
    process.stdout.write(usage())
    return 0
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined
  try {
    if (command === undefined) throw new CliFailure(`unknown command "${name}"; try procslot --help`)
    if (rest.slice(0, rest.indexOf('--') >>> 0).some(isHelp)) {
      process.stdout.write(`usage: procslot ${command.usage}\n\n${command.summary}\n`)
      return 0
    }
    return await (await command.load()).run(rest)
  } catch (err) {
    if (err instanceof CliFailure) return printFailure(err)
    if (isBindingFailure(err)) {
      // No prebuilt binary for this machine: the error says which package to install, no stack needed.
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    throw err
  }
}

/**
 * Runs `procslot` with this process's arguments and sets its exit code: `node lib/cli/index.js ...`,
 * as `bin/procslot` (the JavaScript command, where the native launcher is not installed) and the native
 * launcher (for every subcommand but exec) run it.
 */
export function runCommandLine(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`procslot: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}

if (require.main === module) runCommandLine()
