import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What `orderly-dispatch run` leaves in `<state>/controller.json` for the commands that come after it. */
export interface SavedRun {
  ordersDir: string;
  rigs: string[];
  /** Without its password: that comes from auditPasswordFile or $ORDERLY_AUDIT_PASSWORD. */
  audit: string;
  auditPasswordFile?: string;
  eventLog?: string;
  load?: { strict?: boolean; silentIsNoOp?: boolean };
  pid?: number;
  /** Cluster mode: the cluster's name and engine (without a password). */
  cluster?: { name: string; engine: string };
}

/**
 * Why `<state>/controller.json` may not be used, or undefined: it names the
 * orders to run and the database to write, so one written by another user
 * is not trusted.
 */
export function untrustedSavedRun(state: string): string | undefined {
  const file = join(state, 'controller.json');
  const own = process.getuid?.();
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st || own === undefined || st.uid === own) return undefined;
  return `${file} belongs to uid ${st.uid}, not to this user (uid ${own}): not trusted, since it names the orders to run and the database to write; ignored`;
}

/** The last run's settings, if there are any and they can be trusted (a warning on stderr when not). */
export function readSavedRun(state: string): SavedRun | undefined {
  const file = join(state, 'controller.json');
  if (!existsSync(file)) return undefined;
  const untrusted = untrustedSavedRun(state);
  if (untrusted) {
    process.stderr.write(`orderly-dispatch: warning: ${untrusted}\n`);
    return undefined;
  }
  return JSON.parse(readFileSync(file, 'utf8')) as SavedRun;
}
