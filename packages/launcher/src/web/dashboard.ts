// The dashboard: a page (web-assets/) that shows, live, per label and per provider the ready /
// building / in-use / deleting counts against min-ready and max-servers, the request queue with
// ages, recent failures and leases; and history graphs (launch time, fulfilment latency, nodes in
// use) from the database. The page takes one `status` snapshot on load and then a new one over
// server-sent events whenever a node, request or lease changes (at most 4 per second).
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import type { Config } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import type { Node, NodeRequest, NodeState } from '@nodepool-ts/core/model';
import type { NodeCache, RequestCache } from '@nodepool-ts/core/zk';
import type { LaunchAttempt } from '../context.js';
import type { LauncherEvents } from '../events.js';
import type { CircuitState } from '../circuit-breaker.js';
import { ApiError, UnavailableError } from './errors.js';
import { API_PREFIX, leaseJson } from './lease-api.js';
import type { Lease } from './leases.js';
import { providerMaxServers } from './metrics.js';

export type Bucket = 'ready' | 'building' | 'in_use' | 'hold' | 'deleting' | 'failed';

/** How the dashboard groups Nodepool's 11 node states. */
export const STATE_BUCKET: Readonly<Record<NodeState, Bucket>> = {
  init: 'building', building: 'building', testing: 'building',
  ready: 'ready', 'in-use': 'in_use', hold: 'hold',
  used: 'deleting', deleting: 'deleting', deleted: 'deleting',
  failed: 'failed', aborted: 'failed',
};

type Counts = Record<Bucket, number>;

function zero(): Counts {
  return { ready: 0, building: 0, in_use: 0, hold: 0, deleting: 0, failed: 0 };
}

export interface LabelStatus extends Counts {
  name: string;
  min_ready: number;
  total: number;
  /** nodes of this label that are ready and not allocated to a request */
  available: number;
  /** labels asked for by open requests */
  waiting: number;
}

export interface ProviderStatus extends Counts {
  name: string;
  driver: string | null;
  /** null = unlimited (or a provider of another launcher) */
  max_servers: number | null;
  total: number;
  /**
   * `launch-circuit-breaker`: `suspended` after failed launches in a row, `trial` while it may
   * try one launch; null = launching (or no breaker, or another launcher's provider)
   */
  launches: 'suspended' | 'trial' | null;
}

export interface RequestStatus {
  id: string;
  state: string;
  requestor: string | null;
  node_types: string[];
  nodes: string[];
  declined_by: string[];
  /** seconds since the request was created (or first seen) */
  age: number;
}

export interface FailureStatus {
  at: number;
  kind: 'launch' | 'request';
  node: string | null;
  request: string | null;
  provider: string | null;
  label: string | null;
  result: string;
  error: string | null;
}

export interface StatusSnapshot {
  generated_at: number;
  launcher: { hostname: string; ready: boolean; zookeeper: string; stats_leader: boolean; statsd: boolean; database: boolean };
  totals: Counts & { total: number };
  labels: LabelStatus[];
  providers: ProviderStatus[];
  requests: RequestStatus[];
  failures: FailureStatus[];
  leases: ReturnType<typeof leaseJson>[];
}

export interface DashboardHost {
  readonly hostname: string;
  readonly config: Config;
  readonly nodeCache: NodeCache;
  readonly requestCache: RequestCache;
  readonly events: LauncherEvents;
  zkState(): string;
  isReady(): boolean;
  statsLeader(): boolean;
  statsd(): boolean;
  /** null while the database is unavailable */
  knex(): Knex | null;
  /** open leases (any launcher), for the lease panel */
  openLeases(): Promise<Lease[]>;
  /** providers with a `launch-circuit-breaker` */
  circuitStates?(): ReadonlyMap<string, { readonly state: CircuitState }>;
}

const FAILURES_KEPT = 20;
const MAX_REQUESTS_SHOWN = 200;
const MAX_EVENT_CLIENTS = 200;

function requestTime(r: Readonly<NodeRequest>): number | null {
  const c = r.extra.created_time;
  return typeof c === 'number' && Number.isFinite(c) ? c : null;
}

