/**
 * What cluster mode needs from the engine that holds ownership (PostgreSQL
 * or etcd): membership, one owner per shard with an epoch that only grows,
 * and a cheap read that confirms both. Nothing here is written per fire:
 * an engine writes when a member joins or a shard changes owner, never when
 * an order runs.
 */

/** Orders hash to this many shards; a member owns whole shards. */
export const SHARD_COUNT = 64;

/**
 * Kubernetes leader election's figures. An owner that has not confirmed for
 * RENEW_DEADLINE_MS stops firing and kills its bodies; the engine frees its
 * shards only after LEASE_MS without a confirmation; members confirm every
 * RETRY_MS. The gap between the two deadlines is what absorbs clock-rate
 * drift between hosts: no synchronized clocks are needed, each host only
 * measures durations on its own monotonic clock.
 */
export const LEASE_MS = 15_000;
export const RENEW_DEADLINE_MS = 10_000;
export const RETRY_MS = 2_000;

export interface MemberInfo {
  /** Unique per controller process: `<host>-<pid>-<random>`. */
  id: string;
  host: string;
  pid: number;
  /** The controller's state directory (on its own host). */
  state: string;
  /** Epoch ms when it joined. */
  since: number;
}

export interface ShardState {
  shard: number;
  /** 0: never owned. */
  epoch: number;
  /** The member holding it now, if any. */
  owner?: string;
  /** Epoch ms of the latest claim. */
  claimedAt?: number;
}

export interface Claim {
  /** The shard's new epoch; 1 when nobody ever owned it. */
  epoch: number;
  /**
   * How long the new owner waits before firing the shard's orders. PostgreSQL
   * frees a lock the moment a session ends (an engine restart ends all of
   * them while their owners still run), so a shard its owner did not hand
   * over waits one renew deadline: by then that owner has fenced itself. A
   * shard handed over, never owned, or freed by etcd (a key goes only when
   * its owner's lease expired, after that owner's renew deadline) waits 0.
   */
  waitMs: number;
}

export interface ClusterEngine {
  readonly kind: 'postgres' | 'etcd';
  /** The engine's address without a password, for messages and status. */
  readonly url: string;
  /** Connects and registers this member. One write (etcd) or none (PostgreSQL). */
  join(member: MemberInfo): Promise<void>;
  /** Live members, this one included, sorted by id. A read. */
  members(): Promise<MemberInfo[]>;
  /** Takes a free shard, or null when another member holds it. One write on success. */
  claim(shard: number): Promise<Claim | null>;
  /**
   * Gives a shard up. The caller has stopped firing its orders and no body
   * of them runs: the engine may tell the next owner it need not wait.
   */
  release(shard: number, epoch: number): Promise<void>;
  /**
   * Confirms that this member is still live and still owns `owned`: the
   * shards it holds as the engine sees them now. A read; rejects when the
   * engine cannot be reached or the membership is gone.
   */
  confirm(): Promise<Set<number>>;
  /** Every shard that was ever owned, with its epoch and current owner. A read. */
  shards(): Promise<ShardState[]>;
  /** Whether (shard, epoch) is still the current ownership. A read. */
  current(pairs: ReadonlyArray<{ shard: number; epoch: number }>): Promise<boolean[]>;
  /** Drops the connection; the engine frees this member's shards. */
  close(): Promise<void>;
}
