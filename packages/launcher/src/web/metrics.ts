// Launcher metrics with Nodepool's statsd names (§8), and the same figures for Prometheus.
//
// statsd (only when STATSD_HOST is set, like Nodepool; STATSD_PORT defaults to 8125):
//   nodepool.launch[.provider.<p>[.<az>]|.requestor.<r>].<result>   timer (ms) + counter
//   nodepool.nodes.<state>, nodepool.provider.<p>.nodes.<state>,
//   nodepool.label.<l>.nodes.<state>                                 gauges, all 11 states
//   nodepool.provider.<p>.max_servers                                 gauge
//   nodepool.provider.<p>.pool.<pool>.addressable_requests            gauge (Nodepool 11.0)
//   nodepool.provider.<p>.launch_circuit_open                         gauge 1/0 (launch-circuit-breaker)
//   nodepool.tenant_limits.<tenant>.{instances,cores,ram}             gauges (tenant-resource-limits)
//   nodepool.provider.<p>.downPorts                                   counter (DOWN ports removed)
//   nodepool.provider.<p>.leaked.{instances,ports,floatingips}        counters (later Nodepool)
//   nodepool.task.<p>.<service>.<METHOD>.<name>.<status>              timer (ms) + counter, per API call
//   nodepool.task.<p>.<service>.<METHOD>.<name>.attempted|failed|over_1000   counters
// The task keys are the ones openstacksdk sends for Nodepool (its statsd prefix is
// `nodepool.task.<provider>`): `<status>` when an answer came, `failed` when none did (timeout,
// reset), `over_1000` for answers slower than a second, `attempted` for every call.
// Node gauges are published only by the winner of the launcher's stats election (election.ts:
// kazoo's Election = the Lock recipe on /nodepool/elections/stats, identifier `<hostname>-<pid>`),
// recomputed when the node cache changes, at most once per second. Every launcher publishes the launches it
// made and the max_servers of its providers (Nodepool's PoolWorker does that every loop).
//
// Prometheus (`/metrics` of the web app) has the same figures as labelled series; every
// launcher reports the node gauges there (a scrape asks one process; they all see the same tree).
import StatsDClient from 'hot-shots';
import type { StatsD } from 'hot-shots';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import { NODE_STATES, type LauncherInfo, type Node } from '@nodepool-ts/core/model';
import type { NodeCache, RequestCache, ZooKeeper } from '@nodepool-ts/core/zk';
import { taskMetricKey, type ApiCallEvent } from '@nodepool-ts/driver-openstack';
import type { LaunchAttempt } from '../context.js';
import type { LauncherEvents } from '../events.js';
import type { LeakedResource } from '@nodepool-ts/core/provider';
import type { CircuitChange, CircuitState } from '../circuit-breaker.js';

/** The launcher's stats election (election.ts): its winner sends the node gauges. */
export interface StatsLeadership {
  readonly isLeader: boolean;
  on(event: 'leader', fn: (leader: boolean) => void): unknown;
  off(event: 'leader', fn: (leader: boolean) => void): unknown;
}

export interface MetricsHost {
  readonly election: StatsLeadership;
  readonly zk: ZooKeeper;
  readonly nodeCache: NodeCache;
  readonly requestCache: RequestCache;
  readonly events: LauncherEvents;
  readonly hostname: string;
  readonly config: Config;
  /** providers with a `launch-circuit-breaker` */
  circuitStates?(): ReadonlyMap<string, { readonly state: CircuitState }>;
}

/** Graphite splits on '.', statsd on ':' (Nodepool replaces both in requestor names). */
export function statsdSafe(name: string): string {
  return name.replace(/[.:]/g, '_');
}

/** Sum of the pools' max-servers (Infinity when one is unlimited), per provider. */
export function providerMaxServers(config: Config): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of config.providers.values()) {
    out.set(p.name, p.pools.reduce((sum, pool) => sum + pool.maxServers, 0));
  }
  return out;
}

/** The pool a launcher registration belongs to: a component names it, a 3.x id ends `PoolWorker.<provider>-<pool>`. */
export function registrationPool(l: LauncherInfo): string | null {
  if (l.pool_name !== undefined) return l.pool_name;
  const marker = `PoolWorker.${l.provider_name}-`;
  const at = l.id.lastIndexOf(marker);
  if (at < 0) return null;
  const pool = l.id.slice(at + marker.length);
  return pool === '' ? null : pool;
}

