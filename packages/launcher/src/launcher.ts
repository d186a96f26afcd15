// The launcher daemon's core: one ZooKeeper session, watch-fed node and request caches, one
// PoolWorker per provider pool, the DeletedNodeWorker, CleanupWorker and min-ready worker, and
// the config reload that keeps unchanged providers (and their state) as they are.
import { hostname as osHostname } from 'node:os';
import { statSync, watchFile, unwatchFile } from 'node:fs';
import cron from 'node-cron';
import { isCloudProvider, loadConfig, providersEqual, type Config, type Pool, type Provider } from '@nodepool-ts/core/config';
import { getLogger, type Logger } from '@nodepool-ts/core/log';
import { MIN_READY_REQUESTOR, newNodeRequest, requestFromData, type LauncherInfo, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { ProviderManager } from '@nodepool-ts/core/provider';
import { ComponentRegistration, NodeCache, RequestCache, ZooKeeper, mapLimit, paths } from '@nodepool-ts/core/zk';
import { StartUp } from '@nodepool-ts/core/daemon';
import { createProviderManager, type AnyProviderManager } from './drivers.js';
import type { LaunchAttempt, LauncherContext } from './context.js';
import type { Resources } from './decide.js';
import { LaunchCircuit, type CircuitChange } from './circuit-breaker.js';
import { PoolWorker } from './pool-worker.js';
import { DeletedNodeWorker, deleteNodeAndServer } from './deleted-node-worker.js';
import { CleanupWorker } from './cleanup-worker.js';
import { MinReadyWorker } from './min-ready.js';
import { LauncherEvents } from './events.js';
import { keyscan } from '@nodepool-ts/core/ssh';
import { StatsElection } from './election.js';
import { LauncherRecording } from './recording.js';
import { WebApp, type WebAppOptions } from './web/server.js';
import { LauncherMetrics } from './web/metrics.js';

const CLEANUP_INTERVAL_MS = 60_000;
const QUOTA_CACHE_MS = 300_000;
const IMAGE_CACHE_MS = 2_000;
/** after a peer launcher went away: time for the DeletedNodeWorker to reap its nodes first */
const PEER_CLEANUP_DELAY_MS = 10_000;
/** What the ZooKeeper connection was made from (a reload does not reconnect). */
function zookeeperSettings(c: Config): string {
  return JSON.stringify([c.zookeeperServers, c.zookeeperTimeoutMs, c.zookeeperTls]);
}

/** a provider manager replaced by a reload is stopped once its launches ended, or after this */
const RETIRE_MAX_MS = 600_000;

export interface LauncherOptions {
  configFile: string;
  secureFile?: string | null;
  hostname?: string;
  /** config file watch interval; 0 disables reloads on change */
  watchIntervalMs?: number;
  cleanupIntervalMs?: number;
  /**
   * serve the web API and dashboard: the daemon passes true unless `--no-webapp`; library users
   * (tests) opt in, with options (e.g. `{ port: 0 }`) when they want some
   */
  webapp?: boolean | WebAppOptions;
  /** record history in the database (`--no-history` turns it off) */
  record?: boolean;
}

export class Launcher implements LauncherContext {
  readonly hostname: string;
  readonly events = new LauncherEvents();
  /** host-key scan of booted cloud servers (host-key-checking): TCP, then the SSH host keys */
  readonly keyscan = keyscan;
  config!: Config;
  zk!: ZooKeeper;
  nodeCache!: NodeCache;
  requestCache!: RequestCache;
  private readonly log: Logger;
  private readonly providers = new Map<string, AnyProviderManager>();
  private readonly workers = new Map<string, PoolWorker>();
  private deletedNodeWorker!: DeletedNodeWorker;
  private cleanupWorker!: CleanupWorker;
  private minReady!: MinReadyWorker;
  private launcherList: LauncherInfo[] = [];
  /** Nodepool 6.1+'s launcher component (`/nodepool/components/launcher/<hostname><seq>`) */
  private component: ComponentRegistration | null = null;
  private knownLaunchers = new Set<string>();
  /** the session generation in which refreshLaunchers made the registries' parents */
  private registryRootsMade = -1;
  private peerCleanupTimer: NodeJS.Timeout | null = null;
  /** managers replaced by a reload, still running launches started before it */
  private retiring = new Map<AnyProviderManager, NodeJS.Timeout | null>();
  private cleanupTimer: NodeJS.Timeout | null = null;
  private cronTasks: { stop(): void }[] = [];
  private quotaCache = new Map<string, { at: number; value: Resources }>();
  /** `launch-circuit-breaker` per provider (kept across reloads that keep the setting) */
  private readonly circuits = new Map<string, LaunchCircuit>();
  private imageCache = new Map<string, { at: number; ok: boolean }>();
  private launchCounts = new Map<string, number>();
  private reloading: Promise<void> | null = null;
  election!: StatsElection;
  recording: LauncherRecording | null = null;
  private reloadAgain = false;
  private malformedTimer: NodeJS.Timeout | null = null;
  private malformedSeen = new Set<string>();
  private malformedPass: Promise<number> | null = null;
  private stopped = false;
  private readonly startUp = new StartUp();
  /** statsd (STATSD_HOST) and Prometheus figures */
  metrics: LauncherMetrics | null = null;
  /** the web API, lease API and dashboard, when enabled */
  webApp: WebApp | null = null;

  constructor(readonly options: LauncherOptions) {
    this.hostname = options.hostname ?? osHostname();
    this.log = getLogger('nodepool.NodePool');
  }

  logger(name: string): Logger {
    return getLogger(name);
  }

  async start(): Promise<void> {
    await this.startUp.run(() => this.startSteps());
  }

  /** stop() was called while start() waited: start gives up here (stop() ends what it made). */
  private goOnStarting(): void {
    if (this.stopped) throw new Error('nodepool-launcher stopped while starting');
  }

  /** The config and secure files as they were when read (an edit changes one of these). */
  private configStamps(): string {
    return [this.options.configFile, this.options.secureFile ?? null].map((f) => {
      if (f === null) return '';
      try {
        const st = statSync(f);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        return 'missing';
      }
    }).join('|');
  }

  private async startSteps(): Promise<void> {
    const readAs = this.configStamps();
    this.config = await loadConfig(this.options.configFile, { secureFile: this.options.secureFile ?? null });
    this.goOnStarting();
    this.zk = new ZooKeeper({
      servers: this.config.zookeeperServers, sessionTimeoutMs: this.config.zookeeperTimeoutMs, tls: this.config.zookeeperTls, log: this.logger('nodepool.zk'),
    });
    await this.zk.connect();
    this.goOnStarting();
    this.nodeCache = new NodeCache(this.zk);
    this.requestCache = new RequestCache(this.zk);
    this.deletedNodeWorker = new DeletedNodeWorker(this);
    this.cleanupWorker = new CleanupWorker(this);
    this.minReady = new MinReadyWorker(this);
    this.nodeCache.on('change', (id: string, node: Node | null) => this.onNodeChange(id, node));
    this.requestCache.on('change', (id: string, req: NodeRequest | null) => this.onRequestChange(id, req));
    this.zk.on('state', (s: string) => this.onSessionState(s));
    this.election = new StatsElection(this.zk, `${this.hostname}-${process.pid}`, this.logger('nodepool.StatsElection'));
    if (this.options.record !== false) await this.startRecording();
    this.goOnStarting();
    await Promise.all([this.nodeCache.start(), this.requestCache.start()]);
    this.goOnStarting();
    this.election.start();
    this.component = new ComponentRegistration(this.zk, 'launcher', this.hostname);
    await this.component.update();
    await this.refreshLaunchers();
    this.goOnStarting();
    await this.applyConfig(this.config);
    this.goOnStarting();
    this.deletedNodeWorker.start();
    this.scheduleCleanup();
    this.malformedTimer = setInterval(() => {
      void this.handleMalformed();
      // min-ready also wakes on node/request changes; this catches what no znode change
      // signals, such as the first image upload of a label becoming ready
      this.minReady.trigger();
    }, 5_000);
    this.malformedTimer.unref();
    this.minReady.trigger();
    const interval = this.options.watchIntervalMs ?? 1000;
    if (interval > 0) {
      watchFile(this.options.configFile, { interval }, () => void this.reload());
      if (this.options.secureFile) watchFile(this.options.secureFile, { interval }, () => void this.reload());
      // the watch compares with what it first sees: an edit made while the launcher was starting
      // (connecting to ZooKeeper may take long) would otherwise wait for the next edit
      const edited = setTimeout(() => {
        if (!this.stopped && this.configStamps() !== readAs) void this.reload();
      }, interval);
      edited.unref();
    }
    this.metrics = new LauncherMetrics(this, this.logger('nodepool.stats'));
    this.metrics.start();
    if (this.options.webapp) {
      this.webApp = new WebApp(this, this.metrics, typeof this.options.webapp === 'object' ? this.options.webapp : {});
      await this.webApp.start();
    }
    this.log.info({ providers: [...this.providers.keys()] }, 'nodepool-launcher started');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.startUp.inFlight) {
      // a stop during start-up: a ZooKeeper connection still being made is cut, then start()
      // gives up at its next step, and what it made by then is torn down below
      if (this.zk !== undefined && this.zk.state !== 'connected') await this.zk.close();
      await this.startUp.settled();
    }
    // ZooKeeper gone (or going) while we stop: give it a few seconds, then close the session so
    // that nothing waits for it and the recorder still flushes (else the daemon's grace timer ends
    // the process)
    const unguard = this.zk?.closeWhenUnreachable();
    // first: leased nodes go on hold and the web app closes while ZooKeeper is still connected
    await this.webApp?.stop();
    await this.metrics?.stop();
    unwatchFile(this.options.configFile);
    if (this.options.secureFile) unwatchFile(this.options.secureFile);
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    if (this.malformedTimer) clearInterval(this.malformedTimer);
    if (this.peerCleanupTimer) clearTimeout(this.peerCleanupTimer);
    for (const t of this.cronTasks) t.stop();
    await Promise.allSettled([this.minReady?.stop(), ...[...this.workers.values()].map((w) => w.stop())]);
    await this.deletedNodeWorker?.stop();
    await this.election?.stop();
    await this.component?.remove().catch(() => undefined);
    await this.recording?.stop().catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, 'recorder stop failed');
    });
    this.nodeCache?.stop();
    this.requestCache?.stop();
    for (const t of this.retiring.values()) if (t) clearTimeout(t);
    await Promise.allSettled([...this.providers.values(), ...this.retiring.keys()].map((p) => p.stop()));
    this.retiring.clear();
    unguard?.();
    await this.zk?.close();
    this.log.info('nodepool-launcher stopped');
  }

  /**
   * Start the history recorder. A database that does not answer within a few seconds is retried
   * in the background (the launcher serves meanwhile); a schema newer than this code stops us.
   */
  private async startRecording(): Promise<void> {
    const recording = new LauncherRecording(this, this.election);
    this.recording = recording;
    const started = recording.start();
    const outcome = await Promise.race([
      started.then(() => 'ok' as const, (err: unknown) => err),
      new Promise<'slow'>((r) => setTimeout(() => r('slow'), 3000).unref()),
    ]);
    if (outcome === 'slow') {
      this.log.warn(`database ${recording.recorder.describe()} is slow to answer; serving meanwhile`);
      started.catch((err: unknown) => this.log.error({ err: (err as Error).message }, `history recording disabled: ${(err as Error).message}`));
    } else if (outcome !== 'ok') {
      throw outcome;
    }
  }

  // ---- config ----

  /** Re-read the config; a broken file keeps the previous config in force. */
  reload(): Promise<void> {
    if (this.reloading) {
      // The file changed again while we were reading it: read it once more afterwards.
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        try {
          const next = await loadConfig(this.options.configFile, { secureFile: this.options.secureFile ?? null });
          if (this.stopped) return;
          if (zookeeperSettings(next) !== zookeeperSettings(this.config)) {
            this.log.warn('zookeeper-servers, zookeeper-timeout or zookeeper-tls changed: the launcher keeps its ZooKeeper connection until it is restarted');
          }
          this.config = next;
          await this.applyConfig(next);
          this.minReady.configChanged();
          this.log.info('Configuration reloaded');
        } catch (err) {
          this.log.error({ err: (err as Error).message },
            `Configuration reload failed; keeping the previous configuration: ${(err as Error).message}`);
        }
      } while (this.reloadAgain && !this.stopped);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async applyConfig(config: Config): Promise<void> {
    // Providers: unchanged ones keep their manager (and its caches); changed ones are replaced.
    for (const [name, mgr] of this.providers) {
      const next = config.providers.get(name);
      // (a driver that keeps its state across config changes takes the new config in place)
      if (next && !providersEqual(mgr.config, next) && next.driver === mgr.config.driver && mgr.reconfigure?.(next) === true) continue;
      if (!next || !providersEqual(mgr.config, next)) {
        this.providers.delete(name);
        await this.retire(mgr);
      }
    }
    this.configureCircuits(config);
    for (const [name, p] of config.providers) {
      if (this.providers.has(name)) continue;
      const mgr = createProviderManager(p, {
        stateDir: config.stateDir,
        config,
        currentConfig: () => this.config,
        zk: this.zk,
        nodeCache: this.nodeCache,
        logger: (name) => this.logger(name),
        storeNode: (node, by, reason) => this.storeNode(node, by, reason),
        recordNodeRemoved: (node, by) => this.recordNodeRemoved(node, by),
        // metrics start after the first providers: look them up at each call
        stats: {
          apiCall: (e) => this.metrics?.apiCall(e),
          leakedRemoved: (provider, resource, count) => this.metrics?.leakedRemoved(provider, resource, count),
        },
      });
      await mgr.start();
      this.providers.set(name, mgr);
      this.quotaCache.delete(name);
    }
    const wanted = new Map<string, { provider: Provider; pool: Pool }>();
    for (const p of config.providers.values()) {
      for (const pool of p.pools) wanted.set(`${p.name}-${pool.name}`, { provider: p, pool });
    }
    for (const [key, worker] of this.workers) {
      if (!wanted.has(key)) {
        this.workers.delete(key);
        await worker.stop();
        this.log.info(`Stopped PoolWorker ${key}`);
      }
    }
    for (const [key, { provider, pool }] of wanted) {
      const mgr = this.providers.get(provider.name);
      if (!mgr) continue;
      const existing = this.workers.get(key);
      if (existing) {
        await existing.reconfigure(provider, pool, mgr);
      } else {
        const w = new PoolWorker(this, provider, pool, mgr);
        this.workers.set(key, w);
        await w.start();
        this.log.info(`Started PoolWorker ${key}`);
      }
    }
    this.configureCron(config);
    if (this.deletedNodeWorker) await this.syncStatic();
  }

  private configureCircuits(config: Config): void {
    for (const [name, c] of this.circuits) {
      const p = config.providers.get(name);
      const settings = p && (p.driver === 'openstack' || p.driver === 'fake') ? p.launchCircuitBreaker : null;
      if (settings === null || settings === undefined) this.circuits.delete(name);
      else c.reconfigure(settings);
    }
    for (const [name, p] of config.providers) {
      if ((p.driver !== 'openstack' && p.driver !== 'fake') || p.launchCircuitBreaker === null || this.circuits.has(name)) continue;
      this.circuits.set(name, new LaunchCircuit(name, p.launchCircuitBreaker, (c) => this.circuitChanged(c)));
    }
  }

  private circuitChanged(c: CircuitChange): void {
    if (c.state === 'open') {
      this.log.warn({ provider: c.provider, failures: c.failures, retryAt: new Date(c.retryAt ?? 0).toISOString() },
        `Provider ${c.provider}: ${c.failures} failed launches in a row; suspending launches until ${new Date(c.retryAt ?? 0).toISOString()}`);
    } else {
      this.log.info({ provider: c.provider }, `Provider ${c.provider}: a launch succeeded; launches resume`);
    }
    this.events.emit('circuit', c);
  }

  /** When min-ready may next ask for a node of `label` after failed requests (epoch ms); 0: now. */
  minReadyRetryAt(label: string): number {
    return this.minReady.retryAt(label);
  }

  launchCircuit(provider: string): LaunchCircuit | null {
    return this.circuits.get(provider) ?? null;
  }

  /** Providers whose launch circuit is open or half-open (metrics, dashboard). */
  circuitStates(): Map<string, LaunchCircuit> {
    return this.circuits;
  }

  /**
   * A manager replaced by a reload keeps serving the launches started on it (stopping it would
   * abort them, and fail their requests); it is stopped once they ended. New work uses the new one.
   */
  private async retire(mgr: AnyProviderManager): Promise<void> {
    const busy = (): boolean => this.poolWorkers.some((w) => w.launchesWith(mgr));
    if (!busy()) {
      await mgr.stop().catch(() => undefined);
      return;
    }
    const since = Date.now();
    const check = (): void => {
      if (busy() && !this.stopped && Date.now() - since < RETIRE_MAX_MS) {
        const t = setTimeout(check, 500);
        t.unref();
        this.retiring.set(mgr, t);
        return;
      }
      this.retiring.delete(mgr);
      void mgr.stop().catch(() => undefined);
    };
    this.log.info({ provider: mgr.name }, `Provider ${mgr.name} changed; its running launches finish on the previous configuration`);
    check();
  }

  /** Static providers keep their registrations in step (start, reload, every cleanup). */
  async syncStatic(): Promise<void> {
    for (const mgr of this.providers.values()) {
      if (mgr.kind !== 'static') continue;
      await mgr.syncRegistrations().catch((err: unknown) => {
        this.log.error({ provider: mgr.name, err: (err as Error).message }, 'static registration sync failed');
      });
    }
  }

  private configureCron(config: Config): void {
    for (const t of this.cronTasks) t.stop();
    this.cronTasks = [];
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    this.cleanupTimer = null;
    if (config.cron.cleanup) {
      this.cronTasks.push(cron.schedule(config.cron.cleanup, () => void this.cleanupWorker.run()));
    } else {
      this.cleanupTimer = setInterval(() => void this.cleanupWorker.run(),
        this.options.cleanupIntervalMs ?? CLEANUP_INTERVAL_MS);
      this.cleanupTimer.unref();
    }
    if (config.cron.check) {
      this.cronTasks.push(cron.schedule(config.cron.check, () => void this.checkNodes()));
    }
  }

  private scheduleCleanup(): void {
    // First cycle shortly after start: a restarted launcher cleans what its predecessor leaked.
    const t = setTimeout(() => void this.cleanupWorker.run(), 1000);
    t.unref();
  }

  /** Run one cleanup cycle now (tests, `cron: cleanup`). */
  runCleanup(): Promise<void> {
    return this.cleanupWorker.run();
  }

  /**
   * Liveness check (`cron: check`): a READY, unallocated cloud node whose server vanished or went
   * to ERROR is deleted (min-ready replaces it); drivers with their own probe (static) run it.
   */
  async checkNodes(): Promise<number> {
    let removed = 0;
    for (const [name, mgr] of this.providers) {
      try {
        if (mgr.checkNodes) await mgr.checkNodes();
        if (mgr.kind !== 'cloud') continue;
        const servers = new Map((await mgr.listServers()).map((srv) => [srv.id, srv]));
        for (const node of this.nodeCache.all()) {
          if (node.provider !== name || node.state !== 'ready' || node.allocated_to !== null || !node.external_id) continue;
          const srv = servers.get(node.external_id);
          if (srv && srv.status !== 'ERROR' && srv.status !== 'DELETED') continue;
          if (!(await this.zk.lockNode(node, { blocking: false }))) continue;
          try {
            const fresh = node.id !== null ? await this.zk.getNode(node.id) : null;
            if (!fresh || fresh.state !== 'ready' || fresh.allocated_to !== null) continue;
            fresh.state = 'deleting';
            fresh.state_time = Date.now() / 1000;
            await this.storeNode(fresh, 'NodeCheck', srv ? `server ${srv.id} is ${srv.status}` : `server ${node.external_id} is gone`);
            this.log.warn({ node: fresh.id, server: node.external_id }, `Node ${fresh.id} failed its liveness check; deleting it`);
            removed++;
          } finally {
            await this.zk.unlockNode(node).catch(() => undefined);
          }
        }
      } catch (err) {
        this.log.error({ provider: name, err: (err as Error).message }, 'node check failed');
      }
    }
    return removed;
  }

  /**
   * Request znodes whose data is not a request (garbage JSON, wrong types) fail: we lock them and
   * write a valid `failed` request so the requestor sees an answer. Malformed node znodes are
   * only reported (their owner is unknown); empty ones go in the CleanupWorker.
   */
  async handleMalformed(): Promise<number> {
    if (this.zk.state !== 'connected') return 0;
    if (this.malformedPass) return this.malformedPass;
    this.malformedPass = this.malformedOnce().finally(() => {
      this.malformedPass = null;
    });
    return this.malformedPass;
  }

  private async malformedOnce(): Promise<number> {
    let failed = 0;
    // in parallel (bounded): a thousand bad znodes must not take a thousand round trips in a row
    const badRequests = this.requestCache.ids().filter((id) => this.requestCache.get(id) === undefined);
    await mapLimit(badRequests, 32, async (id) => {
      const data = await this.zk.getData(paths.request(id)).catch(() => null);
      if (data === null || data.length === 0 || requestFromData(id, data) !== null) return;
      const req = newNodeRequest({ id, state: 'failed', requestor: null });
      if (!(await this.zk.lockNodeRequest(req, { blocking: false }).catch(() => false))) return;
      try {
        const again = await this.zk.getData(paths.request(id)).catch(() => null);
        if (again === null || requestFromData(id, again) !== null) return;
        req.declined_by = this.poolWorkers.map((w) => w.id);
        await this.zk.storeNodeRequest(req);
        failed++;
        this.log.warn({ request: id, data: again.subarray(0, 200).toString('utf8') },
          `Failing malformed node request ${id}: its data is not a node request`);
        this.recordRequest(req, 'NodePool', 'malformed request data');
      } finally {
        await this.zk.unlockNodeRequest(req).catch(() => undefined);
      }
    });
    const nodeIds = this.nodeCache.ids();
    const live = new Set(nodeIds);
    for (const id of this.malformedSeen) if (!live.has(id)) this.malformedSeen.delete(id);
    const badNodes = nodeIds.filter((id) => this.nodeCache.get(id) === undefined && !this.malformedSeen.has(id));
    await mapLimit(badNodes, 32, async (id) => {
      const data = await this.zk.getNodeData(id).catch(() => null);
      if (data === null || data.length === 0) return;
      this.malformedSeen.add(id);
      this.log.warn({ node: id, data: data.subarray(0, 200).toString('utf8') },
        `Ignoring malformed node znode ${id}: its data is not a node`);
    });
    return failed;
  }


  // ---- events ----

  private onNodeChange(id: string, node: Node | null): void {
    this.created.delete(id);
    this.events.emit('node', id, node);
    this.deletedNodeWorker.onNodeChange(node);
    this.minReady.trigger();
    for (const w of this.workers.values()) w.schedule();
  }

  private onRequestChange(id: string, req: NodeRequest | null): void {
    this.events.emit('request', id, req);
    if (req === null) {
      for (const w of this.workers.values()) w.requestRemoved(id);
      this.deletedNodeWorker.trigger();
    }
    if (req === null || req.requestor === MIN_READY_REQUESTOR) this.minReady.trigger();
    if (req === null || req.state === 'requested') {
      for (const w of this.workers.values()) w.schedule();
    }
  }

  private onSessionState(state: string): void {
    this.log.info({ state }, `ZooKeeper session ${state}`);
    if (state === 'connected') {
      this.deletedNodeWorker.sessionRenewed();
      void this.component?.update().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'could not register the launcher component');
      });
      void this.refreshLaunchers();
      for (const w of this.workers.values()) {
        void w.register().catch(() => undefined);
        w.schedule();
      }
      // A new session may mean our own pending requests lost their locks.
      void this.cleanupWorker.cleanupLostRequests().catch(() => undefined);
    }
  }

  /**
   * Re-read the registered launchers and watch for the next change. A launcher whose registration
   * vanished is dead (its session expired: its locks went with it) or stopped: its `pending`
   * requests are reset for us at once rather than at the next cleanup cycle, and a cleanup cycle
   * follows once its orphaned nodes were reaped, for the servers it created but never recorded.
   */
  private async refreshLaunchers(): Promise<void> {
    if (this.stopped) return;
    try {
      // (both parents made once per session: the watches need them)
      if (this.registryRootsMade !== this.zk.sessionGeneration) {
        await Promise.all([this.zk.mkdirp(paths.launchersRoot), this.zk.mkdirp(paths.componentsOf('pool'))]);
        this.registryRootsMade = this.zk.sessionGeneration;
      }
      // 3.x registrations and later Nodepool's pool components, children and data watched (a
      // pool changes its `paused` in place)
      this.launcherList = await this.zk.getLauncherPools(this.launchersWatcher);
      for (const w of this.workers.values()) w.schedule();
      const now = new Set(this.launcherList.map((l) => l.id));
      const ours = new Set(this.poolWorkers.map((w) => w.id));
      const gone = [...this.knownLaunchers].filter((id) => !now.has(id) && !ours.has(id));
      this.knownLaunchers = now;
      if (gone.length > 0 && !this.stopped) this.peersGone(gone);
    } catch {
      // keep the previous list; the next session event or change reads it again
    }
  }

  private readonly launchersWatcher = (): void => {
    void this.refreshLaunchers();
  };

  private peersGone(ids: string[]): void {
    this.log.info({ launchers: ids }, `Launcher(s) ${ids.join(', ')} went away; taking over their requests`);
    void this.cleanupWorker.cleanupLostRequests().catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, 'lost-request cleanup after a launcher went away failed');
    });
    if (this.peerCleanupTimer) return;
    this.peerCleanupTimer = setTimeout(() => {
      this.peerCleanupTimer = null;
      if (!this.stopped) void this.cleanupWorker.run();
    }, PEER_CLEANUP_DELAY_MS);
    this.peerCleanupTimer.unref();
  }

  // ---- LauncherContext ----

  supportedLabels(): string[] {
    const labels = new Set<string>();
    for (const p of this.config.providers.values()) {
      for (const pool of p.pools) for (const l of pool.labels) labels.add(l.name);
    }
    return [...labels].sort();
  }

  launchers(): LauncherInfo[] {
    return this.launcherList;
  }

  hasProvider(name: string): boolean {
    return this.providers.has(name);
  }

  manager(name: string): AnyProviderManager | null {
    return this.providers.get(name) ?? null;
  }

  managers(): [string, AnyProviderManager][] {
    return [...this.providers.entries()];
  }

  ownsRequest(id: string): boolean {
    for (const w of this.workers.values()) if (w.hasHandler(id)) return true;
    return false;
  }

  activeLaunches(provider: string): number {
    let n = 0;
    for (const w of this.workers.values()) if (w.providerName === provider) n += w.activeLaunches;
    return n;
  }

  async providerQuota(provider: string): Promise<Resources> {
    const cached = this.quotaCache.get(provider);
    if (cached && Date.now() - cached.at < QUOTA_CACHE_MS) return cached.value;
    const mgr = this.providers.get(provider);
    if (!mgr || mgr.kind !== 'cloud') return { cores: Infinity, instances: Infinity, ram: Infinity };
    const limits = await mgr.getQuota();
    const known = new Set(this.nodeCache.all().map((n) => n.id).filter((x): x is string => x !== null));
    const unmanaged = await mgr.unmanagedUsage(known);
    const value = {
      cores: limits.cores - unmanaged.cores,
      instances: limits.instances - unmanaged.instances,
      ram: limits.ram - unmanaged.ram,
    };
    this.quotaCache.set(provider, { at: Date.now(), value });
    return value;
  }

  invalidateQuota(provider: string): void {
    this.quotaCache.delete(provider);
  }

  async unavailableLabels(provider: Provider, pool: Pool): Promise<ReadonlySet<string>> {
    const out = new Set<string>();
    // (a metastatic label's backing label is requested like any other: nothing to wait for here)
    if (!isCloudProvider(provider)) return out;
    for (const label of provider.pools.find((p) => p.name === pool.name)?.labels ?? []) {
      if (!(await this.imageAvailable(provider, label.diskimage, label.cloudImage))) out.add(label.name);
    }
    return out;
  }

  private async imageAvailable(provider: Provider, diskimage: string | null, cloudImage: string | null): Promise<boolean> {
    if (!isCloudProvider(provider)) return true;
    const key = `${provider.name}\u0000${diskimage ?? ''}\u0000${cloudImage ?? ''}`;
    const cached = this.imageCache.get(key);
    if (cached && cached.ok && Date.now() - cached.at < IMAGE_CACHE_MS) return true;
    let ok = false;
    if (diskimage !== null) {
      ok = (await this.zk.getMostRecentImageUpload(diskimage, provider.name, 'ready')) !== null;
    } else if (cloudImage !== null) {
      const ci = provider.cloudImages.find((c) => c.name === cloudImage);
      if (ci?.imageId) ok = true;
      else if (ci) {
        const mgr = this.providers.get(provider.name);
        ok = !!mgr && mgr.kind === 'cloud' && (await mgr.getCloudImage(ci.imageName ?? ci.name).catch(() => null)) !== null;
      }
    }
    this.imageCache.set(key, { at: Date.now(), ok });
    return ok;
  }

  /** Can some provider of this launcher serve the label now (min-ready only asks then)? */
  async labelServable(label: string): Promise<boolean> {
    for (const p of this.config.providers.values()) {
      for (const pool of p.pools) {
        if (!pool.labels.some((l) => l.name === label)) continue;
        if (!(await this.unavailableLabels(p, pool)).has(label)) return true;
      }
    }
    return false;
  }

  async hostKeysOf(node: Node): Promise<string[] | null> {
    const mgr = node.provider === null ? undefined : this.providers.get(node.provider);
    if (mgr === undefined || mgr.kind !== 'cloud' || !mgr.hostKeys || node.external_id === null) return null;
    const server = await mgr.getServer(node.external_id);
    return server === null ? null : mgr.hostKeys(server);
  }

  async checkReusable(worker: PoolWorker, node: Node): Promise<boolean> {
    const mgr = this.providers.get(worker.providerName);
    if (mgr?.checkReusableNode) return mgr.checkReusableNode(node);
    return true;
  }

  recordNode(node: Node, by: string, reason: string): void {
    this.events.emit('node-stored', node, by, reason);
  }

  private created = new Map<string, { node: Node; at: number }>();

  noteCreated(node: Node): void {
    if (node.id !== null && this.nodeCache.get(node.id) === undefined) this.created.set(node.id, { node, at: Date.now() });
  }

  createdNotCached(): Node[] {
    if (this.created.size === 0) return [];
    // The cache shows a new znode within milliseconds; an entry it never showed (deleted at
    // once) must not hold quota for ever.
    const out: Node[] = [];
    const stale = Date.now() - 10_000;
    for (const [id, e] of this.created) {
      if (e.at < stale || this.nodeCache.get(id) !== undefined) this.created.delete(id);
      else out.push(e.node);
    }
    return out;
  }

  recordNodeRemoved(node: Node, by: string): void {
    this.events.emit('node-removed', node, by);
  }

  minReadyDone(id: string): void {
    this.minReady?.done(id);
  }

  recordRequest(req: NodeRequest, by: string, reason: string): void {
    this.events.emit('request-stored', req, by, reason);
  }

  recordLaunchAttempt(node: Node, by: string, attempt: LaunchAttempt): void {
    this.events.emit('launch-attempt', node, by, attempt);
  }

  launchFinished(worker: PoolWorker, node: Node, state: 'ready' | 'failed' | 'aborted', ms: number, requestId: string | null): void {
    const n = this.launchCounts.get(state) ?? 0;
    this.launchCounts.set(state, n + 1);
    if (state === 'aborted') this.invalidateQuota(worker.providerName);
    this.circuits.get(worker.providerName)?.launchEnded(state);
    this.events.emit('launch', node, worker.providerName, state, ms, requestId);
  }

  async afterReady(worker: PoolWorker, node: Node): Promise<void> {
    this.events.emit('ready', node, worker.providerName);
  }

  async storeNode(node: Node, by: string, reason: string): Promise<void> {
    await this.zk.storeNode(node);
    this.recordNode(node, by, reason);
  }

  /** Delete a node we hold the lock of (DeletedNodeWorker, `nodepool delete --now`). */
  deleteNodeLocked(lockedRef: Node, fresh: Node, by: string): Promise<boolean> {
    return deleteNodeAndServer(this, lockedRef, fresh, by);
  }

  /** What the launcher is doing, for SIGUSR2 and the dashboard. */
  describe(): Record<string, unknown> {
    return {
      providers: [...this.providers.keys()],
      workers: this.poolWorkers.map((w) => w.describe()),
      // metastatic providers: their backing nodes and what each slot holds
      backingNodes: Object.fromEntries([...this.providers].filter(([, m]) => m.kind === 'metastatic')
        .map(([name, m]) => [name, m.kind === 'metastatic' ? m.describe() : []])),
      nodes: this.nodeCache?.all().length ?? 0,
      requests: this.requestCache?.all().length ?? 0,
      session: this.zk?.state ?? 'none',
      launches: Object.fromEntries(this.launchCounts),
      memory: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1048576)])),
      schedules: {
        cleanup: this.config?.cron.cleanup ?? `every ${(this.options.cleanupIntervalMs ?? CLEANUP_INTERVAL_MS) / 1000}s`,
        check: this.config?.cron.check ?? null,
        cronTasks: this.cronTasks.length,
      },
    };
  }

  get poolWorkers(): PoolWorker[] {
    return [...this.workers.values()];
  }
}
