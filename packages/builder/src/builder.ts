// NodePoolBuilder (§4.1): one ZooKeeper session shared by N BuildWorkers, M UploadWorkers and a
// CleanupWorker; the config re-read every cycle; provider managers kept while their provider's
// config is unchanged. Beyond Nodepool's polling, ZooKeeper watches on `request-build` and
// `request-upload` wake the workers at once, and an optional `cron: image-update` schedule asks
// for a rebuild of every image at fixed times.
import { hostname as osHostname } from 'node:os';
import cron from 'node-cron';
import { isCloudProvider, loadConfig, providersEqual, type Config, type Provider } from '@nodepool-ts/core/config';
import { getLogger, type Logger } from '@nodepool-ts/core/log';
import type { ProviderManager } from '@nodepool-ts/core/provider';
import { ComponentRegistration, NodeCache, ZooKeeper, paths } from '@nodepool-ts/core/zk';
import { StartUp } from '@nodepool-ts/core/daemon';
import { createProviderManager } from '@nodepool-ts/launcher';
import { BuildWorker } from './build-worker.js';
import { CleanupWorker } from './cleanup-worker.js';
import { SHIPPED_ELEMENTS_DIR, readOrCreateBuilderId } from './dib.js';
import { BuilderError } from './errors.js';
import { NO_METRICS, STATUS_IDLE, type BuilderMetrics, type BuilderStatus } from './metrics.js';
import { UploadWorker, type ImageProvider } from './upload-worker.js';
import type { BuilderContext, Worker } from './worker.js';

/** Makes the manager for a cloud provider; tests wrap the default to inject cloud failures. */
export type ProviderFactory = (provider: ImageProvider, config: Config) => ProviderManager;

export interface BuilderOptions {
  configFile: string;
  secureFile?: string | null;
  /** `--build-workers` (1) */
  buildWorkers?: number;
  /** `--upload-workers` (4) */
  uploadWorkers?: number;
  /** the DIB command (Nodepool's dib_cmd): `disk-image-create`, or a stand-in for tests */
  dibCmd?: string;
  hostname?: string;
  /** Nodepool: build 10 s, upload 10 s, cleanup 60 s, error back-off 10 s */
  buildIntervalMs?: number;
  uploadIntervalMs?: number;
  cleanupIntervalMs?: number;
  /** how often BuilderMetrics.onStatus is called (default 10 s) */
  statusIntervalMs?: number;
  errorBackoffMs?: number;
  metrics?: BuilderMetrics;
  providerFactory?: ProviderFactory;
  /** our `elements/` on ELEMENTS_PATH (default: the repository's); null leaves it out */
  shippedElementsDir?: string | null;
  /** SIGTERM → SIGKILL grace when a build is killed (default 30 s) */
  killGraceMs?: number;
  /** environment for DIB (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** give up connecting to ZooKeeper after this long (default: retry forever, like a daemon) */
  connectTimeoutMs?: number;
}

interface ManagedProvider {
  config: Provider;
  manager: ProviderManager;
}

export class Builder implements BuilderContext {
  readonly hostname: string;
  readonly dibCmd: string;
  readonly metrics: BuilderMetrics;
  readonly shippedElementsDir: string | null;
  readonly killGraceMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly activeBuilds = new Set<string>();
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private _config: Config | null = null;
  private _zk: ZooKeeper | null = null;
  /** Nodepool 6.1+'s builder component (`/nodepool/components/builder/<hostname><seq>`) */
  private component: ComponentRegistration | null = null;
  private _builderId: string | null = null;
  private buildWorkers: BuildWorker[] = [];
  private uploadWorkers: UploadWorker[] = [];
  private cleanupWorker: CleanupWorker | null = null;
  private readonly managers = new Map<string, ManagedProvider>();
  private managerOps = new Map<string, Promise<ProviderManager | null>>();
  private reloading: Promise<Config> | null = null;
  private cronTask: { expr: string; task: { destroy(): void | Promise<void> } } | null = null;
  private nodeCache: NodeCache | null = null;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private readonly startUp = new StartUp();
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(readonly options: BuilderOptions) {
    this.hostname = options.hostname ?? osHostname();
    this.dibCmd = options.dibCmd ?? 'disk-image-create';
    this.metrics = options.metrics ?? NO_METRICS;
    this.shippedElementsDir = options.shippedElementsDir === undefined ? SHIPPED_ELEMENTS_DIR : options.shippedElementsDir;
    this.killGraceMs = options.killGraceMs ?? 30_000;
    this.env = options.env ?? process.env;
    this.log = getLogger('nodepool.builder.NodePoolBuilder');
  }