/**
 * Nodepool's updateNodeRequestStats (11.0): per registered pool, how many of the node requests
 * (every state) ask only for labels that pool offers. Registrations whose pool cannot be told
 * are left out, as Nodepool leaves out pools without a name.
 */
export function computeAddressableRequests(requests: Iterable<{ node_types: readonly string[] }>,
  launchers: readonly LauncherInfo[]): Map<string, number> {
  const pools = new Map<string, Set<string>>();
  for (const l of launchers) {
    const pool = registrationPool(l);
    if (pool === null) continue;
    pools.set(`nodepool.provider.${l.provider_name}.pool.${pool}.addressable_requests`, new Set(l.supported_labels));
  }
  const out = new Map<string, number>();
  for (const key of pools.keys()) out.set(key, 0);
  for (const r of requests) {
    for (const [key, labels] of pools) {
      if (r.node_types.every((t) => labels.has(t))) out.set(key, (out.get(key) ?? 0) + 1);
    }
  }
  return out;
}

/**
 * Nodepool's updateNodeStats: every state zero-filled for the totals, for the providers and the
 * labels registered launchers offer; nodes of other providers/labels add their own keys.
 */
export function computeNodeGauges(nodes: readonly Readonly<Node>[], launchers: readonly LauncherInfo[]): Map<string, number> {
  const states = new Map<string, number>();
  const providers = new Set<string>();
  const labels = new Set<string>();
  for (const l of launchers) {
    providers.add(l.provider_name);
    for (const label of l.supported_labels) labels.add(label);
  }
  for (const state of NODE_STATES) {
    states.set(`nodepool.nodes.${state}`, 0);
    for (const p of providers) states.set(`nodepool.provider.${p}.nodes.${state}`, 0);
  }
  for (const label of labels) for (const state of NODE_STATES) states.set(`nodepool.label.${label}.nodes.${state}`, 0);
  const bump = (key: string) => states.set(key, (states.get(key) ?? 0) + 1);
  for (const n of nodes) {
    bump(`nodepool.nodes.${n.state}`);
    for (const label of n.type) bump(`nodepool.label.${label}.nodes.${n.state}`);
    bump(`nodepool.provider.${String(n.provider)}.nodes.${n.state}`);
  }
  return states;
}

export interface StatsOptions {
  /** environment to read STATSD_HOST / STATSD_PORT from (tests pass their own) */
  env?: NodeJS.ProcessEnv;
  /** minimum spacing of node gauge updates (Nodepool: 1 s) */
  gaugeIntervalMs?: number;
  /** how often max_servers is sent (Nodepool's PoolWorker loop: 10 s) */
  maxServersIntervalMs?: number;
}

export class LauncherMetrics {
  readonly registry = new Registry();
  private statsd: StatsD | null = null;
  private stopped = false;
  private gaugeTimer: NodeJS.Timeout | null = null;
  private gaugeDue = false;
  private lastGauges = 0;
  private maxServersTimer: NodeJS.Timeout | null = null;
  /** node id → the result of its latest launch attempt (the launch event has only the state) */
  private readonly lastAttempt = new Map<string, string>();
  private readonly launchCounter: Counter<'provider' | 'az' | 'requestor' | 'result'>;
  private readonly launchDuration: Histogram<'provider' | 'result'>;
  private readonly taskCounter: Counter<'provider' | 'service' | 'method' | 'name' | 'status'>;
  private readonly taskDuration: Histogram<'provider' | 'service' | 'method' | 'name'>;
  private readonly downPortsCounter: Counter<'provider'>;
  private readonly leakedCounter: Counter<'provider' | 'resource'>;
  private readonly gaugeIntervalMs: number;
  private readonly onNode = () => this.nodesChanged();
  private readonly onAttempt = (node: Node, _by: string, a: LaunchAttempt) => {
    if (node.id !== null) this.lastAttempt.set(node.id, a.result);
  };
  private readonly onLaunch = (node: Node, provider: string, state: 'ready' | 'failed' | 'aborted', ms: number,
    requestId: string | null) => this.launched(node, provider, state, ms, requestId);
  private readonly onCircuit = (c: CircuitChange) => {
    this.statsd?.gauge(`nodepool.provider.${c.provider}.launch_circuit_open`, c.state === 'closed' ? 0 : 1);
  };
  private readonly onLeader = (leader: boolean) => {
    if (leader) this.nodesChanged();
  };

