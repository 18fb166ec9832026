/**
 * What every `procslot` subcommand shares: argument parsing, the failure that ends a command (printed by
 * the dispatcher alone), the `--json`-or-text output and plain-text tables. The dispatcher loads this
 * module, so it loads nothing native (`procslot --help` works where the binding cannot load); what the
 * PID-directory commands share is in `target.ts`.
 * @internal
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'

/**
 * A subcommand of `procslot`: one line of the dispatcher's table in `index.ts`. Its module is loaded only
 * when it runs, so `procslot --help` works where the native binding cannot load.
 */
export interface Command {
  /** One line for the usage text, e.g. `slots [file] [--json]`. */
  readonly usage: string
  /** What it does, in a few words. */
  readonly summary: string
  /** Loads the module that runs it, e.g. `() => import('./slots')`. */
  load(): Promise<CommandModule>
}

/** What a subcommand's module exports. */
export interface CommandModule {
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(argv: string[]): number | Promise<number>
}

/**
 * Thrown to end a command: the dispatcher (`index.ts` `main`) prints `procslot: <message>` on stderr, then
 * `detail` as it is, and exits with `exitCode` — 2, a refused request, unless the command says otherwise.
 */
export class CliFailure extends Error {
  override readonly name = 'CliFailure' as const
  constructor(
    message: string,
    /** The exit code: 2 (a refused request) unless the command has its own (1 failed, 4 status unknown). */
    readonly exitCode: number = 2,
    /** Printed after the message line, as it is (e.g. the end of a daemon's log); empty for none. */
    readonly detail = '',
  ) {
    super(message)
  }
}

/** Prints a failure as every command ends with one (see {@link CliFailure}); returns its exit code. */
export function printFailure(failure: CliFailure, err: NodeJS.WritableStream = process.stderr): number {
  err.write(`procslot: ${failure.message}\n${failure.detail}`)
  return failure.exitCode
}

/** Ends the command with `reason` (made one line) on stderr and exit code 2, a refused request, or `exitCode`. */
export function fail(reason: string, exitCode = 2): never {
  throw new CliFailure(oneLine(reason), exitCode)
}

/** `text` on one line: newlines and runs of blanks become single spaces. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/**
 * Parses a subcommand's arguments with `node:util` `parseArgs` (strict); a bad flag or a missing value
 * ends the command with exit code 2 and the parser's reason.
 */
export function parse<T extends ParseArgsConfig['options']>(
  command: string,
  argv: string[],
  options: T,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
    return { values: values as Record<string, string | boolean | undefined>, positionals }
  } catch (err) {
    return fail(`${command}: ${(err as Error).message}`)
  }
}

/**
 * A flag's value as an integer from `min` to `max`: decimal digits only (no sign, exponent or blanks);
 * anything else ends the command with exit code 2.
 */
export function integerArg(command: string, flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined) return fail(`${command}: ${flag} needs a value`)
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
    return fail(`${command}: ${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return Number(value)
}

/** {@link integerArg} for an optional flag: `undefined` when it is not given. */
export function optionalIntegerArg(
  command: string,
  flag: string,
  value: string | boolean | undefined,
  min: number,
  max: number,
): number | undefined {
  return value === undefined ? undefined : integerArg(command, flag, String(value), min, max)
}

/** Writes `value` as indented JSON and a newline: the `--json` output of every listing command. */
export function printJson(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(JSON.stringify(value, null, 2) + '\n')
}

/** The option of every command that prints a result: `--json`. */
export const JSON_OPTION = { json: { type: 'boolean' } } as const

/** Prints a command's result: as JSON with `--json` ({@link printJson}), else as `format` words it for people. */
export function printResult<T>(json: string | boolean | undefined, result: T, format: (result: T) => string): void {
  if (json) printJson(result)
  else process.stdout.write(format(result))
}

/**
 * Formats rows as a plain-text table: a header, a rule, then one line per row, columns padded to their
 * widest cell (the last column is not padded, so lines have no trailing blanks).
 */
export function formatTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>, indent = ''): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    indent + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n'
}

/** A local time as `YYYY-MM-DD HH:MM:SS`. */
export function formatTime(date: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0')
  return (
    `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`
  )
}

/** `text` cut to `max` characters, ending in `…` when cut. */
export function shorten(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…'
}
