// Nodepool's `rate`: the minimum number of seconds between the starts of two API calls to one
// provider, whoever makes them (pool workers, node launchers, deleters, cleanup). Clouds throttle
// per tenant, so one limiter per ProviderManager, shared by every caller of that manager.
import { ProviderAbortedError } from './errors.js';

interface Waiter {
  timer: NodeJS.Timeout;
  reject: (err: Error) => void;
  operation: string;
}

export class RateLimiter {
  private readonly intervalMs: number;
  /** earliest time (ms) the next call may start; reserved at call time so callers queue FIFO */
  private nextSlot = 0;
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  /**
   * @param rateSeconds seconds between call starts; 0 (or less) disables limiting
   * @param provider provider name, for the errors of calls cut short by close()/abort
   */
  constructor(rateSeconds: number, private readonly provider: string = '') {
    this.intervalMs = Number.isFinite(rateSeconds) && rateSeconds > 0 ? rateSeconds * 1000 : 0;
  }

  /**
   * Runs `fn` once its slot comes up. Only starts are spaced: a slow call does not hold up the
   * next one, as with Nodepool's task manager rate.
   */
  async run<T>(fn: () => Promise<T> | T, opts: { operation?: string; signal?: AbortSignal } = {}): Promise<T> {
    const operation = opts.operation ?? 'api call';
    if (this.closed || opts.signal?.aborted) throw new ProviderAbortedError(this.provider, operation);
    if (this.intervalMs > 0) {
      const now = Date.now();
      const slot = Math.max(now, this.nextSlot);
      this.nextSlot = slot + this.intervalMs;
      if (slot > now) await this.wait(slot - now, operation, opts.signal);
    }
    return fn();
  }

  /** Rejects every call still waiting for its slot; later calls fail at once. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new ProviderAbortedError(this.provider, w.operation));
    }
    this.waiters.clear();
  }

  private wait(ms: number, operation: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        reject(new ProviderAbortedError(this.provider, operation));
      };
      const waiter: Waiter = {
        operation,
        reject: (err) => { signal?.removeEventListener('abort', onAbort); reject(err); },
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, ms),
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
