import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BodyResult, collectFinished, DRAIN_MS, exitWrapper, OutputTail, type RunBodyOptions, runBody } from '../../src/dispatcher/body.js';
import { createRunLock, runLockHeld } from '../../src/native.js';
import { tempDir } from '../helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function dir(): string {
  const tmp = tempDir('body');
  cleanups.push(tmp.remove);
  return tmp.path;
}

/**
 * Every test runs three ways: output through pipes (child_process, no run
 * files), and with run files (how the controller runs bodies) started by
 * child_process and by the native spawner.
 */
const MODES = ['pipes', 'node', 'native'] as const;
let mode: (typeof MODES)[number] = 'pipes';

/** Defaults a test overrides: a fresh cwd, PATH only, the status file named in env. */
function options(command: string, over: Partial<RunBodyOptions> = {}): RunBodyOptions {
  const cwd = over.cwd ?? dir();
  const statusFile = over.statusFile ?? join(dir(), 'status');
  const runs = mode === 'pipes' ? undefined : dir();
  return {
    command,
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ORDERLY_STATUS_FILE: statusFile },
    timeoutMs: 20_000,
    statusFile,
    noOpExitCodes: [100],
    ...(runs ? { runFiles: { output: join(runs, 'output'), exit: join(runs, 'exit'), tag: 'this-fire' }, spawner: mode as 'node' | 'native' } : {}),
    ...over,
  };
}

function run(command: string, over: Partial<RunBodyOptions> = {}): Promise<BodyResult> {
  return runBody(options(command, over)).done;
}

