#!/usr/bin/env node
import { OrderlyError } from '../errors.js';
import { EXIT, scrub, UsageError } from './args.js';
import { clusterCommand, CLUSTER_USAGE } from './cluster.js';
import { doctorCommand, DOCTOR_USAGE } from './doctor.js';
import { feedCommand, FEED_USAGE } from './feed.js';
import { fire, FIRE_USAGE } from './fire.js';
import { historyCommand, HISTORY_USAGE } from './history.js';
import { CHECK_USAGE, checkCommand, LIST_USAGE, listCommand, SHOW_USAGE, showCommand } from './orders.js';
import { publishCommand, PUBLISH_USAGE } from './publish.js';
import { repairCommand, REPAIR_USAGE } from './repair.js';
import { run, RUN_USAGE } from './run.js';

const USAGE = `usage: orderly-dispatch <command> [options]

commands:
  run <city|pack|dir>  fire orders until stopped
  fire <scoped-name>   run one order now
  list                 every order of the city (as gc order list)
  show <name>          one order's definition (as gc order show)
  check                which orders are due now, and why (as gc order check)
  history [name]       runs, newest first (as gc order history)
  publish <type>       append an event to the city's event log
  feed                 every order: last fired, last status
  doctor               is the state healthy?
  cluster status       a cluster's members and who owns which shard
  repair               open a damaged or lost lease log, keeping what is valid

Every command takes --json and --help.

${RUN_USAGE}

${FIRE_USAGE}

${LIST_USAGE}

${SHOW_USAGE}

${CHECK_USAGE}

${HISTORY_USAGE}

${PUBLISH_USAGE}

${FEED_USAGE}

${DOCTOR_USAGE}

${CLUSTER_USAGE}

${REPAIR_USAGE}`;

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  run,
  fire,
  list: listCommand,
  show: showCommand,
  check: checkCommand,
  history: historyCommand,
  publish: publishCommand,
  feed: feedCommand,
  doctor: doctorCommand,
  cluster: clusterCommand,
  repair: repairCommand,
};

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

// `orderly-dispatch feed | head` closes stdout early: that is the reader's choice, not an error. A
// controller (`orderly-dispatch run ... | head -3`) must not stop because its reader went away: it
// stops printing and goes on, its leases held for bodies it started.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (process.argv[2] === 'run') {
    process.stdout.write = (() => true) as typeof process.stdout.write;
    return;
  }
  process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = OrderlyError.from(err);
    const json = process.argv.includes('--json');
    process.stderr.write(scrub(json ? JSON.stringify({ error: e.code, message: e.message }) + '\n' : `orderly-dispatch: ${e.message}\n`));
    process.exitCode = e instanceof UsageError || e.code === 'ERR_USAGE' ? EXIT.usage : e.code === 'ERR_ORDER_FILE' ? EXIT.usage : EXIT.failed;
  },
);
