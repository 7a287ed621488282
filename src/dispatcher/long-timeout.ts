/** Node's timers hold at most 2^31-1 ms (24.8 days): a longer delay fires after 1 ms, with only a warning. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeout {
  clear(): void;
}

/**
 * setTimeout for any delay an order can spell (timeouts go up to Go's
 * 292 years): a delay past Node's limit waits in steps of at most `stepMs`,
 * each re-measured on the monotonic clock. Infinity never fires.
 */
export function setLongTimeout(fn: () => void, ms: number, opts: { unref?: boolean; stepMs?: number } = {}): LongTimeout {
  const step = opts.stepMs ?? MAX_TIMER_MS;
  let timer: NodeJS.Timeout | undefined;
  if (ms === Infinity) return { clear() {} };
  const end = performance.now() + Math.max(0, ms);
  const arm = (left: number) => {
    timer = setTimeout(() => {
      const rest = end - performance.now();
      if (rest >= 1) arm(rest);
      else fn();
    }, Math.min(Math.max(0, Math.ceil(left)), step));
    if (opts.unref) timer.unref();
  };
  arm(ms);
  return { clear: () => clearTimeout(timer) };
}
