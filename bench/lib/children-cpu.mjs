// CPU of this process's children that it has reaped (the body processes a
// controller started): what process.cpuUsage() leaves out. Linux keeps it in
// /proc/self/stat (cutime + cstime, in clock ticks, 10 ms each here), so a
// figure is only as fine as a few hundred bodies' worth of time.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

// Asked once, at import: getconf is a child too, and must not land inside a measured window.
export const ticksPerSecond = clockTicks();

function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** Microseconds of CPU (user + system) used by reaped children so far; null off Linux. */
export function childrenCpuUs() {
  let stat;
  try {
    stat = readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return null;
  }
  // Fields after the command name, which may itself hold spaces and parentheses: state is [0], cutime [13], cstime [14].
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / ticksPerSecond;
}