/** The figures the page shows (also GET /api/v1/status). */
export function buildStatus(
  nodes: readonly Readonly<Node>[], requests: readonly Readonly<NodeRequest>[], config: Config,
  firstSeen: ReadonlyMap<string, number>, now: number,
): Omit<StatusSnapshot, 'launcher' | 'failures' | 'leases' | 'generated_at'> {
  const labels = new Map<string, LabelStatus>();
  const label = (name: string): LabelStatus => {
    let l = labels.get(name);
    if (!l) {
      l = { name, min_ready: config.labels.get(name)?.minReady ?? 0, ...zero(), total: 0, available: 0, waiting: 0 };
      labels.set(name, l);
    }
    return l;
  };
  for (const name of config.labels.keys()) label(name);
  const max = providerMaxServers(config);
  const providers = new Map<string, ProviderStatus>();
  const provider = (name: string): ProviderStatus => {
    let p = providers.get(name);
    if (!p) {
      const m = max.get(name);
      p = {
        name, driver: config.providers.get(name)?.driver ?? null,
        max_servers: m !== undefined && Number.isFinite(m) ? m : null, ...zero(), total: 0, launches: null,
      };
      providers.set(name, p);
    }
    return p;
  };
  for (const name of config.providers.keys()) provider(name);
  const totals = { ...zero(), total: 0 };
  for (const n of nodes) {
    const b = STATE_BUCKET[n.state];
    totals[b]++;
    totals.total++;
    for (const t of n.type) {
      const l = label(t);
      l[b]++;
      l.total++;
      if (n.state === 'ready' && n.allocated_to === null) l.available++;
    }
    if (n.provider !== null) {
      const p = provider(n.provider);
      p[b]++;
      p.total++;
    }
  }
  const open = requests.filter((r) => r.state === 'requested' || r.state === 'pending');
  for (const r of open) for (const t of r.node_types) label(t).waiting++;
  const sorted = [...requests].sort((a, b) => ((a.id ?? '') < (b.id ?? '') ? -1 : 1)).slice(0, MAX_REQUESTS_SHOWN);
  return {
    totals,
    labels: [...labels.values()].sort((a, b) => a.name.localeCompare(b.name)),
    providers: [...providers.values()].sort((a, b) => a.name.localeCompare(b.name)),
    requests: sorted.map((r) => {
      const since = requestTime(r) ?? firstSeen.get(r.id ?? '') ?? r.state_time;
      return {
        id: r.id ?? '', state: r.state, requestor: r.requestor, node_types: [...r.node_types], nodes: [...r.nodes],
        declined_by: [...r.declined_by], age: Math.max(0, Math.floor(now - since)),
      };
    }),
  };
}

export interface HistoryPoint {
  /** bucket end, Unix seconds */
  t: number;
  /** average and maximum in the bucket (seconds); null without data */
  avg: number | null;
  max: number | null;
  count: number;
}

export interface HistorySeries {
  since: number;
  until: number;
  bucket_seconds: number;
  launch_time: HistoryPoint[];
  fulfilment_latency: HistoryPoint[];
  in_use: { t: number; value: number }[];
}