  get zk(): ZooKeeper {
    if (this._zk === null) throw new BuilderError('ESTATE', 'builder not started');
    return this._zk;
  }

  get config(): Config {
    if (this._config === null) throw new BuilderError('ESTATE', 'builder not started');
    return this._config;
  }

  get builderId(): string {
    if (this._builderId === null) throw new BuilderError('ESTATE', 'builder not started');
    return this._builderId;
  }

  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  logger(name: string): Logger {
    return getLogger(name);
  }

  // ------------------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    if (this.state !== 'new') throw new BuilderError('ESTATE', 'Cannot start, already running.');
    this.state = 'running';
    await this.startUp.run(() => this.startSteps());
  }

  /** stop() was called while start() waited: start gives up here (stop() ends what it made). */
  private goOnStarting(): void {
    if (this.state !== 'running') throw new BuilderError('ESTATE', 'stopped while starting');
  }

  private async startSteps(): Promise<void> {
    const config = await this.loadAndValidate();
    this.goOnStarting();
    this._config = config;
    this._builderId = await readOrCreateBuilderId(config.imagesDir ?? '');
    this.goOnStarting();
    const zk = new ZooKeeper({
      servers: config.zookeeperServers, sessionTimeoutMs: config.zookeeperTimeoutMs, tls: config.zookeeperTls, log: getLogger('nodepool.zk'),
      ...(this.options.connectTimeoutMs !== undefined ? { connectTimeoutMs: this.options.connectTimeoutMs } : {}),
    });
    this._zk = zk;
    try {
      await zk.connect();
    } catch (err) {
      if (this.state === 'running') this.state = 'stopped';
      throw err;
    }
    // Nodepool 6.1+'s builder component; a new session (the old one's ephemerals gone) registers again
    const component = new ComponentRegistration(zk, 'builder', this.hostname);
    this.component = component;
    const register = (): void => {
      void component.update().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'could not register the builder component');
      });
    };
    zk.on('state', (s: string) => {
      if (s === 'connected' && this.state === 'running') register();
    });
    register();
    const o = this.options;
    const backoff = o.errorBackoffMs ?? 10_000;
    for (let i = 0; i < (o.buildWorkers ?? 1); i++) {
      this.buildWorkers.push(new BuildWorker(i, this, { intervalMs: o.buildIntervalMs ?? 10_000, errorBackoffMs: backoff }));
    }
    for (let i = 0; i < (o.uploadWorkers ?? 4); i++) {
      this.uploadWorkers.push(new UploadWorker(i, this, { intervalMs: o.uploadIntervalMs ?? 10_000, errorBackoffMs: backoff }));
    }
    this.cleanupWorker = new CleanupWorker(0, this, { intervalMs: o.cleanupIntervalMs ?? 60_000, errorBackoffMs: backoff });
    await this.armWatches(config).catch(() => undefined);
    this.goOnStarting();
    this.scheduleImageUpdate(config);
    for (const w of this.workers()) w.start();
    if (this.metrics.onStatus) {
      this.statusTimer = setInterval(() => void this.sendStatus(), o.statusIntervalMs ?? 10_000);
      this.statusTimer.unref();
    }
    this.log.info({ builderId: this._builderId, hostname: this.hostname }, 'nodepool-builder started');
  }

  /** Stop every worker (running builds and uploads are ended), the providers, the session. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping' || this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.log.debug('Stopping. NodePoolBuilder shutting down workers');
    this.stopController.abort();
    if (this.startUp.inFlight) {
      // a stop signal during start-up: a ZooKeeper connection still being made is cut, then
      // start() gives up at its next step, before it makes workers that nothing would stop
      if (this._zk !== null && this._zk.state !== 'connected') await this._zk.close();
      await this.startUp.settled();
    }
    // ZooKeeper gone (or going) while we stop: after a few seconds the session is closed, so that
    // workers waiting on it end at once (else the daemon's grace timer ends the process)
    const unguard = this._zk?.closeWhenUnreachable();
    if (this.cronTask !== null) await this.cronTask.task.destroy();
    this.cronTask = null;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    await Promise.allSettled(this.workers().map((w) => w.stop()));
    await Promise.allSettled([...this.managerOps.values()]);
    await Promise.allSettled([...this.managers.values()].map((m) => m.manager.stop()));
    this.managers.clear();
    await this.component?.remove().catch(() => undefined);
    unguard?.();
    await this._zk?.close();
    await this.metrics.close?.().catch(() => undefined);
    this.state = 'stopped';
    this.log.info('nodepool-builder stopped');
  }

  /** What the builder is doing now, for the builder stats (Nodepool's status constants). */
  async status(): Promise<BuilderStatus> {
    const buildState = new Map<string, number>();
    for (const w of this.buildWorkers) {
      for (const [image, s] of w.imageStatus) buildState.set(image, Math.max(s, buildState.get(image) ?? STATUS_IDLE));
    }
    const uploadState = new Map<string, Map<string, number>>();
    for (const w of this.uploadWorkers) {
      for (const [image, providers] of w.imageStatus) {
        const m = uploadState.get(image) ?? new Map<string, number>();
        uploadState.set(image, m);
        for (const [p, s] of providers) m.set(p, Math.max(s, m.get(p) ?? STATUS_IDLE));
      }
    }
    const buildRequests = new Map<string, number>();
    for (const image of await this.zk.getImageNames()) {
      buildRequests.set(image, (await this.zk.getBuildRequest(image))?.pending === true ? 1 : 0);
    }
    return {
      hostname: this.hostname,
      buildWorkers: this.buildWorkers.length,
      uploadWorkers: this.uploadWorkers.length,
      currentBuilds: this.buildWorkers.filter((w) => w.building).length,
      currentUploads: this.uploadWorkers.filter((w) => w.uploading).length,
      buildRequests, buildState, uploadState,
    };
  }

  private async sendStatus(): Promise<void> {
    if (this.state !== 'running' || this._zk?.state !== 'connected') return;
    try {
      this.metrics.onStatus?.(await this.status());
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'builder stats not sent');
    }
  }

  /** For SIGUSR2 and tests. */
  describe(): Record<string, unknown> {
    return {
      hostname: this.hostname,
      builderId: this._builderId,
      state: this.state,
      zk: this._zk?.state ?? null,
      workers: this.workers().map((w) => ({ name: w.name, cycles: w.cycles, running: w.isRunning })),
      providers: [...this.managers.keys()],
      imageUpdateCron: this.cronTask?.expr ?? null,
    };
  }

  private workers(): Worker[] {
    return [...this.buildWorkers, ...this.uploadWorkers, ...(this.cleanupWorker ? [this.cleanupWorker] : [])];
  }

  // ------------------------------------------------------------------------------ config

  private async loadAndValidate(): Promise<Config> {
    const config = await loadConfig(this.options.configFile, { secureFile: this.options.secureFile ?? null, env: this.env });
    if (config.zookeeperServers.length === 0) throw new BuilderError('ECONFIG', 'No ZooKeeper servers specified in config.');
    if (config.imagesDir === null) throw new BuilderError('ECONFIG', 'No images-dir specified in config.');
    return config;
  }

  reloadConfig(): Promise<Config> {
    this.reloading ??= (async () => {
      try {
        const next = await this.loadAndValidate();
        const prev = this._config;
        if (prev !== null && JSON.stringify(prev.zookeeperServers) !== JSON.stringify(next.zookeeperServers)) {
          this.log.warn('ZooKeeper servers changed in the config; restart nodepool-builder to use them');
        }
        this._config = next;
        await this.armWatches(next).catch(() => undefined);
        this.scheduleImageUpdate(next);
        return next;
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  // ------------------------------------------------------------------------------ providers

  providerManager(provider: Provider): Promise<ProviderManager | null> {
    if (!isCloudProvider(provider)) return Promise.resolve(null);
    // one creation per provider at a time; callers share it
    const pending = this.managerOps.get(provider.name);
    const op = (pending ?? Promise.resolve(null)).catch(() => null).then(() => this.ensureManager(provider));
    this.managerOps.set(provider.name, op);
    void op.finally(() => {
      if (this.managerOps.get(provider.name) === op) this.managerOps.delete(provider.name);
    }).catch(() => undefined);
    return op;
  }

  private async ensureManager(provider: ImageProvider): Promise<ProviderManager | null> {
    if (this.stopSignal.aborted) throw new BuilderError('ESTATE', 'builder is stopping');
    const current = this.managers.get(provider.name);
    if (current !== undefined && providersEqual(current.config, provider)) return current.manager;
    if (current !== undefined) {
      this.managers.delete(provider.name);
      await current.manager.stop().catch(() => undefined);
    }
    const manager = this.options.providerFactory
      ? this.options.providerFactory(provider, this.config)
      : this.defaultManager(provider);
    await manager.start();
    this.managers.set(provider.name, { config: provider, manager });
    return manager;
  }

  private defaultManager(provider: ImageProvider): ProviderManager {
    const zk = this.zk;
    this.nodeCache ??= new NodeCache(zk); // never started: the builder manages no nodes
    const mgr = createProviderManager(provider, {
      stateDir: this.config.stateDir,
      config: this.config,
      zk,
      nodeCache: this.nodeCache,
      logger: (name) => getLogger(name),
      storeNode: () => Promise.reject(new BuilderError('ESTATE', 'nodepool-builder does not store nodes')),
      recordNodeRemoved: () => undefined,
    });
    if (mgr.kind !== 'cloud') throw new BuilderError('ENOPROVIDER', `provider ${provider.name} (${provider.driver}) takes no images`);
    return mgr;
  }

  // ------------------------------------------------------------------------------ wake-ups

  wakeUploadWorkers(): void {
    for (const w of this.uploadWorkers) w.wake();
  }

  private readonly onBuildRequest = (): void => {
    for (const w of this.buildWorkers) w.wake();
  };

  private readonly onUploadRequest = (): void => {
    this.wakeUploadWorkers();
  };

  /**
   * Watch every configured image's `request-build` and `request-upload` (the library keeps one
   * registration per path and function, so re-arming every reload costs nothing extra).
   */
  private async armWatches(config: Config): Promise<void> {
    const zk = this._zk;
    if (zk === null || zk.state !== 'connected') return;
    await Promise.all([...config.diskimages.keys()].map(async (image) => {
      await zk.stat(paths.imageBuildRequest(image), this.onBuildRequest);
      const dir = paths.imageUploadRequests(image);
      if ((await zk.stat(dir, this.onUploadRequest)) !== null) await zk.listChildren(dir, this.onUploadRequest);
    }));
  }

  // ------------------------------------------------------------------------------ cron

  private scheduleImageUpdate(config: Config): void {
    const expr = config.cron.imageUpdate;
    if (this.cronTask?.expr === expr) return;
    if (this.cronTask !== null) void this.cronTask.task.destroy();
    this.cronTask = null;
    if (expr === null || this.state !== 'running') return;
    const task = cron.schedule(expr, () => void this.imageUpdateTick(new Date()).catch((err: unknown) => {
      this.log.error({ err }, `image-update failed: ${(err as Error).message}`);
    }));
    this.cronTask = { expr, task };
    this.log.info(`Image updates scheduled by cron "${expr}"`);
  }

  /**
   * `cron: image-update`: ask for a build of every image not paused (in the config or by
   * `image-pause`), like `image-build` would.
   * Every builder of the cluster fires at the same minute; an image already building, or built
   * since this tick began, is left alone so they do not build it twice.
   */
  async imageUpdateTick(at: Date): Promise<string[]> {
    const zk = this.zk;
    const tickS = at.getTime() / 1000;
    const requested: string[] = [];
    for (const di of this.config.diskimages.values()) {
      if (di.pause || await zk.isImagePaused(di.name)) continue;
      const builds = await zk.getBuilds(di.name);
      if (builds.some((b) => b.state === 'building' || (b.state === 'ready' && b.state_time >= tickS - 60))) continue;
      await zk.submitBuildRequest(di.name);
      requested.push(di.name);
    }
    if (requested.length > 0) this.log.info(`image-update: build requested for ${requested.join(', ')}`);
    return requested;
  }
}
