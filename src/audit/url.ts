import { resolve } from 'node:path';
import { OrderlyError } from '../errors.js';
import { JsonlSink } from './jsonl.js';
import type { AuditSink } from './record.js';

/** The sink a URL names: `jsonl:<path>` (more kinds as sinks land). */
export function sinkFromUrl(url: string): AuditSink {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon) : '';
  const rest = url.slice(colon + 1);
  switch (scheme) {
    case 'jsonl':
      if (!rest) break;
      return new JsonlSink(resolve(rest));
    default:
      break;
  }
  throw new OrderlyError('ERR_AUDIT_URL', `unsupported audit URL ${JSON.stringify(url)}: use jsonl:<path>`);
}
