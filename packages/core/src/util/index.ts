// Small helpers shared by every package.

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Wait for `p` to settle, at most `ms`: true when it did (null/undefined: nothing to wait for). */
export async function settledWithin(p: Promise<unknown> | null | undefined, ms: number): Promise<boolean> {
  if (p === null || p === undefined) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Float Unix seconds, like Python's time.time(). */
export function nowSeconds(): number {
  return Date.now() / 1000;
}

/** Nodepool's `DD:HH:MM:SS` age of a state_time (float seconds), integer-truncated. */
export function formatAge(stateTime: number, now: number = nowSeconds()): string {
  let s = Math.max(0, Math.floor(now - stateTime));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d)}:${two(h)}:${two(m)}:${two(s)}`;
}
