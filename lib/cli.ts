#!/usr/bin/env node
/**
 * The `procslot` command: a table of subcommands, each in its own module. Adding one is one line in
 * {@link commands}. Exit codes: 0 done, 1 a command's own failure (the demo), 2 a refused request (bad
 * arguments, a missing or refused file) with a one-line reason on stderr.
 * @internal
 */
import { demoCommand } from './cli-demo'
import { execCommand } from './cli-exec'
import { pidsCommand } from './cli-pids'
import { slotsCommand } from './cli-slots'
import { statusCommand } from './cli-status'
import { stopCommand } from './cli-stop'
import { CliFailure, type Command } from './cli-util'

/** Subcommand name → handler. */
const commands: Record<string, Command> = {
  slots: slotsCommand,
  pids: pidsCommand,
  status: statusCommand,
  stop: stopCommand,
  demo: demoCommand,
  exec: execCommand,
}

function usage(): string {
  const width = Math.max(...Object.values(commands).map((c) => c.usage.length))
  return [
    'usage: procslot <command> [options]',
    '',
    'commands:',
    ...Object.values(commands).map((c) => `  procslot ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    '--json prints a listing as JSON; --help shows this text.',
    '',
  ].join('\n')
}

const isHelp = (arg: string): boolean => arg === '--help' || arg === '-h'

/** Runs `procslot` with `argv` (the arguments after the program name); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || isHelp(name) || name === 'help') {
    process.stdout.write(usage())
    return 0
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined
  try {
    if (command === undefined) throw new CliFailure(`unknown command "${name}"; try procslot --help`)
    if (rest.slice(0, rest.indexOf('--') >>> 0).some(isHelp)) {
      process.stdout.write(`usage: procslot ${command.usage}\n\n${command.summary}\n`)
      return 0
    }
    return await command.run(rest)
  } catch (err) {
    if (err instanceof CliFailure) {
      process.stderr.write(`procslot: ${err.message}\n`)
      return err.exitCode
    }
    throw err
  }
}

if (require.main === module) {
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