  constructor(private readonly host: MetricsHost, private readonly log: Logger, private readonly opts: StatsOptions = {}) {
    this.gaugeIntervalMs = opts.gaugeIntervalMs ?? 1000;
    const registers = [this.registry];
    this.launchCounter = new Counter({
      name: 'nodepool_launch_total',
      help: 'Node launches by outcome (statsd nodepool.launch.*)',
      labelNames: ['provider', 'az', 'requestor', 'result'],
      registers,
    });
    this.launchDuration = new Histogram({
      name: 'nodepool_launch_duration_seconds',
      help: 'Time from launch start to its outcome (statsd nodepool.launch.* timers)',
      labelNames: ['provider', 'result'],
      buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.taskCounter = new Counter({
      name: 'nodepool_task_total',
      help: 'Cloud API calls by answer status, "failed" when none came (statsd nodepool.task.*)',
      labelNames: ['provider', 'service', 'method', 'name', 'status'],
      registers,
    });
    this.taskDuration = new Histogram({
      name: 'nodepool_task_duration_seconds',
      help: 'Time of answered cloud API calls (statsd nodepool.task.*.<status> timers)',
      labelNames: ['provider', 'service', 'method', 'name'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.downPortsCounter = new Counter({
      name: 'nodepool_provider_down_ports_total',
      help: 'DOWN ports removed by cleanup (statsd nodepool.provider.<p>.downPorts)',
      labelNames: ['provider'],
      registers,
    });
    this.leakedCounter = new Counter({
      name: 'nodepool_provider_leaked_total',
      help: 'Leftovers cleanup removed: instances without a node, DOWN ports, unattached floating IPs (statsd nodepool.provider.<p>.leaked.<resource>)',
      labelNames: ['provider', 'resource'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'nodepool_nodes',
      help: 'Nodes per state (statsd nodepool.nodes.<state>)',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        for (const s of NODE_STATES) this.set({ state: s }, 0);
        for (const n of self.host.nodeCache.all()) this.inc({ state: n.state });
      },
    });
    new Gauge({
      name: 'nodepool_provider_nodes',
      help: 'Nodes per provider and state (statsd nodepool.provider.<p>.nodes.<state>)',
      labelNames: ['provider', 'state'],
      registers,
      async collect() {
        this.reset();
        const launchers = await self.launchers();
        const providers = new Set([...launchers.map((l) => l.provider_name), ...self.host.config.providers.keys()]);
        for (const p of providers) for (const s of NODE_STATES) this.set({ provider: p, state: s }, 0);
        for (const [key, n] of self.countBy((node) => [String(node.provider)])) {
          const [provider = '', state = ''] = key.split('\u0000');
          this.set({ provider, state }, n);
        }
      },
    });
    new Gauge({
      name: 'nodepool_label_nodes',
      help: 'Nodes per label and state (statsd nodepool.label.<l>.nodes.<state>)',
      labelNames: ['label', 'state'],
      registers,
      async collect() {
        this.reset();
        const launchers = await self.launchers();
        const labels = new Set(launchers.flatMap((l) => l.supported_labels));
        for (const l of labels) for (const s of NODE_STATES) this.set({ label: l, state: s }, 0);
        for (const [key, n] of self.countBy((node) => node.type)) {
          const [label = '', state = ''] = key.split('\u0000');
          this.set({ label, state }, n);
        }
      },
    });
    new Gauge({
      name: 'nodepool_provider_max_servers',
      help: 'Sum of the pools\' max-servers per provider (statsd nodepool.provider.<p>.max_servers)',
      labelNames: ['provider'],
      registers,
      collect() {
        this.reset();
        for (const [p, n] of providerMaxServers(self.host.config)) this.set({ provider: p }, n);
      },
    });
    new Gauge({
      name: 'nodepool_requests',
      help: 'Node requests per state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const s of ['requested', 'pending', 'fulfilled', 'failed']) this.set({ state: s }, 0);
        for (const r of self.host.requestCache.all()) this.inc({ state: r.state });
      },
    });
    new Gauge({
      name: 'nodepool_pool_addressable_requests',
      help: 'Node requests a registered pool can address (statsd nodepool.provider.<p>.pool.<pool>.addressable_requests)',
      labelNames: ['provider', 'pool'],
      registers,
      async collect() {
        this.reset();
        const launchers = await self.launchers();
        for (const l of launchers) {
          const pool = registrationPool(l);
          if (pool === null) continue;
          const labels = new Set(l.supported_labels);
          let n = 0;
          for (const r of self.host.requestCache.all()) if (r.node_types.every((t) => labels.has(t))) n += 1;
          this.set({ provider: l.provider_name, pool }, n);
        }
      },
    });
    new Gauge({
      name: 'nodepool_provider_launch_circuit_open',
      help: '1 while a provider\'s launch circuit breaker suspends its launches (open or in its trial)',
      labelNames: ['provider'],
      registers,
      collect() {
        this.reset();
        for (const [p, c] of self.host.circuitStates?.() ?? []) this.set({ provider: p }, c.state === 'closed' ? 0 : 1);
      },
    });
    new Gauge({
      name: 'nodepool_stats_leader',
      help: '1 when this launcher won the stats election and sends the statsd node gauges',
      registers,
      collect() {
        this.set(self.isLeader ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'nodepool_launcher_' });
  }

  get isLeader(): boolean {
    return this.host.election.isLeader;
  }

  get statsdEnabled(): boolean {
    return this.statsd !== null;
  }

  private countBy(keys: (n: Readonly<Node>) => readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const n of this.host.nodeCache.all()) {
      for (const k of keys(n)) {
        const key = `${k}\u0000${n.state}`;
        out.set(key, (out.get(key) ?? 0) + 1);
      }
    }
    return out;
  }

  private async launchers(): Promise<LauncherInfo[]> {
    try {
      return await this.host.zk.getLauncherPools();
    } catch {
      return [];
    }
  }

  start(): void {
    this.host.events.on('launch-attempt', this.onAttempt);
    this.host.events.on('launch', this.onLaunch);
    this.host.events.on('circuit', this.onCircuit);
    const env = this.opts.env ?? process.env;
    const host = env.STATSD_HOST;
    if (!host) return;
    const port = Number(env.STATSD_PORT ?? 8125);
    this.statsd = new StatsDClient({
      host,
      port: Number.isInteger(port) && port > 0 ? port : 8125,
      protocol: 'udp',
      // Nodepool sends each update as one pipeline (one datagram); a short buffer does the same
      maxBufferSize: 1400,
      bufferFlushInterval: 100,
      errorHandler: (err: Error) => this.log.debug({ err: err.message }, 'statsd send failed'),
    });
    this.log.info({ statsd: `${host}:${port}` }, 'Sending statsd metrics');
    this.host.events.on('node', this.onNode);
    // addressable_requests follow the requests too (Nodepool refreshes them on node changes only)
    this.host.events.on('request', this.onNode);
    this.host.election.on('leader', this.onLeader);
    if (this.isLeader) this.nodesChanged();
    this.sendMaxServers();
    this.maxServersTimer = setInterval(() => this.sendMaxServers(), this.opts.maxServersIntervalMs ?? 10_000);
    this.maxServersTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.host.events.off('launch-attempt', this.onAttempt);
    this.host.events.off('launch', this.onLaunch);
    this.host.events.off('circuit', this.onCircuit);
    this.host.events.off('node', this.onNode);
    this.host.events.off('request', this.onNode);
    this.host.election.off('leader', this.onLeader);
    if (this.gaugeTimer) clearTimeout(this.gaugeTimer);
    if (this.maxServersTimer) clearInterval(this.maxServersTimer);
    const statsd = this.statsd;
    this.statsd = null;
    if (statsd) await new Promise<void>((resolve) => statsd.close(() => resolve()));
    this.registry.clear();
  }

  private nodesChanged(): void {
    if (!this.statsd || !this.isLeader || this.gaugeTimer) {
      if (this.gaugeTimer) this.gaugeDue = true;
      return;
    }
    const wait = Math.max(0, this.lastGauges + this.gaugeIntervalMs - Date.now());
    this.gaugeTimer = setTimeout(() => {
      this.gaugeTimer = null;
      void this.sendNodeGauges().then(() => {
        if (this.gaugeDue) {
          this.gaugeDue = false;
          this.nodesChanged();
        }
      });
    }, wait);
    this.gaugeTimer.unref();
  }

  /** Compute and send Nodepool's node gauges (the stats election winner only). */
  async sendNodeGauges(): Promise<void> {
    const statsd = this.statsd;
    if (!statsd || !this.isLeader) return;
    this.lastGauges = Date.now();
    const launchers = await this.launchers();
    const gauges = computeNodeGauges(this.host.nodeCache.all(), launchers);
    for (const [key, value] of gauges) statsd.gauge(key, value);
    // Nodepool sends these right after the node gauges, on the same trigger
    for (const [key, value] of computeAddressableRequests(this.host.requestCache.all(), launchers)) statsd.gauge(key, value);
  }

  private sendMaxServers(): void {
    const statsd = this.statsd;
    if (!statsd) return;
    for (const [provider, max] of providerMaxServers(this.host.config)) {
      // Python would send `inf`; no statsd backend can store it, so unlimited is not sent
      if (Number.isFinite(max)) statsd.gauge(`nodepool.provider.${provider}.max_servers`, max);
    }
    for (const [provider, c] of this.host.circuitStates?.() ?? []) {
      statsd.gauge(`nodepool.provider.${provider}.launch_circuit_open`, c.state === 'closed' ? 0 : 1);
    }
    for (const [tenant, limits] of this.host.config.tenantResourceLimits) {
      for (const [k, v] of Object.entries(limits)) {
        if (Number.isFinite(v)) statsd.gauge(`nodepool.tenant_limits.${statsdSafe(tenant)}.${k}`, v);
      }
    }
  }

  private launched(node: Node, provider: string, state: 'ready' | 'failed' | 'aborted', ms: number, requestId: string | null): void {
    const id = node.id ?? '';
    let result = state === 'ready' ? 'ready' : this.lastAttempt.get(id) ?? 'error.unknown';
    if (state === 'aborted') result = 'error.quota';
    if (state === 'failed' && this.host.zk.state === 'lost') result = 'error.zksession';
    if (result === 'ready' && state !== 'ready') result = 'error.unknown';
    this.lastAttempt.delete(id);
    const request = requestId ?? node.allocated_to;
    const requestor = request ? this.host.requestCache.get(request)?.requestor ?? null : null;
    this.launchCounter.inc({ provider, az: node.az ?? '', requestor: requestor ?? '', result });
    this.launchDuration.observe({ provider, result }, ms / 1000);
    const statsd = this.statsd;
    if (!statsd) return;
    // Nodepool's recordLaunchStats order: provider, total, provider+az, requestor
    const keys = [`nodepool.launch.provider.${provider}.${result}`, `nodepool.launch.${result}`];
    if (node.az) keys.push(`nodepool.launch.provider.${provider}.${node.az}.${result}`);
    if (requestor) keys.push(`nodepool.launch.requestor.${statsdSafe(requestor)}.${result}`);
    for (const key of keys) {
      statsd.timing(key, ms);
      statsd.increment(key);
    }
  }

  /** One cloud API call (a driver's onApiCall), under openstacksdk's statsd keys. */
  apiCall(e: ApiCallEvent): void {
    if (this.stopped) return;
    const labels = { provider: e.provider, service: e.service, method: e.method, name: e.name };
    this.taskCounter.inc({ ...labels, status: e.status === null ? 'failed' : String(e.status) });
    if (e.status !== null) this.taskDuration.observe(labels, e.ms / 1000);
    const statsd = this.statsd;
    if (!statsd) return;
    const key = taskMetricKey(e);
    if (e.status !== null) {
      statsd.timing(`${key}.${e.status}`, e.ms);
      statsd.increment(`${key}.${e.status}`);
      if (e.ms > 1000) statsd.increment(`${key}.over_1000`);
    } else {
      statsd.increment(`${key}.failed`);
    }
    statsd.increment(`${key}.attempted`);
  }

  /**
   * Leftovers a cleanup of `provider` removed, by the number removed: later Nodepool's
   * `leaked.<resource>`; DOWN ports also under 3.x's `downPorts`.
   */
  leakedRemoved(provider: string, resource: LeakedResource, count: number): void {
    if (this.stopped || count <= 0) return;
    this.leakedCounter.inc({ provider, resource }, count);
    this.statsd?.increment(`nodepool.provider.${provider}.leaked.${resource}`, count);
    if (resource === 'ports') {
      this.downPortsCounter.inc({ provider }, count);
      this.statsd?.increment(`nodepool.provider.${provider}.downPorts`, count);
    }
  }

  /** Prometheus text exposition of everything above. */
  async prometheus(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
