import { resolveAuditUrl } from '../audit/credentials.js';
import { OrderlyError } from '../errors.js';
import { engineFromUrl } from './connect.js';
import { type MemberInfo, SHARD_COUNT, type ShardState } from './engine.js';
import { EtcdEngine } from './etcd.js';
import { memberFromId, PostgresEngine } from './postgres.js';

/**
 * Who holds what in a cluster, as its engine sees it, read from outside:
 * `orderly-dispatch cluster status` and the doctor look without joining, so
 * looking never moves a shard.
 */

export interface ObservedMember extends MemberInfo {
  /** The shards it owns, with their epochs. */
  shards: Array<{ shard: number; epoch: number }>;
  /** False for an owner the member list did not have (it joined or left between the two reads). */
  listed: boolean;
}

export interface ClusterPicture {
  cluster: string;
  kind: 'postgres' | 'etcd';
  /** The engine's address without a password. */
  engine: string;
  members: ObservedMember[];
  /** Shards nobody owns now; epoch 0: never owned. */
  unowned: Array<{ shard: number; epoch: number }>;
  owned: number;
  total: number;
}

/**
 * The engine URL to connect with. A saved one has its password as `***`
 * (when it had one): that is dropped. A PostgreSQL one without a password
 * takes it as the audit URL does: the password file, else $ORDERLY_AUDIT_PASSWORD.
 */
export function clusterConnectUrl(url: string, passwordFile?: string): string {
  return resolveAuditUrl(clusterUrlPassword(url) === '***' ? url.replace(USERINFO, '$1@') : url, { passwordFile });
}

/** The URL fit to print: any password as `***`. */
export function shownClusterUrl(url: string): string {
  return url.replace(USERINFO, '$1:***@');
}

/**
 * `scheme://user:password@`, found by pattern rather than URL parsing: an
 * etcd URL with several endpoints is no WHATWG URL.
 */
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^:@/]*):([^@/]*)@/;

/** The password in a cluster URL, if it holds one. */
export function clusterUrlPassword(url: string): string | undefined {
  return USERINFO.exec(url)?.[2] || undefined;
}

/** Connects without joining, reads members and shards, and disconnects. */
export async function observeCluster(url: string, cluster: string): Promise<ClusterPicture> {
  const engine = engineFromUrl(url, cluster)();
  if (!(engine instanceof PostgresEngine || engine instanceof EtcdEngine)) throw new OrderlyError('ERR_CLUSTER', `${engine.url}: this engine cannot be observed`);
  try {
    await engine.observe();
    const members = await engine.members();
    const shards = await engine.shards().catch((err: unknown) => {
      // undefined_table: no member ever joined this database, so no shard was ever owned.
      if ((err as { code?: string }).code === '42P01') return [] as ShardState[];
      throw err;
    });
    return picture(cluster, engine.kind, engine.url, members, shards);
  } finally {
    await engine.close().catch(() => undefined);
  }
}

function picture(cluster: string, kind: ClusterPicture['kind'], url: string, members: MemberInfo[], shards: ShardState[]): ClusterPicture {
  const byId = new Map<string, ObservedMember>(members.map((m) => [m.id, { ...m, shards: [], listed: true }]));
  const epochs = new Map(shards.map((s) => [s.shard, s.epoch]));
  let owned = 0;
  for (const s of shards) {
    if (s.owner === undefined) continue;
    let m = byId.get(s.owner);
    if (!m) byId.set(s.owner, (m = { ...memberFromId(s.owner, 0), shards: [], listed: false }));
    m.shards.push({ shard: s.shard, epoch: s.epoch });
    owned++;
  }
  const held = new Set(shards.filter((s) => s.owner !== undefined).map((s) => s.shard));
  const unowned: ClusterPicture['unowned'] = [];
  for (let shard = 0; shard < SHARD_COUNT; shard++) if (!held.has(shard)) unowned.push({ shard, epoch: epochs.get(shard) ?? 0 });
  return {
    cluster,
    kind,
    engine: url,
    members: [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    unowned,
    owned,
    total: SHARD_COUNT,
  };
}
