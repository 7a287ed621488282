import { resolve } from 'node:path';
import { doctor } from '../doctor.js';
import { EXIT, parse, UsageError } from './args.js';

export const DOCTOR_USAGE = `usage: orderly-dispatch doctor [--state DIR] [--audit URL] [--min-free-mb N] [--json]

Checks a controller's state: the log (segments, size, dead share, what the
next open would cut), poisoning, the lock holder, free disk, held leases,
the audit backlog and whether the audit sink answers; for a cluster member's
state, whether the cluster engine answers (members live, shards owned). One
line per check, OK / WARN / FAIL; exits 1 if any check FAILs.`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { state: { type: 'string' }, audit: { type: 'string' }, 'min-free-mb': { type: 'string' } }, DOCTOR_USAGE);
  if (values.help) {
    console.log(DOCTOR_USAGE);
    return EXIT.ok;
  }
  const minFree = values['min-free-mb'] !== undefined ? Number(values['min-free-mb']) : undefined;
  if (minFree !== undefined && !(minFree >= 0)) throw new UsageError(`--min-free-mb must be a non-negative number, got ${values['min-free-mb']}`);
  const checks = await doctor({
    state: resolve(values.state ?? '.orderly'),
    ...(values.audit ? { audit: values.audit } : {}),
    ...(minFree !== undefined ? { minFreeBytes: minFree * 1048576 } : {}),
  });
  const failed = checks.some((c) => c.status === 'FAIL');
  if (values.json) console.log(JSON.stringify({ ok: !failed, checks }));
  else for (const c of checks) console.log(`${c.status.padEnd(4)} ${c.name.padEnd(12)} ${c.detail}`);
  return failed ? EXIT.failed : EXIT.ok;
}
