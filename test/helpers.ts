import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditRecord } from '../src/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A fresh directory, removed after the test file unless ORDERLY_KEEP_TMP is set. */
/** The records a JsonlSink wrote to `path`, none when it wrote nothing yet. */
export function jsonlRecords(path: string): AuditRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `orderly-${prefix}-`));
  return { path, remove: () => process.env.ORDERLY_KEEP_TMP || rmSync(path, { recursive: true, force: true }) };
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs an ES module in a separate node process. `code` may import
 * `__ORDERLY__` (the built package entry, dist/index.js) and `__BINDING__` (the
 * generated napi loader) by those placeholder names.
 */
export function runChild(code: string, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ChildResult> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-child-'));
  const file = join(dir, 'child.mjs');
  writeFileSync(
    file,
    code
      .replaceAll('__ORDERLY__', JSON.stringify(join(repoRoot, 'dist', 'index.js')))
      .replaceAll('__BINDING__', JSON.stringify(join(repoRoot, 'index.cjs'))),
  );
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [file], { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit within ${options.timeoutMs ?? 20_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}
