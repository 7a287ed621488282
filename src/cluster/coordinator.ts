import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { ClusterGate } from '../dispatcher/controller.js';
import { type Claim, type ClusterEngine, type MemberInfo, RENEW_DEADLINE_MS, RETRY_MS } from './engine.js';
import { BodyGuard } from './guard.js';
import { shardOf, shardsFor } from './shards.js';

/**
 * One member's side of the cluster: every RETRY_MS it confirms what it owns
 * (a read), looks at who is live (a read), gives up shards that belong to
 * another member now and claims the ones that belong to it (a write each,
 * only when membership changed). Between rounds, `ownership()` answers the
 * controller from memory: a fire asks nothing of the engine.
 *
 * Self-fencing: ownership counts only until RENEW_DEADLINE_MS after the
 * latest confirmation was *sent* (what the engine saw is at least that
 * recent). Past it the member fires nothing, kills its bodies, and the
 * guard process does the same if the member itself is frozen.
 */

/** How long a new member waits after joining before its first claims. */
const SETTLE_MS = 1_000;

export interface ClusterChange {
  type: 'joined' | 'claimed' | 'released' | 'lost' | 'fenced' | 'unconfirmed';
  message: string;
  shards?: number[];
}

export interface CoordinatorOptions {
  /** Makes a fresh engine connection: after a member fenced itself it joins again from scratch. */
  connect: () => ClusterEngine;
  state: string;
  /** Ownership changed: schedule gained orders; with `kill`, kill the bodies of lost ones now. */
  onChange: (kill: boolean) => void;
  /**
   * Resolves once no body of an order of `shard` runs on this member: a
   * handoff waits for it shard by shard (a 40 s body holds up its own shard,
   * never the confirmations or the other shards).
   */
  drained: (shard: number) => Promise<void>;
  onReport: (change: ClusterChange) => void;
  retryMs?: number;
  renewDeadlineMs?: number;
}

interface Owned {
  epoch: number;
  /** Monotonic ms from which its orders may fire (a new owner waits out the engine's takeover wait). */
  readyAt: number;
  /** Wall ms by which an earlier owner has surely stopped firing: cooldowns count from it. */
  takenOverAt?: number;
}

export class Coordinator implements ClusterGate {
  readonly memberId: string;
  readonly #opts: CoordinatorOptions;
  #engine: ClusterEngine;
  #joined = false;
  readonly #owned = new Map<number, Owned>();
  /** Shards being handed to another member: no longer fired, released once their bodies end. */
  readonly #leaving = new Map<number, Owned>();
  /** Monotonic ms at which the latest successful confirmation was sent. */
  #confirmedAt = -Infinity;
  #members: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #readyTimer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #closed = false;
  readonly #guard: BodyGuard;

