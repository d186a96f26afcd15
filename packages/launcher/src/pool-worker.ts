// PoolWorker: one per provider pool (§3.3). Nodepool's loops sleep 10 s between passes; this one
// runs a pass whenever the request or node cache changes (ZooKeeper watches), with a slow timer
// only as a safety net.
import { isCloudProvider, type CloudPool, type CloudPoolLabel, type MetastaticPool, type Pool, type Provider } from '@nodepool-ts/core/config';
import { MIN_READY_REQUESTOR, cloneNode, cloneNodeRequest, type LauncherInfo, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { Logger } from '@nodepool-ts/core/log';
import type { AnyProviderManager } from "./drivers.js";
import { ComponentRegistration, LockError, type PoolComponentFields, type ZooKeeper } from '@nodepool-ts/core/zk';
import { compareRequests, ZERO, addResources, fits, setTenant, tenantOf, type PlanInput, type PoolView, type Resources } from './decide.js';
import { NodeRequestHandler } from './request-handler.js';
import { launchNode } from './node-launcher.js';
import { launchMetastaticNode } from './metastatic-launcher.js';
import { labelReadyScript, runReadyScript } from '@nodepool-ts/driver-static';
import type { LauncherContext } from './context.js';
import type { LaunchCircuit } from './circuit-breaker.js';
import { retryConnectionLoss } from './zk-retry.js';

const SAFETY_INTERVAL_MS = 10_000;
/** how long a finished request's stale cache entry is ignored at most */
const FINISHED_MEMORY_MS = 10_000;
/** requests handled at once by one pool worker (each waits mostly on ZooKeeper round trips) */
const MAX_HANDLERS = 64;
const WEDGE_GUARD_MS = 5_000;
/**
 * A paused request is planned again at least this often (Nodepool's pool worker loop sleeps a
 * second between passes too): node changes wake it at once, but one that lands while its handler is deciding to
 * pause would otherwise wait for the safety interval.
 */
const PAUSED_RECHECK_MS = 1_000;
/** Nodepool's priority of a pool when neither it nor its provider sets one */
const DEFAULT_PRIORITY = 100;

/** True when some provider or pool of the config sets `priority`: its workers then publish theirs. */
export function configUsesPriority(providers: Iterable<Provider>): boolean {
  for (const p of providers) {
    if (p.priority !== null) return true;
    for (const pool of p.pools) if (pool.priority !== null) return true;
  }
  return false;
}

export class PoolWorker {
  readonly id: string;
  readonly log: Logger;
  private handlers = new Map<string, NodeRequestHandler>();
  /** handlers waiting for capacity, oldest first; while any waits, no new request is taken */
  private paused: NodeRequestHandler[] = [];
  /** handlers whose plan says wait, between planning and pausing (a ZooKeeper write apart) */
  private readonly waiting = new Set<NodeRequestHandler>();
  /** requests whose handlers were started but have not planned yet (they plan in any order) */
  private readonly unplanned = new Map<string, Readonly<NodeRequest>>();
  private resumeTimer: NodeJS.Timeout | null = null;
  private running = false;
  private rerun = false;
  private scheduled = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private launches = new Set<Promise<unknown>>();
  /** the provider manager each launch runs on (a reload may replace the worker's manager) */
  private launchManagers = new Map<Promise<unknown>, AnyProviderManager>();
  private lastWedgeAvoidance = 0;
  private abort = new AbortController();
  private starting = new Set<string>();
  /**
   * Requests whose handler has finished, with the cached copy seen then: until the cache shows
   * the request's next version (our own final write, or its deletion) that copy still says
   * `requested`, and taking it again would only cost a lock, a read and an unlock.
   */
  private finished = new Map<string, { seen: Readonly<NodeRequest>; at: number }>();
  /** READY nodes a handler of this worker is claiming right now: not offered to another plan */
  readonly claiming = new Set<string>();
  private planChain: Promise<void> = Promise.resolve();
  /** Nodepool 6.1+'s pool component (`/nodepool/components/pool/<hostname><seq>`) */
  private readonly component: ComponentRegistration;
  /** the `paused` the component last said */
  private componentPaused = false;

  constructor(
    readonly ctx: LauncherContext,
    public provider: Provider,
    public pool: Pool,
    public manager: AnyProviderManager,
  ) {
    this.id = `${ctx.hostname}-${process.pid}-PoolWorker.${provider.name}-${pool.name}`;
    this.component = new ComponentRegistration(ctx.zk, 'pool', ctx.hostname, () => this.componentFields());
    this.log = ctx.logger(`nodepool.PoolWorker.${provider.name}-${pool.name}`);
  }

  get zk(): ZooKeeper {
    return this.ctx.zk;
  }
  get providerName(): string {
    return this.provider.name;
  }
  get poolName(): string {
    return this.pool.name;
  }
  get nodeAttributes(): Record<string, unknown> | null {
    return this.pool.nodeAttributes;
  }
  get cloudName(): string | null {
    return isCloudProvider(this.provider) ? this.provider.cloud : null;
  }
  get regionName(): string | null {
    return isCloudProvider(this.provider) ? this.provider.regionName : null;
  }
  /** the provider's launch circuit breaker, when `launch-circuit-breaker` is configured */
  launchCircuit(): LaunchCircuit | null {
    return this.ctx.launchCircuit?.(this.provider.name) ?? null;
  }
  get activeLaunches(): number {
    return this.launches.size;
  }

  async start(): Promise<void> {
    await this.register();
    this.timer = setInterval(() => this.schedule(), SAFETY_INTERVAL_MS);
    this.timer.unref();
    this.schedule();
  }

  /** Replace the config of this pool (provider unchanged in structure) and register again. */
  async reconfigure(provider: Provider, pool: Pool, manager: AnyProviderManager): Promise<void> {
    this.provider = provider;
    this.pool = pool;
    this.manager = manager;
    await this.register();
    this.schedule();
  }

  /** `priority` of the pool, else of its provider, else 100 (lower is offered requests first) */
  get priority(): number {
    return this.pool.priority ?? this.provider.priority ?? DEFAULT_PRIORITY;
  }

  /** the `paused` last published with the registration (null: priority not published) */
  private publishedPaused: boolean | null = null;

  async register(): Promise<void> {
    if (this.stopped) return;
    const info: LauncherInfo = { id: this.id, provider_name: this.provider.name, supported_labels: this.ctx.supportedLabels() };
    // priority and paused only when the config uses priority: a 3.x registration stays byte-equal
    if (configUsesPriority(this.ctx.config.providers.values())) {
      info.priority = this.priority;
      info.paused = this.paused.length > 0;
    }
    this.publishedPaused = info.paused ?? null;
    await Promise.all([this.zk.registerLauncher(info), this.component.update()]);
  }

  /** What the pool component says: Nodepool's pool fields (its labels are this pool's own). */
  private componentFields(): PoolComponentFields {
    this.componentPaused = this.paused.length > 0;
    return {
      id: this.id, name: this.pool.name, provider_name: this.provider.name,
      supported_labels: [...new Set(this.pool.labels.map((l) => l.name))].sort(),
      priority: this.priority, paused: this.paused.length > 0,
    };
  }

  /** The pool tells the others when it pauses or resumes (its component; its 3.x registration if that has a priority). */
  private pausedChanged(): void {
    if (!this.stopped && this.componentPaused !== this.paused.length > 0) {
      void this.component.update().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'could not publish the pool\'s paused state');
      });
    }
    if (this.publishedPaused === null || this.publishedPaused === this.paused.length > 0) return;
    void this.register().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'could not publish the pool\'s paused state');
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.abort.abort();
    while (this.running) await new Promise((r) => setTimeout(r, 10));
    await Promise.allSettled([...this.launches]);
    // A paused handler's nodes are unlocked with allocation cleared (§3.3); the request goes
    // back to `requested` for the next launcher.
    for (const h of [...this.handlers.values()]) {
      if (h.state !== 'done') await h.abandon().catch(() => undefined);
    }
    await Promise.all([this.zk.unregisterLauncher(this.id).catch(() => undefined), this.component.remove().catch(() => undefined)]);
  }

  /** Coalesce wake-ups: many watch events in one tick make one pass. */
  schedule(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.pass();
    });
  }

  describe(): Record<string, unknown> {
    return {
      id: this.id,
      paused: this.paused.map((h) => h.id),
      handlers: [...this.handlers.values()].map((h) => ({ request: h.id, state: h.state })),
      launches: this.launches.size,
    };
  }

  hasHandler(id: string): boolean {
    return this.handlers.has(id);
  }

  requestRemoved(id: string): void {
    this.finished.delete(id);
    const h = this.handlers.get(id);
    if (h) void h.requestGone();
  }

  private async pass(): Promise<void> {
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.rerun = false;
        if (this.stopped || this.zk.state !== 'connected') return;
        await this.assignHandlers();
      } while (this.rerun && !this.stopped);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'Error in PoolWorker pass');
    } finally {
      this.running = false;
    }
  }

  private concurrencyReached(): boolean {
    const max = this.provider.maxConcurrency;
    if (max < 0) return false;
    return this.ctx.activeLaunches(this.provider.name) >= max;
  }

  private async assignHandlers(): Promise<void> {
    if (this.provider.maxConcurrency === 0) return;
    if (this.paused.length > 0) {
      const now = Date.now();
      // (in request order: more than one can be paused, e.g. after a node of each failed)
      for (const h of [...this.paused].sort((a, b) => compareRequests(a.request, b.request))) {
        if (h.retryAt > now) {
          this.scheduleResume(h.retryAt - now);
          continue;
        }
        await h.run();
        if (h.state !== 'paused') this.paused = this.paused.filter((p) => p !== h);
      }
      this.pausedChanged();
      if (this.paused.length > 0) return;
    }
    const requests = this.ctx.requestCache.all().sort(compareRequests);
    const stale = Date.now() - FINISHED_MEMORY_MS;
    // oldest first (entries are only appended): stop at the first one still fresh
    for (const [id, f] of this.finished) {
      if (f.at >= stale) break;
      this.finished.delete(id);
    }
    // what each tenant's nodes take now, counted once per pass if a request needs it
    let tenantUsage: Map<string, Resources> | null = null;
    for (const cached of requests) {
      if (this.stopped || this.paused.length > 0 || this.waiting.size > 0) return;
      if (this.concurrencyReached()) return;
      if (this.starting.size + this.handlers.size >= MAX_HANDLERS) return;
      if (cached.id === null || this.handlers.has(cached.id) || this.starting.has(cached.id)) continue;
      if (cached.state !== 'requested') continue;
      if (cached.declined_by.includes(this.id)) continue;
      if (this.finished.get(cached.id)?.seen === cached) continue;
      if (this.yieldsToPreferredProvider(cached)) continue;
      if (this.yieldsToHigherPriority(cached)) continue;
      const tenant = tenantOf(cached);
      const limit = tenant === null ? undefined : this.ctx.config.tenantResourceLimits.get(tenant);
      if (tenant !== null && limit !== undefined) {
        tenantUsage ??= await this.tenantUsage();
        // deferred, not declined: it is served once the tenant's nodes are freed
        const need = await this.requestResources(cached);
        if (!fits(addResources(tenantUsage.get(tenant) ?? ZERO, need), limit)) {
          if (!fits(need, limit)) this.warnOverTenantLimit(cached.id, tenant);
          continue;
        }
      }
      const id = cached.id;
      this.starting.add(id);
      this.unplanned.set(id, cached);
      // Handlers run concurrently; the quota-critical part of each is serialised by `exclusive`.
      void this.startHandler(cached).catch((err: unknown) => {
        this.log.error({ request: id, err: (err as Error).message }, `Error starting handler for ${id}`);
      }).finally(() => {
        this.starting.delete(id);
        this.unplanned.delete(id);
      });
    }
  }

  private async startHandler(cached: Readonly<NodeRequest>): Promise<void> {
    const req = cached as NodeRequest;
    if (!(await this.zk.lockNodeRequest(req, { blocking: false }))) return;
    let fresh: NodeRequest | null;
    try {
      // (the cached copy when it is known current: the lock's reply came after any change)
      const cur = this.ctx.requestCache.current(req.id ?? '');
      fresh = cur !== undefined ? cloneNodeRequest(cur)
        : await retryConnectionLoss(this.zk, () => this.zk.getNodeRequest(req.id ?? ''), () => this.zk.holdsLock(req));
    } catch (err) {
      // never keep the lock of a request we do not serve: nobody else could serve it
      await this.zk.unlockNodeRequest(req).catch(() => undefined);
      throw err;
    }
    if (this.stopped || fresh === null || fresh.state !== 'requested' || fresh.declined_by.includes(this.id)) {
      await this.zk.unlockNodeRequest(req).catch(() => undefined);
      return;
    }
    // Carry the lock over to the fresh copy we will write.
    this.zk.transferRequestLock(req, fresh);
    const handler = new NodeRequestHandler(this, fresh);
    this.handlers.set(fresh.id ?? '', handler);
    await handler.run();
  }

  /** A handler could not be satisfied now; it is re-run when nodes change, after retryAt, or within a second. */
  handlerPaused(h: NodeRequestHandler): void {
    this.waiting.delete(h);
    if (!this.paused.includes(h)) this.paused.push(h);
    this.pausedChanged();
    const wait = h.retryAt - Date.now();
    this.scheduleResume(wait > 0 ? wait : PAUSED_RECHECK_MS);
  }

  private scheduleResume(ms: number): void {
    if (this.resumeTimer || this.stopped) return;
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      this.schedule();
    }, ms);
    this.resumeTimer.unref();
  }

  /**
   * Run `fn` alone among this worker's handlers: planning reads quota and usage, and the nodes
   * it creates or claims change both, so two plans must not interleave.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.planChain.then(fn, fn);
    this.planChain = run.then(() => undefined, () => undefined);
    return run;
  }

  /**
   * Nodepool 6.1's provider priority: a request waits while a pool of lower priority value that
   * can serve every label of it is registered, not paused and has not declined it. Only pools
   * that publish their priority (and so their paused state) count.
   */
  private yieldsToHigherPriority(req: NodeRequest): boolean {
    const mine = this.priority;
    return this.ctx.launchers().some((l) => l.priority !== undefined && l.priority < mine && l.paused !== true
      && l.id !== this.id && !req.declined_by.includes(l.id) && req.node_types.every((t) => l.supported_labels.includes(t)));
  }

  /** A request naming another provider waits for that provider's launchers while any is online. */
  private yieldsToPreferredProvider(req: NodeRequest): boolean {
    if (req.provider === null || req.provider === this.provider.name) return false;
    const theirs = this.ctx.launchers().filter((l) => l.provider_name === req.provider);
    if (theirs.length === 0) return false;
    return !theirs.every((l) => req.declined_by.includes(l.id));
  }

  /** Another handler of this pool is paused, or about to pause, waiting for capacity. */
  hasPausedOther(h: NodeRequestHandler): boolean {
    return this.paused.some((p) => p !== h) || [...this.waiting].some((p) => p !== h);
  }

  /** A handler has planned (see earlierUnplanned). */
  handlerPlanned(h: NodeRequestHandler): void {
    this.unplanned.delete(h.id);
  }

  /**
   * A request started in the same pass that comes before `req` has not planned yet: if `req`
   * must wait for capacity it leaves the waiting to that one (Nodepool pauses on the first
   * request in order that cannot be served).
   */
  earlierUnplanned(req: Readonly<NodeRequest>): boolean {
    for (const [id, other] of this.unplanned) {
      if (id !== req.id && compareRequests(other, req) < 0) return true;
    }
    return false;
  }

  /** Whether a handler's latest plan waits for capacity (it pauses once its `pending` write is done). */
  handlerWaiting(h: NodeRequestHandler, waits: boolean): void {
    if (waits) this.waiting.add(h);
    else this.waiting.delete(h);
  }

  /** A handler gave its request back unserved (see hasPausedOther): a later pass takes it again. */
  handlerGaveBack(h: NodeRequestHandler): void {
    this.waiting.delete(h);
    this.handlers.delete(h.id);
    this.schedule();
  }

  handlerDone(h: NodeRequestHandler): void {
    this.waiting.delete(h);
    this.handlers.delete(h.id);
    // a request already gone from the cache (Zuul deleted it at once) has nothing stale to skip
    const seen = this.ctx.requestCache.get(h.id);
    this.finished.delete(h.id); // re-appended: the map stays ordered by time
    if (seen !== undefined) this.finished.set(h.id, { seen, at: Date.now() });
    this.paused = this.paused.filter((p) => p !== h);
    this.pausedChanged();
    this.schedule();
  }

  // ---- services the handler uses ----

  async registeredLauncherIds(): Promise<string[]> {
    return (await this.zk.getLauncherPools()).map((l) => l.id);
  }

  /**
   * Write a request we hold the lock of; the write is repeated across a connection loss (in the
   * same session) while `stillOurs()`, checked in the tick each write is issued, allows it.
   */
  async storeRequest(req: NodeRequest, reason: string, stillOurs: () => boolean = () => true): Promise<void> {
    // Recorded in the write's reply turn: Zuul may delete a fulfilled request at once, and its
    // removal, seen through the watch (perhaps in the same read), must follow in the history.
    let recorded = false;
    const record = (): void => {
      if (recorded) return;
      recorded = true;
      this.ctx.recordRequest(req, this.id, reason);
    };
    await retryConnectionLoss(this.zk, async () => {
      if (!stillOurs()) throw new LockError(`lost the lock of node request ${req.id ?? ''}`);
      await this.zk.storeNodeRequest(req, record);
    }, stillOurs);
    record();
  }

  /**
   * Write a node. An existing node's write is repeated across a connection loss while
   * `stillOurs()` holds; a new node's create is not (it may have been made: the orphaned `init`
   * node is reaped).
   */
  async storeNode(node: Node, reason: string, stillOurs?: () => boolean): Promise<void> {
    const creating = node.id === null;
    if (creating || stillOurs === undefined) await this.zk.storeNode(node);
    else await retryConnectionLoss(this.zk, () => this.zk.storeNode(node), stillOurs);
    if (creating) this.ctx.noteCreated(node);
    this.ctx.recordNode(node, this.id, reason);
  }

  async chooseAz(): Promise<string | null> {
    if (!isCloudProvider(this.provider)) return null;
    const pool = this.pool as CloudPool;
    let azs = pool.availabilityZones;
    if (azs.length === 0 && this.manager.kind === 'cloud') azs = await this.manager.listAzs().catch(() => []);
    if (azs.length === 0) return null;
    return azs[Math.floor(Math.random() * azs.length)] ?? null;
  }

  private labelResources = new Map<string, Resources>();

  private async resourcesOf(label: string): Promise<Resources> {
    // (a metastatic node is one instance, as in Nodepool, whatever its backing node takes)
    if (!isCloudProvider(this.provider)) return { cores: 0, instances: 1, ram: 0 };
    const cached = this.labelResources.get(label);
    if (cached) return cached;
    const pl = (this.pool as CloudPool).labels.find((l) => l.name === label);
    if (!pl) return { cores: 0, instances: 1, ram: 0 };
    if (this.manager.kind !== 'cloud') return { cores: 0, instances: 1, ram: 0 };
    const r = await this.manager.resourcesForLabel(pl);
    this.labelResources.set(label, r);
    return r;
  }

  private nodeResources(node: Node, labels: Map<string, Resources>): Resources {
    if (node.resources) {
      return { cores: node.resources.cores ?? 0, instances: node.resources.instances ?? 1, ram: node.resources.ram ?? 0 };
    }
    const first = node.type[0];
    return (first !== undefined ? labels.get(first) : undefined) ?? { cores: 0, instances: 1, ram: 0 };
  }

  private overLimitWarned = new Set<string>();

  /** A request larger than its tenant's whole limit waits forever (as in Nodepool): said once. */
  private warnOverTenantLimit(id: string, tenant: string): void {
    if (this.overLimitWarned.has(id)) return;
    if (this.overLimitWarned.size >= 1000) this.overLimitWarned.clear();
    this.overLimitWarned.add(id);
    this.log.warn({ request: id, tenant }, `Request ${id} needs more than tenant ${tenant}'s tenant-resource-limits allow; it waits until the limit is raised`);
  }

  /** Resources of every node in ZooKeeper that serves a tenant, by tenant (Nodepool 4.3+'s tenant quota). */
  private async tenantUsage(): Promise<Map<string, Resources>> {
    const labels = (await this.poolView()).labels;
    const used = new Map<string, Resources>();
    for (const n of [...this.ctx.nodeCache.all(), ...this.ctx.createdNotCached()]) {
      const t = tenantOf(n);
      if (t !== null) used.set(t, addResources(used.get(t) ?? ZERO, this.nodeResources(n, labels)));
    }
    return used;
  }

  /** What launching the request's labels in this pool would take (labels it lacks count nothing). */
  private async requestResources(req: Readonly<NodeRequest>): Promise<Resources> {
    let need = ZERO;
    for (const t of req.node_types) {
      if (this.pool.labels.some((l) => l.name === t)) need = addResources(need, await this.resourcesOf(t));
    }
    return need;
  }

  async poolView(): Promise<PoolView> {
    const labels = new Map<string, Resources>();
    for (const l of this.pool.labels) labels.set(l.name, await this.resourcesOf(l.name));
    if (this.provider.driver === 'static') {
      return {
        provider: this.provider.name, pool: this.pool.name, maxServers: this.pool.maxServers,
        maxCores: Infinity, maxRam: Infinity, labels, canLaunch: false, ignoreProviderQuota: true,
      };
    }
    if (this.provider.driver === 'metastatic') {
      // launches take slots of backing nodes: only max-servers limits them here
      return {
        provider: this.provider.name, pool: this.pool.name, maxServers: this.pool.maxServers,
        maxCores: Infinity, maxRam: Infinity, labels, canLaunch: true, ignoreProviderQuota: true,
      };
    }
    const pool = this.pool as CloudPool;
    return {
      provider: this.provider.name, pool: pool.name, maxServers: pool.maxServers, maxCores: pool.maxCores,
      maxRam: pool.maxRam, labels, canLaunch: true, ignoreProviderQuota: pool.ignoreProviderQuota,
    };
  }

  async planInput(request: NodeRequest, exclude: Set<string>, satisfied: string[]): Promise<PlanInput> {
    const pool = await this.poolView();
    let providerUsed = ZERO;
    let poolUsed = ZERO;
    const ready: Node[] = [];
    for (const n of [...this.ctx.nodeCache.all(), ...this.ctx.createdNotCached()]) {
      if (n.provider !== this.provider.name) continue;
      const r = this.nodeResources(n, pool.labels);
      providerUsed = addResources(providerUsed, r);
      if (n.pool === this.pool.name) {
        poolUsed = addResources(poolUsed, r);
        if (n.state === 'ready' && n.allocated_to === null) ready.push(n);
      }
    }
    ready.sort((a, b) => a.state_time - b.state_time);
    let providerQuota: Resources = { cores: Infinity, instances: Infinity, ram: Infinity };
    if (this.provider.driver !== 'static' && !pool.ignoreProviderQuota) {
      providerQuota = await this.ctx.providerQuota(this.provider.name);
    }
    return {
      request,
      pool,
      quota: { provider: providerQuota, providerUsed, poolUsed },
      unavailableLabels: await this.ctx.unavailableLabels(this.provider, this.pool),
      readyNodes: ready,
      exclude: this.claiming.size === 0 ? exclude : new Set([...exclude, ...this.claiming]),
      satisfied,
    };
  }

  /**
   * Lock a READY node and allocate it; null when someone else got it first. `guard` throws when
   * the request is no longer ours to serve (its lock died with a session): checked right before
   * the allocation is written. With `deferWrite` the node is locked and checked but its
   * allocation is only set on the returned copy, for the caller to write.
   */
  async claimReadyNode(candidate: Node, request: { id: string; tenant: string | null }, guard: () => void = () => undefined,
    deferWrite = false): Promise<Node | null> {
    const requestId = request.id;
    if (!(await this.zk.lockNode(candidate, { blocking: false }))) return null;
    let fresh: Node | null;
    try {
      const cur = candidate.id !== null ? this.ctx.nodeCache.current(candidate.id) : undefined;
      fresh = cur !== undefined ? cloneNode(cur) : candidate.id !== null
        ? await retryConnectionLoss(this.zk, () => this.zk.getNode(candidate.id ?? ''), () => this.zk.holdsLock(candidate)) : null;
    } catch (err) {
      await this.zk.unlockNode(candidate).catch(() => undefined);
      throw err;
    }
    if (fresh === null || fresh.state !== 'ready' || (fresh.allocated_to !== null && fresh.allocated_to !== requestId)) {
      await this.zk.unlockNode(candidate).catch(() => undefined);
      return null;
    }
    if (!(await this.ctx.checkReusable(this, fresh))) {
      await this.zk.unlockNode(candidate).catch(() => undefined);
      return null;
    }
    this.zk.transferNodeLock(candidate, fresh);
    fresh.allocated_to = requestId;
    setTenant(fresh, request.tenant);
    try {
      guard();
    } catch (err) {
      await this.zk.unlockNode(fresh).catch(() => undefined);
      throw err;
    }
    // (deferred: the handler writes the allocation together with the request's fulfilment)
    if (deferWrite) return fresh;
    try {
      await this.storeNode(fresh, `allocated to ${requestId}`, () => this.zk.holdsLock(fresh));
    } catch (err) {
      // (the allocation may have been written: a node allocated to a request nobody serves is
      // deallocated once the request is gone)
      await this.zk.unlockNode(fresh).catch(() => undefined);
      throw err;
    }
    return fresh;
  }

  /** Boot `node` for `request` (a min-ready request's node joins the pool once ready). */
  launch(node: Node, label: string, az: string | null, request: Readonly<NodeRequest>): Promise<'ready' | 'failed' | 'aborted'> {
    const releaseWhenReady = request.requestor === MIN_READY_REQUESTOR;
    // (the request it is launched for: a min-ready node no longer names it once ready)
    const requestId = node.allocated_to;
    const p0 = Date.now();
    let launched: Promise<'ready' | 'failed' | 'aborted'>;
    if (this.provider.driver === 'metastatic' && this.manager.kind === 'metastatic') {
      launched = this.launchMetastatic(node, label, releaseWhenReady);
    } else if (isCloudProvider(this.provider) && this.manager.kind === 'cloud') {
      launched = this.launchCloud(node, label, az, request, releaseWhenReady);
    } else {
      return Promise.resolve('failed');
    }
    const p = launched.then(async (state) => {
      this.ctx.launchFinished(this, node, state, Date.now() - p0, requestId);
      if (state === 'ready') await this.ctx.afterReady(this, node);
      return node.state === 'ready' || node.state === 'failed' || node.state === 'aborted' ? node.state : state;
    }).catch((err: unknown) => {
      this.log.error({ node: node.id, err: (err as Error).message }, `launch of node ${node.id} failed`);
      return 'failed' as const;
    });
    const manager = this.manager;
    this.launches.add(p);
    this.launchManagers.set(p, manager);
    void p.finally(() => {
      this.launches.delete(p);
      this.launchManagers.delete(p);
      this.schedule();
    });
    return p;
  }

  /** A metastatic node takes a slot of a backing node (metastatic-launcher.ts). */
  private launchMetastatic(node: Node, label: string, releaseWhenReady: boolean): Promise<'ready' | 'failed' | 'aborted'> {
    if (this.provider.driver !== 'metastatic' || this.manager.kind !== 'metastatic') return Promise.resolve('failed');
    const pool = this.pool as MetastaticPool;
    const pl = pool.labels.find((l) => l.name === label);
    if (pl === undefined) return Promise.resolve('failed');
    return launchMetastaticNode({
      zk: this.zk,
      provider: this.provider,
      pool,
      label: pl,
      manager: this.manager,
      log: this.log,
      signal: this.abort.signal,
      onStore: (n, reason) => this.ctx.recordNode(n, this.id, reason),
      onAttempt: (a) => this.ctx.recordLaunchAttempt(node, this.id, a),
      releaseWhenReady,
      keyscan: this.ctx.keyscan,
      backingHostKeys: this.ctx.hostKeysOf === undefined ? undefined : (b) => this.ctx.hostKeysOf?.(b) ?? Promise.resolve(null),
    }, node);
  }

  /** Boot a server for `node` in the cloud (node-launcher.ts). */
  private launchCloud(node: Node, label: string, az: string | null, request: Readonly<NodeRequest>, releaseWhenReady: boolean): Promise<'ready' | 'failed' | 'aborted'> {
    if (!isCloudProvider(this.provider) || this.manager.kind !== 'cloud') return Promise.resolve('failed');
    const manager = this.manager;
    const pool = this.pool as CloudPool;
    const pl = pool.labels.find((l) => l.name === label) as CloudPoolLabel;
    const image = pl.diskimage !== null ? this.ctx.config.diskimages.get(pl.diskimage)
      : this.provider.cloudImages.find((c) => c.name === pl.cloudImage);
    return launchNode({
      zk: this.zk,
      provider: this.provider,
      pool,
      label: pl,
      shell: { pythonPath: image?.pythonPath ?? null, shellType: image?.shellType ?? null },
      request,
      manager,
      log: this.log,
      az,
      signal: this.abort.signal,
      onStore: (n, reason) => this.ctx.recordNode(n, this.id, reason),
      keyscan: this.ctx.keyscan,
      readyScript: labelReadyScript(this.ctx.config, label) === null
        ? undefined
        : (n, l, signal) => runReadyScript(n, l, this.ctx.config, { signal }),
      onAttempt: (a) => this.ctx.recordLaunchAttempt(node, this.id, a),
      releaseWhenReady,
    }, node);
  }

  /** Whether a launch still runs on `manager` (a manager replaced by a reload retires after). */
  launchesWith(manager: AnyProviderManager): boolean {
    for (const m of this.launchManagers.values()) if (m === manager) return true;
    return false;
  }

  /**
   * Paused at capacity: delete the oldest unused READY node of this pool so a different label
   * can be served (Nodepool's wedge avoidance), at most one every few seconds.
   */
  async avoidWedge(): Promise<void> {
    const now = Date.now();
    if (now - this.lastWedgeAvoidance < WEDGE_GUARD_MS) return;
    const candidates = this.ctx.nodeCache.all()
      .filter((n) => n.provider === this.provider.name && n.pool === this.pool.name
        && n.state === 'ready' && n.allocated_to === null)
      .sort((a, b) => a.state_time - b.state_time);
    for (const n of candidates) {
      if (!(await this.zk.lockNode(n, { blocking: false }))) continue;
      try {
        const fresh = n.id !== null ? await this.zk.getNode(n.id) : null;
        if (fresh === null || fresh.state !== 'ready' || fresh.allocated_to !== null) continue;
        this.lastWedgeAvoidance = now;
        fresh.state = 'deleting';
        fresh.state_time = Date.now() / 1000;
        this.zk.transferNodeLock(n, fresh);
        await this.storeNode(fresh, 'deleted to avoid wedging a paused pool');
        this.log.info(`Deleting oldest unused node ${fresh.id} to make room`);
        return;
      } finally {
        await this.zk.unlockNode(n).catch(() => undefined);
      }
    }
  }
}
