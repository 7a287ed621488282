#!/usr/bin/env node
import { OrderlyError } from '../errors.js';
import { EXIT, UsageError } from './args.js';
import { fire, FIRE_USAGE } from './fire.js';
import { run, RUN_USAGE } from './run.js';

const USAGE = `usage: orderly <command> [options]

commands:
  run <orders-dir>     fire orders until stopped
  fire <scoped-name>   run one order now

Every command takes --json and --help.

${RUN_USAGE}

${FIRE_USAGE}`;

const commands: Record<string, (argv: string[]) => Promise<number>> = { run, fire };

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? EXIT.ok : EXIT.usage;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(commands).join(', ')}`);
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = OrderlyError.from(err);
    const json = process.argv.includes('--json');
    process.stderr.write(json ? JSON.stringify({ error: e.code, message: e.message }) + '\n' : `orderly: ${e.message}\n`);
    process.exitCode = e instanceof UsageError || e.code === 'ERR_USAGE' ? EXIT.usage : e.code === 'ERR_ORDER_FILE' ? EXIT.usage : EXIT.failed;
  },
);
