// One worker process of bench:cluster's pg-boss baseline: the city's periodic
// orders run the way a pg-boss 10 user runs periodic work across a few worker
// processes. Every process runs this same file against the same database; none
// of them is special.
//
// - Each order is a queue (pg-boss 10 keys a schedule by its queue's name, so
//   one schedule per order needs one queue per order).
// - Cadence: an order whose interval is a whole number of minutes that divides
//   an hour (or of hours that divides a day) is a cron schedule(), pg-boss's
//   own answer to "every N minutes"; its cron has minute granularity, so a
//   shorter interval (the city's 30 s sweeps) is a throttled send from a timer
//   in every process: sendThrottled(queue, data, {}, seconds) lets at most one
//   job per N-second slot into the queue, whichever process sends first —
//   what pg-boss documents for "at most once per N seconds".
// - work() on every queue in every process, with pg-boss's defaults (one job
//   per fetch, a fetch every 2 s per queue and process): the job is the fire.
//   The handler runs the order's exec command as orderly runs it (/bin/sh -c,
//   in the order's directory, with the variables the city's scripts read).
//   Exit 100 (nothing to do) and exit 0 both complete the job; pg-boss has no
//   notion of a fire that did nothing, so both cost the same. Any other exit
//   throws, as a user's handler would, and pg-boss fails the job.
// - Everything else is pg-boss's default: its schema migration at start, the
//   supervisor's maintenance (every 2 min, one instance at a time), the cron
//   monitor (every 30 s) and its send-it queue. What they write is part of
//   what pg-boss costs, and is counted with the rest.
//
// Input: argv[2] is JSON { url, member, orders: [{ scopedName, queue,
// intervalMs, command, cwd, env }] }. Output on stdout, one JSON object per
// line, the shape `orderly-dispatch run --json` prints for the same facts:
// { type: 'started' }, { type: 'completed', at, startedAt, scopedName,
// outcome, exitCode, durationMs } per job, { type: 'summary', ... } at the
// end. SIGTERM/SIGINT stop it (pg-boss's graceful stop).
import { spawn } from 'node:child_process';
import PgBoss from 'pg-boss';

const spec = JSON.parse(process.argv[2] ?? 'null');
if (!spec?.url || !Array.isArray(spec.orders)) {
  process.stderr.write('usage: node worker.mjs \'{"url": "postgres://...", "member": "m0", "orders": [...]}\'\n');
  process.exit(2);
}

const NO_OP_EXIT = 100;
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const counts = { fires: 0, noOps: 0, didWork: 0, failed: 0, sends: 0, throttled: 0, errors: 0 };

/** The cron expression of an interval pg-boss's minute-granular cron can express exactly, else null. */
function cronFor(intervalMs) {
  const minutes = intervalMs / 60_000;
  if (Number.isInteger(minutes) && minutes >= 1 && 60 % minutes === 0) return minutes === 1 ? '* * * * *' : `*/${minutes} * * * *`;
  const hours = intervalMs / 3_600_000;
  if (Number.isInteger(hours) && hours >= 1 && 24 % hours === 0) return hours === 1 ? '0 * * * *' : `0 */${hours} * * *`;
  return null;
}

/** Runs the order's body as orderly does: /bin/sh -c <exec> in the order's directory. */
function runBody(order) {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const child = spawn('/bin/sh', ['-c', order.command], { cwd: order.cwd, env: { ...process.env, ...order.env }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', (err) => resolve({ startedAt, exitCode: null, signal: null, error: err.message }));
    child.once('exit', (exitCode, signal) => resolve({ startedAt, exitCode, signal }));
  });
}

function report(err) {
  counts.errors++;
  process.stderr.write(`pg-boss worker ${spec.member}: ${err?.stack ?? err}\n`);
}

const boss = new PgBoss({ connectionString: spec.url, application_name: `pg-boss-bench:${spec.member}` });
boss.on('error', report);
await boss.start();

/**
 * createQueue, safe when the other workers start at the same moment. pg-boss
 * 10's create_queue() deadlocks (40P01) or hits the queue's primary key
 * (23505) when several processes create one queue at once (timgit/pg-boss
 * #467; supabase/storage#703 serialises its queue creation for the same
 * reason): look first, and on those two errors look again after a moment,
 * as a deployment of several identical workers has to.
 */
async function ensureQueue(name) {
  for (let attempt = 0; ; attempt++) {
    if (await boss.getQueue(name)) return;
    try {
      await boss.createQueue(name);
      return;
    } catch (err) {
      if (attempt >= 10 || !['40P01', '23505'].includes(err?.code)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200));
    }
  }
}

const timers = [];
for (const order of spec.orders) await ensureQueue(order.queue);
for (const order of spec.orders) {
  const data = { order: order.scopedName };
  const cron = cronFor(order.intervalMs);
  if (cron) {
    // Every process declares the same schedules at start, as the same code
    // deployed three times does; pg-boss keeps one row per queue.
    await boss.schedule(order.queue, cron, data);
  } else {
    const seconds = Math.max(1, Math.round(order.intervalMs / 1000));
    const send = () => {
      counts.sends++;
      boss.sendThrottled(order.queue, data, {}, seconds).then((id) => {
        if (id === null) counts.throttled++;
      }, report);
    };
    send();
    timers.push(setInterval(send, order.intervalMs));
  }
  await boss.work(order.queue, async ([job]) => {
    const r = await runBody(order);
    const at = Date.now();
    const outcome = r.exitCode === NO_OP_EXIT ? 'no-op' : r.exitCode === 0 ? 'did-work' : 'failed';
    counts.fires++;
    if (outcome === 'no-op') counts.noOps++;
    else if (outcome === 'did-work') counts.didWork++;
    else counts.failed++;
    print({ type: 'completed', at, startedAt: r.startedAt, scopedName: order.scopedName, jobId: job.id, outcome, exitCode: r.exitCode, signal: r.signal, durationMs: at - r.startedAt });
    if (outcome === 'failed') throw new Error(`${order.scopedName}: exit ${r.exitCode ?? r.signal}${r.error ? ` (${r.error})` : ''}`);
  });
}
print({ type: 'started', member: spec.member, orders: spec.orders.map((o) => ({ scopedName: o.scopedName, queue: o.queue, cadence: cronFor(o.intervalMs) ?? `sendThrottled every ${o.intervalMs / 1000} s` })) });

let stopping;
async function stop() {
  stopping ??= (async () => {
    for (const t of timers) clearInterval(t);
    try {
      await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    } catch (err) {
      report(err);
    }
    print({ type: 'summary', ...counts });
    process.exit(0);
  })();
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
