/**
 * Argument checks, in one place: every public function checks its arguments with these, and they throw
 * what Node's own functions throw for bad arguments — a `TypeError` with code `ERR_INVALID_ARG_TYPE` for
 * a value of the wrong type, a `TypeError` with code `ERR_INVALID_ARG_VALUE` for a value of the right
 * type that is not allowed (an empty string, a NUL byte, an unknown choice), a `RangeError` with code
 * `ERR_OUT_OF_RANGE` for a number that is not an integer or out of bounds. The message names the
 * argument and what it received.
 * @internal
 */

/** A `TypeError` or `RangeError` with Node's `code`. */
type ArgumentError = (TypeError | RangeError) & { code: string }

function withCode<E extends Error>(error: E, code: string): E & { code: string } {
  return Object.assign(error, { code })
}

/** How a received value is shown in a message: its type, and the value when it is short. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  switch (typeof value) {
    case 'number':
      return `type number (${Object.is(value, -0) ? '-0' : String(value)})`
    case 'string': {
      const shown = value.length > 28 ? `${value.slice(0, 25)}...` : value
      return `type string (${JSON.stringify(shown)})`
    }
    case 'bigint':
      return `type bigint (${value}n)`
    case 'boolean':
      return `type boolean (${value})`
    case 'function':
      return `function ${value.name || '<anonymous>'}`
    case 'object':
      return Array.isArray(value) ? 'an instance of Array' : `an instance of ${value.constructor?.name ?? 'Object'}`
    default:
      return `type ${typeof value}`
  }
}

/** `ERR_INVALID_ARG_TYPE`: `name` must be of type `expected`. */
export function invalidType(name: string, expected: string, value: unknown): ArgumentError {
  return withCode(new TypeError(`${name} must be ${expected}. Received ${describe(value)}`), 'ERR_INVALID_ARG_TYPE')
}

/** `ERR_INVALID_ARG_VALUE`: `name` has the right type but a value that is not allowed (`why`). */
export function invalidValue(name: string, value: unknown, why: string): ArgumentError {
  return withCode(new TypeError(`${name} ${why}. Received ${describe(value)}`), 'ERR_INVALID_ARG_VALUE')
}

/** `ERR_OUT_OF_RANGE`: `name` must be `range`. */
export function outOfRange(name: string, range: string, value: unknown): ArgumentError {
  const received = typeof value === 'number' ? String(value) : describe(value)
  return withCode(new RangeError(`${name} is out of range: it must be ${range}. Received ${received}`), 'ERR_OUT_OF_RANGE')
}

/** An integer in `[min, max]`. */
export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, max >= Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value)
  }
  return value
}

/** A whole number of milliseconds a timer can wait: an integer in `[0, 2^31 - 1]`. */
export function checkMs(name: string, value: unknown): number {
  return checkInteger(name, value, 0, 0x7fffffff)
}

/** A non-empty string without NUL bytes (a path, a command). */
export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidType(name, 'a string', value)
  if (value.length === 0) throw invalidValue(name, value, 'must not be empty')
  if (value.includes('\0')) throw invalidValue(name, value, 'must not contain NUL bytes')
  return value
}

/** A boolean. */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value)
  return value
}

/** A function. */
export function checkFunction<F extends (...args: never[]) => unknown>(name: string, value: unknown): F {
  if (typeof value !== 'function') throw invalidType(name, 'a function', value)
  return value as F
}

/** An object (not `null`, not an array). */
export function checkObject<T extends object>(name: string, value: unknown): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidType(name, 'an object', value)
  return value as T
}

/** One of `choices`. */
export function checkOneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string') throw invalidType(name, 'a string', value)
  if (!(choices as readonly string[]).includes(value)) {
    throw invalidValue(name, value, `must be one of ${choices.map((c) => `'${c}'`).join(', ')}`)
  }
  return value as T
}

/** An `AbortSignal`. */
export function checkSignal(name: string, value: unknown): AbortSignal {
  if (!(value instanceof AbortSignal)) throw invalidType(name, 'an AbortSignal', value)
  return value
}

/** `value`, or `fallback` when `value` is `undefined`, checked by `check`. */
export function optional<T>(value: unknown, fallback: T, check: (value: unknown) => T): T {
  return value === undefined ? fallback : check(value)
}
