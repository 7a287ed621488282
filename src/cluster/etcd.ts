import type { Etcd3, IKeyValue, IOptions, Lease, Namespace } from 'etcd3';
import { loadDriver } from '../audit/schema.js';
import { OrderlyError } from '../errors.js';
import { type Claim, type ClusterEngine, LEASE_MS, type MemberInfo, RETRY_MS, type ShardState } from './engine.js';

/**
 * Ownership on etcd, written only when it changes hands.
 *
 * Under `orderly/<cluster>/`:
 * - `members/<id>`: the member's MemberInfo as JSON, attached to its lease;
 * - `shards/<n>`: the owning member's id, attached to the owner's lease, so
 *   etcd deletes it when the owner stops renewing (crash, pause, partition);
 * - `epochs/<n>`: the shard's epoch in decimal, with no lease: it outlives
 *   every owner, so the next claim counts on from it.
 *
 * Renewing is a lease keepalive, which etcd does not log as a revision: a
 * member that holds its shards writes nothing. etcd restores leases after a
 * restart with a fresh TTL, so an etcd crash costs no member its shards.
 */

type Etcd3Module = typeof import('etcd3');
type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * The budget of one engine call, retries and failover included. The
 * coordinator confirms every RETRY_MS and must learn of a dead etcd before
 * its next round; the client's own defaults (three retries, then a circuit
 * breaker that shuns a host for 5 s) would outlast that.
 */
const CALL_MS = RETRY_MS;
/** How long an endpoint that failed is passed over while another one is left to try. */
const SKIP_MS = 1_000;
const DEFAULT_PORT = 2379;

export interface EtcdEngineOptions {
  cluster: string;
  /** etcd drops a member that has not renewed for this long (rounded up to whole seconds); default LEASE_MS. */
  leaseMs?: number;
}

/** What an `etcd://` URL says: the client's endpoints and credentials, and the URL fit to print. */
export interface EtcdTarget {
  hosts: string[];
  auth?: { username: string; password: string };
  /** The URL without user name and password. */
  url: string;
}

const URL_FORM = 'etcd://[user:password@]host:port[,host:port...] (etcds:// for TLS)';

export function parseEtcdUrl(url: string): EtcdTarget {
  const m = /^(etcds?):\/\/(?:([^@/]*)@)?([^/?#@]+)\/?$/i.exec(url.trim());
  // Never echo the input: it may carry a password.
  if (!m) throw new OrderlyError('ERR_CLUSTER', `not an etcd URL: use ${URL_FORM}`);
  const scheme = m[1]!.toLowerCase();
  const protocol = scheme === 'etcds' ? 'https' : 'http';
  const endpoints = m[3]!.split(',').map((hp) => {
    const h = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(hp.trim());
    if (!h) throw new OrderlyError('ERR_CLUSTER', `etcd endpoint ${JSON.stringify(hp)}: use ${URL_FORM}`);
    return `${h[1]}:${h[2] ?? DEFAULT_PORT}`;
  });
  const target: EtcdTarget = { hosts: endpoints.map((e) => `${protocol}://${e}`), url: `${scheme}://${endpoints.join(',')}` };
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':');
    const user = colon < 0 ? m[2] : m[2].slice(0, colon);
    const password = colon < 0 ? '' : m[2].slice(colon + 1);
    target.auth = { username: decodeURIComponent(user), password: decodeURIComponent(password) };
  }
  return target;
}

export class EtcdEngine implements ClusterEngine {
  readonly kind = 'etcd' as const;
  readonly url: string;
  readonly #target: EtcdTarget;
  readonly #prefix: string;
  readonly #ttl: number;
  #etcd: Etcd3Module | undefined;
  #client: Etcd3 | undefined;
  #ns: Namespace | undefined;
  #lease: Lease | undefined;
  #leaseId = '';
  #me = '';
  /** Set once etcd said the lease is gone: a lease never comes back, so neither does this membership. */
  #expired: Error | undefined;

  constructor(url: string, opts: EtcdEngineOptions) {
    this.#target = parseEtcdUrl(url);
    this.url = this.#target.url;
    this.#prefix = `orderly/${opts.cluster}/`;
    this.#ttl = Math.max(1, Math.ceil((opts.leaseMs ?? LEASE_MS) / 1000));
  }