/** Running, as opposed to gone or a zombie: pid 1 here reaps orphans only every second or two. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Kills a pid a test leaked on purpose (a process that left the group). */
function reap(pid: number): void {
  cleanups.push(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
}

const pidsIn = (text: string) => text.trim().split(/\s+/).map(Number);

describe.each(MODES)('%s', (m) => {
  beforeEach(() => {
    mode = m;
  });

  describe('runBody: the exit-code contract with real processes', () => {
    it('exit 0 is did-work', async () => {
      const r = await run('exit 0');
      expect(r).toMatchObject({ outcome: 'did-work', exitCode: 0, signal: null });
      expect(r.reason).toBeUndefined();
    });

    it('exit 100 is no-op by default', async () => {
      expect(await run('exit 100')).toMatchObject({ outcome: 'no-op', exitCode: 100 });
    });

    it('a configured no-op code: noOpExitCodes [3] makes exit 3 no-op and exit 100 failed', async () => {
      expect(await run('exit 3', { noOpExitCodes: [3] })).toMatchObject({ outcome: 'no-op', exitCode: 3 });
      expect(await run('exit 100', { noOpExitCodes: [3] })).toMatchObject({ outcome: 'failed', exitCode: 100, reason: 'exit code 100' });
    });

    it('exit 1 and exit 2 are failed with the code in the reason', async () => {
      expect(await run('exit 1')).toMatchObject({ outcome: 'failed', exitCode: 1, reason: 'exit code 1' });
      expect(await run('exit 2')).toMatchObject({ outcome: 'failed', exitCode: 2, reason: 'exit code 2' });
    });

    it('a body killed by a signal that was not ours is failed with that signal', async () => {
      const r = await run('kill -KILL $$');
      expect(r).toMatchObject({ outcome: 'failed', exitCode: null, signal: 'SIGKILL', reason: 'killed by SIGKILL' });
    });

    it('a signal with two names is named as Node names it (6 is SIGABRT, not SIGIOT)', async () => {
      const r = await run('kill -ABRT $$');
      expect(r).toMatchObject({ outcome: 'failed', exitCode: null, signal: 'SIGABRT' });
    });

    it('200 bodies started at once each settle with their own exit code and pid', async () => {
      // The native spawner reports a start and an exit from two threads, in either order.
      const running = Array.from({ length: 200 }, (_, i) => runBody(options(`echo $$; exit ${(i % 60) + 1}`)));
      const results = await Promise.all(running.map((r) => r.done));
      const pids = await Promise.all(running.map((r) => r.started));
      results.forEach((r, i) => {
        expect(r.exitCode, `body ${i}`).toBe((i % 60) + 1);
        expect(Number(r.outputTail.trim()), `body ${i}`).toBe(pids[i]);
      });
      expect(new Set(pids).size).toBe(200);
    });

    it('records start, end and duration', async () => {
      const before = Date.now();
      const r = await run('sleep 0.2');
      expect(r.startedAt).toBeGreaterThanOrEqual(before);
      expect(r.endedAt).toBeGreaterThanOrEqual(r.startedAt + 150);
      expect(r.durationMs).toBeGreaterThanOrEqual(150);
      expect(r.durationMs).toBeLessThan(10_000);
    });
  });

  describe('runBody: timeout', () => {
    it('a body over its timeout is timeout, and done resolves soon after', async () => {
      const r = await run('sleep 10', { timeoutMs: 200 });
      expect(r.outcome).toBe('timeout');
      expect(r.reason).toBe('timed out after 200 ms');
      expect(r.signal).toBe('SIGTERM');
      expect(r.durationMs).toBeGreaterThanOrEqual(190);
      expect(r.durationMs).toBeLessThan(5_000);
    });

    it('the timeout takes down the whole process group, not just the shell', async () => {
      const r = await run('sleep 30 & echo $!; sleep 30 & echo $!; wait', { timeoutMs: 300 });
      expect(r.outcome).toBe('timeout');
      const pids = pidsIn(r.outputTail);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(isRunning(pid), `pid ${pid} still runs`).toBe(false);
      // kill(pid, 0) sees zombies too; it agrees once pid 1 has reaped the orphans.
      for (const pid of pids) {
        expect(
          await eventually(() => {
            try {
              process.kill(pid, 0);
              return false;
            } catch {
              return true;
            }
          }, 15_000),
          `pid ${pid} was never reaped`,
        ).toBe(true);
      }
    });

    it('a body that ended while the controller was frozen is not a timeout when the controller wakes past its deadline', async () => {
      // The event loop stands still for 1.2 s (as under SIGSTOP): the body exits at 0.2 s, its timer is due at 0.5 s, and both are pending at once.
      const done = run('sleep 0.2; exit 100', { timeoutMs: 500 });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_200);
      const r = await done;
      expect(r.outcome).toBe('no-op');
      expect(r.exitCode).toBe(100);
    });

    it.runIf(m !== 'pipes')('an exit status another run left in a reused exit file does not count as this run\'s', async () => {
      const opts = options('sleep 10', { timeoutMs: 300 });
      writeFileSync(opts.runFiles!.exit, '0 an-earlier-fire');
      const r = await runBody(opts).done;
      expect(r.outcome).toBe('timeout');
    });

    it('done does not wait out the grace period for processes that are dead but not yet reaped', async () => {
      // The background sleep dies of the SIGTERM and stays a zombie until pid 1 reaps it: that is not "still running".
      const started = Date.now();
      const r = await run('sleep 30 & wait', { timeoutMs: 200, graceMs: 10_000 });
      expect(r.outcome).toBe('timeout');
      expect(r.reason).toBe('timed out after 200 ms');
      // Waiting out the grace would take 10 s; 5 s leaves room for a loaded CI box.
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('a body that ignores SIGTERM is SIGKILLed after the grace period', async () => {
      const started = Date.now();
      const r = await run("trap '' TERM; sleep 10; echo survived", { timeoutMs: 200, graceMs: 300 });
      expect(r.outcome).toBe('timeout');
      // With run files the wrapper shell is what ends: SIGTERM takes it, and the body it waited on is SIGKILLed before done.
      expect(r.signal).toBe(mode === 'pipes' ? 'SIGKILL' : 'SIGTERM');
      expect(r.reason).toBe('timed out after 200 ms; SIGKILL after 300 ms grace');
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(r.durationMs).toBeLessThan(5_000);
      expect(r.outputTail).not.toContain('survived');
    });

    it('a body that traps SIGTERM and exits 0 is still timeout', async () => {
      const r = await run("trap 'exit 0' TERM; sleep 10 & wait", { timeoutMs: 200 });
      expect(r).toMatchObject({ outcome: 'timeout', exitCode: mode === 'pipes' ? 0 : null });
    });

    it.runIf(m === 'native')('the native spawner times a body out from its reaping thread, with no Node timer per body', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const before = timers();
      const running = runBody(options('sleep 10', { timeoutMs: 400 }));
      await running.started;
      expect(timers()).toBe(before);
      const r = await running.done;
      expect(r).toMatchObject({ outcome: 'timeout', reason: 'timed out after 400 ms' });
      expect(r.durationMs).toBeGreaterThanOrEqual(400);
    });

    it.runIf(m === 'native')('a burst of bodies with a 1 ms timeout all time out, none runs on', async () => {
      // 40 deadlines at once on the reaping thread, set as the spawning threads start each body.
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 40 }, () => run('sleep 5', { cwd: dir(), runFiles: { output: join(dir(), 'output'), exit: join(dir(), 'exit'), tag: 'burst' }, timeoutMs: 1, graceMs: 300 })));
      expect(results.map((r) => r.outcome)).toEqual(results.map(() => 'timeout'));
      expect(Date.now() - started).toBeLessThan(4_000);
    });

    it('no timer is left behind once the body ends', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const before = timers();
      const r = await run('exit 0', { timeoutMs: 600_000, graceMs: 600_000 });
      expect(r.outcome).toBe('did-work');
      expect(timers()).toBeLessThanOrEqual(before);
    });
  });

  describe('runBody: the status file', () => {
    const write = (word: string) => `printf '%s\\n' '${word}' > "$ORDERLY_STATUS_FILE"`;

    it('exit 0 with status no-op is no-op, and the file is deleted', async () => {
      const statusFile = join(dir(), 'status');
      const r = await run(`${write('no-op')}; exit 0`, { statusFile });
      expect(r).toMatchObject({ outcome: 'no-op', exitCode: 0, statusFromFile: 'no-op' });
      // Run files (the status file among them) are removed by their owner once the outcome is recorded.
      expect(existsSync(statusFile)).toBe(mode !== 'pipes');
    });

    it('exit 100 with status did-work is did-work', async () => {
      expect(await run(`${write('did-work')}; exit 100`)).toMatchObject({ outcome: 'did-work', statusFromFile: 'did-work' });
    });

    it('exit 1 with status no-op is failed: the file never hides a failure', async () => {
      expect(await run(`${write('no-op')}; exit 1`)).toMatchObject({ outcome: 'failed', reason: 'exit code 1', statusFromFile: 'no-op' });
    });

    it('a garbage status file is ignored, and named in the reason', async () => {
      const r = await run(`${write('done!')}; exit 0`);
      expect(r.outcome).toBe('did-work');
      expect(r.statusFromFile).toBeUndefined();
      expect(r.reason).toBe('status file ignored: "done!" is neither "no-op" nor "did-work"');
    });

    it('a status file that is a directory is ignored, not fatal', async () => {
      const r = await run('mkdir "$ORDERLY_STATUS_FILE"; exit 100');
      expect(r.outcome).toBe('no-op');
      expect(r.reason).toMatch(/^status file ignored: /);
    });

    it('an oversized status file is ignored', async () => {
      const r = await run('head -c 5000 /dev/zero > "$ORDERLY_STATUS_FILE"; exit 0');
      expect(r).toMatchObject({ outcome: 'did-work', reason: 'status file ignored: 5000 bytes' });
    });

    // Run files are named after their run: no earlier run can have left one (the controller's contract).
    it.runIf(m === 'pipes')('a stale status file from an earlier run is removed before the body starts', async () => {
      const statusFile = join(dir(), 'status');
      writeFileSync(statusFile, 'no-op\n');
      const r = await run('test -e "$ORDERLY_STATUS_FILE" && echo stale; exit 0', { statusFile });
      expect(r.outcome).toBe('did-work');
      expect(r.outputTail).toBe('');
    });
  });

  describe('runBody: output', () => {
    it('keeps the last 64 KiB of a 1 MB+ output and counts every byte', async () => {
      const r = await run('seq 1 200000');
      const expected = Buffer.from(`${Array.from({ length: 200_000 }, (_, i) => i + 1).join('\n')}\n`);
      expect(expected.length).toBeGreaterThan(1_000_000);
      expect(r.outputBytes).toBe(expected.length);
      expect(r.outputTail).toBe(expected.subarray(expected.length - 64 * 1024).toString());
    });

    it('honours tailBytes', async () => {
      const r = await run('printf 0123456789', { tailBytes: 4 });
      expect(r).toMatchObject({ outputTail: '6789', outputBytes: 10 });
    });

    it('captures stdout and stderr into the one tail', async () => {
      const r = await run('echo to-stdout; echo to-stderr >&2');
      expect(r.outputTail).toContain('to-stdout\n');
      expect(r.outputTail).toContain('to-stderr\n');
      expect(r.outputBytes).toBe(20);
    });

    it('OutputTail never holds more than twice its limit, however much is pushed', () => {
      const tail = new OutputTail(4096);
      let all = '';
      for (let i = 0; i < 2000; i++) {
        const chunk = `${String(i).padStart(5, '0')}:${'x'.repeat(i % 3000)}\n`;
        all += chunk;
        tail.push(Buffer.from(chunk));
        expect(tail.heldBytes).toBeLessThanOrEqual(2 * 4096);
      }
      expect(tail.totalBytes).toBe(Buffer.byteLength(all));
      expect(tail.text()).toBe(all.slice(-4096));
    });

    it('OutputTail does not start with half a UTF-8 character', () => {
      const tail = new OutputTail(5);
      tail.push(Buffer.from('ééééé'));
      expect(tail.text()).toBe('éé');
    });
  });

  describe('runBody: environment, cwd, inherited fds', () => {
    it('passes env exactly as given, without merging process.env', async () => {
      expect(process.env.HOME).toBeDefined();
      const r = await run('echo "$FOO ${HOME-unset}"', { env: { FOO: 'bar baz' } });
      expect(r.outputTail).toBe('bar baz unset\n');
    });

    it('runs in the given cwd', async () => {
      const cwd = dir();
      const r = await run('pwd -P', { cwd });
      expect(r.outputTail).toBe(`${cwd}\n`);
    });

    it('the body is its own process group leader and pid is the shell', async () => {
      const running = runBody(options("read -r _ _ _ _ pgid _ < /proc/$$/stat; echo $$ $pgid"));
      const r = await running.done;
      const pid = await running.started;
      expect(pid).toBeGreaterThan(0);
      const [shell, group] = pidsIn(r.outputTail);
      expect(group).toBe(pid);
      // With run files $$ names the wrapper that leads the group, whether the body runs in its shell or a subshell.
      expect(shell).toBe(pid);
    });

    it('extraFds are inherited as fd 3, 4, …', async () => {
      const d = dir();
      const fd3 = openSync(join(d, 'three'), 'w');
      const fd4 = openSync(join(d, 'four'), 'w');
      try {
        const r = await run('echo via-3 >&3; echo via-4 >&4', { extraFds: [fd3, fd4] });
        expect(r.outcome).toBe('did-work');
      } finally {
        closeSync(fd3);
        closeSync(fd4);
      }
      expect(readFileSync(join(d, 'three'), 'utf8')).toBe('via-3\n');
      expect(readFileSync(join(d, 'four'), 'utf8')).toBe('via-4\n');
    });
  });

  describe('runBody: the run lock it is handed', () => {
    function lockFor(fireId: string): { path: string; fd: number } {
      const path = join(dir(), 'run.lock');
      const fd = createRunLock(path);
      writeSync(fd, `{"fireId":"${fireId}"}`.padEnd(160), 0);
      return { path, fd };
    }

    it('gets the body\'s group and deadline once it runs, and only the body holds it', async () => {
      const { path, fd } = lockFor('f-1');
      const before = Date.now();
      const running = runBody(options('sleep 0.5', { lock: { fd, fireId: 'f-1', timeoutMs: 20_000 } }));
      const pid = await running.started;
      const record = JSON.parse(readFileSync(path, 'utf8')) as { fireId: string; pgid: number; timeoutAt: number };
      expect(record).toMatchObject({ fireId: 'f-1', pgid: pid });
      expect(record.timeoutAt).toBeGreaterThanOrEqual(before + 20_000);
      expect(record.timeoutAt).toBeLessThanOrEqual(Date.now() + 20_000);
      expect(readFileSync(path, 'utf8')).toHaveLength(160);
      expect(runLockHeld(path)).toBe(true);
      await running.done;
      // Our copy was closed when the body started: with the body gone, nobody holds it.
      expect(runLockHeld(path)).toBe(false);
    });

    it('a body with no timeout gets a null deadline', async () => {
      const { path, fd } = lockFor('f-2');
      const running = runBody(options('exit 0', { timeoutMs: Number.POSITIVE_INFINITY, lock: { fd, fireId: 'f-2', timeoutMs: Number.POSITIVE_INFINITY } }));
      const pid = await running.started;
      await running.done;
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ fireId: 'f-2', pgid: pid, timeoutAt: null });
    });

    it('is let go when the body cannot start', async () => {
      const { path, fd } = lockFor('f-3');
      const running = runBody(options('exit 0', { cwd: join(dir(), 'gone'), lock: { fd, fireId: 'f-3', timeoutMs: 1000 } }));
      expect(await running.started).toBeUndefined();
      expect((await running.done).outcome).toBe('failed');
      expect(runLockHeld(path)).toBe(false);
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ fireId: 'f-3' });
    });
  });

  describe('runBody: bodies that cannot start are failed, never thrown', () => {
    it('a missing cwd names the cwd (not the shell, as node would)', async () => {
      const cwd = join(dir(), 'gone');
      const running = runBody(options('exit 0', { cwd }));
      expect(await running.started).toBeUndefined();
      expect(await running.done).toMatchObject({ outcome: 'failed', exitCode: null, reason: `cwd does not exist: ${cwd}` });
    });

    it('a cwd that is a file is failed', async () => {
      const cwd = join(dir(), 'file');
      writeFileSync(cwd, '');
      expect(await run('exit 0', { cwd })).toMatchObject({ outcome: 'failed', reason: `cwd is not a directory: ${cwd}` });
    });

    it('a missing shell is failed with a reason', async () => {
      const running = runBody(options('exit 0', { shell: '/nonexistent/sh' }));
      expect(await running.started).toBeUndefined();
      expect(await running.done).toMatchObject({ outcome: 'failed', reason: 'shell not found: /nonexistent/sh' });
    });

    it('a shell that is not executable is failed (EACCES)', async () => {
      const shell = join(dir(), 'sh');
      writeFileSync(shell, '#!/bin/sh\n');
      chmodSync(shell, 0o644);
      const running = runBody(options('exit 0', { shell }));
      expect(await running.started).toBeUndefined();
      expect(await running.done).toMatchObject({ outcome: 'failed', reason: `shell not executable: ${shell} (EACCES)` });
    });

    it('a bad extra fd is failed, not thrown', async () => {
      const running = runBody(options('exit 0', { extraFds: [9999] }));
      expect(await running.started).toBeUndefined();
      const r = await running.done;
      expect(r.outcome).toBe('failed');
      expect(r.reason).toMatch(/EBADF/);
    });

    it('a NUL byte in the command is failed, not thrown', async () => {
      const r = await run('echo \0');
      expect(r.outcome).toBe('failed');
      expect(r.reason).toMatch(/^cannot start \/bin\/sh: /);
    });
  });

  describe('runBody: processes the body leaves behind', () => {
    it('a backgrounded grandchild holding stdout does not hang done, and is terminated with the body', async () => {
      const started = Date.now();
      const r = await run('sleep 30 & echo $!; exit 0');
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(r.outcome).toBe('did-work');
      expect(r.reason).toBe("leftover processes of the body's group were sent SIGTERM");
      const [pid] = pidsIn(r.outputTail);
      expect(isRunning(pid!)).toBe(false);
    });

    it('a grandchild that ignores SIGTERM is SIGKILLed after the grace period', async () => {
      // The shell waits until the grandchild has set its trap, or our SIGTERM could beat it.
      const r = await run("(trap '' TERM; : > ready; exec sleep 30) & until [ -e ready ]; do sleep 0.01; done; echo $!; exit 0", {
        graceMs: 300,
      });
      expect(r.outcome).toBe('did-work');
      expect(r.reason).toBe("leftover processes of the body's group were sent SIGTERM and SIGKILL");
      const [pid] = pidsIn(r.outputTail);
      expect(await eventually(() => !isRunning(pid!), 2_000)).toBe(true);
    });

    it('a grandchild that left the group (setsid) and holds stdout delays done by the drain cap only', async () => {
      const started = Date.now();
      const r = await run("setsid sh -c ': > ready; exec sleep 30' & until [ -e ready ]; do sleep 0.01; done; echo $!; exit 0");
      const [pid] = pidsIn(r.outputTail);
      reap(pid!);
      expect(r.outcome).toBe('did-work');
      // A run file is no pipe: nothing to drain.
      if (mode === 'pipes') expect(Date.now() - started).toBeGreaterThanOrEqual(DRAIN_MS);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(isRunning(pid!)).toBe(true);
    });
  });

  describe.runIf(m !== 'pipes')('runBody: the exit file says what the runner saw', () => {
    /** The status the wrapper wrote for this fire, as waitpid would give it (128+n for a signal). */
    function recorded(opts: RunBodyOptions): number | undefined {
      const m = /^(\d{1,3}) this-fire *$/.exec(readFileSync(opts.runFiles!.exit, 'utf8'));
      return m ? Number(m[1]) : undefined;
    }
    const seen = (r: BodyResult) => (r.signal ? 128 + osConstants.signals[r.signal as NodeJS.Signals] : r.exitCode);

    it.each([
      ['exit 100', 100],
      ['true', 0],
      ['false', 1],
      // The trap sees 300; the shell exits 300 & 255.
      ['exit 300', 44],
      ['if then', 2],
      ['nosuchcommand', 127],
      ['sh -c "kill -USR1 \\$\\$"', 128 + osConstants.signals.SIGUSR1],
      ['cd /; exit 3', 3],
      ['f() { exit 9; }; f', 9],
      // Bodies that would undo the trap run in a subshell, and are still recorded.
      ['exec sh -c "exit 7"', 7],
      ["trap 'echo bye' EXIT; exit 4", 4],
      ['set -e; false; exit 0', 1],
      ['eval "exit 6"', 6],
    ])('%s', async (body, rc) => {
      const opts = options(body);
      const r = await runBody(opts).done;
      expect(seen(r)).toBe(rc);
      expect(recorded(opts)).toBe(rc);
      if (body.startsWith('trap')) expect(r.outputTail).toBe('bye\n');
    });

    it('overwrites an earlier run\'s status of the full width, and creates the file 0600 whatever the body\'s umask', async () => {
      const opts = options('exit 0');
      writeFileSync(opts.runFiles!.exit, `100 ${'e'.repeat(36)}`);
      await runBody(opts).done;
      expect(recorded(opts)).toBe(0);
      const fresh = options('umask 000; exit 5');
      const r = await runBody(fresh).done;
      expect(r.exitCode).toBe(5);
      expect(recorded(fresh)).toBe(5);
      expect(statSync(fresh.runFiles!.exit).mode & 0o777).toBe(0o600);
    });

    it('a body that changes directory does not move its exit file, even one named relative to the controller', async () => {
      const elsewhere = join(dir(), 'a', 'b', 'c');
      mkdirSync(elsewhere, { recursive: true });
      const opts = options(`cd ${elsewhere}; exit 3`);
      const exit = relative(process.cwd(), opts.runFiles!.exit);
      expect(isAbsolute(exit)).toBe(false);
      const r = await runBody({ ...opts, runFiles: { ...opts.runFiles!, exit } }).done;
      expect(r.exitCode).toBe(3);
      expect(recorded(opts)).toBe(3);
    });
  });
});

