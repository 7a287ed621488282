// What a result was measured on, recorded beside every figure: a number
// without its machine cannot be compared with a later run.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

function cpuModel() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {
    // not Linux; fall through to os.cpus()
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Filesystem type and device holding `dir` (where the data files live), if findmnt exists. */
function filesystemOf(dir) {
  try {
    const [source, fstype, options] = execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split(/\s+/);
    return { source, fstype, options };
  } catch {
    return null;
  }
}

/** @param {string} [dataDir] directory the benchmark writes its data files to */
export function machineInfo(dataDir) {
  return {
    cores: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: cpuModel(),
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    node: process.version,
    ...(dataDir ? { dataFilesystem: filesystemOf(dataDir) } : {}),
  };
}

/** How this run was started, as a user would retype it, with the variables named by `prefixes` (a bench's own knobs). */
export function commandLine({ prefixes = ['BENCH_'] } = {}) {
  const env = Object.entries(process.env)
    .filter(([k]) => prefixes.some((p) => k.startsWith(p)))
    .map(([k, v]) => `${k}=${v}`);
  const cmd = process.env.npm_lifecycle_event
    ? `npm run ${process.env.npm_lifecycle_event}`
    : ['node', ...process.argv.slice(1).map((a) => a.replace(process.cwd() + '/', ''))].join(' ');
  return [...env, cmd].join(' ');
}
