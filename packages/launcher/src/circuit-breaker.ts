// A provider's launch circuit breaker (`launch-circuit-breaker`, nodepool-ts only). Nodepool
// keeps launching into a cloud that fails every boot: each request costs `launch-retries`
// servers and API calls before it is declined. With the breaker, `failures` failed launches in a
// row open the circuit: the provider's pools launch nothing and decline requests that need a
// launch (READY nodes are still handed out) until `cooldown` has passed; then one trial launch
// is let through (half-open). Its success closes the circuit; its failure opens it again for
// twice as long, up to `maxCooldown`.
import type { LaunchCircuitBreaker } from '@nodepool-ts/core/config';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitChange {
  provider: string;
  state: CircuitState;
  /** failed launches in a row */
  failures: number;
  /** while open: when launches are tried again (ms epoch) */
  retryAt: number | null;
}

export class LaunchCircuit {
  private failuresInRow = 0;
  private openedUntil = 0;
  private cooldownMs: number;
  private trial = false;
  private open = false;

  constructor(
    readonly provider: string,
    private settings: LaunchCircuitBreaker,
    private readonly onChange: (c: CircuitChange) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.cooldownMs = settings.cooldown * 1000;
  }

  /** A reload changed the settings: the state is kept, the next wait uses the new ones. */
  reconfigure(settings: LaunchCircuitBreaker): void {
    this.settings = settings;
    this.cooldownMs = Math.min(Math.max(this.cooldownMs, settings.cooldown * 1000), settings.maxCooldown * 1000);
  }

  get state(): CircuitState {
    if (!this.open) return 'closed';
    return this.now() >= this.openedUntil ? 'half-open' : 'open';
  }

  /** How many launches a plan may start now: all, none (open, or a trial running), or one trial. */
  launchAllowance(): number {
    const state = this.state;
    if (state === 'closed') return Infinity;
    if (state === 'open' || this.trial) return 0;
    return 1;
  }

  /** Why launches are refused now (for the decline reason and the log). */
  refusal(): string {
    const s = this.state === 'open' ? Math.ceil((this.openedUntil - this.now()) / 1000) : 0;
    return `provider ${this.provider} suspended launches after ${this.failuresInRow} failed launches in a row`
      + (s > 0 ? ` (next trial in ${s} s)` : ' (a trial launch is running)');
  }

  /** A plan started `count` launches (the trial, when half-open). */
  launchesStarted(count: number): void {
    if (count > 0 && this.state === 'half-open') this.trial = true;
  }

  /** A launch of this provider ended. Quota aborts say nothing about the cloud's health. */
  launchEnded(result: 'ready' | 'failed' | 'aborted'): void {
    if (result === 'aborted') {
      this.trial = false;
      return;
    }
    if (result === 'ready') {
      const wasOpen = this.open;
      this.failuresInRow = 0;
      this.open = false;
      this.trial = false;
      this.cooldownMs = this.settings.cooldown * 1000;
      if (wasOpen) this.onChange({ provider: this.provider, state: 'closed', failures: 0, retryAt: null });
      return;
    }
    this.failuresInRow++;
    if (this.open) {
      // only the trial's failure (or a launch that started before the circuit opened) lands here
      if (!this.trial) return;
      this.trial = false;
      this.cooldownMs = Math.min(this.cooldownMs * 2, this.settings.maxCooldown * 1000);
      this.reopen();
      return;
    }
    if (this.failuresInRow >= this.settings.failures) {
      this.open = true;
      this.reopen();
    }
  }

  private reopen(): void {
    this.openedUntil = this.now() + this.cooldownMs;
    this.onChange({ provider: this.provider, state: 'open', failures: this.failuresInRow, retryAt: this.openedUntil });
  }
}