describe('exitWrapper', () => {
  it('runs plain bodies under the EXIT trap, and in a subshell any body that could take the trap, replace the shell or hide what it runs', () => {
    for (const body of ['exit 100', 'gc mail check --quiet', 'scripts/sweep.sh --dry-run', 'echo $((1 + 2)) $(date)', 'reset-thing; exit 0', 'test -f x.txt && exit 100']) {
      expect(exitWrapper(body), body).toMatch(/^trap /);
    }
    for (const body of ['exec gc run', 'trap "" TERM; sleep 1', 'set -eu; gc x', 'eval "$CMD"', '. ./lib.sh', 'cd x && . lib.sh', 'source lib.sh', 'main() { :; }; main', 'main () { :; }', 'alias ls=true', 'command exec true', 'unset ORDERLY_EXIT_FILE']) {
      expect(exitWrapper(body), body).toMatch(/^\(eval /);
    }
  });
});

describe('collectFinished (an adopted body\'s end, from its run files)', () => {
  function files(exitText: string) {
    const d = dir();
    writeFileSync(join(d, 'exit'), exitText);
    writeFileSync(join(d, 'output'), 'swept 2\n');
    return { output: join(d, 'output'), exit: join(d, 'exit'), status: join(d, 'status'), tag: 'fire-b' };
  }
  const facts = { noOpExitCodes: [100], startedAt: Date.now() - 1_000 };

  it('reads the status the wrapper wrote for this fire', async () => {
    expect(await collectFinished(files('0 fire-b'), facts)).toMatchObject({ outcome: 'did-work', exitCode: 0, outputTail: 'swept 2\n' });
    expect(await collectFinished(files('100 fire-b'), facts)).toMatchObject({ outcome: 'no-op', exitCode: 100 });
  });

  it('ignores a status of another fire (a slot\'s earlier run) and a half-written one', async () => {
    expect(await collectFinished(files('100 fire-a'), facts)).toBeUndefined();
    expect(await collectFinished(files(''), facts)).toBeUndefined();
    expect(await collectFinished(files('10'), facts)).toMatchObject({ exitCode: 10 });
  });
});
