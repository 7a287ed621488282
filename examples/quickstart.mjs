// The Quick start demo: one controller tick on the embedded defaults.
// Run it twice: the second run finds the first run's lastRun, outbox entry
// and fencing high-water in .orderly/ (the state directory), and shows that a
// fire inside its cooldown is refused by the durable state, not by memory.
import { LeaseStore } from 'orderly';

const state = process.env.ORDERLY_STATE ?? '.orderly/quickstart';
const cooldownMs = 30_000;
const store = await LeaseStore.open(state, { gates: { sweeps: 2 } });

const { held, outbox, lastRun } = store.recovered;
console.log(`state ${state}: ${held.length} held lease(s), ${outbox.length} unacknowledged completion(s), lastRun for ${Object.keys(lastRun).length} order(s)`);
for (const entry of outbox) {
  console.log(`  re-sending the audit record of ${entry.key} (fire ${entry.id}): ${entry.outcome}`);
  store.ack(entry);
}

for (const order of ['gate-sweep', 'orphan-sweep', 'dolt-health']) {
  const last = store.lastRun(order);
  if (last !== undefined && Date.now() - last < cooldownMs) {
    console.log(`${order}: skipped, fired ${((Date.now() - last) / 1000).toFixed(1)} s ago (cooldown ${cooldownMs / 1000} s)`);
    continue;
  }
  const lease = await store.acquire(order, { group: order.endsWith('sweep') ? 'sweeps' : undefined });
  if (!lease) {
    console.log(`${order}: held elsewhere`);
    continue;
  }
  // A body would run here; the sweep finds nothing to do, the health check does work.
  if (order === 'dolt-health') {
    const entry = await store.complete(lease, JSON.stringify({ outcome: 'did-work', exitCode: 0 }));
    console.log(`${order}: did work; outbox entry ${entry.id} is durable (an audit sink would commit it, then ack)`);
  } else {
    console.log(`${order}: no-op; fence ${lease.token}, zero audit writes`);
  }
  store.release(lease);
}
const s = store.stats();
console.log(`wal: ${s.walSegments} segment(s), ${s.walBytes} bytes, ${s.walSyncs} fdatasync(s) this run`);
await store.close();