  constructor(opts: CoordinatorOptions) {
    this.#opts = opts;
    // application_name holds 63 bytes; the host is cut so the id always fits with a cluster name.
    this.memberId = `${hostname().replace(/[^A-Za-z0-9.]/g, '_').slice(0, 20)}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.#engine = opts.connect();
    this.#guard = new BodyGuard(this.memberId, (code, signal) => {
      if (this.#closed) return;
      // Without its guard a frozen member could not be stopped: stop firing now.
      opts.onReport({ type: 'fenced', message: `the body guard exited (${signal ?? `code ${code}`}): this member fires nothing until it restarts` });
      this.#fenceAll('its body guard exited');
      this.#closed = true;
    });
  }

  get engine(): ClusterEngine {
    return this.#engine;
  }

  /** Joins and runs the first round; later rounds every RETRY_MS. */
  async start(): Promise<void> {
    await this.#join();
    // Members started together see each other before anyone claims: fewer handoffs at a cold start.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await this.round();
    this.#timer = setInterval(() => void this.round(), this.#opts.retryMs ?? RETRY_MS);
  }

  ownership(scopedName: string): { shard: number; epoch: number } | undefined {
    const shard = shardOf(scopedName);
    const o = this.#owned.get(shard);
    const now = performance.now();
    if (!o || now < o.readyAt || now - this.#confirmedAt > this.#renewDeadline()) return undefined;
    return { shard, epoch: o.epoch };
  }

  takenOverAt(scopedName: string): number | undefined {
    return this.#owned.get(shardOf(scopedName))?.takenOverAt;
  }

  /** What this member holds now, for status and the HTTP API. */
  snapshot(): { memberId: string; members: string[]; owned: Array<{ shard: number; epoch: number; ready: boolean }>; leaving: number[]; confirmedMsAgo: number } {
    const now = performance.now();
    return {
      memberId: this.memberId,
      members: [...this.#members],
      owned: [...this.#owned].map(([shard, o]) => ({ shard, epoch: o.epoch, ready: now >= o.readyAt })).sort((a, b) => a.shard - b.shard),
      leaving: [...this.#leaving.keys()].sort((a, b) => a - b),
      confirmedMsAgo: Math.round(now - this.#confirmedAt),
    };
  }

  /** One round; rounds never overlap (a slow engine delays the next, never doubles it). */
  round(): Promise<void> {
    this.#round ??= this.#roundOnce().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  async #join(): Promise<void> {
    const member: MemberInfo = { id: this.memberId, host: hostname(), pid: process.pid, state: this.#opts.state, since: Date.now() };
    await this.#engine.join(member);
    this.#joined = true;
    this.#opts.onReport({ type: 'joined', message: `joined ${this.#engine.url} as ${this.memberId}` });
  }

  async #roundOnce(): Promise<void> {
    if (this.#closed) return;
    if (!this.#joined) {
      try {
        this.#engine = this.#opts.connect();
        await this.#join();
      } catch (err) {
        await this.#engine.close().catch(() => undefined);
        this.#opts.onReport({ type: 'unconfirmed', message: `cannot join ${this.#engine.url}: ${message(err)}` });
        return;
      }
    }
    const sent = performance.now();
    let held: Set<number>;
    try {
      held = await this.#engine.confirm();
    } catch (err) {
      // A session the engine ended holds nothing any more: stop now, not at the deadline.
      if ((err as { sessionLost?: boolean }).sessionLost) {
        this.#fenceAll(message(err));
        return;
      }
      // Otherwise not fatal yet: the renew deadline decides (an etcd restart is over in seconds).
      this.#opts.onReport({ type: 'unconfirmed', message: `cannot confirm ownership with ${this.#engine.url}: ${message(err)}` });
      return;
    }
    if (this.#closed) return;
    this.#confirmedAt = sent;
    this.#guard.vouch(this.#renewDeadline() - (performance.now() - sent));
    this.#armDeadline();
    const lost = [...this.#owned.keys()].filter((s) => !held.has(s) && !this.#leaving.has(s));
    if (lost.length > 0) {
      for (const s of lost) this.#owned.delete(s);
      this.#opts.onReport({ type: 'lost', message: `the engine no longer has shard(s) ${lost.join(', ')} as this member's: their bodies are killed`, shards: lost });
      this.#opts.onChange(true);
    }
    let members: string[];
    try {
      members = (await this.#engine.members()).map((m) => m.id);
    } catch (err) {
      this.#opts.onReport({ type: 'unconfirmed', message: `cannot list members of ${this.#engine.url}: ${message(err)}` });
      return;
    }
    if (!members.includes(this.memberId)) members.push(this.memberId);
    members.sort();
    this.#members = members;
    const wanted = shardsFor(this.memberId, members);
    this.#handOff([...this.#owned.keys()].filter((s) => !wanted.has(s)));
    const claimed: number[] = [];
    const keptBack: number[] = [];
    for (const shard of wanted) {
      if (this.#owned.has(shard)) continue;
      const leaving = this.#leaving.get(shard);
      if (leaving) {
        // Wanted again before it was released (a view of the members that flapped): the lock
        // and its epoch were never given up, so it is simply kept.
        this.#leaving.delete(shard);
        this.#owned.set(shard, leaving);
        keptBack.push(shard);
        continue;
      }
      let claim: Claim | null;
      try {
        claim = await this.#engine.claim(shard);
      } catch (err) {
        this.#opts.onReport({ type: 'unconfirmed', message: `cannot claim shard ${shard}: ${message(err)}` });
        break;
      }
      if (claim === null) continue; // Its owner has not let go yet: next round.
      const { epoch, waitMs } = claim;
      // The old owner may fire until the wait is over (PostgreSQL: an engine restart it has not
      // noticed yet): the shard's cooldowns count from then, so none fires early. Epoch 1:
      // nobody ever owned it, so nobody's last fire needs counting from.
      this.#owned.set(shard, { epoch, readyAt: performance.now() + waitMs, ...(epoch > 1 ? { takenOverAt: Date.now() + waitMs } : {}) });
      claimed.push(shard);
    }
    if (keptBack.length > 0) this.#opts.onChange(false);
    if (claimed.length > 0) {
      this.#opts.onReport({
        type: 'claimed',
        message: `claimed ${claimed.length} shard(s) (${claimed.map((s) => `${s}@${this.#owned.get(s)!.epoch}`).join(', ')}); members: ${members.length}`,
        shards: claimed,
      });
      this.#wakeWhenReady();
      this.#opts.onChange(false);
    }
  }

  /** Stop firing the shards now; release each once no body of it runs (a long body holds up only its own shard). */
  #handOff(shards: number[]): void {
    if (shards.length === 0) return;
    for (const s of shards) {
      this.#leaving.set(s, this.#owned.get(s)!);
      this.#owned.delete(s);
    }
    this.#opts.onChange(false);
    for (const s of shards) {
      const leaving = this.#leaving.get(s);
      void this.#opts.drained(s).then(async () => {
        // Kept back in the meantime, or given up with everything else: not this handoff's to release.
        if (this.#leaving.get(s) !== leaving || !leaving) return;
        // Out of `leaving` first: a round during the release claims it afresh rather than keep a lock being let go.
        this.#leaving.delete(s);
        // A release that fails leaves the lock with the session; the engine frees it when the session ends.
        await this.#engine.release(s, leaving.epoch).catch(() => undefined);
        this.#opts.onReport({ type: 'released', message: `handed shard ${s} over`, shards: [s] });
      });
    }
  }

  /** The first of this round's claims to become fireable: time its orders then. */
  #wakeWhenReady(): void {
    const now = performance.now();
    const next = Math.min(...[...this.#owned.values()].map((o) => o.readyAt).filter((t) => t > now));
    if (!Number.isFinite(next)) return;
    clearTimeout(this.#readyTimer);
    this.#readyTimer = setTimeout(() => {
      this.#opts.onChange(false);
      this.#wakeWhenReady();
    }, next - now + 1).unref();
  }

  #renewDeadline(): number {
    return this.#opts.renewDeadlineMs ?? RENEW_DEADLINE_MS;
  }

  #armDeadline(): void {
    clearTimeout(this.#deadline);
    const left = this.#confirmedAt + this.#renewDeadline() - performance.now();
    this.#deadline = setTimeout(() => {
      // A later round may have confirmed in the meantime.
      if (performance.now() - this.#confirmedAt > this.#renewDeadline()) this.#fenceAll(`no confirmation from ${this.#engine.url} for ${this.#renewDeadline() / 1000} s`);
    }, Math.max(0, left) + 1).unref();
  }

  /** Past the renew deadline: fire nothing, kill the bodies, and join again as if new. */
  #fenceAll(why: string): void {
    const shards = [...this.#owned.keys(), ...this.#leaving.keys()];
    this.#owned.clear();
    this.#leaving.clear();
    this.#guard.revoke();
    if (shards.length > 0) this.#opts.onReport({ type: 'fenced', message: `${why}: stopped firing ${shards.length} shard(s) and killed their bodies`, shards });
    this.#opts.onChange(true);
    if (this.#joined) {
      this.#joined = false;
      // Ends the session (PostgreSQL) or revokes the lease (etcd): what it held is free for the others at once.
      void this.#engine.close().catch(() => undefined);
    }
  }

  /** Leaves the cluster: the engine frees every shard of this member. The controller has stopped first. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#deadline);
    clearTimeout(this.#readyTimer);
    await this.#round?.catch(() => undefined);
    this.#owned.clear();
    await this.#engine.close().catch(() => undefined);
    await this.#guard.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
