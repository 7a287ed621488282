import { join } from 'node:path';
import { redactUrl } from '../audit/schema.js';
import { PostgresSink } from '../audit/postgres.js';
import type { AuditRecord, AuditSink } from '../audit/record.js';
import { sinkFromUrl } from '../audit/url.js';
import { OrderlyError } from '../errors.js';
import type { ClusterEngine } from './engine.js';
import { EtcdEngine } from './etcd.js';
import { FencedSink } from './fenced-sink.js';
import { PostgresEngine } from './postgres.js';

export const CLUSTER_URL_FORMS = 'postgres://user@host[:port]/db (or postgresql://), etcd://host:port[,host:port...]';

/** A factory for the engine a `--cluster` URL names: each call is a fresh connection. */
export function engineFromUrl(url: string, cluster: string): () => ClusterEngine {
  const scheme = url.slice(0, Math.max(0, url.indexOf('://'))).toLowerCase();
  if (!/^[A-Za-z0-9._-]{1,24}$/.test(cluster)) {
    throw new OrderlyError('ERR_CLUSTER', `cluster name ${JSON.stringify(cluster)}: use 1 to 24 letters, digits, dots, dashes or underscores (--cluster-name)`);
  }
  if (scheme === 'postgres' || scheme === 'postgresql') return () => new PostgresEngine(url, { cluster });
  if (scheme === 'etcd' || scheme === 'etcds') return () => new EtcdEngine(url, { cluster });
  throw new OrderlyError('ERR_CLUSTER', `unsupported cluster URL ${JSON.stringify(redactUrl(url))}: use ${CLUSTER_URL_FORMS}`);
}

/**
 * The audit sink of a cluster member. PostgreSQL engine and PostgreSQL audit
 * in the same database: the epoch check is part of the insert. Anything
 * else: the engine is read just before the insert.
 */
export function clusterSink(auditUrl: string, clusterUrl: string, cluster: string, state: string, engine: () => ClusterEngine, onFenced: (records: AuditRecord[]) => void): AuditSink {
  const atomic = sameDatabase(auditUrl, clusterUrl);
  const inner = atomic ? new PostgresSink(auditUrl, { fence: { cluster } }) : sinkFromUrl(auditUrl);
  return new FencedSink(inner, { engine, journal: join(state, 'fenced.jsonl'), onFenced, atomic });
}

export function sameDatabase(a: string, b: string): boolean {
  const pg = (u: string): URL | undefined => {
    if (!/^postgres(ql)?:\/\//i.test(u)) return undefined;
    try {
      return new URL(u.replace(/^postgresql:/i, 'postgres:'));
    } catch {
      return undefined;
    }
  };
  const x = pg(a);
  const y = pg(b);
  return x !== undefined && y !== undefined && x.hostname === y.hostname && (x.port || '5432') === (y.port || '5432') && x.pathname === y.pathname;
}
