/**
 * Named crash points for the system-level kill tests, the TypeScript twin of
 * `orderly_wal::crash_point`: `ORDERLY_CRASH_POINT=<name>` (or `<name>@<n>`
 * for the n-th hit) kills this process with SIGKILL when execution reaches
 * `crashPoint(name)`, leaving exactly what `kill -9` leaves.
 */
const spec = (() => {
  const raw = process.env.ORDERLY_CRASH_POINT?.trim();
  if (!raw) return undefined;
  const at = raw.lastIndexOf('@');
  if (at > 0) return { name: raw.slice(0, at), nth: Math.max(1, Number(raw.slice(at + 1)) || 1) };
  return { name: raw, nth: 1 };
})();
let hits = 0;

export function crashPoint(name: string): void {
  if (spec?.name === name && ++hits >= spec.nth) process.kill(process.pid, 'SIGKILL');
}
