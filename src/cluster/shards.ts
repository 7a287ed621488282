import { SHARD_COUNT } from './engine.js';

/**
 * Which shard an order belongs to, and which member owns a shard. Both are
 * pure functions of names, so every member computes the same answer without
 * asking anyone: the engine only arbitrates who holds what.
 */

/** FNV-1a, 32 bits: stable across versions and processes (unlike a seeded hash). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Mixes the low bits of a short input, so shard numbers next to each other do not pick the same member. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function shardOf(scopedName: string, shards = SHARD_COUNT): number {
  return mix(fnv1a(scopedName)) % shards;
}

/**
 * Rendezvous hashing: each shard goes to the member with the highest score.
 * When a member joins or leaves, only the shards it wins or held move; the
 * others stay where they are, so a membership change never reshuffles the
 * whole city.
 */
export function ownerOf(shard: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const score = mix(fnv1a(`${m}/${shard}`));
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** The shards `member` should own among `members`. */
export function shardsFor(member: string, members: readonly string[], shards = SHARD_COUNT): Set<number> {
  const mine = new Set<number>();
  for (let s = 0; s < shards; s++) if (ownerOf(s, members) === member) mine.add(s);
  return mine;
}

/** Low bits of a cluster fence: the member's own lease token. */
const TOKEN_BITS = 40n;
const TOKEN_MASK = (1n << TOKEN_BITS) - 1n;

/**
 * A fence that grows across the cluster: the shard's epoch in the high bits,
 * the local lease token in the low 40. A new owner's epoch is higher, so its
 * fences beat every fence of the owner before it, whatever the two members'
 * own counters say.
 */
export function clusterFence(epoch: number, token: bigint): bigint {
  return (BigInt(epoch) << TOKEN_BITS) | (token & TOKEN_MASK);
}

export function epochOfFence(fence: bigint): number {
  return Number(fence >> TOKEN_BITS);
}
