import { describe, expect, it } from 'vitest';
import { classifyExit, type ExitFacts, parseStatusFile } from '../../src/dispatcher/outcome.js';

const facts = (over: Partial<ExitFacts>): ExitFacts => ({
  exitCode: 0,
  signal: null,
  timedOut: false,
  noOpExitCodes: [100],
  ...over,
});

describe('classifyExit: exit codes', () => {
  it('exit 0 is did-work, with no reason', () => {
    expect(classifyExit(facts({ exitCode: 0 }))).toEqual({ outcome: 'did-work' });
  });

  it('the default no-op code 100 is no-op', () => {
    expect(classifyExit(facts({ exitCode: 100 }))).toEqual({ outcome: 'no-op' });
  });

  it('a configured no-op code replaces the default: 3 is no-op, 100 is failed', () => {
    expect(classifyExit(facts({ exitCode: 3, noOpExitCodes: [3] }))).toEqual({ outcome: 'no-op' });
    expect(classifyExit(facts({ exitCode: 100, noOpExitCodes: [3] }))).toEqual({ outcome: 'failed', reason: 'exit code 100' });
  });

  it('no configured no-op codes: only 0 succeeds', () => {
    expect(classifyExit(facts({ exitCode: 100, noOpExitCodes: [] })).outcome).toBe('failed');
    expect(classifyExit(facts({ exitCode: 0, noOpExitCodes: [] })).outcome).toBe('did-work');
  });

  it('noOpExitCodes [0] makes a clean exit a no-op (the configuration is checked before 0)', () => {
    expect(classifyExit(facts({ exitCode: 0, noOpExitCodes: [0] })).outcome).toBe('no-op');
  });

  it('any other code is failed, with the code in the reason', () => {
    expect(classifyExit(facts({ exitCode: 1 }))).toEqual({ outcome: 'failed', reason: 'exit code 1' });
    expect(classifyExit(facts({ exitCode: 2 }))).toEqual({ outcome: 'failed', reason: 'exit code 2' });
  });

  it('codes with a conventional meaning get a hint', () => {
    expect(classifyExit(facts({ exitCode: 127 })).reason).toBe('exit code 127 (command not found)');
    expect(classifyExit(facts({ exitCode: 126 })).reason).toBe('exit code 126 (command not executable)');
    expect(classifyExit(facts({ exitCode: 124 })).reason).toBe('exit code 124 (timeout(1) expired)');
    expect(classifyExit(facts({ exitCode: 137 })).reason).toBe('exit code 137 (128+9: a command was killed by SIGKILL)');
  });

  it('a null exit code without a signal (never seen in practice) is failed, not a success', () => {
    expect(classifyExit(facts({ exitCode: null }))).toEqual({ outcome: 'failed', reason: 'no exit status' });
  });
});

describe('classifyExit: signals, timeouts, spawn errors', () => {
  it('a signal that was not ours is failed, naming the signal', () => {
    expect(classifyExit(facts({ exitCode: null, signal: 'SIGKILL' }))).toEqual({ outcome: 'failed', reason: 'killed by SIGKILL' });
    expect(classifyExit(facts({ exitCode: null, signal: 'SIGSEGV' }))).toEqual({ outcome: 'failed', reason: 'killed by SIGSEGV' });
  });

  it('our timeout is timeout, even though the process then died of our SIGTERM or SIGKILL', () => {
    expect(classifyExit(facts({ exitCode: null, signal: 'SIGTERM', timedOut: true }))).toEqual({ outcome: 'timeout', reason: 'timed out' });
    expect(classifyExit(facts({ exitCode: null, signal: 'SIGKILL', timedOut: true, timeoutMs: 200 }))).toEqual({
      outcome: 'timeout',
      reason: 'timed out after 200 ms',
    });
  });

  it('our timeout is timeout even if the shell then exited 0, 100 or 143', () => {
    for (const exitCode of [0, 100, 143]) expect(classifyExit(facts({ exitCode, timedOut: true })).outcome).toBe('timeout');
  });

  it('a spawn error is failed with that reason', () => {
    expect(classifyExit(facts({ exitCode: null, spawnError: 'shell not found: /nonexistent/sh' }))).toEqual({
      outcome: 'failed',
      reason: 'shell not found: /nonexistent/sh',
    });
  });
});

describe('classifyExit: the status file', () => {
  it('wins over exit 0', () => {
    expect(classifyExit(facts({ exitCode: 0, status: 'no-op' }))).toEqual({ outcome: 'no-op' });
    expect(classifyExit(facts({ exitCode: 0, status: 'did-work' }))).toEqual({ outcome: 'did-work' });
  });

  it('wins over a no-op code', () => {
    expect(classifyExit(facts({ exitCode: 100, status: 'did-work' }))).toEqual({ outcome: 'did-work' });
    expect(classifyExit(facts({ exitCode: 3, noOpExitCodes: [3], status: 'did-work' }))).toEqual({ outcome: 'did-work' });
  });

  it('never wins over a failure: other exit code, signal, timeout, spawn error', () => {
    expect(classifyExit(facts({ exitCode: 1, status: 'no-op' }))).toEqual({ outcome: 'failed', reason: 'exit code 1' });
    expect(classifyExit(facts({ exitCode: 1, status: 'did-work' })).outcome).toBe('failed');
    expect(classifyExit(facts({ exitCode: null, signal: 'SIGKILL', status: 'no-op' })).outcome).toBe('failed');
    expect(classifyExit(facts({ exitCode: 0, timedOut: true, status: 'no-op' })).outcome).toBe('timeout');
    expect(classifyExit(facts({ exitCode: null, spawnError: 'x', status: 'did-work' })).outcome).toBe('failed');
  });

  it('an ignored status file leaves the outcome alone but is named in the reason of a success', () => {
    const statusIgnored = 'status file ignored: "yes" is neither "no-op" nor "did-work"';
    expect(classifyExit(facts({ exitCode: 0, statusIgnored }))).toEqual({ outcome: 'did-work', reason: statusIgnored });
    expect(classifyExit(facts({ exitCode: 100, statusIgnored }))).toEqual({ outcome: 'no-op', reason: statusIgnored });
  });

  it('a failure keeps its own reason when the status file was ignored', () => {
    expect(classifyExit(facts({ exitCode: 1, statusIgnored: 'status file ignored: x' }))).toEqual({
      outcome: 'failed',
      reason: 'exit code 1',
    });
  });
});

describe('parseStatusFile', () => {
  it('reads the two words, whitespace-trimmed', () => {
    expect(parseStatusFile('no-op')).toBe('no-op');
    expect(parseStatusFile('did-work')).toBe('did-work');
    expect(parseStatusFile('  no-op\n')).toBe('no-op');
    expect(parseStatusFile('\tdid-work\r\n\n')).toBe('did-work');
  });

  it('anything else is not a status', () => {
    for (const text of ['', '\n', 'noop', 'NO-OP', 'Did-Work', 'no-op did-work', 'no-op\ndid-work', 'did-work.', 'true', '0']) {
      expect(parseStatusFile(text), JSON.stringify(text)).toBeUndefined();
    }
  });
});
