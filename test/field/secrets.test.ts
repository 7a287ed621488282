// Secrets and permissions on a shared host: no database password in any
// output, the state created owner-only under a permissive umask, the
// control socket refusing other users, a controller.json written by
// another user not trusted.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveAuditUrl, splitPassword } from '../../src/audit/credentials.js';
import { sleep, waitUntil } from '../crash/support.js';
import { cli, scratch, writeTree } from '../gascity/fixtures.js';

const fresh = scratch('field-secrets');
const root = process.getuid?.() === 0;
const PASSWORD = 'Tr0ub4dor&3-horse';

function orderly(args: string[], env: NodeJS.ProcessEnv = {}, shellPrefix = ''): { code: number | null; out: string } {
  const r = shellPrefix
    ? spawnSync('sh', ['-c', `${shellPrefix} exec "$0" "$@"`, process.execPath, cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 })
    : spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function cityOf(dir: string): string {
  return writeTree(dir, {
    'city.toml': '[workspace]\nname = "shared-host"\n',
    'orders/work.toml': '[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = "echo swept 3 gates"\n',
  });
}

/** Every file and directory below `dir` with a group or other permission bit. */
function looseModes(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) continue;
      if ((st.mode & 0o077) !== 0) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) walk(p);
    }
  };
  if ((lstatSync(dir).mode & 0o077) !== 0) out.push(`${dir} ${(lstatSync(dir).mode & 0o777).toString(8)}`);
  walk(dir);
  return out;
}

describe('the state directory under umask 000', () => {
  it('is created owner-only, with everything in it: the log, run files, the SQLite audit database, events, controller.json', () => {
    const base = fresh();
    const city = cityOf(join(base, 'city'));
    const state = join(base, 'state');
    const r = orderly(['run', city, '--state', state, '--for', '1500ms', '--events'], {}, 'umask 000;');
    expect(r.code, r.out).toBe(0);
    expect(existsSync(join(state, 'audit.db'))).toBe(true);
    expect(looseModes(state)).toEqual([]);
  });
});

describe('database passwords', () => {
  it('splitPassword and resolveAuditUrl: the URL first, then the file, then ORDERLY_AUDIT_PASSWORD', () => {
    const file = join(fresh(), 'pw');
    writeFileSync(file, `${PASSWORD}\nsecond line ignored\n`);
    expect(splitPassword(`postgres://orderly:${encodeURIComponent(PASSWORD)}@db:5432/audit`)).toEqual({ url: 'postgres://orderly@db:5432/audit', password: PASSWORD });
    expect(resolveAuditUrl('postgres://orderly@db/audit', { passwordFile: file })).toBe(`postgres://orderly:${encodeURIComponent(PASSWORD)}@db/audit`);
    expect(resolveAuditUrl('mysql://orderly@db/audit', { env: { ORDERLY_AUDIT_PASSWORD: 'x1' } })).toBe('mysql://orderly:x1@db/audit');
    expect(resolveAuditUrl('postgres://orderly:inline@db/audit', { env: { ORDERLY_AUDIT_PASSWORD: 'x1' } })).toBe('postgres://orderly:inline@db/audit');
    expect(resolveAuditUrl('sqlite:/tmp/a.db', { env: { ORDERLY_AUDIT_PASSWORD: 'x1' } })).toBe('sqlite:/tmp/a.db');
    expect(() => resolveAuditUrl('postgres://orderly@db/audit', { passwordFile: join(file, 'nope') })).toThrow(/cannot read the audit password file/);
  });

  it.each([
    ['in the URL', [`--audit`, `postgres://orderly:${encodeURIComponent(PASSWORD)}@127.0.0.1:1/audit`], {}],
    ['in ORDERLY_AUDIT_PASSWORD', ['--audit', 'postgres://orderly@127.0.0.1:1/audit'], { ORDERLY_AUDIT_PASSWORD: PASSWORD }],
    ['in a file', ['--audit', 'mysql://orderly@127.0.0.1:1/audit', '--audit-password-file', 'PWFILE'], {}],
  ])('given %s, appears in no output, no saved file and no event', (_how, audit, env) => {
    const base = fresh();
    const pwfile = join(base, 'pw');
    writeFileSync(pwfile, `${PASSWORD}\n`);
    const city = cityOf(join(base, 'city'));
    const state = join(base, 'state');
    const args = audit.map((a) => (a === 'PWFILE' ? pwfile : a));
    const outputs = [
      orderly(['run', city, '--state', state, '--for', '2s', '--grace', '1s', '--events', '--json', ...args], env).out,
      orderly(['run', city, '--state', state, '--for', '1s', '--grace', '1s', ...args], env).out,
      orderly(['doctor', '--state', state], env).out,
      orderly(['doctor', '--state', state, '--json'], env).out,
      orderly(['history', '--state', state], env).out,
      orderly(['feed', '--state', state, '--json'], env).out,
      readFileSync(join(state, 'controller.json'), 'utf8'),
      readFileSync(join(state, 'events.jsonl'), 'utf8'),
    ];
    // The run did try the database, and said so (the records wait in the outbox).
    expect(outputs[0]).toMatch(/ERR_AUDIT_SINK/);
    for (const text of outputs) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(encodeURIComponent(PASSWORD));
    }
  });
});

