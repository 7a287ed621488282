import { readFileSync } from 'node:fs';
import { OrderlyError } from '../errors.js';
import { redactUrl } from './schema.js';

/** Where an audit password may come from besides the URL, which `ps` shows to every user. */
export const AUDIT_PASSWORD_ENV = 'ORDERLY_AUDIT_PASSWORD';

/** The URL without its password (what is saved and shown), and the password if it had one. */
export function splitPassword(url: string): { url: string; password?: string } {
  try {
    const u = new URL(url);
    if (!u.password) return { url };
    const password = decodeURIComponent(u.password);
    u.password = '';
    return { url: u.toString(), password };
  } catch {
    return { url };
  }
}

/**
 * The URL to connect with: its own password if it has one, else the one in
 * `passwordFile` (first line), else `$ORDERLY_AUDIT_PASSWORD`. URLs without
 * a user part (jsonl:, sqlite:) are returned as they are.
 */
export function resolveAuditUrl(url: string, opts: { passwordFile?: string | undefined; env?: NodeJS.ProcessEnv } = {}): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (u.password || !u.username || !/^(postgres|postgresql|mysql|mariadb):$/.test(u.protocol)) return url;
  let password: string | undefined;
  if (opts.passwordFile) {
    try {
      password = readFileSync(opts.passwordFile, 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      throw new OrderlyError('ERR_AUDIT_URL', `cannot read the audit password file ${opts.passwordFile}: ${(err as Error).message}`);
    }
  } else {
    password = (opts.env ?? process.env)[AUDIT_PASSWORD_ENV];
  }
  if (!password) return url;
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** A URL fit to print: its password, if any, as `***`. */
export function shownUrl(url: string): string {
  return redactUrl(url);
}
