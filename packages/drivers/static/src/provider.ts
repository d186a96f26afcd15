// The static driver (§3.7): pre-existing hosts registered as READY nodes, one znode per
// `max-parallel-jobs` slot, re-registered after each use instead of deleted. A host is registered
// only after an alive check (TCP within its `timeout`, SSH host keys compared with `host-key`),
// checked again before every hand-out and on `cron: check`; a dead or mismatching host is never
// handed out and comes back once it passes a check again. Labels with a ready-script register
// their slots as `testing` (locked) until the script has passed on the host.
//
// Several launchers may serve the same static provider: every registration pass re-reads the
// nodes and runs under a kazoo-compatible lock at /nodepool/static-locks/<provider>, so slots are
// never registered twice.
import { hostname as osHostname } from 'node:os';
import type { Config, StaticNode, StaticPool, StaticProvider } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import { cloneNode, newNode, setShellFields, type Node } from '@nodepool-ts/core/model';
import { nowSeconds } from '@nodepool-ts/core/util';
import { Lock, LockTimeoutError, mapLimit, paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { normalizeHostKey, SSH_CONNECTION_TYPES, type HostAddress } from '@nodepool-ts/core/ssh';
import { checkHost, type HostCheckResult } from './check.js';
import type { StaticErrorCode } from './errors.js';
import {
  describeScriptResult, labelReadyScript, outputExcerpt, readyScriptTimeoutMs, runReadyScript,
  type ReadyScriptResult,
} from './ready-script.js';
import { configuredHost, StaticHostStore, type RuntimeHost } from './runtime-hosts.js';

/** The `launcher` field of every static node, as Nodepool writes it. */
export const STATIC_LAUNCHER = 'static driver';
const BY = 'StaticNodeProvider';

/** What the driver needs from the launcher (a subset of the launcher's DriverContext). */
export interface StaticDriverContext {
  zk: ZooKeeper;
  /** the config the provider came from */
  config: Config;
  /** the config in force now (labels, ready-scripts and private-key may change on reload) */
  currentConfig?: () => Config;
  logger(name: string): Logger;
  /** store a node and record the change (history database, metrics) */
  storeNode(node: Node, by: string, reason: string): Promise<void>;
}

export interface StaticManagerOptions {
  /** while some host is down, re-check it this often (default 15 s) */
  recheckIntervalMs?: number;
  /** wait at most this long for the registration lock (default 30 s) */
  lockTimeoutMs?: number;
  /** alive checks running at once (default 16) */
  checkConcurrency?: number;
  /** bound on one ready-script run (default NODEPOOL_READY_SCRIPT_TIMEOUT or 600 s) */
  readyScriptTimeoutMs?: number;
  /** a failed check is trusted this long before the host is probed again at hand-out (default 2 s) */
  failureCacheMs?: number;
}

/** A host the provider should have registered: from nodepool.yaml or added at runtime. */
export interface DesiredHost {
  node: StaticNode;
  pool: StaticPool;
  source: 'config' | 'runtime';
  attributes: Record<string, unknown> | null;
}

export type HostState = 'unknown' | 'up' | 'down' | 'ready-script-failed';

export interface HostStatus {
  name: string;
  pool: string;
  source: 'config' | 'runtime';
  labels: string[];
  maxParallelJobs: number;
  state: HostState;
  reason: string | null;
  code: StaticErrorCode | null;
  /** float Unix seconds of the last state change / check */
  since: number | null;
  lastCheck: number | null;
  /** slots registered in any state, and READY unallocated ones */
  registered: number;
  ready: number;
}

interface Health {
  alive: boolean;
  code: StaticErrorCode | null;
  reason: string | null;
  since: number;
  checkedAt: number;
}

interface Batch {
  host: DesiredHost;
  nodes: Node[];
  scripts: { label: string; script: string }[];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export class StaticNodeManager {
  readonly kind = 'static' as const;
  readonly driver = 'static';
  readonly name: string;
  private readonly log: Logger;
  private readonly store: StaticHostStore;
  private readonly opts: Required<StaticManagerOptions>;
  private readonly health = new Map<string, Health>();
  private readonly scriptFailures = new Map<string, { reason: string; at: number }>();
  private readonly warned = new Set<string>();
  private desired = new Map<string, DesiredHost>();
  private runtimeHosts: RuntimeHost[] = [];
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private unwatch: (() => void) | null = null;
  private recheckTimer: NodeJS.Timeout | null = null;
  private current: Promise<void> = Promise.resolve();
  private queued: { retry: boolean; promise: Promise<void> } | null = null;
  private started = false;
  private stopped = false;

  constructor(readonly config: StaticProvider, private readonly ctx: StaticDriverContext, opts: StaticManagerOptions = {}) {
    this.name = config.name;
    this.log = ctx.logger(`nodepool.driver.static.StaticNodeProvider.${config.name}`);
    this.store = new StaticHostStore(ctx.zk);
    this.opts = {
      recheckIntervalMs: opts.recheckIntervalMs ?? 15_000,
      lockTimeoutMs: opts.lockTimeoutMs ?? 30_000,
      checkConcurrency: opts.checkConcurrency ?? 16,
      readyScriptTimeoutMs: opts.readyScriptTimeoutMs ?? readyScriptTimeoutMs(),
      failureCacheMs: opts.failureCacheMs ?? 2_000,
    };
    this.desired = this.buildDesired(this.currentConfig());
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // Hand-out checks may come before the first registration pass: know the runtime hosts now.
    try {
      this.runtimeHosts = await this.store.list(this.name);
      this.desired = this.buildDesired(this.currentConfig());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'Could not read runtime static hosts at start');
    }
    // Runtime hosts added or removed elsewhere (CLI, web API, another launcher) apply at once.
    this.unwatch = this.store.watch(this.name, () => this.background(this.requestSync(false)));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.recheckTimer = null;
    this.unwatch?.();
    this.unwatch = null;
    await this.current.catch(() => undefined);
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  // ------------------------------------------------------------------ launcher hooks

  /** Register missing slots, deregister surplus/unknown ones, update changed ones (start,
   * reload, every cleanup). Also retries hosts whose ready-script failed. */
  syncRegistrations(): Promise<void> {
    return this.requestSync(true);
  }

  /**
   * Last check before a READY node is handed out; the PoolWorker holds the node's lock. A host
   * that fails is deregistered (this node and its other free slots → deleting) and comes back
   * when a later check passes.
   */
  async checkReusableNode(node: Node): Promise<boolean> {
    if (node.provider !== this.name || node.hostname === null) return true;
    const host = this.desired.get(node.hostname);
    if (!host) {
      await this.markDeletingLocked(node, `host ${node.hostname} is no longer configured`);
      return false;
    }
    const h = this.health.get(node.hostname);
    let reason: string;
    if (h && !h.alive && Date.now() - h.checkedAt < this.opts.failureCacheMs) {
      reason = h.reason ?? 'host is down';
    } else {
      const r = await this.check(host, true);
      if (r.ok) return true;
      reason = r.reason;
    }
    this.log.warn({ node: node.id, host: node.hostname }, `Static node ${node.id ?? ''} (${node.hostname}) is not handed out: ${reason}`);
    await this.markDeletingLocked(node, `liveness check failed: ${reason}`);
    this.background(this.deregisterHost(node.hostname, `liveness check failed: ${reason}`));
    this.scheduleRecheck();
    return false;
  }

  /** A node znode of this provider was removed (used, or deregistered): register it again. */
  async nodeDeleted(node: Node): Promise<void> {
    if (node.provider !== this.name || this.stopped) return;
    this.background(this.requestSync(false));
  }

  /** `cron: check`: probe every host with free slots, take dead ones out, re-register the rest. */
  async checkNodes(): Promise<void> {
    if (this.stopped) return;
    const nodes = await this.providerNodes();
    const names = [...new Set(nodes.filter((n) => n.state === 'ready' && n.allocated_to === null && n.hostname !== null)
      .map((n) => n.hostname ?? ''))];
    await mapLimit(names, this.opts.checkConcurrency, async (name) => {
      const host = this.desired.get(name);
      if (!host) return;
      const r = await this.check(host);
      if (!r.ok) await this.deregisterHost(name, `check failed: ${r.reason}`);
    });
    await this.syncRegistrations();
  }

  /** Hosts with their last known state, for the web API and `describe()`. */
  async describeHosts(): Promise<HostStatus[]> {
    const nodes = await this.providerNodes();
    const out: HostStatus[] = [];
    for (const [name, d] of this.desired) {
      const mine = nodes.filter((n) => n.hostname === name);
      const h = this.health.get(name);
      const sf = this.scriptFailures.get(name);
      const state: HostState = sf ? 'ready-script-failed' : h === undefined ? 'unknown' : h.alive ? 'up' : 'down';
      out.push({
        name,
        pool: d.pool.name,
        source: d.source,
        labels: [...d.node.labels],
        maxParallelJobs: d.node.maxParallelJobs,
        state,
        reason: sf?.reason ?? h?.reason ?? null,
        code: sf ? null : h?.code ?? null,
        since: sf?.at ?? h?.since ?? null,
        lastCheck: h ? h.checkedAt / 1000 : null,
        registered: mine.length,
        ready: mine.filter((n) => n.state === 'ready' && n.allocated_to === null).length,
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The hosts this provider serves now (config, then runtime). */
  desiredHosts(): DesiredHost[] {
    return [...this.desired.values()];
  }

  // ------------------------------------------------------------------ sync machinery

  private currentConfig(): Config {
    return this.ctx.currentConfig?.() ?? this.ctx.config;
  }

  /** Keep a promise alive until stop(); its failure is logged, never thrown. */
  private background(p: Promise<unknown>): void {
    const t = p.catch((err: unknown) => {
      if (!this.stopped) this.log.error({ err: (err as Error).message }, `static provider ${this.name}: ${(err as Error).message}`);
    }).finally(() => this.tasks.delete(t));
    this.tasks.add(t);
  }

  /**
   * Passes never overlap; requests arriving while one runs share ONE follow-up pass. `retry`
   * makes that pass also retry hosts whose ready-script failed.
   */
  private requestSync(retry: boolean): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.queued) {
      this.queued.retry ||= retry;
      return this.queued.promise;
    }
    const q: { retry: boolean; promise: Promise<void> } = { retry, promise: Promise.resolve() };
    q.promise = this.current.catch(() => undefined).then(() => {
      if (this.queued === q) this.queued = null;
      return this.syncOnce(q.retry);
    });
    this.queued = q;
    this.current = q.promise;
    return q.promise;
  }

  private async providerNodes(): Promise<Node[]> {
    return (await this.ctx.zk.getNodes()).filter((n) => n.provider === this.name);
  }

  private buildDesired(config: Config): Map<string, DesiredHost> {
    const out = new Map<string, DesiredHost>();
    for (const pool of this.config.pools) {
      for (const node of pool.nodes) out.set(node.name, { node, pool, source: 'config', attributes: pool.nodeAttributes });
    }
    for (const h of this.runtimeHosts) {
      const elsewhere = configuredHost(config, h.name);
      if (out.has(h.name) || elsewhere) {
        this.warnOnce(`conflict:${h.name}`, `Runtime static host ${h.name} is ignored: it is configured in nodepool.yaml`);
        continue;
      }
      const pool = this.config.pools.find((p) => p.name === h.pool);
      if (!pool) {
        this.warnOnce(`pool:${h.name}:${h.pool}`, `Runtime static host ${h.name} is ignored: provider ${this.name} has no pool ${h.pool}`);
        continue;
      }
      const extra: Record<string, unknown> = {};
      if (h.os !== null) extra.os = h.os;
      if (h.tags.length > 0) extra.tags = [...h.tags];
      const attributes = Object.keys(extra).length > 0 ? { ...(pool.nodeAttributes ?? {}), ...extra } : pool.nodeAttributes;
      out.set(h.name, { node: h, pool, source: 'runtime', attributes });
    }
    return out;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(message);
  }

  private async syncOnce(retry: boolean): Promise<void> {
    if (this.stopped) return;
    const config = this.currentConfig();
    try {
      this.runtimeHosts = await this.store.list(this.name);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'Could not read runtime static hosts; keeping the previous list');
    }
    this.desired = this.buildDesired(config);
    if (retry) this.scriptFailures.clear();
    for (const name of [...this.health.keys()]) if (!this.desired.has(name)) this.health.delete(name);

    // Alive checks outside the lock: a dead host costs its timeout, and must not hold up other
    // launchers (or this provider's other hosts) meanwhile.
    const before = this.countByHost(await this.providerNodes());
    const toCheck = [...this.desired.values()].filter((d) => (before.get(d.node.name) ?? 0) < d.node.maxParallelJobs
      && !this.scriptFailures.has(d.node.name));
    const checked = new Map<string, HostCheckResult>();
    await mapLimit(toCheck, this.opts.checkConcurrency, async (d) => {
      checked.set(d.node.name, await this.check(d));
    });
    if (this.stopped) return;

    const lock = new Lock(this.ctx.zk, paths.staticLock(this.name), `${osHostname()}-${process.pid}`);
    const acquiring = lock.acquire({ blocking: true, timeoutMs: this.opts.lockTimeoutMs });
    let onAbort = (): void => undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      if ((await Promise.race([acquiring, aborted])) === 'aborted') {
        // Stopping: do not wait for another launcher's pass; drop the lock if it comes later.
        void acquiring.then(() => lock.release(), () => undefined);
        return;
      }
    } catch (err) {
      if (err instanceof LockTimeoutError) {
        this.log.warn(`Static registration lock of ${this.name} not obtained within ${this.opts.lockTimeoutMs} ms; retrying later`);
        this.scheduleRecheck(true);
        return;
      }
      throw err;
    } finally {
      this.abort.signal.removeEventListener('abort', onAbort);
    }
    const batches: Batch[] = [];
    try {
      await this.reconcile(config, checked, batches);
    } finally {
      await lock.release().catch(() => undefined);
    }
    for (const b of batches) this.background(this.runReadyScripts(b));
    this.scheduleRecheck();
  }

  private countByHost(nodes: readonly Node[]): Map<string, number> {
    const m = new Map<string, number>();
    for (const n of nodes) if (n.hostname !== null) m.set(n.hostname, (m.get(n.hostname) ?? 0) + 1);
    return m;
  }

  /** Under the registration lock: bring the znodes in line with the desired hosts. */
  private async reconcile(config: Config, checked: Map<string, HostCheckResult>, batches: Batch[]): Promise<void> {
    const nodes = await this.providerNodes();
    const byHost = new Map<string, Node[]>();
    for (const n of nodes) {
      const list = byHost.get(n.hostname ?? '') ?? [];
      list.push(n);
      byHost.set(n.hostname ?? '', list);
    }
    for (const n of nodes) {
      const d = n.hostname !== null ? this.desired.get(n.hostname) : undefined;
      if (n.state === 'testing') {
        // Ours or another launcher's while its ready-script runs (locked); unlocked = orphaned.
        await this.deregister(n, 'ready-script check was abandoned', ['testing']);
        continue;
      }
      if (!d) {
        await this.deregister(n, `host ${n.hostname ?? '(none)'} is no longer configured`);
        continue;
      }
      if (d.pool.name !== n.pool) {
        await this.deregister(n, `host ${d.node.name} moved to pool ${d.pool.name}`);
        continue;
      }
      if (n.state === 'ready' && n.allocated_to === null) {
        const change = this.changedFields(n, d);
        if (change !== null) await this.update(n, d, change);
      }
    }
    for (const d of this.desired.values()) {
      const name = d.node.name;
      const existing = byHost.get(name) ?? [];
      const surplus = existing.length - d.node.maxParallelJobs;
      if (surplus > 0) {
        const free = existing.filter((n) => n.state === 'ready' && n.allocated_to === null)
          .sort((a, b) => b.state_time - a.state_time).slice(0, surplus);
        for (const n of free) await this.deregister(n, `max-parallel-jobs of ${name} is ${d.node.maxParallelJobs}`);
        continue;
      }
      if (surplus === 0) continue;
      const r = checked.get(name);
      if (!r || !r.ok) continue;
      const batch = await this.register(config, d, -surplus, r.address, r.keys);
      if (batch) batches.push(batch);
    }
  }

  private hostKeysFor(d: DesiredHost, scanned: readonly string[]): string[] {
    if (!SSH_CONNECTION_TYPES.has(d.node.connectionType)) return [];
    return d.node.hostKey.length > 0 ? d.node.hostKey.map(normalizeHostKey) : [...scanned];
  }

  private changedFields(n: Node, d: DesiredHost): string | null {
    const s = d.node;
    const changed: string[] = [];
    if (!sameList(n.type, s.labels)) changed.push('labels');
    if (n.username !== s.username) changed.push('username');
    if (n.connection_port !== s.connectionPort) changed.push('connection-port');
    if (n.connection_type !== s.connectionType) changed.push('connection-type');
    if (!sameList(n.host_keys, this.hostKeysFor(d, n.host_keys))) changed.push('host-key');
    if (!sameJson(n.attributes, d.attributes)) changed.push('node-attributes');
    if ((n.extra['python_path'] ?? null) !== s.pythonPath) changed.push('python-path');
    if ((n.extra['shell_type'] ?? null) !== s.shellType) changed.push('shell-type');
    return changed.length > 0 ? changed.join(', ') : null;
  }

  private async update(n: Node, d: DesiredHost, change: string): Promise<void> {
    if (!(await this.ctx.zk.lockNode(n, { blocking: false }))) return;
    try {
      const fresh = n.id !== null ? await this.ctx.zk.getNode(n.id) : null;
      if (fresh === null || fresh.state !== 'ready' || fresh.allocated_to !== null) return;
      const s = d.node;
      fresh.type = [...s.labels];
      fresh.username = s.username;
      fresh.connection_port = s.connectionPort;
      fresh.connection_type = s.connectionType;
      fresh.host_keys = this.hostKeysFor(d, fresh.host_keys);
      fresh.attributes = d.attributes === null ? null : { ...d.attributes };
      setShellFields(fresh, s);
      await this.ctx.storeNode(fresh, BY, `static node updated: ${change}`);
      this.log.info(`Updated static node ${fresh.id ?? ''} (${s.name}): ${change}`);
    } finally {
      await this.ctx.zk.unlockNode(n).catch(() => undefined);
    }
  }

  /** Nodepool's deregisterNode: a free READY slot → deleting (the DeletedNodeWorker removes it). */
  private async deregister(n: Node, reason: string, states: readonly string[] = ['ready']): Promise<boolean> {
    if (!states.includes(n.state) || (n.state === 'ready' && n.allocated_to !== null)) return false;
    if (!(await this.ctx.zk.lockNode(n, { blocking: false }))) return false;
    try {
      const fresh = n.id !== null ? await this.ctx.zk.getNode(n.id) : null;
      if (fresh === null || !states.includes(fresh.state) || (fresh.state === 'ready' && fresh.allocated_to !== null)) return false;
      fresh.state = 'deleting';
      fresh.state_time = nowSeconds();
      await this.ctx.storeNode(fresh, BY, `deregistered: ${reason}`);
      this.log.info(`Deregistered static node ${fresh.id ?? ''} (${fresh.hostname ?? ''}): ${reason}`);
      return true;
    } finally {
      await this.ctx.zk.unlockNode(n).catch(() => undefined);
    }
  }

  /** The caller (PoolWorker) holds the node's lock. */
  private async markDeletingLocked(node: Node, reason: string): Promise<void> {
    const copy = cloneNode(node);
    copy.state = 'deleting';
    copy.state_time = nowSeconds();
    try {
      await this.ctx.storeNode(copy, BY, `deregistered: ${reason}`);
    } catch (err) {
      this.log.error({ node: node.id, err: (err as Error).message }, `Could not deregister static node ${node.id ?? ''}`);
    }
  }

  /** Every free READY slot of a host → deleting (it failed a check). */
  private async deregisterHost(name: string, reason: string): Promise<void> {
    const nodes = (await this.providerNodes()).filter((n) => n.hostname === name && n.state === 'ready' && n.allocated_to === null);
    for (const n of nodes) await this.deregister(n, reason);
  }

  private async register(config: Config, d: DesiredHost, count: number, address: HostAddress, keys: readonly string[]): Promise<Batch | null> {
    const s = d.node;
    const scripts: { label: string; script: string }[] = [];
    for (const label of s.labels) {
      const script = labelReadyScript(config, label);
      if (script !== null && !scripts.some((x) => x.script === script)) scripts.push({ label, script });
    }
    const state = scripts.length > 0 ? 'testing' : 'ready';
    const nodes: Node[] = [];
    for (let i = 0; i < count; i++) {
      const node = newNode({
        state,
        provider: this.name,
        pool: d.pool.name,
        launcher: STATIC_LAUNCHER,
        type: [...s.labels],
        hostname: s.name,
        interface_ip: s.name,
        username: s.username,
        connection_port: s.connectionPort,
        connection_type: s.connectionType,
        host_keys: this.hostKeysFor(d, keys),
        public_ipv4: address.publicIpv4,
        public_ipv6: address.publicIpv6,
        attributes: d.attributes === null ? null : { ...d.attributes },
      });
      setShellFields(node, s);
      await this.ctx.storeNode(node, BY, state === 'ready' ? 'static node registered' : 'static node registered; running ready-script');
      if (state === 'testing' && !(await this.ctx.zk.lockNode(node, { blocking: false }))) {
        // Nobody else may touch a fresh testing node while we hold the registration lock.
        this.log.error(`Could not lock new static node ${node.id ?? ''}; leaving it to the next pass`);
        continue;
      }
      nodes.push(node);
    }
    this.log.info(`Registered ${nodes.length} slot(s) of static host ${s.name} in pool ${d.pool.name}`
      + (scripts.length > 0 ? ' (testing: ready-script pending)' : ''));
    return scripts.length > 0 && nodes.length > 0 ? { host: d, nodes, scripts } : null;
  }

  /** Run the host's ready-script(s) once for a batch of `testing` slots, then ready or failed. */
  private async runReadyScripts(b: Batch): Promise<void> {
    const first = b.nodes[0];
    if (first === undefined) return;
    const name = b.host.node.name;
    let result: ReadyScriptResult | null = null;
    try {
      for (const { label } of b.scripts) {
        result = await runReadyScript(first, label, this.currentConfig(), {
          timeoutMs: this.opts.readyScriptTimeoutMs,
          signal: this.abort.signal,
        });
        if (!result.ok) break;
      }
    } catch (err) {
      result = null;
      this.log.error({ host: name, err: (err as Error).message }, `ready-script on ${name} could not run`);
    }
    const ok = result?.ok ?? false;
    let reason: string;
    if (this.stopped) {
      reason = 'launcher stopping during the ready-script';
    } else if (ok) {
      reason = `ready-script passed (${b.scripts.map((s) => s.script).join(', ')})`;
      this.scriptFailures.delete(name);
    } else {
      const what = result ? `ready-script ${result.script ?? ''} failed: ${describeScriptResult(result)}` : 'ready-script could not run';
      reason = result && result.output !== '' ? `${what}; output:\n${outputExcerpt(result)}` : what;
      this.scriptFailures.set(name, { reason: what, at: nowSeconds() });
      this.log.warn({ host: name, label: result?.label, exitCode: result?.exitCode ?? null, timedOut: result?.timedOut ?? false,
        outputBytes: result?.outputBytes ?? 0, output: result?.output ?? '' },
      `Static host ${name} taken out until the next check: ${what}`);
    }
    for (const n of b.nodes) {
      try {
        const fresh = n.id !== null ? await this.ctx.zk.getNode(n.id) : null;
        if (fresh !== null && fresh.state === 'testing') {
          // Stopping: `deleting` lets the next manager register the slot afresh.
          fresh.state = this.stopped ? 'deleting' : ok ? 'ready' : 'failed';
          fresh.state_time = nowSeconds();
          await this.ctx.storeNode(fresh, BY, reason);
        }
      } finally {
        await this.ctx.zk.unlockNode(n).catch(() => undefined);
      }
    }
  }

  /** Alive check with state-change logging (a host that stays down is logged once). */
  private async check(d: DesiredHost, quick = false): Promise<HostCheckResult> {
    const s = d.node;
    const r = await checkHost({
      name: s.name,
      port: s.connectionPort,
      timeoutMs: s.timeout * 1000,
      connectionType: s.connectionType,
      hostKeys: s.hostKey,
      quick,
      hostKeyChecking: s.hostKeyChecking,
    }, this.abort.signal);
    const prev = this.health.get(s.name);
    const now = Date.now();
    if (r.ok) {
      if (prev && !prev.alive) this.log.info(`Static host ${s.name} is usable again`);
      this.health.set(s.name, { alive: true, code: null, reason: null, since: prev?.alive ? prev.since : now / 1000, checkedAt: now });
    } else {
      const changed = !prev || prev.alive || prev.reason !== r.reason;
      if (changed && !this.stopped) {
        this.log.warn({ host: s.name, code: r.code }, `Static host ${s.name} is not usable: ${r.reason}`);
      }
      this.health.set(s.name, { alive: false, code: r.code, reason: r.reason, since: changed ? now / 1000 : prev.since, checkedAt: now });
    }
    return r;
  }

  /** While a host is down (or the lock was busy), run another pass later. */
  private scheduleRecheck(force = false): void {
    if (this.stopped || this.recheckTimer !== null) return;
    const anyDown = [...this.health.entries()].some(([name, h]) => !h.alive && this.desired.has(name));
    if (!anyDown && !force) return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      this.background(this.requestSync(false));
    }, this.opts.recheckIntervalMs);
    this.recheckTimer.unref();
  }
}

/** The launcher's factory for `driver: static`. */
export function createStaticProvider(provider: StaticProvider, ctx: StaticDriverContext,
  opts: StaticManagerOptions = {}): StaticNodeManager {
  return new StaticNodeManager(provider, ctx, opts);
}
