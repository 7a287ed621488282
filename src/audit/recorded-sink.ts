import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitPassword } from './credentials.js';

/**
 * Which audit sink a state directory's runs went to, kept in
 * `<state>/audit-sink.json` so `feed`, `history`, `fire` and `doctor` read the
 * same database as the controller whoever started it (the CLI or a program
 * using the library). Never a password: that comes from the environment or a
 * password file when the URL is opened.
 */
const FILE = 'audit-sink.json';

/** The embedded default, the same for the library and the CLI: SQLite beside the state. */
export const defaultAuditUrl = (state: string): string => `sqlite:${join(state, 'audit.db')}`;

export function readRecordedSink(state: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(state, FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const url = (JSON.parse(text) as { url?: unknown }).url;
    return typeof url === 'string' && url !== '' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records the sink at start, and only when it changed: a controller that
 * restarts on the same sink writes nothing. Atomic (temp file, fsync, rename)
 * so a crash leaves the old name or the new one.
 */
export function recordSink(state: string, url: string): void {
  const shown = splitPassword(url).url;
  if (readRecordedSink(state) === shown) return;
  const path = join(state, FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ url: shown })}\n`, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
