// The loop every builder worker runs (Nodepool's BaseWorker threads as async loops): one cycle,
// then sleep for the interval — woken early by a ZooKeeper watch or by another worker — never
// working while the ZooKeeper session is suspended or lost, backing off after an error.
import type { Config, Provider } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import type { ProviderManager } from '@nodepool-ts/core/provider';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import type { BuilderMetrics } from './metrics.js';

/** What the workers need from the daemon that owns them. */
export interface BuilderContext {
  readonly hostname: string;
  /** UUID from builder_id.txt */
  readonly builderId: string;
  readonly zk: ZooKeeper;
  readonly metrics: BuilderMetrics;
  /** the disk-image-create command (string, shell-split) */
  readonly dibCmd: string;
  /** our `elements/`, appended to ELEMENTS_PATH; null = not added */
  readonly shippedElementsDir: string | null;
  /** SIGTERM → SIGKILL grace when a build is killed */
  readonly killGraceMs: number;
  /** environment DIB inherits (the daemon's by default) */
  readonly env: NodeJS.ProcessEnv;
  /** aborted when the builder stops: running builds and uploads are ended */
  readonly stopSignal: AbortSignal;
  /** the config as last loaded */
  readonly config: Config;
  /** re-read the config files (at most one read at a time; concurrent callers share it) */
  reloadConfig(): Promise<Config>;
  /** a started manager for a cloud provider of the current config; null for static providers */
  providerManager(provider: Provider): Promise<ProviderManager | null>;
  logger(name: string): Logger;
  /** `<image>-<build>` of the builds running in this process (cleanup never touches them) */
  readonly activeBuilds: Set<string>;
  /** a build became ready here: let the upload workers look now rather than in 10 s */
  wakeUploadWorkers(): void;
}

export interface WorkerTiming {
  intervalMs: number;
  /** extra sleep after a cycle threw (Nodepool: 10 s) */
  errorBackoffMs: number;
}

export abstract class Worker {
  protected readonly log: Logger;
  private running = false;
  private loop: Promise<void> | null = null;
  private woken = false;
  private wakeSleep: (() => void) | null = null;
  private stopResolve: (() => void) | null = null;
  private readonly stopped: Promise<void>;
  cycles = 0;

  constructor(readonly name: string, protected readonly ctx: BuilderContext, private readonly timing: WorkerTiming) {
    this.log = ctx.logger(`nodepool.builder.${name}`);
    this.stopped = new Promise<void>((r) => {
      this.stopResolve = r;
    });
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Run the next cycle now (or right after the current one). */
  wake(): void {
    this.woken = true;
    this.wakeSleep?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopResolve?.();
    this.wake();
    await this.loop;
  }

  /** One pass of the worker's duty. Exceptions are logged by the loop. */
  protected abstract cycle(): Promise<void>;

  /** Whether a long cycle should go on: still running and the session usable. */
  protected get canWork(): boolean {
    return this.running && this.ctx.zk.state === 'connected';
  }

  private async run(): Promise<void> {
    let waitingLogged = false;
    while (this.running) {
      if (this.ctx.zk.state !== 'connected') {
        if (!waitingLogged) this.log.info('ZooKeeper suspended. Waiting');
        waitingLogged = true;
        await Promise.race([this.ctx.zk.waitConnected().catch(() => false), this.stopped]);
        continue;
      }
      waitingLogged = false;
      this.woken = false;
      try {
        await this.cycle();
      } catch (err) {
        this.log.error({ err }, `Exception in ${this.name}: ${(err as Error).message}`);
        await this.sleep(this.timing.errorBackoffMs);
      }
      this.cycles++;
      if (!this.woken) await this.sleep(this.timing.intervalMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (!this.running || ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakeSleep = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeSleep = done;
    });
  }
}
