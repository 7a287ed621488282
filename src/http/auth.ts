import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { OrderlyError } from '../errors.js';

/** Where a token may come from besides a file: argv is visible to every user of the host. */
export const HTTP_TOKEN_ENV = 'ORDERLY_HTTP_TOKEN';

export interface Listen {
  host: string;
  port: number;
}

/** `7070`, `:7070`, `127.0.0.1:7070`, `[::1]:7070`, `0.0.0.0:7070`; a bare port listens on loopback. */
export function parseListen(raw: string): Listen {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]*):)?(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new OrderlyError('ERR_USAGE', `--http wants [HOST:]PORT (e.g. 127.0.0.1:7070), got ${JSON.stringify(raw)}`);
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { host, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * The token every request must carry: from the file (first line) or the
 * environment. Required off loopback, where anyone on the network could
 * otherwise read the city's runs and fire its orders.
 */
export function loadToken(listen: Listen, file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').split('\n')[0]!.trim();
    } catch (err) {
      throw new OrderlyError('ERR_USAGE', `--http-token-file ${file}: ${(err as Error).message}`);
    }
    if (!token) throw new OrderlyError('ERR_USAGE', `--http-token-file ${file} is empty`);
  } else if (env[HTTP_TOKEN_ENV]) token = env[HTTP_TOKEN_ENV]!.trim();
  if (token !== undefined && token.length < 16) throw new OrderlyError('ERR_USAGE', 'the HTTP token must be at least 16 characters');
  if (token === undefined && !isLoopback(listen.host)) {
    throw new OrderlyError(
      'ERR_USAGE',
      `--http ${listen.host}:${listen.port} is not a loopback address: give a token with --http-token-file PATH or ${HTTP_TOKEN_ENV} (every request must then carry it)`,
    );
  }
  return token;
}

/** `Authorization: Bearer <token>`, or `?token=` for what cannot set headers (the page itself, EventSource). */
export function authorized(req: IncomingMessage, url: URL, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = req.headers.authorization;
  const bearer = header !== undefined && /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '').trim() : undefined;
  const given = bearer ?? url.searchParams.get('token');
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
