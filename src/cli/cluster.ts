import { resolve } from 'node:path';
import { splitPassword } from '../audit/credentials.js';
import { engineFromUrl } from '../cluster/connect.js';
import { type ClusterPicture, clusterConnectUrl, clusterUrlPassword, observeCluster } from '../cluster/observe.js';
import { OrderlyError } from '../errors.js';
import { EXIT, parse, printer, registerSecret, UsageError } from './args.js';
import { askControl } from './control.js';
import { readSavedRun } from './saved-run.js';

export const CLUSTER_USAGE = `usage: orderly-dispatch cluster status [--state DIR] [--cluster URL --cluster-name NAME] [--json]

Who holds what in a cluster, read from its engine without joining it (so
looking moves no shard): the live members (id, host, pid, since), the shards
each owns with their epochs, the shards nobody owns, and the total. When a
member runs on --state, also its own view: how long ago it last confirmed its
ownership, and the shards it is handing over.
  --state DIR     a member's state directory (default .orderly): its
                  controller.json names the cluster and its engine
  --cluster URL   ask this engine instead: postgres://user@host/db or
                  etcd://host:port[,host:port]; leave the password out: it
                  comes from ORDERLY_AUDIT_PASSWORD (or, for the engine the
                  state names, from its --audit-password-file)
  --cluster-name NAME  which cluster (default: the one the state's member runs in)
Exits 0 when at least one member is live, 1 when none is or the engine does
not answer.`;

/** What a member on --state says of itself (the `cluster` part of its control socket's status). */
interface LocalView {
  name: string;
  engine: string;
  memberId: string;
  members: string[];
  owned: Array<{ shard: number; epoch: number; ready: boolean }>;
  leaving: number[];
  /** null (JSON's Infinity) until its first confirmation. */
  confirmedMsAgo: number | null;
}

export async function clusterCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(CLUSTER_USAGE);
    return EXIT.ok;
  }
  if (sub !== 'status') throw new UsageError(`${sub === undefined ? 'orderly-dispatch cluster needs a subcommand' : `unknown cluster subcommand ${JSON.stringify(sub)}`}: status\n\n${CLUSTER_USAGE}`);
  return status(rest);
}

async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { state: { type: 'string' }, cluster: { type: 'string' }, 'cluster-name': { type: 'string' } }, CLUSTER_USAGE);
  if (values.help) {
    console.log(CLUSTER_USAGE);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`orderly-dispatch cluster status takes no arguments, got ${positionals.join(' ')}\n\n${CLUSTER_USAGE}`);
  const state = resolve(values.state ?? '.orderly');
  const savedRun = readSavedRun(state);
  const saved = savedRun?.cluster;
  const given = values.cluster ?? saved?.engine;
  if (given === undefined) throw new UsageError(`${state} names no cluster (no member ran on it): pass --cluster URL --cluster-name NAME, or --state of a member`);
  const name = values['cluster-name'] ?? saved?.name;
  // run's default name is its city's: status does not load the city to guess it.
  if (name === undefined) throw new UsageError('--cluster needs --cluster-name NAME: the name its members run with (by default their city\'s name)');
  const url = clusterConnectUrl(given, values.cluster === undefined ? savedRun?.auditPasswordFile : undefined);
  registerSecret(splitPassword(url).password);
  registerSecret(clusterUrlPassword(url));
  let shown: string;
  try {
    // A bad URL or name is the caller's to fix (exit 2), unlike an engine that does not answer.
    shown = engineFromUrl(url, name)().url;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${CLUSTER_USAGE}`);
  }

  const answer = (await askControl(state, { cmd: 'status' }, 5_000).catch(() => undefined)) as { cluster?: LocalView } | undefined;
  // A member of another cluster on this state says nothing about the one asked about.
  const local = answer?.cluster?.name === name ? answer.cluster : undefined;
  let p: ClusterPicture;
  try {
    p = await observeCluster(url, name);
  } catch (err) {
    throw new OrderlyError('ERR_CLUSTER', `cluster ${name} on ${shown}: ${(err as Error).message}`, { cause: err });
  }
  const live = p.members.filter((m) => m.listed).length;
  const print = printer(values.json === true);
  if (values.json) {
    print('', {
      ok: live > 0,
      cluster: p.cluster,
      kind: p.kind,
      engine: p.engine,
      live,
      members: p.members.map((m) => ({ id: m.id, host: m.host, pid: m.pid, since: m.since > 0 ? new Date(m.since).toISOString() : null, listed: m.listed, shards: m.shards })),
      owned: p.owned,
      total: p.total,
      unowned: p.unowned,
      ...(local ? { local: { memberId: local.memberId, confirmedMsAgo: local.confirmedMsAgo, leaving: local.leaving, owned: local.owned, members: local.members } } : {}),
    });
    return live > 0 ? EXIT.ok : EXIT.failed;
  }
  print(`cluster ${p.cluster} on ${p.engine}: ${live} member(s) live, ${p.owned} of ${p.total} shard(s) owned`, {});
  for (const m of p.members) {
    const since = m.since > 0 ? new Date(m.since).toISOString() : '?';
    const shards = m.shards.length > 0 ? `: ${m.shards.map((s) => `${s.shard}@${s.epoch}`).join(' ')}` : '';
    print(`  ${m.id}  host ${m.host || '?'}  pid ${m.pid || '?'}  since ${since}${m.listed ? '' : ' (not in the member list: joining or leaving)'}  ${m.shards.length} shard(s)${shards}`, {});
  }
  if (live === 0) print('no member is live: no order of this cluster fires', {});
  print(
    p.unowned.length === 0
      ? 'unowned: none'
      : `unowned: ${p.unowned.length} shard(s): ${p.unowned.map((s) => (s.epoch > 0 ? `${s.shard} (last epoch ${s.epoch})` : `${s.shard}`)).join(', ')}${p.unowned.some((s) => s.epoch === 0) ? ' (a bare number: never owned)' : ''}`,
    {},
  );
  if (local) {
    const waiting = local.owned.filter((o) => !o.ready).length;
    print(
      `this state's member ${local.memberId}: ${typeof local.confirmedMsAgo === 'number' ? `confirmed ${local.confirmedMsAgo} ms ago` : 'not confirmed yet'}; owns ${local.owned.length} shard(s)${waiting > 0 ? ` (${waiting} waiting out the takeover)` : ''}; ` +
        `handing over: ${local.leaving.length > 0 ? local.leaving.join(', ') : 'none'}`,
      {},
    );
  }
  return live > 0 ? EXIT.ok : EXIT.failed;
}