function bucketize(points: { t: number; v: number }[], since: number, step: number, n: number): HistoryPoint[] {
  const out: HistoryPoint[] = [];
  for (let i = 0; i < n; i++) out.push({ t: since + (i + 1) * step, avg: null, max: null, count: 0 });
  const sums = new Array<number>(n).fill(0);
  for (const p of points) {
    const i = Math.min(n - 1, Math.max(0, Math.floor((p.t - since) / step)));
    const b = out[i];
    if (!b) continue;
    b.count++;
    sums[i] = (sums[i] ?? 0) + p.v;
    b.max = b.max === null ? p.v : Math.max(b.max, p.v);
  }
  out.forEach((b, i) => { if (b.count > 0) b.avg = (sums[i] ?? 0) / b.count; });
  return out;
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * History from the recorder's tables (core/db): launch time = ready_at − created_time of nodes
 * that became ready, fulfilment latency of requests, and the number of in-use nodes, rebuilt
 * backwards from the current count through the node_events that entered or left `in-use`.
 */
export async function queryHistorySeries(knex: Knex, hours: number, inUseNow: number, now: number, buckets = 60): Promise<HistorySeries> {
  const since = now - hours * 3600;
  const step = (now - since) / buckets;
  const has = async (t: string) => knex.schema.hasTable(t);
  const launches: { t: number; v: number }[] = [];
  if (await has('nodes')) {
    const rows = await knex('nodes').select('ready_at', 'created_time').where('ready_at', '>=', since).whereNotNull('created_time') as Record<string, unknown>[];
    for (const r of rows) {
      const a = num(r.ready_at);
      const c = num(r.created_time);
      if (a !== null && c !== null && a >= c) launches.push({ t: a, v: a - c });
    }
  }
  const latency: { t: number; v: number }[] = [];
  if (await has('requests')) {
    const rows = await knex('requests').select('fulfilled_at', 'latency_ms', 'created_at').where('fulfilled_at', '>=', since) as Record<string, unknown>[];
    for (const r of rows) {
      const f = num(r.fulfilled_at);
      const ms = num(r.latency_ms);
      const c = num(r.created_at);
      const v = ms !== null ? ms / 1000 : f !== null && c !== null ? f - c : null;
      if (f !== null && v !== null && v >= 0) latency.push({ t: f, v });
    }
  }
  const inUse: { t: number; value: number }[] = [];
  if (await has('node_events')) {
    const rows = await knex('node_events').select('at', 'from_state', 'to_state').where('at', '>=', since)
      .andWhere((w) => { w.where('to_state', 'in-use').orWhere('from_state', 'in-use'); })
      .orderBy([{ column: 'at', order: 'desc' }, { column: 'id', order: 'desc' }]) as Record<string, unknown>[];
    // walk back from now: before an event that entered in-use there was one fewer, and so on
    let value = inUseNow;
    let idx = 0;
    for (let i = buckets; i >= 0; i--) {
      const t = since + i * step;
      while (idx < rows.length) {
        const r = rows[idx];
        const at = num(r?.at) ?? 0;
        if (at <= t) break;
        if (r?.to_state === 'in-use' && r.from_state !== 'in-use') value--;
        else if (r?.from_state === 'in-use' && r.to_state !== 'in-use') value++;
        idx++;
      }
      inUse.push({ t, value: Math.max(0, value) });
    }
    inUse.reverse();
  }
  return {
    since,
    until: now,
    bucket_seconds: step,
    launch_time: bucketize(launches, since, step, buckets),
    fulfilment_latency: bucketize(latency, since, step, buckets),
    in_use: inUse,
  };
}

function asset(name: string): string {
  return readFileSync(new URL(`../../web-assets/${name}`, import.meta.url), 'utf8');
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

export class Dashboard {
  private readonly clients = new Set<ServerResponse>();
  private readonly failures: FailureStatus[] = [];
  private readonly firstSeen = new Map<string, number>();
  private pushTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastPush = 0;
  private seeded = false;
  private readonly assets: Record<'html' | 'js' | 'css', string>;
  private readonly onNode = () => this.changed();
  private readonly onRequest = (id: string, req: NodeRequest | null) => {
    if (req === null) this.firstSeen.delete(id);
    else if (!this.firstSeen.has(id)) this.firstSeen.set(id, Date.now() / 1000);
    if (req?.state === 'failed') {
      this.addFailure({
        at: Date.now() / 1000, kind: 'request', node: null, request: id, provider: null,
        label: req.node_types.join(','), result: 'request failed', error: `declined by ${req.declined_by.join(', ') || 'every launcher'}`,
      });
    }
    this.changed();
  };
  private readonly onAttempt = (node: Node, _by: string, a: LaunchAttempt) => {
    if (a.result === 'ready') return;
    this.addFailure({
      at: a.endedAt / 1000, kind: 'launch', node: node.id, request: node.allocated_to, provider: node.provider,
      label: node.type.join(','), result: a.result, error: a.error,
    });
    this.changed();
  };

  private readonly onCircuit = () => this.changed();

  constructor(private readonly host: DashboardHost, private readonly log: Logger, private readonly pushIntervalMs = 250) {
    this.assets = { html: asset('dashboard.html'), js: asset('dashboard.js'), css: asset('dashboard.css') };
  }

  start(): void {
    for (const r of this.host.requestCache.all()) if (r.id !== null) this.firstSeen.set(r.id, r.state_time);
    this.host.events.on('node', this.onNode);
    this.host.events.on('request', this.onRequest);
    this.host.events.on('launch-attempt', this.onAttempt);
    this.host.events.on('circuit', this.onCircuit);
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) c.write(': keep-alive\n\n');
    }, 15_000);
    this.heartbeat.unref();
  }

  stop(): void {
    this.host.events.off('node', this.onNode);
    this.host.events.off('request', this.onRequest);
    this.host.events.off('launch-attempt', this.onAttempt);
    this.host.events.off('circuit', this.onCircuit);
    if (this.pushTimer) clearTimeout(this.pushTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  /** Something the page shows changed: push a new snapshot soon. */
  changed(): void {
    if (this.clients.size === 0 || this.pushTimer) return;
    const wait = Math.max(0, this.lastPush + this.pushIntervalMs - Date.now());
    this.pushTimer = setTimeout(() => {
      this.pushTimer = null;
      this.lastPush = Date.now();
      void this.push();
    }, wait);
    this.pushTimer.unref();
  }

  private addFailure(f: FailureStatus): void {
    this.failures.unshift(f);
    if (this.failures.length > FAILURES_KEPT) this.failures.length = FAILURES_KEPT;
  }

  /** Recent failures recorded before this launcher started (first snapshot only). */
  private async seedFailures(): Promise<void> {
    if (this.seeded) return;
    const knex = this.host.knex();
    if (!knex) return;
    this.seeded = true;
    try {
      if (!(await knex.schema.hasTable('launch_attempts'))) return;
      const rows = await knex('launch_attempts').select('node_id', 'provider', 'label', 'result', 'error', 'ended_at')
        .whereNot('result', 'ready').orderBy('ended_at', 'desc').limit(FAILURES_KEPT) as Record<string, unknown>[];
      const known = new Set(this.failures.map((f) => `${f.node}@${f.at}`));
      for (const r of rows.reverse()) {
        const at = num(r.ended_at) ?? 0;
        const node = r.node_id === null || r.node_id === undefined ? null : String(r.node_id);
        if (known.has(`${node}@${at}`)) continue;
        this.failures.push({
          at, kind: 'launch', node, request: null, provider: r.provider === null ? null : String(r.provider),
          label: r.label === null ? null : String(r.label), result: String(r.result), error: r.error === null ? null : String(r.error),
        });
      }
      this.failures.sort((a, b) => b.at - a.at);
      if (this.failures.length > FAILURES_KEPT) this.failures.length = FAILURES_KEPT;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not read recent failures from the database');
    }
  }

  async status(): Promise<StatusSnapshot> {
    await this.seedFailures();
    const now = Date.now() / 1000;
    const base = buildStatus(this.host.nodeCache.all(), this.host.requestCache.all(), this.host.config, this.firstSeen, now);
    for (const [name, c] of this.host.circuitStates?.() ?? []) {
      const p = base.providers.find((x) => x.name === name);
      if (p && c.state !== 'closed') p.launches = c.state === 'open' ? 'suspended' : 'trial';
    }
    let leases: Lease[] = [];
    try {
      leases = await this.host.openLeases();
    } catch {
      // the lease panel is empty while the database is away
    }
    return {
      generated_at: now,
      launcher: {
        hostname: this.host.hostname, ready: this.host.isReady(), zookeeper: this.host.zkState(),
        stats_leader: this.host.statsLeader(), statsd: this.host.statsd(), database: this.host.knex() !== null,
      },
      ...base,
      failures: [...this.failures],
      leases: leases.map((l) => leaseJson(l, now)),
    };
  }

  private async push(): Promise<void> {
    if (this.clients.size === 0) return;
    let data: string;
    try {
      data = JSON.stringify(await this.status());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dashboard snapshot failed');
      return;
    }
    for (const c of this.clients) c.write(`event: status\ndata: ${data}\n\n`);
  }

  register(app: FastifyInstance): void {
    app.get('/', async (_req, reply) => reply.redirect('/dashboard', 302));
    const page = (type: string, body: string) => async (_req: unknown, reply: import('fastify').FastifyReply) =>
      reply.header('Content-Security-Policy', CSP).header('Cache-Control', 'no-cache').type(type).send(body);
    app.get('/dashboard', page('text/html; charset=utf-8', this.assets.html));
    app.get('/dashboard/', page('text/html; charset=utf-8', this.assets.html));
    app.get('/dashboard/dashboard.js', page('text/javascript; charset=utf-8', this.assets.js));
    app.get('/dashboard/dashboard.css', page('text/css; charset=utf-8', this.assets.css));

    app.get(`${API_PREFIX}/status`, async (_req, reply) => reply.header('Cache-Control', 'no-cache').send(await this.status()));

    app.get(`${API_PREFIX}/events`, async (req, reply) => {
      // the feed is open to everyone: bound what idle watchers can hold
      if (this.clients.size >= MAX_EVENT_CLIENTS) {
        throw new ApiError(503, 'busy', 'too many dashboards are connected; try again later', {}, 30);
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
        'X-Content-Type-Options': 'nosniff',
      });
      res.write('retry: 2000\n\n');
      this.clients.add(res);
      req.raw.on('close', () => this.clients.delete(res));
      try {
        res.write(`event: status\ndata: ${JSON.stringify(await this.status())}\n\n`);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'dashboard snapshot failed');
      }
    });

    app.get(`${API_PREFIX}/history`, async (req) => {
      const q = req.query as Record<string, unknown>;
      const hours = q.hours === undefined ? 6 : Number(q.hours);
      if (!Number.isFinite(hours) || hours < 0.1 || hours > 168) {
        throw new ApiError(400, 'invalid_body', 'hours: expected a number between 0.1 and 168');
      }
      const knex = this.host.knex();
      if (!knex) throw new UnavailableError('database_unavailable', 'history needs the database, which is unavailable');
      const inUseNow = this.host.nodeCache.all().filter((n) => n.state === 'in-use').length;
      return queryHistorySeries(knex, hours, inUseNow, Date.now() / 1000);
    });
  }
}
