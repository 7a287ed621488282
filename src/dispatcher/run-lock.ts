/**
 * Run lock files are rewritten in place, never truncated: every record is at
 * least this long, JSON padded with spaces (JSON.parse ignores the padding).
 * The native spawner writes the started-body record itself, in the same
 * shape (crates/lease, RUN_RECORD_BYTES).
 */
export const LOCK_RECORD_BYTES = 160;

/** `pgid` and `timeoutAt` (ms since the epoch; null without a timeout) once the body runs. */
export function lockRecord(r: { fireId: string; pgid?: number; timeoutAt?: number }): string {
  return JSON.stringify(r).padEnd(LOCK_RECORD_BYTES);
}
