// The least a wake-up of Node's event loop costs on this machine: one timer
// re-armed at a fixed period (as the controller's due-time heap re-arms its
// one timer), a callback that does nothing. Run as its own process by
// floor.mjs, so nothing else of the bench shares its loop.
// argv: rate (wakes/s), seconds, warm-up seconds. Prints { wakes, cpuUsPerWake }.
const [rate, seconds, warmup] = process.argv.slice(2).map(Number);
const period = 1000 / rate;
let wakes = 0;
let counting = false;
let next = performance.now();
function tick() {
  if (counting) wakes++;
  next += period;
  setTimeout(tick, Math.max(0, next - performance.now()));
}
tick();
setTimeout(() => {
  const before = process.cpuUsage();
  wakes = 0;
  counting = true;
  setTimeout(() => {
    const cpu = process.cpuUsage(before);
    process.stdout.write(JSON.stringify({ wakes, cpuUsPerWake: (cpu.user + cpu.system) / wakes }) + '\n');
    process.exit(0);
  }, seconds * 1000);
}, warmup * 1000);
