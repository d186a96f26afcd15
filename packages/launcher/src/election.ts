// The stats election (§3.11): kazoo's Election is the Lock recipe at /nodepool/elections/stats
// with identifier `<hostname>-<pid>`. One launcher of the cluster wins; it publishes node gauges
// and records the changes no launcher makes itself (Zuul's in-use/used/hold, request arrivals).
import { EventEmitter } from 'node:events';
import type { Logger } from '@nodepool-ts/core/log';
import { Lock, paths, type ZooKeeper } from '@nodepool-ts/core/zk';

export class StatsElection extends EventEmitter<{ leader: [boolean] }> {
  private lock: Lock | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly zk: ZooKeeper, readonly identifier: string, private readonly log: Logger) {
    super();
    this.zk.on('state', this.onState);
  }

  get isLeader(): boolean {
    return this.lock?.isAcquired ?? false;
  }

  start(): void {
    this.running ??= this.campaign();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.zk.off('state', this.onState);
    this.wake?.();
    const lock = this.lock;
    this.lock = null;
    if (lock?.isAcquired) {
      await lock.release().catch(() => undefined);
      this.emit('leader', false);
    }
  }

  private readonly onState = (s: string): void => {
    if (s === 'lost') this.wake?.();
  };

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      const lock = new Lock(this.zk, paths.statsElection, this.identifier);
      try {
        await lock.acquire({ blocking: true });
      } catch (err) {
        if (this.stopped) return;
        this.log.debug({ err: (err as Error).message }, 'stats election: retrying');
        await new Promise((r) => setTimeout(r, 1000).unref());
        continue;
      }
      if (this.stopped) {
        await lock.release().catch(() => undefined);
        return;
      }
      this.lock = lock;
      this.log.info({ identifier: this.identifier }, 'Won the stats election');
      this.emit('leader', true);
      // Held until the session is lost (the lock goes with it) or we stop.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearInterval(poll);
          this.wake = null;
          resolve();
        };
        const poll = setInterval(() => {
          if (!lock.isAcquired || this.stopped) done();
        }, 1000);
        poll.unref();
        this.wake = done;
      });
      if (this.lock === lock) {
        this.lock = null;
        this.emit('leader', false);
      }
      if (!this.stopped) await this.zk.waitConnected().catch(() => false);
    }
  }
}
