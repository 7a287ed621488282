import { parseArgs, type ParseArgsConfig } from 'node:util';
import { OrderlyError } from '../errors.js';

/** Exit statuses every command shares. */
export const EXIT = { ok: 0, failed: 1, usage: 2, skipped: 3 } as const;

export class UsageError extends OrderlyError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Common = { json: { type: 'boolean' }; help: { type: 'boolean'; short: 'h' } };
type Parsed<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T & Common; allowPositionals: true; strict: true }>>;

/** Parses a command's flags plus the --json and --help every command takes. */
export function parse<T extends Options>(argv: string[], options: T, usage: string): Parsed<T> {
  try {
    const common: Common = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
    return parseArgs({ args: argv, options: { ...options, ...common }, allowPositionals: true, strict: true }) as Parsed<T>;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
}

/** Prints a machine-readable line with --json, a human one otherwise; secrets never get through. */
export function printer(json: boolean) {
  return (human: string, data: Record<string, unknown>): void => {
    process.stdout.write(scrub(json ? JSON.stringify(data) : human) + '\n');
  };
}

const secrets = new Set<string>();

/** A value no output of this process may show (a database password), as given or URL-encoded. */
export function registerSecret(secret: string | undefined): void {
  if (!secret || secret.length < 3) return;
  secrets.add(secret);
  secrets.add(encodeURIComponent(secret));
}

export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
