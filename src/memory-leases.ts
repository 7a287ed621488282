import { performance } from 'node:perf_hooks';
import { OrderlyError } from './errors.js';
import type { NativeLeaseStore } from './native.js';

// The same limits and messages as crates/lease (map.rs); a differential test
// (test/memory-leases.test.ts) runs random operations against both.
const MAX_KEY_BYTES = 1024;
const MAX_GROUP_BYTES = 256;
const MAX_META_BYTES = 64 << 10;
const MAX_TTL_MS = 10 * 365 * 24 * 3600 * 1000;
const GRANTED = 0;
const HELD = 1;
const GATE_FULL = 2;
const NO_LSN = -1;

interface Held {
  token: number;
  acquiredAt: number;
  expiresAt: number;
  expiresMono: number;
  group: string | undefined;
  meta: Buffer | undefined;
  completed: boolean;
}

interface Gate {
  cap: number;
  inFlight: number;
}

interface Entry {
  id: bigint;
  key: string;
  token: bigint;
  completedAt: number;
  outcome: Buffer;
}

function invalid(message: string): OrderlyError {
  return new OrderlyError('ERR_INVALID_ARG', message);
}

function stale(key: string, token: number): OrderlyError {
  return new OrderlyError('ERR_LEASE_STALE', `lease on ${JSON.stringify(key)} with token ${token} is no longer held (released, or taken over by a newer token)`);
}

function checkKey(key: string): void {
  if (key === '') throw invalid('lease key must not be empty');
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) throw invalid(`lease key is ${bytes} bytes; the limit is ${MAX_KEY_BYTES}`);
}

function wholeNumber(name: string, n: number): number {
  if (!Number.isFinite(n) || !Number.isInteger(n) || n < 0 || n > Number.MAX_SAFE_INTEGER) {
    throw invalid(`${name} must be a non-negative integer, got ${n}`);
  }
  return n;
}

function checkTtl(ttl: number): number {
  wholeNumber('ttlMs', ttl);
  if (ttl === 0 || ttl > MAX_TTL_MS) throw invalid(`ttlMs must be between 1 and ${MAX_TTL_MS}, got ${ttl}`);
  return ttl;
}

function checkGroup(group: string): void {
  const n = Buffer.byteLength(group);
  if (n === 0 || n > MAX_GROUP_BYTES) throw invalid(`group name must be 1 to ${MAX_GROUP_BYTES} bytes`);
}

/**
 * The in-memory lease store (`LeaseStore.open(null)`): the map and gates of
 * crates/lease with no log under them. It needs no durability and no sharing
 * across threads, so it lives on the JS side: two napi calls per
 * acquire/release pair cost more than the whole pair does here
 * (bench/lease.mjs measured ~240 ns per crossing). It presents the same
 * methods as the native store so LeaseStore treats both alike.
 */
export class MemoryLeases implements Pick<NativeLeaseStore, 'acquire' | 'rollback' | 'renew' | 'complete' | 'ack' | 'release' | 'inFlight' | 'setGate' | 'lastRun' | 'setCursor' | 'cursor' | 'carryLastRun'> {
  readonly durable = false;
  readonly #leases = new Map<string, Held>();
  readonly #gates = new Map<string, Gate>();
  readonly #lastRun = new Map<string, number>();
  readonly #outbox = new Map<number, Entry>();
  readonly #defaultTtl: number;
  #nextToken = 1;

  constructor(options: { defaultTtlMs?: number; gates?: Record<string, number> } = {}) {
    this.#defaultTtl = checkTtl(options.defaultTtlMs ?? 10 * 60 * 1000);
    for (const [g, cap] of Object.entries(options.gates ?? {})) this.setGate(g, cap);
  }

