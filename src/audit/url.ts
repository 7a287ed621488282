import { resolve } from 'node:path';
import { OrderlyError } from '../errors.js';
import { JsonlSink } from './jsonl.js';
import { MysqlSink } from './mysql.js';
import { PostgresSink } from './postgres.js';
import type { AuditSink } from './record.js';
import { SqliteSink } from './sqlite.js';

export const AUDIT_URL_FORMS =
  'jsonl:<path>, sqlite:<path>, postgres://user[:password]@host[:port]/db (or postgresql://), mysql://user[:password]@host[:port]/db[?dolt_commit=1]';

/**
 * The sink a URL names:
 *   jsonl:<path>                 JSON lines, fdatasync'd per batch (no driver)
 *   sqlite:<path>                SQLite via better-sqlite3, a dependency: the default (sqlite:///abs/path also works)
 *   postgres://… postgresql://…  PostgreSQL via pg
 *   mysql://… (mariadb://…)      MySQL / MariaDB / Dolt via mysql2; `?dolt_commit=1` for Dolt
 * pg and mysql2 are optional peer dependencies, loaded on first use; a
 * missing one fails at open() naming the npm package to install.
 */
export function sinkFromUrl(url: string): AuditSink {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  const rest = url.slice(colon + 1);
  switch (scheme) {
    case 'jsonl':
      if (!rest) break;
      return new JsonlSink(resolve(rest));
    case 'sqlite': {
      // sqlite:/abs, sqlite:rel, sqlite:///abs (URL style), sqlite://rel
      const path = rest.startsWith('//') ? rest.slice(2) : rest;
      if (!path) break;
      return new SqliteSink(resolve(path));
    }
    case 'postgres':
    case 'postgresql':
      if (!rest.startsWith('//')) break;
      return new PostgresSink(url);
    case 'mysql':
    case 'mariadb':
      if (!rest.startsWith('//')) break;
      try {
        return new MysqlSink(url);
      } catch (err) {
        if (err instanceof OrderlyError) throw err;
        break;
      }
    default:
      break;
  }
  throw new OrderlyError('ERR_AUDIT_URL', `unsupported audit URL ${JSON.stringify(url)}: use ${AUDIT_URL_FORMS}`);
}