describe.skipIf(!root)('another user on the host (setpriv to nobody)', () => {
  it('is refused by the control socket even when the state and socket were opened up; a controller.json of another owner is not trusted', async () => {
    const base = fresh();
    const city = cityOf(join(base, 'city'));
    const state = join(base, 'state');
    const run = spawn(process.execPath, [cli, 'run', city, '--state', state, '--for', '20s'], { stdio: 'ignore' });
    const sock = join(state, 'control.sock');
    expect(await waitUntil(() => existsSync(sock), 10_000)).toBe(true);
    await sleep(300);
    // An operator loosened everything: only the peer check is left.
    chmodSync(base, 0o755);
    chmodSync(state, 0o755);
    chmodSync(sock, 0o666);
    const client = `const c = require('net').createConnection(${JSON.stringify(sock)}); let b = ''; c.on('connect', () => c.write(JSON.stringify({ cmd: 'fire', scopedName: 'work' }) + '\\n')); c.on('data', (d) => (b += d)); c.on('end', () => console.log(b.trim())); c.on('error', (e) => console.log('error ' + e.code));`;
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', client], { encoding: 'utf8' });
    const asOwner = spawnSync(process.execPath, ['-e', client], { encoding: 'utf8' });
    run.kill('SIGTERM');
    await new Promise((r) => run.once('exit', r));
    expect(asNobody.stdout.trim()).toBe('{"error":"refused: uid 65534 is not the controller\'s uid 0"}');
    expect(asOwner.stdout).toContain('"outcome":"did-work"');

    chownSync(join(state, 'controller.json'), 65534, 65534);
    const fire = orderly(['fire', 'work', '--state', state]);
    expect(fire.code).toBe(2);
    expect(fire.out).toContain('belongs to uid 65534, not to this user (uid 0): not trusted');
    const doctor = orderly(['doctor', '--state', state, '--json']);
    const checks = JSON.parse(doctor.out.split('\n')[0]!) as { checks: Array<{ name: string; status: string }> };
    expect(checks.checks.find((c) => c.name === 'state')?.status).toBe('FAIL');
  }, 40_000);

  it('a state directory it may not write, or on a read-only filesystem, fails closed with one line naming why, no stack trace', () => {
    const base = fresh();
    const city = cityOf(join(base, 'city'));
    chmodSync(base, 0o755);
    const locked = join(base, 'rootonly');
    spawnSync('mkdir', ['-m', '700', locked]);
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, 'run', city, '--state', join(locked, 'state'), '--for', '1s'], { encoding: 'utf8', cwd: '/tmp' });
    expect(asNobody.status).toBe(1);
    expect(asNobody.stderr.trim()).toBe(`orderly-dispatch: cannot create the state directory ${join(locked, 'state', 'runs')}: ${locked} is not writable by this user (uid 65534)`);
    const ro = join(base, 'ro');
    spawnSync('mkdir', [ro]);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', ro]).status !== 0) return;
    try {
      const r = orderly(['run', city, '--state', join(ro, 'state'), '--for', '1s']);
      expect(r.code).toBe(1);
      expect(r.out.trim()).toBe(`orderly-dispatch: cannot create the state directory ${join(ro, 'state', 'runs')}: ${ro} is on a read-only filesystem`);
    } finally {
      spawnSync('umount', ['-l', ro]);
    }
  });
});