  async join(member: MemberInfo): Promise<void> {
    const { etcd, client } = await this.#connect();
    const ns = client.namespace(this.#prefix);
    const deadline = Date.now() + CALL_MS;
    // No automatic keepalive: the coordinator's confirm() is the renewal, so
    // a member whose event loop stalls stops renewing and loses its shards.
    const lease = ns.lease(this.#ttl, { autoKeepAlive: false, deadline });
    try {
      this.#leaseId = await lease.grant();
      await lease.put(`members/${member.id}`).value(JSON.stringify(member)).options({ deadline });
    } catch (err) {
      await lease.revoke({ deadline: Date.now() + CALL_MS }).catch(() => undefined);
      client.close();
      throw err;
    }
    this.#etcd = etcd;
    this.#client = client;
    this.#ns = ns;
    this.#lease = lease;
    this.#me = member.id;
  }

  async #connect(): Promise<{ etcd: Awaited<ReturnType<typeof loadEtcd>>; client: InstanceType<Awaited<ReturnType<typeof loadEtcd>>['Etcd3']> }> {
    const etcd = await loadEtcd();
    const { hosts, auth } = this.#target;
    const client = new etcd.Etcd3({
      hosts,
      ...(auth ? { auth } : {}),
      // Calls that pass no deadline of their own (the auth token exchange) still end.
      defaultCallOptions: () => ({ deadline: Date.now() + CALL_MS }),
      grpcOptions: {
        // gRPC waits up to 2 minutes between reconnects by default: a restarted etcd would stay unused past the renew deadline.
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 1000,
      },
      faultHandling: {
        host: () => skipAfterFailure(etcd.isRecoverableError),
        global: failover(hosts.length, etcd.isRecoverableError),
      },
    });
    return { etcd, client };
  }

  async members(): Promise<MemberInfo[]> {
    const res = await this.#kv().getAll().prefix('members/').options(callOptions()).exec();
    const members: MemberInfo[] = [];
    for (const kv of res.kvs) {
      try {
        members.push(JSON.parse(kv.value.toString('utf8')) as MemberInfo);
      } catch {
        // Not ours to interpret (a hand-written key): it owns nothing either.
      }
    }
    return members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** waitMs is 0: a shard key goes only when its owner's lease expired, after that owner's renew deadline (it has fenced itself already). */
  async claim(shard: number): Promise<Claim | null> {
    const ns = this.#kv();
    if (this.#expired) throw this.#expired;
    const opts = callOptions();
    const shardKey = `shards/${shard}`;
    const epochKey = `epochs/${shard}`;
    // A second pass only when another member claimed and let go between our read and our write.
    for (let pass = 0; pass < 2; pass++) {
      const before = (await ns.get(epochKey).options(opts).exec()).kvs[0];
      const epoch = before ? Number(before.value.toString('utf8')) : 0;
      // The epoch's mod revision pins what we read ('0': still absent), so no
      // claim in between is counted over; both puts land in one revision.
      const res = await ns
        .if(shardKey, 'Create', '==', 0)
        .and(epochKey, 'Mod', '==', before?.mod_revision ?? '0')
        .then(ns.put(shardKey).value(this.#me).lease(this.#leaseId), ns.put(epochKey).value(String(epoch + 1)))
        .else(ns.get(shardKey), ns.get(epochKey))
        .options(opts)
        .commit()
        .catch((err: unknown) => {
          // etcd refuses the whole transaction when the lease to put under is gone.
          throw err instanceof this.#etcd!.EtcdLeaseInvalidError ? this.#expire() : err;
        });
      if (res.succeeded) return { epoch: epoch + 1, waitMs: 0 };
      const owner = res.responses[0]?.response_range.kvs[0];
      if (owner) {
        // Ours already: an earlier claim whose answer was lost (a timeout) went through.
        const current = res.responses[1]?.response_range.kvs[0];
        return this.#mine(owner) && current ? { epoch: Number(current.value.toString('utf8')), waitMs: 0 } : null;
      }
    }
    return null;
  }

  async release(shard: number, _epoch?: number): Promise<void> {
    const ns = this.#kv();
    const key = `shards/${shard}`;
    await ns.if(key, 'Value', '==', this.#me).then(ns.delete().key(key)).options(callOptions()).commit();
  }

  async confirm(): Promise<Set<number>> {
    const ns = this.#kv();
    const etcd = this.#etcd!;
    const lease = this.#lease!;
    const opts = callOptions();
    if (this.#expired) throw this.#expired;
    // The keepalive stream bypasses the client's failover: try again, and the endpoint that failed is skipped.
    let ttl: number | undefined;
    for (let attempt = 1; ttl === undefined; attempt++) {
      try {
        ttl = Number((await lease.keepaliveOnce(opts)).TTL);
      } catch (err) {
        if (err instanceof etcd.EtcdLeaseInvalidError) throw this.#expire();
        if (attempt >= this.#target.hosts.length || !(err instanceof Error) || !etcd.isRecoverableError(err) || Date.now() >= opts.deadline) throw err;
      }
    }
    if (!(ttl > 0)) throw this.#expire();
    const res = await ns.getAll().prefix('shards/').options(opts).exec();
    const held = new Set<number>();
    for (const kv of res.kvs) if (this.#mine(kv)) held.add(shardOfKey(kv.key, 'shards/'));
    return held;
  }

  async shards(): Promise<ShardState[]> {
    const ns = this.#kv();
    const opts = callOptions();
    const epochs = await ns.getAll().prefix('epochs/').options(opts).exec();
    // The owners as of the same revision: one consistent picture.
    const owners = await ns.getAll().prefix('shards/').revision(epochs.header.revision).options(opts).exec();
    const ownerOf = new Map(owners.kvs.map((kv) => [shardOfKey(kv.key, 'shards/'), kv.value.toString('utf8')]));
    return epochs.kvs
      .map((kv) => {
        const shard = shardOfKey(kv.key, 'epochs/');
        const owner = ownerOf.get(shard);
        return { shard, epoch: Number(kv.value.toString('utf8')), ...(owner ? { owner } : {}) };
      })
      .sort((a, b) => a.shard - b.shard);
  }

  async current(pairs: ReadonlyArray<{ shard: number; epoch: number }>): Promise<boolean[]> {
    const res = await this.#kv().getAll().prefix('epochs/').options(callOptions()).exec();
    const now = new Map(res.kvs.map((kv) => [shardOfKey(kv.key, 'epochs/'), Number(kv.value.toString('utf8'))]));
    return pairs.map((p) => now.get(p.shard) === p.epoch);
  }

  async close(): Promise<void> {
    const client = this.#client;
    const lease = this.#lease;
    this.#client = undefined;
    this.#ns = undefined;
    this.#lease = undefined;
    if (!client) return;
    try {
      // Frees this member's shards now rather than a TTL from now. Best effort:
      // with etcd unreachable the lease simply expires.
      await lease?.revoke(callOptions());
    } catch {
      // expires on its own
    } finally {
      client.close();
    }
  }

  /**
   * Connects for members() and shards() only, without joining: no lease and
   * no member key, so nothing is written and nobody counts it as a member.
   */
  async observe(): Promise<void> {
    const { etcd, client } = await this.#connect();
    this.#etcd = etcd;
    this.#client = client;
    this.#ns = client.namespace(this.#prefix);
  }

  #kv(): Namespace {
    if (!this.#ns) throw new OrderlyError('ERR_CLUSTER', `${this.url}: not joined`);
    return this.#ns;
  }

  /** Our shard key: our id on our lease (the id alone could be a key left by a lease of ours that ended). */
  #mine(kv: IKeyValue): boolean {
    return kv.value.toString('utf8') === this.#me && String(kv.lease) === this.#leaseId;
  }

  #expire(): Error {
    // sessionLost: the coordinator fences at once and joins again, rather than waiting out its renew deadline.
    this.#expired ??= Object.assign(new Error(`the etcd lease of member ${this.#me} expired: the membership is gone and so are its shards`), {
      sessionLost: true,
    });
    return this.#expired;
  }
}

async function loadEtcd(): Promise<Etcd3Module> {
  try {
    return await loadDriver('etcd3', 'etcd://', () => import('etcd3'));
  } catch (err) {
    // loadDriver's message speaks of audit sinks.
    if ((err as { code?: string }).code === 'ERR_AUDIT_DRIVER') {
      throw new OrderlyError('ERR_CLUSTER', 'the etcd:// cluster engine needs the npm package "etcd3", which is not installed: npm install etcd3', { cause: err });
    }
    throw err;
  }
}

/** One absolute deadline for every call an engine method makes, retries included. */
function callOptions(): { deadline: number } {
  return { deadline: Date.now() + CALL_MS };
}

function shardOfKey(key: Buffer, prefix: string): number {
  return Number(key.toString('utf8').slice(prefix.length));
}

/*
 * etcd3's fault handling takes cockatiel policies; etcd3 only ever calls
 * execute() on them, so these implement just that rather than make cockatiel
 * a dependency of ours.
 */

/**
 * Per endpoint: after a failure, calls skip it for SKIP_MS and go to the next
 * endpoint (etcd3 picks them in random order, so a dead one would otherwise
 * come up again half the time). Shorter than RETRY_MS, unlike the default
 * breaker's 5 s, so the next round tries a restarted etcd again.
 */
function skipAfterFailure(isFailure: (err: Error) => boolean): Policy {
  let failedAt = -Infinity;
  let failure: unknown;
  return {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      if (performance.now() - failedAt < SKIP_MS) throw failure;
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (err) {
        if (err instanceof Error && isFailure(err)) {
          failedAt = performance.now();
          failure = err;
        }
        throw err;
      }
    },
  } as unknown as Policy;
}

/** Per call: each try picks the next endpoint, so a dead one costs one failed attempt, not the call. */
function failover(attempts: number, retryable: (err: Error) => boolean): Policy {
  return {
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      const signal = new AbortController().signal;
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal });
        } catch (err) {
          if (attempt >= attempts || !(err instanceof Error) || !retryable(err)) throw err;
        }
      }
    },
  } as unknown as Policy;
}
