#!/usr/bin/env node
import { OrderlyError } from '../errors.js';
import { EXIT, UsageError } from './args.js';
import { doctorCommand, DOCTOR_USAGE } from './doctor.js';
import { feedCommand, FEED_USAGE } from './feed.js';
import { fire, FIRE_USAGE } from './fire.js';
import { historyCommand, HISTORY_USAGE } from './history.js';
import { run, RUN_USAGE } from './run.js';

const USAGE = `usage: orderly <command> [options]

commands:
  run <city|pack|dir>  fire orders until stopped
  fire <scoped-name>   run one order now
  history <name>       one order's runs, newest first
  feed                 every order: last fired, last status
  doctor               is the state healthy?

Every command takes --json and --help.

${RUN_USAGE}

${FIRE_USAGE}

${HISTORY_USAGE}

${FEED_USAGE}

${DOCTOR_USAGE}`;

const commands: Record<string, (argv: string[]) => Promise<number>> = { run, fire, history: historyCommand, feed: feedCommand, doctor: doctorCommand };

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

// `orderly feed | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

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
