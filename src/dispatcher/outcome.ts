import { constants } from 'node:os';
import type { Outcome } from '../orders/types.js';

/**
 * The exit-code contract (DESIGN.md "A fire, end to end", step 4), as a pure
 * function of what the runner observed.
 *
 * Precedence, strongest first:
 *   1. the body never started (`spawnError`)            → failed
 *   2. our timeout fired (whatever the process died of) → timeout
 *   3. killed by a signal that was not ours             → failed
 *   4. exit code in `noOpExitCodes`                     → no-op    ┐ the status file
 *   5. exit code 0                                      → did-work ┘ may override these two
 *      (no-op when `silent`: the order opted in with no_op_when_silent and
 *      the body printed nothing but whitespace)
 *   6. any other exit code                              → failed
 *
 * The status file may only turn a success into the other kind of success: a
 * script that says `no-op` and then exits 1 failed, and a failure is never
 * hidden from the audit log (G3). The configured no-op codes are checked
 * before 0, so `noOpExitCodes: [0]` means "a clean exit is a no-op" (only
 * failures and explicit `did-work` status files are audited).
 *
 * Prior art: systemd `SuccessExitStatus=`, Terraform/Puppet detailed exit
 * codes, yum `check-update` (100 = updates available). The default no-op code
 * 100 clashes with apt-get (100 = error), hence per-order configuration.
 */

/** What a body may write to `$ORDERLY_STATUS_FILE`. */
export type StatusFromFile = 'no-op' | 'did-work';

export interface ExitFacts {
  /** The shell's exit code; null when it died of a signal or never started. */
  exitCode: number | null;
  /** The signal the shell died of, if any. */
  signal: NodeJS.Signals | null;
  /** Our timeout fired (the runner then signals the group itself). */
  timedOut: boolean;
  /** Exit codes that mean "ran, did nothing" (default [100] at the order level). */
  noOpExitCodes: readonly number[];
  /** The parsed status file, if the body wrote a valid one. */
  status?: StatusFromFile | undefined;
  /** Why the body could not be started (missing shell or cwd, EACCES, …). */
  spawnError?: string | undefined;
  /** Exit 0 with no output counts as no-op (the order's `no_op_when_silent`, and nothing but whitespace printed). */
  silent?: boolean | undefined;
  /** Only for the wording of a timeout's reason. */
  timeoutMs?: number | undefined;
  /**
   * Why a status file that was present was ignored (unreadable, garbage).
   * It never changes the outcome; it is appended to the reason of a
   * successful run so the operator sees the script's mistake.
   */
  statusIgnored?: string | undefined;
}

export interface Classification {
  outcome: Outcome;
  /** For humans (logs, audit record); absent on a plain success. */
  reason?: string;
}

const SIGNAL_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);

/** Hints for the codes shells and coreutils give a meaning to. */
function describeExitCode(code: number): string {
  if (code === 124) return `exit code ${code} (timeout(1) expired)`;
  if (code === 126) return `exit code ${code} (command not executable)`;
  if (code === 127) return `exit code ${code} (command not found)`;
  const signal = code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
  if (signal !== undefined) return `exit code ${code} (128+${code - 128}: a command was killed by ${signal})`;
  return `exit code ${code}`;
}

function success(outcome: Outcome, statusIgnored: string | undefined): Classification {
  return statusIgnored === undefined ? { outcome } : { outcome, reason: statusIgnored };
}

export function classifyExit(facts: ExitFacts): Classification {
  if (facts.spawnError !== undefined) return { outcome: 'failed', reason: facts.spawnError };
  if (facts.timedOut) {
    const after = facts.timeoutMs === undefined ? '' : ` after ${facts.timeoutMs} ms`;
    return { outcome: 'timeout', reason: `timed out${after}` };
  }
  if (facts.signal !== null) return { outcome: 'failed', reason: `killed by ${facts.signal}` };
  const code = facts.exitCode;
  if (code === null) return { outcome: 'failed', reason: 'no exit status' };
  if (facts.noOpExitCodes.includes(code)) return success(facts.status ?? 'no-op', facts.statusIgnored);
  if (code === 0) return success(facts.status ?? (facts.silent ? 'no-op' : 'did-work'), facts.statusIgnored);
  return { outcome: 'failed', reason: describeExitCode(code) };
}

/**
 * `no-op` or `did-work`, surrounded by any whitespace; anything else
 * (another word, another case, two lines) is not a status and is ignored:
 * a status file can only refine a success, so a typo must not invent one.
 */
export function parseStatusFile(text: string): StatusFromFile | undefined {
  const word = text.trim();
  return word === 'no-op' || word === 'did-work' ? word : undefined;
}