  #gate(group: string): Gate {
    let g = this.#gates.get(group);
    if (!g) this.#gates.set(group, (g = { cap: Infinity, inFlight: 0 }));
    return g;
  }

  #leave(group: string | undefined): void {
    if (group !== undefined) this.#gates.get(group)!.inFlight--;
  }

  #checkToken(token: number): void {
    wholeNumber('token', token);
    if (token === 0 || token >= this.#nextToken) throw invalid(`unknown lease: token ${token} was never issued by this store`);
  }

  acquire(key: string, ttlMs: number | undefined | null, group: string | undefined | null, meta: Uint8Array | string | undefined | null, out: Float64Array): number {
    checkKey(key);
    const ttl = ttlMs == null ? this.#defaultTtl : checkTtl(ttlMs);
    const metaBuf = meta == null ? undefined : typeof meta === 'string' ? Buffer.from(meta) : Buffer.from(meta);
    if (metaBuf && metaBuf.length > MAX_META_BYTES) throw invalid(`lease meta exceeds ${MAX_META_BYTES} bytes`);
    const now = performance.now();
    let gate: Gate | undefined;
    if (group != null) {
      checkGroup(group);
      gate = this.#gate(group);
      if (gate.inFlight >= gate.cap) {
        // Expired leases hold slots until someone notices; notice now.
        let reaped = 0;
        for (const [k, h] of this.#leases) {
          if (h.group === group && h.expiresMono <= now) {
            this.#leases.delete(k);
            gate.inFlight--;
            reaped++;
          }
        }
        if (reaped === 0 || gate.inFlight >= gate.cap) return GATE_FULL;
      }
      gate.inFlight++;
    }
    const token = this.#nextToken++;
    const current = this.#leases.get(key);
    if (current && current.expiresMono > now) {
      if (gate) gate.inFlight--;
      return HELD;
    }
    if (current) this.#leave(current.group);
    const wall = Date.now();
    this.#leases.set(key, { token, acquiredAt: wall, expiresAt: wall + ttl, expiresMono: now + ttl, group: group ?? undefined, meta: metaBuf, completed: false });
    const last = this.#lastRun.get(key);
    if (last === undefined || wall > last) this.#lastRun.set(key, wall);
    out[0] = token;
    out[1] = wall;
    out[2] = wall + ttl;
    out[3] = NO_LSN;
    return GRANTED;
  }

  rollback(key: string, token: number): void {
    const h = this.#leases.get(key);
    if (h && h.token === token) {
      this.#leases.delete(key);
      this.#leave(h.group);
    }
  }

  renew(key: string, token: number, ttlMs?: number | null): number {
    checkKey(key);
    const ttl = ttlMs == null ? this.#defaultTtl : checkTtl(ttlMs);
    this.#checkToken(token);
    const h = this.#leases.get(key);
    if (!h || h.token !== token) throw stale(key, token);
    h.expiresMono = performance.now() + ttl;
    h.expiresAt = Date.now() + ttl;
    return h.expiresAt;
  }

  complete(key: string, token: number, outcome: Uint8Array | string, out: Float64Array): void {
    checkKey(key);
    this.#checkToken(token);
    const h = this.#leases.get(key);
    if (!h || h.token !== token) throw stale(key, token);
    if (h.completed) throw invalid(`lease on ${JSON.stringify(key)} with token ${token} was already completed`);
    h.completed = true;
    const completedAt = Date.now();
    this.#outbox.set(token, { id: BigInt(token), key, token: BigInt(token), completedAt, outcome: Buffer.from(outcome) });
    out[0] = completedAt;
    out[1] = NO_LSN;
  }

  ack(id: number): void {
    wholeNumber('entry id', id);
    if (id === 0 || id >= this.#nextToken) throw invalid(`unknown outbox entry ${id}`);
    this.#outbox.delete(id);
  }

  release(key: string, token: number, _durable: boolean): number {
    checkKey(key);
    this.#checkToken(token);
    const h = this.#leases.get(key);
    if (!h || h.token !== token) throw stale(key, token);
    this.#leases.delete(key);
    this.#leave(h.group);
    return NO_LSN;
  }

  holder(key: string): { key: string; token: bigint; acquiredAt: number; expiresAt: number; group?: string; meta?: Buffer } | null {
    const h = this.#leases.get(key);
    if (!h) return null;
    return { key, token: BigInt(h.token), acquiredAt: h.acquiredAt, expiresAt: h.expiresAt, ...(h.group !== undefined ? { group: h.group } : {}), ...(h.meta ? { meta: h.meta } : {}) };
  }

  inFlight(group?: string | null): number {
    return group == null ? this.#leases.size : (this.#gates.get(group)?.inFlight ?? 0);
  }

  setGate(group: string, cap: number): void {
    checkGroup(group);
    wholeNumber('cap', cap);
    if (cap < 1) throw invalid(`gate cap for group ${JSON.stringify(group)} must be at least 1, got ${cap}`);
    this.#gate(group).cap = cap;
  }

  lastRun(key: string): number | null {
    return this.#lastRun.get(key) ?? null;
  }

  readonly #cursors = new Map<string, bigint>();

  carryLastRun(key: string, at: number): number {
    const last = this.#lastRun.get(key);
    if (last === undefined || at > last) this.#lastRun.set(key, at);
    return NO_LSN;
  }

  setCursor(key: string, seq: bigint, _durable: boolean): number {
    const at = this.#cursors.get(key);
    if (at === undefined || seq > at) this.#cursors.set(key, seq);
    return NO_LSN;
  }

  cursor(key: string): bigint | null {
    return this.#cursors.get(key) ?? null;
  }

  outbox(): Entry[] {
    return [...this.#outbox.values()].sort((a, b) => Number(a.id - b.id));
  }

  stats(): { held: number; outbox: number; checkpoints: number; walSegments: number; walBytes: number; walSyncs: number; poisoned: boolean } {
    return { held: this.#leases.size, outbox: this.#outbox.size, checkpoints: 0, walSegments: 0, walBytes: 0, walSyncs: 0, poisoned: false };
  }
}
